// optim_gpu.hpp: SGD, Adagrad and Adam on the GPU, dense (every element) or on a device list of
// rows (the "lazy" update: only the batch's embedding rows). The per-element update is
// optim.hpp's, shared as __host__ __device__ functions, so a GPU step equals the CPU step up to
// the rounding of the device's sqrt/div (both compute in double, round to float once).
// Adam's bias corrections are computed once per step on the host (adam_corrections) and passed
// in, on both sides.
// Lazy Adam differs from PyTorch's dense Adam: rows absent from a batch keep their moments
// instead of decaying them, and are not moved by their old momentum.
// Kernels: kernels/optim.cu. CPU twin: Optimizer<float> (optim.hpp, host/engine/optim.cpp), which
// runs the same per-element functions; the launchers' argument checks: kernels/optim_cpu.cpp.
// Tests: tests/test_optim.cpp (the CPU optimizer), tests/test_optim_gpu.cu (against
// Optimizer<float>).
#pragma once
#include <cstdint>

#include "convncf/optim.hpp"

struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace convncf {

// One step (1-based `step`) over n elements: p, g, s0 (Adagrad accumulator / Adam m), s1 (Adam v).
// s0, s1 may be null when the learner does not use them.
void optim_dense_gpu(const OptimizerSpec& spec, int64_t step, int64_t n,
                     float* __restrict__ p,        // (n,)
                     const float* __restrict__ g,  // (n,)
                     float* __restrict__ s0,       // (n,) or null
                     float* __restrict__ s1,       // (n,) or null
                     cudaStream_t stream);

// The same on the rows rows[0 .. *n_rows) of a (?, row_size) table; *n_rows is read on the
// device (no host sync), max_rows bounds the grid.
void optim_rows_gpu(const OptimizerSpec& spec, int64_t step,
                    const int32_t* __restrict__ rows,    // (max_rows,) device
                    const int32_t* __restrict__ n_rows,  // (1,) device
                    int64_t max_rows, int row_size,
                    float* __restrict__ p, const float* __restrict__ g, float* __restrict__ s0,
                    float* __restrict__ s1, cudaStream_t stream);

// The launchers' argument checks, shared by each launcher and the emulated one: step >= 1, the
// state the learner needs (s0 for Adagrad and Adam, s1 for Adam) not null, n >= 0 (dense) or
// max_rows >= 0 and row_size >= 1 (rows), and the other arrays not null when there is work.
// Throw Error(kExitSoftware) naming the launcher.
void check_optim_dense_args(const OptimizerSpec& spec, int64_t step, int64_t n, const float* p,
                            const float* g, const float* s0, const float* s1);
void check_optim_rows_args(const OptimizerSpec& spec, int64_t step, const int32_t* rows,
                           const int32_t* n_rows, int64_t max_rows, int row_size, const float* p,
                           const float* g, const float* s0, const float* s1);

}  // namespace convncf
