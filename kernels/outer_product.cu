// outer_product.cu: the interaction map and its backward (include/convncf/outer_product.hpp).
// Forward out[b][0][a][c] = P[user[b]][a] * Q[item[b]][c]; backward, per pair from its gradient
// map G, dp = G q and dq = G^T p. CPU twins and argument checks: kernels/outer_product_cpu.cpp.
// Tests: tests/test_outer_product.cpp (the twins) and tests/test_outer_product_gpu.cu, which
// compares every element of each forward variant with the twin exactly (one multiply, so the bits
// must match) and the backward within the rounding of FMA contraction:
//   build/convncf_tests --gtest_filter='OuterProductFwd.*:OuterProductBwd*'
// Forward variants:
//   1. outer_product_fwd_kernel1: the plain port of the twin. One thread per output element; the
//      flat index is split into (b, a, c) by outer_product_coord, and each thread reads its two
//      factors from global memory (the reads of a warp hit the same two rows, so L1 serves them).
//   2. outer_product_fwd_kernel2: one block per (user, item) pair, grid-stride over pairs. The two
//      rows are staged once in shared memory; when E % 4 == 0 and `out` is 16-byte aligned, each
//      thread writes a float4 (four columns of one row of the map), so the kernel is a pure
//      streaming write of B*E*E floats; otherwise it writes scalars.
// Backward (one variant so far):
//   outer_product_bwd_kernel1: one block per pair (grid-stride), G staged once through shared
//     memory in 64 x 64 tiles. 64 threads own a row each and continue dp[a] over the tile's
//     columns, 64 own a column each and continue dq[c] over its rows, so every sum runs in
//     ascending order exactly as the twin's loops (E = 64 is one tile; E up to 4096 keeps the E
//     running dp sums in dynamic shared memory). Its grid is capped (grid-stride loop).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "convncf/common.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/errors.hpp"
#include "convncf/grid_stride.hpp"
#include "convncf/outer_product.hpp"

namespace convncf {
namespace {

constexpr int kBlock1 = 256;
constexpr int kBlock2 = 256;
// Grid cap of variant 2: enough blocks to fill an H100/H200 many times over; larger batches loop.
constexpr int64_t kMaxGrid2 = 65536;
using grid_stride::kMaxGrid;  // the backward's grid cap (blocks), likewise

__global__ void outer_product_fwd_kernel1(int64_t B, int E,
                                          const int32_t* __restrict__ user,  // (B,)
                                          const int32_t* __restrict__ item,  // (B,)
                                          const float* __restrict__ P,       // (n_users, E)
                                          const float* __restrict__ Q,       // (n_items, E)
                                          float* __restrict__ out) {         // (B, 1, E, E)
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= B * E * E) return;
  const OuterProductCoord k = outer_product_coord(idx, E);
  out[idx] = outer_product_value(P, Q, user[k.b], item[k.b], E, k.a, k.c);
}

// Dynamic shared memory: 2*E floats, p row then q row.
CONVNCF_HOT_KERNEL void outer_product_fwd_kernel2(int64_t B, int E,
                                          const int32_t* __restrict__ user,  // (B,)
                                          const int32_t* __restrict__ item,  // (B,)
                                          const float* __restrict__ P,       // (n_users, E)
                                          const float* __restrict__ Q,       // (n_items, E)
                                          float* __restrict__ out,           // (B, 1, E, E)
                                          bool vec4) {
  extern __shared__ float smem[];
  float* p = smem;      // (E,)
  float* q = smem + E;  // (E,)
  const int e2 = E * E;
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    const int32_t u = user[b];
    const int32_t i = item[b];
    for (int t = threadIdx.x; t < E; t += blockDim.x) {
      p[t] = P[embedding_offset(u, E, t)];
      q[t] = Q[embedding_offset(i, E, t)];
    }
    __syncthreads();
    float* o = out + outer_product_index(b, E, 0, 0);
    if (vec4) {
      const int e4 = E / 4;
      for (int t = threadIdx.x; t < e2 / 4; t += blockDim.x) {
        const int a = t / e4;
        const int c = (t - a * e4) * 4;
        const float pa = p[a];
        // Same single multiply per element as outer_product_value.
        const float4 v = make_float4(pa * q[c], pa * q[c + 1], pa * q[c + 2], pa * q[c + 3]);
        *reinterpret_cast<float4*>(o + static_cast<int64_t>(a) * E + c) = v;
      }
    } else {
      for (int t = threadIdx.x; t < e2; t += blockDim.x) {
        const int a = t / E;
        const int c = t - a * E;
        o[t] = p[a] * q[c];
      }
    }
    // The next pair overwrites p and q: every thread must be done reading them.
    __syncthreads();
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

}  // namespace

void outer_product_fwd(int64_t B, int E, const int32_t* __restrict__ user,
                       const int32_t* __restrict__ item, const float* __restrict__ P,
                       const float* __restrict__ Q, float* __restrict__ out, cudaStream_t stream,
                       int variant) {
  check_outer_product_fwd_args(B, E, user, item, P, Q, out, variant);
  if (B == 0) return;
  const int64_t n = B * E * E;
  if (variant == 1) {
    const int64_t grid = ceil_div<int64_t>(n, kBlock1);
    if (grid > 0x7fffffff)
      throw_internal("outer_product_fwd: B*E*E = " + std::to_string(n) +
                     " is too large for variant 1");
    outer_product_fwd_kernel1<<<static_cast<unsigned>(grid), kBlock1, 0, stream>>>(B, E, user, item,
                                                                                   P, Q, out);
  } else {
    const bool vec4 = E % 4 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0;
    const int64_t grid = std::min<int64_t>(B, kMaxGrid2);
    const size_t smem = 2 * static_cast<size_t>(E) * sizeof(float);
    outer_product_fwd_kernel2<<<static_cast<unsigned>(grid), kBlock2, smem, stream>>>(
        B, E, user, item, P, Q, out, vec4);
  }
  CUDA_CHECK_LAUNCH();
}

void outer_product_bwd(int64_t n_pairs, int E, const int32_t* __restrict__ pair_user,
                       const int32_t* __restrict__ pair_item, const float* __restrict__ P,
                       const float* __restrict__ Q, const float* __restrict__ G,
                       float* __restrict__ dp, float* __restrict__ dq, cudaStream_t stream) {
  check_outer_product_bwd_args(n_pairs, E, pair_user, pair_item, P, Q, G, dp, dq);
  if (n_pairs == 0) return;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(n_pairs, kMaxGrid));
  // E <= 4096: 16 KB dynamic + 17 KB static, under the 48 KB a launch gets without opting in.
  const size_t smem = static_cast<size_t>(E) * sizeof(float);
  outer_product_bwd_kernel1<<<grid, kOpbThreads, smem, stream>>>(n_pairs, E, pair_user, pair_item,
                                                                 P, Q, G, dp, dq);
  CUDA_CHECK_LAUNCH();
}

}  // namespace convncf
