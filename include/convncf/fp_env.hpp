// fp_env.hpp: subnormal floats flushed to zero on the CPU engine's threads.
//
// A weight whose only gradient is the norm regularization shrinks toward zero and ends as a
// subnormal float (non-zero, below 1.2e-38); on x86 every operation on one takes a slow microcode
// path, and a ConvNCF run on the CPU slowed ninefold by its fourth epoch (bench/NOTES.md). The CPU
// engine therefore computes with flush-to-zero (FTZ: a subnormal result becomes 0) and
// denormals-are-zero (DAZ: a subnormal operand reads as 0), as oneDNN does inside its kernels and
// torch.set_flush_denormal(True) does for PyTorch. Every region of the engine that computes in
// floating point (training, scoring, evaluation, the optimizers) opens a FlushDenormals, in the
// calling thread and in each OpenMP worker, and restores the thread's previous mode when it ends,
// so that code around the engine (a program linking convncf::core) keeps its own.
//
// Numerically: a subnormal value is replaced by a zero of the same sign, a change below 1.2e-38 in
// absolute value; runs stay deterministic for a seed and thread count. The CUDA engines keep
// subnormals (nvcc's default, -ftz=false), so the two differ there by at most that much per
// operand, times the operand it meets (|w| < 1e3 in practice): far inside the engine comparisons'
// tolerances (engine_compare.hpp: per-step losses 1e-4 relative, parameters and optimizer state
// 1e-5 absolute plus 1e-3 relative in FP32, looser in tf32 and bf16).
//
// On processors other than x86-64 and AArch64 the guard does nothing and flushing() is false.
#pragma once

namespace convncf {

// The switch (default on), for benchmarks that show the slow path: false makes FlushDenormals do
// nothing. Set it before an engine runs, not while one is running.
void set_flush_denormals(bool on);
bool flush_denormals_enabled();

// Whether this thread's floating-point mode flushes subnormals now (FTZ and DAZ both set).
bool flushing_denormals();

// FTZ and DAZ on in this thread for the guard's lifetime (when the switch is on); the previous
// mode comes back at the end of the scope.
class FlushDenormals {
 public:
  FlushDenormals();
  ~FlushDenormals();
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned long m_saved = 0;
  bool m_set = false;
};

}  // namespace convncf
