// head.cu: the output layer of the pairs, forward and backward (include/convncf/head.hpp: what
// each computes, the dropout mask). CPU twins and argument checks: kernels/head_cpu.cpp. Tests:
// tests/test_head.cpp (the twins, against CpuEngine and finite differences) and
// tests/test_head_gpu.cu, each kernel against its twin on seeded inputs at edge sizes, outputs
// poisoned first:
//   build/convncf_tests --gtest_filter='Head*'
// Variants (only 1 so far, each the plain port of its twin; the head moves a few MB per step, the
// conv stack dominates):
//   head_fwd_kernel1: one thread per pair, running the shared per-element function of head.hpp
//     (head_pair_fwd), so the arithmetic order is the twin's.
//   head_dY_kernel1: one thread per output element (head_dY).
//   head_wgrad_kernel1: one block per output of dw_out (and one for db_out); each thread sums a
//     fixed strided set of pairs in double, then a fixed shared-memory tree: deterministic
//     without scratch memory or atomics (CUB's block reduction would also be fixed-order; this
//     keeps the order visible and the kernel self-contained).
// All grids are capped (grid-stride loops), so no size overflows gridDim.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "convncf/common.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/grid_stride.hpp"
#include "convncf/head.hpp"

namespace convncf {
namespace {

using grid_stride::grid_for;
using grid_stride::kBlock;
using grid_stride::kMaxGrid;

CONVNCF_HOT_KERNEL void head_fwd_kernel1(int64_t n_pairs, int C, int HW,
                                         const float* __restrict__ Y,      // (n_pairs, C, HW)
                                         const float* __restrict__ w_out,  // (C,)
                                         const float* __restrict__ b_out,  // (1,)
                                         DropoutArgs drop,
                                         float* __restrict__ h,        // (n_pairs, C)
                                         float* __restrict__ score) {  // (n_pairs,)
  const float b = b_out[0];
  const int64_t per_pair = static_cast<int64_t>(C) * HW;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < n_pairs;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x)
    score[p] = head_pair_fwd(C, HW, Y + p * per_pair, w_out, b, drop, p, h + p * C);
}

CONVNCF_HOT_KERNEL void head_dY_kernel1(int64_t n_pairs, int C, int HW,
                                        const float* __restrict__ dscore,  // (n_pairs,)
                                        const float* __restrict__ w_out,   // (C,)
                                        DropoutArgs drop,
                                        float* __restrict__ dY) {  // (n_pairs, C, HW)
  const int64_t n = n_pairs * C * HW;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t pc = idx / HW;  // p * C + c
    const int64_t p = pc / C;
    const int c = static_cast<int>(pc - p * C);
    dY[idx] = head_dY(dscore[p], w_out[c], drop, p, c);
  }
}

// Column `col` < C: dw_out[col] = sum_p dscore[p] * h[p][col]; col == C: db_out = sum_p dscore[p].
// Thread i sums pairs i, i + blockDim, ... in double; the block then halves in a fixed tree.
// blockDim.x must be kBlock (a power of two).
CONVNCF_HOT_KERNEL void head_wgrad_kernel1(int64_t n_pairs, int C,
                                           const float* __restrict__ dscore,  // (n_pairs,)
                                           const float* __restrict__ h,       // (n_pairs, C)
                                           float* __restrict__ dw_out,        // (C,)
                                           float* __restrict__ db_out) {      // (1,)
  __shared__ double part[kBlock];
  for (int col = blockIdx.x; col <= C; col += gridDim.x) {
    double acc = 0.0;
    for (int64_t p = threadIdx.x; p < n_pairs; p += blockDim.x) {
      const double d = static_cast<double>(dscore[p]);
      acc += col < C ? d * static_cast<double>(h[p * C + col]) : d;
    }
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int half = kBlock / 2; half > 0; half /= 2) {
      if (static_cast<int>(threadIdx.x) < half) part[threadIdx.x] += part[threadIdx.x + half];
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      if (col < C)
        dw_out[col] = static_cast<float>(part[0]);
      else
        db_out[0] = static_cast<float>(part[0]);
    }
    __syncthreads();  // part[0] is read before the next column overwrites part
  }
}

}  // namespace

void head_fwd(int64_t n_pairs, int C, int HW, const float* __restrict__ Y,
              const float* __restrict__ w_out, const float* __restrict__ b_out, DropoutArgs drop,
              float* __restrict__ h, float* __restrict__ score, cudaStream_t stream) {
  check_head_fwd_args(n_pairs, C, HW, Y, w_out, b_out, drop, h, score);
  if (n_pairs == 0) return;
  head_fwd_kernel1<<<grid_for(n_pairs, kBlock), kBlock, 0, stream>>>(n_pairs, C, HW, Y, w_out,
                                                                     b_out, drop, h, score);
  CUDA_CHECK_LAUNCH();
}

void head_bwd(int64_t n_pairs, int C, int HW, const float* __restrict__ dscore,
              const float* __restrict__ w_out, const float* __restrict__ h, DropoutArgs drop,
              float* __restrict__ dY, float* __restrict__ dw_out, float* __restrict__ db_out,
              cudaStream_t stream) {
  check_head_bwd_args(n_pairs, C, HW, dscore, w_out, h, drop, dY, dw_out, db_out);
  if (n_pairs > 0) {
    head_dY_kernel1<<<grid_for(n_pairs * C * HW, kBlock), kBlock, 0, stream>>>(
        n_pairs, C, HW, dscore, w_out, drop, dY);
    CUDA_CHECK_LAUNCH();
  }
  // Runs even for n_pairs == 0: dw_out and db_out are overwritten with the (empty) sums.
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(int64_t{C} + 1, kMaxGrid));
  head_wgrad_kernel1<<<grid, kBlock, 0, stream>>>(n_pairs, C, dscore, h, dw_out, db_out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace convncf
