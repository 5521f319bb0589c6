// bpr.cu: the BPR loss of a batch and the MF-BPR model's fused step and scores
// (include/convncf/bpr.hpp). CPU twins and argument checks: kernels/bpr_cpu.cpp. Tests:
// tests/test_bpr.cpp (the twins, against the definition and CpuEngine) and tests/test_bpr_gpu.cu,
// each kernel against its twin on seeded inputs at edge sizes (padding, all padding, extreme
// margins), outputs poisoned first:
//   build/convncf_tests --gtest_filter='BprLossGrad*:MfBpr*:MfScorePairs*'
// Variants (only 1 so far, each the plain port of its twin):
//   bpr_loss_grad_kernel1, mf_bpr_kernel1, mf_score_kernel1: one thread per triple or pair,
//     running the shared per-element function of bpr.hpp (bpr_triple, mf_bpr_triple,
//     dot_in_order), so the arithmetic order is the twin's.
// All grids are capped (grid-stride loops), so no size overflows gridDim.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "convncf/bpr.hpp"
#include "convncf/common.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/grid_stride.hpp"
#include "convncf/outer_product.hpp"
#include "convncf/pairs.hpp"

namespace convncf {
namespace {

using grid_stride::grid_for;
using grid_stride::kBlock;

CONVNCF_HOT_KERNEL void bpr_loss_grad_kernel1(int64_t B_cap, int64_t n_valid,
                                              const float* __restrict__ score,  // (2*B_cap,)
                                              double* __restrict__ loss,        // (B_cap,)
                                              float* __restrict__ dscore) {     // (2*B_cap,)
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < B_cap;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double l = 0.0;
    float g = 0.0f;
    if (t < n_valid) g = bpr_triple(score[2 * t], score[2 * t + 1], &l);
    loss[t] = l;
    dscore[2 * t] = g;
    dscore[2 * t + 1] = t < n_valid ? -g : 0.0f;
  }
}

CONVNCF_HOT_KERNEL void mf_bpr_kernel1(int64_t B_cap, int64_t n_valid, int E,
                                       const int32_t* __restrict__ user,  // (B_cap,)
                                       const int32_t* __restrict__ pos,   // (B_cap,)
                                       const int32_t* __restrict__ neg,   // (B_cap,)
                                       const float* __restrict__ P,       // (n_users, E)
                                       const float* __restrict__ Q,       // (n_items, E)
                                       double* __restrict__ loss,         // (B_cap,)
                                       float* __restrict__ rows) {        // (3, B_cap, E)
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < B_cap;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    loss[t] = triple_rows_slot(t, B_cap, n_valid, E, user, pos, neg, P, Q, rows, MfBprTriple{});
  }
}

CONVNCF_HOT_KERNEL void mf_score_kernel1(int64_t n, int E,
                                         const int32_t* __restrict__ user,  // (n,)
                                         const int32_t* __restrict__ item,  // (n,)
                                         const float* __restrict__ P,       // (n_users, E)
                                         const float* __restrict__ Q,       // (n_items, E)
                                         float* __restrict__ score) {       // (n,)
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x)
    score[k] =
        dot_in_order(E, P + embedding_offset(user[k], E, 0), Q + embedding_offset(item[k], E, 0));
}

}  // namespace

void bpr_loss_grad(int64_t B_cap, int64_t n_valid, const float* __restrict__ score,
                   double* __restrict__ loss, float* __restrict__ dscore, cudaStream_t stream) {
  check_bpr_loss_grad_args(B_cap, n_valid, score, loss, dscore);
  if (B_cap == 0) return;
  bpr_loss_grad_kernel1<<<grid_for(B_cap, kBlock), kBlock, 0, stream>>>(B_cap, n_valid, score, loss,
                                                                        dscore);
  CUDA_CHECK_LAUNCH();
}

void mf_bpr_fwd_bwd(int64_t B_cap, int64_t n_valid, int E, const int32_t* __restrict__ user,
                    const int32_t* __restrict__ pos, const int32_t* __restrict__ neg,
                    const float* __restrict__ P, const float* __restrict__ Q,
                    double* __restrict__ loss, float* __restrict__ rows, cudaStream_t stream) {
  check_mf_bpr_fwd_bwd_args(B_cap, n_valid, E, user, pos, neg, P, Q, loss, rows);
  if (B_cap == 0) return;
  mf_bpr_kernel1<<<grid_for(B_cap, kBlock), kBlock, 0, stream>>>(B_cap, n_valid, E, user, pos, neg,
                                                                 P, Q, loss, rows);
  CUDA_CHECK_LAUNCH();
}

void mf_score_pairs(int64_t n, int E, const int32_t* __restrict__ user,
                    const int32_t* __restrict__ item, const float* __restrict__ P,
                    const float* __restrict__ Q, float* __restrict__ score, cudaStream_t stream) {
  check_mf_score_pairs_args(n, E, user, item, P, Q, score);
  if (n == 0) return;
  mf_score_kernel1<<<grid_for(n, kBlock), kBlock, 0, stream>>>(n, E, user, item, P, Q, score);
  CUDA_CHECK_LAUNCH();
}

}  // namespace convncf
