// optim.cu: SGD, Adagrad and Adam steps on the GPU (include/convncf/optim_gpu.hpp). The
// per-element update is optim.hpp's sgd_update / adagrad_update / adam_update, the functions the
// CPU Optimizer runs, and Adam's bias corrections come from the same adam_corrections, so a GPU
// step equals Optimizer<float>'s up to the device's contraction of a*b+c into one rounding.
// CPU twin: Optimizer<float> (host/engine/optim.cpp); the launchers' argument checks:
// kernels/optim_cpu.cpp. Tests: tests/test_optim_gpu.cu:
//   build/convncf_tests --gtest_filter='OptimGpu*'
// Kernels (one template per learner, so the element loop carries no switch):
//   optim_dense_kernel1  one thread per element, grid-stride over n.
//   optim_rows_kernel1   one thread per element of the listed rows, grid-stride over
//                        min(*n_rows, max_rows) * row_size; the row count is read on the device.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "convncf/common.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/optim_gpu.hpp"

namespace convncf {
namespace {

constexpr int kBlock = 256;
constexpr int64_t kMaxGrid = 65536;  // many waves on an H100/H200; larger arrays loop

// The numbers of one step, by value into the kernel.
struct StepArgs {
  double lr, wd;
  double adagrad_eps;
  double beta1, beta2, adam_eps, bc1, bc2;
};

template <Learner L>
__device__ __forceinline__ void update_element(const StepArgs& a, int64_t i, float* __restrict__ p,
                                               const float* __restrict__ g, float* __restrict__ s0,
                                               float* __restrict__ s1) {
  if constexpr (L == Learner::SGD) {
    sgd_update(p[i], g[i], a.lr, a.wd);
  } else if constexpr (L == Learner::Adagrad) {
    adagrad_update(p[i], g[i], s0[i], a.lr, a.adagrad_eps, a.wd);
  } else {
    adam_update(p[i], g[i], s0[i], s1[i], a.lr, a.beta1, a.beta2, a.adam_eps, a.wd, a.bc1, a.bc2);
  }
}

template <Learner L>
CONVNCF_HOT_KERNEL void optim_dense_kernel1(int64_t n, StepArgs a,
                                            float* __restrict__ p,        // (n,)
                                            const float* __restrict__ g,  // (n,)
                                            float* __restrict__ s0,       // (n,) or null
                                            float* __restrict__ s1) {     // (n,) or null
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    update_element<L>(a, i, p, g, s0, s1);
}

template <Learner L>
CONVNCF_HOT_KERNEL void optim_rows_kernel1(int64_t max_rows, int row_size, StepArgs a,
                                           const int32_t* __restrict__ rows,    // (max_rows,)
                                           const int32_t* __restrict__ n_rows,  // (1,)
                                           float* __restrict__ p,               // (?, row_size)
                                           const float* __restrict__ g,         // (?, row_size)
                                           float* __restrict__ s0,              // (?, row_size)
                                           float* __restrict__ s1) {            // (?, row_size)
  const int64_t nr = min(max(static_cast<int64_t>(*n_rows), int64_t{0}), max_rows);
  const int64_t total = nr * row_size;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += stride) {
    const int64_t r = k / row_size;
    const int col = static_cast<int>(k - r * row_size);
    update_element<L>(a, static_cast<int64_t>(rows[r]) * row_size + col, p, g, s0, s1);
  }
}

unsigned grid_for(int64_t work) {
  return static_cast<unsigned>(std::min<int64_t>(ceil_div<int64_t>(work, kBlock), kMaxGrid));
}

// The step's numbers (after the launcher's argument checks).
StepArgs step_args(const OptimizerSpec& spec, int64_t step) {
  const AdamCorrections c = adam_corrections(spec, step);
  return {
      spec.lr, spec.weight_decay, spec.adagrad_eps, spec.beta1, spec.beta2, spec.adam_eps, c.bc1,
      c.bc2};
}

}  // namespace

void optim_dense_gpu(const OptimizerSpec& spec, int64_t step, int64_t n, float* __restrict__ p,
                     const float* __restrict__ g, float* __restrict__ s0, float* __restrict__ s1,
                     cudaStream_t stream) {
  check_optim_dense_args(spec, step, n, p, g, s0, s1);
  const StepArgs a = step_args(spec, step);
  if (n == 0) return;
  const unsigned grid = grid_for(n);
  switch (spec.learner) {
    case Learner::SGD:
      optim_dense_kernel1<Learner::SGD><<<grid, kBlock, 0, stream>>>(n, a, p, g, s0, s1);
      break;
    case Learner::Adagrad:
      optim_dense_kernel1<Learner::Adagrad><<<grid, kBlock, 0, stream>>>(n, a, p, g, s0, s1);
      break;
    case Learner::Adam:
      optim_dense_kernel1<Learner::Adam><<<grid, kBlock, 0, stream>>>(n, a, p, g, s0, s1);
      break;
  }
  CUDA_CHECK_LAUNCH();
}

void optim_rows_gpu(const OptimizerSpec& spec, int64_t step, const int32_t* __restrict__ rows,
                    const int32_t* __restrict__ n_rows, int64_t max_rows, int row_size,
                    float* __restrict__ p, const float* __restrict__ g, float* __restrict__ s0,
                    float* __restrict__ s1, cudaStream_t stream) {
  check_optim_rows_args(spec, step, rows, n_rows, max_rows, row_size, p, g, s0, s1);
  const StepArgs a = step_args(spec, step);
  if (max_rows == 0) return;
  const unsigned grid = grid_for(max_rows * row_size);
  switch (spec.learner) {
    case Learner::SGD:
      optim_rows_kernel1<Learner::SGD>
          <<<grid, kBlock, 0, stream>>>(max_rows, row_size, a, rows, n_rows, p, g, s0, s1);
      break;
    case Learner::Adagrad:
      optim_rows_kernel1<Learner::Adagrad>
          <<<grid, kBlock, 0, stream>>>(max_rows, row_size, a, rows, n_rows, p, g, s0, s1);
      break;
    case Learner::Adam:
      optim_rows_kernel1<Learner::Adam>
          <<<grid, kBlock, 0, stream>>>(max_rows, row_size, a, rows, n_rows, p, g, s0, s1);
      break;
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace convncf
