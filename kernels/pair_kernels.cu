// pair_kernels.cu: the per-pair kernels of the GPU training step around the conv stack (see
// include/convncf/pair_kernels.hpp for the data layout and what each computes). CPU twins:
// kernels/pair_kernels_cpu.cpp. Tests: tests/test_pair_kernels_gpu.cu, each kernel against its twin
// on seeded inputs at edge sizes, outputs poisoned first:
//   build/convncf_tests --gtest_filter='Pair*Kernel*'
// Variants (only 1 so far, each the plain port of its twin; the head and the row kernels move a
// few MB per step, the conv stack dominates):
//   make_pairs_kernel1, bpr_loss_grad_kernel1, mf_bpr_kernel1, rows_squared_reg_kernel1,
//   mf_score_kernel1, head_fwd_kernel1: one thread per triple or pair, running the shared
//     per-element function of pair_kernels.hpp, so the arithmetic order is the twin's.
//   head_dY_kernel1, gather_rows_kernel1: one thread per output element.
//   head_wgrad_kernel1: one block per output of dw_out (and one for db_out); each thread sums a
//     fixed strided set of pairs in double, then a fixed shared-memory tree: deterministic
//     without scratch memory or atomics (CUB's block reduction would also be fixed-order; this
//     keeps the order visible and the kernel self-contained).
//   outer_product_bwd_kernel1: one block per pair (grid-stride), G staged once through shared
//     memory in 64 x 64 tiles. 64 threads own a row each and continue dp[a] over the tile's
//     columns, 64 own a column each and continue dq[c] over its rows, so every sum runs in
//     ascending order exactly as the twin's loops (E = 64 is one tile; E up to 4096 keeps the E
//     running dp sums in dynamic shared memory).
// All grids are capped (grid-stride loops), so no size overflows gridDim.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "convncf/common.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/errors.hpp"
#include "convncf/outer_product.hpp"
#include "convncf/pair_kernels.hpp"

namespace convncf {
namespace {

constexpr int kBlock = 256;
constexpr int64_t kMaxGrid = 65536;  // blocks; enough to fill an H200 many times, larger sizes loop
constexpr int kMaxE = 1 << 20;       // the row kernels take any E (outer_product_bwd: kPairBwdMaxE)

unsigned grid_for(int64_t n, int block) {
  return static_cast<unsigned>(std::min<int64_t>(ceil_div<int64_t>(n, block), kMaxGrid));
}

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

constexpr int kOpbTile = 64;               // G tile: kOpbTile x kOpbTile
constexpr int kOpbThreads = 2 * kOpbTile;  // one thread per tile row, one per tile column

// Dynamic shared memory: E floats, the running dp sums of the block's current pair.
CONVNCF_HOT_KERNEL void outer_product_bwd_kernel1(
    int64_t n_pairs, int E,
    const int32_t* __restrict__ pair_user,        // (n_pairs,)
    const int32_t* __restrict__ pair_item,        // (n_pairs,)
    const float* __restrict__ P,                  // (n_users, E)
    const float* __restrict__ Q,                  // (n_items, E)
    const float* __restrict__ G,                  // (n_pairs, 1, E, E)
    float* __restrict__ dp,                       // (n_pairs, E)
    float* __restrict__ dq) {                     // (n_pairs, E)
  extern __shared__ float dp_run[];               // (E,) owned: row a by thread a % 64
  __shared__ float tile[kOpbTile][kOpbTile + 1];  // +1: row-wise reads hit 32 banks
  __shared__ float p_seg[kOpbTile], q_seg[kOpbTile];
  const int tid = static_cast<int>(threadIdx.x);
  const bool row_thread = tid < kOpbTile;
  const int j = row_thread ? tid : tid - kOpbTile;  // the tile row or column this thread owns
  for (int64_t b = blockIdx.x; b < n_pairs; b += gridDim.x) {
    const float* Pu = P + embedding_offset(pair_user[b], E, 0);
    const float* Qi = Q + embedding_offset(pair_item[b], E, 0);
    for (int c0 = 0; c0 < E; c0 += kOpbTile) {
      const int nc = min(kOpbTile, E - c0);
      float dq_run = 0.0f;  // column thread: dq[c0 + j] over the rows seen so far
      for (int a0 = 0; a0 < E; a0 += kOpbTile) {
        const int na = min(kOpbTile, E - a0);
        // Stage G[a0 .. a0+na)[c0 .. c0+nc): consecutive threads read consecutive columns.
        for (int k = tid; k < na * kOpbTile; k += kOpbThreads) {
          const int r = k / kOpbTile, cc = k % kOpbTile;
          if (cc < nc) tile[r][cc] = G[outer_product_index(b, E, a0 + r, c0 + cc)];
        }
        if (tid < na) p_seg[tid] = Pu[a0 + tid];
        if (tid < nc) q_seg[tid] = Qi[c0 + tid];
        __syncthreads();
        if (row_thread) {
          if (j < na) {  // dp[a0 + j], continued over this tile's columns in c order
            float acc = c0 == 0 ? 0.0f : dp_run[a0 + j];
            for (int cc = 0; cc < nc; ++cc) acc += tile[j][cc] * q_seg[cc];
            dp_run[a0 + j] = acc;
          }
        } else if (j < nc) {  // dq[c0 + j], continued over this tile's rows in a order
          for (int r = 0; r < na; ++r) dq_run += tile[r][j] * p_seg[r];
        }
        __syncthreads();  // the next tile overwrites tile, p_seg, q_seg
      }
      if (!row_thread && j < nc) dq[b * E + c0 + j] = dq_run;
    }
    // Thread j wrote rows j, j + 64, ... of dp_run itself: no barrier needed before reading them.
    if (row_thread)
      for (int a = j; a < E; a += kOpbTile) dp[b * E + a] = dp_run[a];
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
    float* dp = rows + row_grad_offset(0, B_cap, t, E);
    float* dqp = rows + row_grad_offset(1, B_cap, t, E);
    float* dqn = rows + row_grad_offset(2, B_cap, t, E);
    if (t >= n_valid) {
      loss[t] = 0.0;
      for (int e = 0; e < E; ++e) dp[e] = dqp[e] = dqn[e] = 0.0f;
      continue;
    }
    loss[t] =
        mf_bpr_triple(E, P + embedding_offset(user[t], E, 0), Q + embedding_offset(pos[t], E, 0),
                      Q + embedding_offset(neg[t], E, 0), dp, dqp, dqn);
  }
}

CONVNCF_HOT_KERNEL void rows_squared_reg_kernel1(int64_t B_cap, int64_t n_valid, int E, double l,
                                                 const int32_t* __restrict__ user,  // (B_cap,)
                                                 const int32_t* __restrict__ pos,   // (B_cap,)
                                                 const int32_t* __restrict__ neg,   // (B_cap,)
                                                 const float* __restrict__ P,       // (n_users, E)
                                                 const float* __restrict__ Q,       // (n_items, E)
                                                 float* __restrict__ rows,          // (3, B_cap, E)
                                                 double* __restrict__ reg) {        // (B_cap,)
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < B_cap;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float* dp = rows + row_grad_offset(0, B_cap, t, E);
    float* dqp = rows + row_grad_offset(1, B_cap, t, E);
    float* dqn = rows + row_grad_offset(2, B_cap, t, E);
    if (t >= n_valid) {
      reg[t] = 0.0;
      for (int e = 0; e < E; ++e) dp[e] = dqp[e] = dqn[e] = 0.0f;
      continue;
    }
    reg[t] = rows_reg_triple(E, l, P + embedding_offset(user[t], E, 0),
                             Q + embedding_offset(pos[t], E, 0), Q + embedding_offset(neg[t], E, 0),
                             dp, dqp, dqn);
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

void make_pairs(int64_t B_cap, int64_t n_valid, const int32_t* __restrict__ user,
                const int32_t* __restrict__ pos, const int32_t* __restrict__ neg,
                int32_t* __restrict__ pair_user, int32_t* __restrict__ pair_item,
                cudaStream_t stream) {
  detail::check_batch("make_pairs", B_cap, n_valid);
  if (B_cap == 0) return;
  detail::check_pointers("make_pairs", {pair_user, pair_item});
  if (n_valid > 0) detail::check_pointers("make_pairs", {user, pos, neg});
  make_pairs_kernel1<<<grid_for(B_cap, kBlock), kBlock, 0, stream>>>(B_cap, n_valid, user, pos, neg,
                                                                     pair_user, pair_item);
  CUDA_CHECK_LAUNCH();
}

void head_fwd(int64_t n_pairs, int C, int HW, const float* __restrict__ Y,
              const float* __restrict__ w_out, const float* __restrict__ b_out, DropoutArgs drop,
              float* __restrict__ h, float* __restrict__ score, cudaStream_t stream) {
  detail::check_head("head_fwd", n_pairs, C, HW, drop);
  if (n_pairs == 0) return;
  detail::check_pointers("head_fwd", {Y, w_out, b_out, h, score});
  head_fwd_kernel1<<<grid_for(n_pairs, kBlock), kBlock, 0, stream>>>(n_pairs, C, HW, Y, w_out,
                                                                     b_out, drop, h, score);
  CUDA_CHECK_LAUNCH();
}

void bpr_loss_grad(int64_t B_cap, int64_t n_valid, const float* __restrict__ score,
                   double* __restrict__ loss, float* __restrict__ dscore, cudaStream_t stream) {
  detail::check_batch("bpr_loss_grad", B_cap, n_valid);
  if (B_cap == 0) return;
  detail::check_pointers("bpr_loss_grad", {loss, dscore});
  if (n_valid > 0) detail::check_pointers("bpr_loss_grad", {score});
  bpr_loss_grad_kernel1<<<grid_for(B_cap, kBlock), kBlock, 0, stream>>>(B_cap, n_valid, score, loss,
                                                                        dscore);
  CUDA_CHECK_LAUNCH();
}

void head_bwd(int64_t n_pairs, int C, int HW, const float* __restrict__ dscore,
              const float* __restrict__ w_out, const float* __restrict__ h, DropoutArgs drop,
              float* __restrict__ dY, float* __restrict__ dw_out, float* __restrict__ db_out,
              cudaStream_t stream) {
  detail::check_head("head_bwd", n_pairs, C, HW, drop);
  detail::check_pointers("head_bwd", {dw_out, db_out});
  if (n_pairs > 0) {
    detail::check_pointers("head_bwd", {dscore, w_out, h, dY});
    head_dY_kernel1<<<grid_for(n_pairs * C * HW, kBlock), kBlock, 0, stream>>>(
        n_pairs, C, HW, dscore, w_out, drop, dY);
    CUDA_CHECK_LAUNCH();
  }
  // Runs even for n_pairs == 0: dw_out and db_out are overwritten with the (empty) sums.
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(int64_t{C} + 1, kMaxGrid));
  head_wgrad_kernel1<<<grid, kBlock, 0, stream>>>(n_pairs, C, dscore, h, dw_out, db_out);
  CUDA_CHECK_LAUNCH();
}

void outer_product_bwd(int64_t n_pairs, int E, const int32_t* __restrict__ pair_user,
                       const int32_t* __restrict__ pair_item, const float* __restrict__ P,
                       const float* __restrict__ Q, const float* __restrict__ G,
                       float* __restrict__ dp, float* __restrict__ dq, cudaStream_t stream) {
  if (n_pairs < 0)
    throw_internal("outer_product_bwd: n_pairs = " + std::to_string(n_pairs) + " < 0");
  detail::check_E("outer_product_bwd", E, kPairBwdMaxE);
  if (n_pairs == 0) return;
  detail::check_pointers("outer_product_bwd", {pair_user, pair_item, P, Q, G, dp, dq});
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(n_pairs, kMaxGrid));
  // E <= 4096: 16 KB dynamic + 17 KB static, under the 48 KB a launch gets without opting in.
  const size_t smem = static_cast<size_t>(E) * sizeof(float);
  outer_product_bwd_kernel1<<<grid, kOpbThreads, smem, stream>>>(n_pairs, E, pair_user, pair_item,
                                                                 P, Q, G, dp, dq);
  CUDA_CHECK_LAUNCH();
}

void gather_row_grads(int64_t B_cap, int64_t n_valid, int E, const float* __restrict__ dp,
                      const float* __restrict__ dq, float* __restrict__ rows, cudaStream_t stream) {
  detail::check_batch("gather_row_grads", B_cap, n_valid);
  detail::check_E("gather_row_grads", E, kMaxE);
  if (B_cap == 0) return;
  detail::check_pointers("gather_row_grads", {rows});
  if (n_valid > 0) detail::check_pointers("gather_row_grads", {dp, dq});
  gather_rows_kernel1<<<grid_for(3 * B_cap * E, kBlock), kBlock, 0, stream>>>(B_cap, n_valid, E, dp,
                                                                              dq, rows);
  CUDA_CHECK_LAUNCH();
}

void mf_bpr_fwd_bwd(int64_t B_cap, int64_t n_valid, int E, const int32_t* __restrict__ user,
                    const int32_t* __restrict__ pos, const int32_t* __restrict__ neg,
                    const float* __restrict__ P, const float* __restrict__ Q,
                    double* __restrict__ loss, float* __restrict__ rows, cudaStream_t stream) {
  detail::check_batch("mf_bpr_fwd_bwd", B_cap, n_valid);
  detail::check_E("mf_bpr_fwd_bwd", E, kMaxE);
  if (B_cap == 0) return;
  detail::check_pointers("mf_bpr_fwd_bwd", {loss, rows});
  if (n_valid > 0) detail::check_pointers("mf_bpr_fwd_bwd", {user, pos, neg, P, Q});
  mf_bpr_kernel1<<<grid_for(B_cap, kBlock), kBlock, 0, stream>>>(B_cap, n_valid, E, user, pos, neg,
                                                                 P, Q, loss, rows);
  CUDA_CHECK_LAUNCH();
}

void rows_squared_reg(int64_t B_cap, int64_t n_valid, int E, double l,
                      const int32_t* __restrict__ user, const int32_t* __restrict__ pos,
                      const int32_t* __restrict__ neg, const float* __restrict__ P,
                      const float* __restrict__ Q, float* __restrict__ rows,
                      double* __restrict__ reg, cudaStream_t stream) {
  detail::check_batch("rows_squared_reg", B_cap, n_valid);
  detail::check_E("rows_squared_reg", E, kMaxE);
  detail::check_reg_coef("rows_squared_reg", l);
  if (B_cap == 0) return;
  detail::check_pointers("rows_squared_reg", {rows, reg});
  if (n_valid > 0) detail::check_pointers("rows_squared_reg", {user, pos, neg, P, Q});
  rows_squared_reg_kernel1<<<grid_for(B_cap, kBlock), kBlock, 0, stream>>>(
      B_cap, n_valid, E, l, user, pos, neg, P, Q, rows, reg);
  CUDA_CHECK_LAUNCH();
}

void mf_score_pairs(int64_t n, int E, const int32_t* __restrict__ user,
                    const int32_t* __restrict__ item, const float* __restrict__ P,
                    const float* __restrict__ Q, float* __restrict__ score, cudaStream_t stream) {
  if (n < 0) throw_internal("mf_score_pairs: n = " + std::to_string(n) + " < 0");
  detail::check_E("mf_score_pairs", E, kMaxE);
  if (n == 0) return;
  detail::check_pointers("mf_score_pairs", {user, item, P, Q, score});
  mf_score_kernel1<<<grid_for(n, kBlock), kBlock, 0, stream>>>(n, E, user, item, P, Q, score);
  CUDA_CHECK_LAUNCH();
}

}  // namespace convncf
