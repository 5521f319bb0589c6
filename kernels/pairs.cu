// pairs.cu: the pair layout of a training step (include/convncf/pairs.hpp): the pairs from a batch
// of triples, the per-triple row gradients from the per-pair ones, the item rows in the CPU
// engine's order, and the (user, item) pairs of a scoring range. CPU twins and argument checks:
// kernels/pairs_cpu.cpp. Tests: tests/test_pairs.cpp (the twins, by hand and by definition) and
// tests/test_pairs_gpu.cu, each kernel against its twin exactly (pure data movement), outputs
// poisoned first:
//   build/convncf_tests --gtest_filter='MakePairs*:GatherRowGrads*:PairLayout.*'
// Variants (only 1 so far, each the plain port of its twin):
//   make_pairs_kernel1: one thread per triple, running the shared pair_ids of pairs.hpp.
//   gather_rows_kernel1: one thread per output element (gathered_row_grad).
//   interleave_rows_kernel1, range_pairs_kernel1: one thread per output element.
// All grids are capped (grid-stride loops), so no size overflows gridDim.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "convncf/common.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/grid_stride.hpp"
#include "convncf/pairs.hpp"

namespace convncf {
namespace {

using grid_stride::grid_for;
using grid_stride::kBlock;

__global__ void make_pairs_kernel1(int64_t B_cap, int64_t n_valid,
                                   const int32_t* __restrict__ user,   // (B_cap,)
                                   const int32_t* __restrict__ pos,    // (B_cap,)
                                   const int32_t* __restrict__ neg,    // (B_cap,)
                                   int32_t* __restrict__ pair_user,    // (2*B_cap,)
                                   int32_t* __restrict__ pair_item) {  // (2*B_cap,)
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < B_cap;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    for (int side = 0; side < 2; ++side) {
      const PairIds ids = pair_ids(t, side, n_valid, user, pos, neg);
      pair_user[2 * t + side] = ids.user;
      pair_item[2 * t + side] = ids.item;
    }
  }
}

__global__ void gather_rows_kernel1(int64_t B_cap, int64_t n_valid, int E,
                                    const float* __restrict__ dp,  // (2*B_cap, E)
                                    const float* __restrict__ dq,  // (2*B_cap, E)
                                    float* __restrict__ rows) {    // (3, B_cap, E)
  const int64_t per_which = B_cap * E;
  const int64_t n = 3 * per_which;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int which = static_cast<int>(idx / per_which);
    const int64_t rem = idx - which * per_which;
    const int64_t t = rem / E;
    const int e = static_cast<int>(rem - t * E);
    rows[idx] = gathered_row_grad(which, t, e, n_valid, E, dp, dq);
  }
}

__global__ void interleave_rows_kernel1(int64_t B_cap, int E, const float* __restrict__ rows,
                                        float* __restrict__ out) {
  const int64_t total = 2 * B_cap * E;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t pair = i / E, e = i - pair * E;
    const int64_t t = pair / 2, side = pair % 2;  // side 0: positive (rows[1]), 1: negative (rows[2])
    out[i] = rows[((1 + side) * B_cap + t) * E + e];
  }
}

__global__ void range_pairs_kernel1(int64_t nu, const int32_t* __restrict__ users, int32_t item_lo,
                                    int32_t n, int64_t cap, int32_t* __restrict__ pair_user,
                                    int32_t* __restrict__ pair_item) {
  const int64_t used = nu * n;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < cap;
       k += int64_t(gridDim.x) * blockDim.x) {
    if (k < used) {
      pair_user[k] = users[k / n];
      pair_item[k] = item_lo + static_cast<int32_t>(k % n);
    } else {
      pair_user[k] = 0;
      pair_item[k] = 0;
    }
  }
}

}  // namespace

void make_pairs(int64_t B_cap, int64_t n_valid, const int32_t* __restrict__ user,
                const int32_t* __restrict__ pos, const int32_t* __restrict__ neg,
                int32_t* __restrict__ pair_user, int32_t* __restrict__ pair_item,
                cudaStream_t stream) {
  check_make_pairs_args(B_cap, n_valid, user, pos, neg, pair_user, pair_item);
  if (B_cap == 0) return;
  make_pairs_kernel1<<<grid_for(B_cap, kBlock), kBlock, 0, stream>>>(B_cap, n_valid, user, pos, neg,
                                                                     pair_user, pair_item);
  CUDA_CHECK_LAUNCH();
}

void gather_row_grads(int64_t B_cap, int64_t n_valid, int E, const float* __restrict__ dp,
                      const float* __restrict__ dq, float* __restrict__ rows, cudaStream_t stream) {
  check_gather_row_grads_args(B_cap, n_valid, E, dp, dq, rows);
  if (B_cap == 0) return;
  gather_rows_kernel1<<<grid_for(3 * B_cap * E, kBlock), kBlock, 0, stream>>>(B_cap, n_valid, E, dp,
                                                                              dq, rows);
  CUDA_CHECK_LAUNCH();
}

void interleave_rows(int64_t B_cap, int E, const float* __restrict__ rows, float* __restrict__ out,
                     cudaStream_t stream) {
  check_interleave_rows_args(B_cap, E, rows, out);
  if (B_cap == 0) return;
  interleave_rows_kernel1<<<grid_for(2 * B_cap * E, kBlock), kBlock, 0, stream>>>(B_cap, E, rows,
                                                                                 out);
  CUDA_CHECK_LAUNCH();
}

void range_pairs(int64_t nu, const int32_t* __restrict__ users, int32_t item_lo, int32_t n, int64_t cap,
                 int32_t* __restrict__ pair_user, int32_t* __restrict__ pair_item, cudaStream_t stream) {
  check_range_pairs_args(nu, users, item_lo, n, cap, pair_user, pair_item);
  if (cap == 0) return;
  range_pairs_kernel1<<<grid_for(cap, kBlock), kBlock, 0, stream>>>(nu, users, item_lo, n, cap,
                                                                     pair_user, pair_item);
  CUDA_CHECK_LAUNCH();
}

}  // namespace convncf
