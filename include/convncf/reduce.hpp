// reduce.hpp: deterministic reductions on the GPU, for the whole-table norms, the batch losses and
// the finite checks. Sums run in double over a fixed grid of kReduceBlocks blocks of
// kReduceThreads threads and a fixed-order tree, so the result depends on n and the values only,
// never on the device or the run.
// Kernels: kernels/reduce.cu. Argument checks: kernels/reduce_cpu.cpp (no CPU twin file: the
// emulated device, tests/emulated/fake_kernels.cpp, replays the fixed grid and tree with these
// constants). Tests: tests/test_reduce_gpu.cu.
#pragma once
#include <cstdint>

struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace convncf {

// The summation order: part of the result's bits, fixed at compile time.
inline constexpr int kReduceBlocks = 1024;  // fixed: the summation order must not depend on n
inline constexpr int kReduceThreads = 256;  // power of two (the tree halves it)

// out[0] = sum of x[i]^2 over n elements (the whole-table norms). `partials` holds
// reduce_partials_size() doubles (kReduceBlocks).
int64_t reduce_partials_size();
void sum_squares_gpu(int64_t n, const float* __restrict__ x, double* __restrict__ partials,
                     double* __restrict__ out, cudaStream_t stream);
// out[0] = sum of x[0 .. n) in double, the same fixed order as sum_squares_gpu (batch losses).
void sum_gpu(int64_t n, const double* __restrict__ x, double* __restrict__ partials,
             double* __restrict__ out, cudaStream_t stream);
// out += the count of non-finite values among x[0 .. n) (int atomic; *out zeroed by the caller).
void count_non_finite_gpu(int64_t n, const float* __restrict__ x, int32_t* __restrict__ out,
                          cudaStream_t stream);

// The launchers' argument checks, shared by each launcher and the emulated one; they throw
// Error(kExitSoftware) naming `who`. Sums: n >= 0, partials and out not null, x not null when
// n > 0. count_non_finite_gpu: n >= 0, x and out not null when n > 0.
void check_deterministic_sum_args(int64_t n, const void* x, const double* partials,
                                  const double* out, const char* who);
void check_count_non_finite_args(int64_t n, const float* x, const int32_t* out);

}  // namespace convncf
