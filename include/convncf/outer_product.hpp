// outer_product.hpp: the interaction map M = p_u (x) q_i that feeds the first convolution, and its
// backward.
//   outer_product_fwd  out[b][0][a][c] = P[user[b]][a] * Q[item[b]][c]   out: (B, 1, E, E), NCHW
//   outer_product_bwd  per pair, from its gradient map G = dL/dM (E x E): dp = G q, dq = G^T p
// The index math below is shared by the CPU twins (kernels/outer_product_cpu.cpp) and the kernels
// (kernels/outer_product.cu), so the CPU test exercises the same arithmetic the GPU runs.
// Tests: tests/test_outer_product.cpp (CPU, always) and tests/test_outer_product_gpu.cu (GPU).
#pragma once
#include <cstdint>

#include "convncf/common.hpp"

// The runtime's own spelling of a stream handle, so that this header needs no CUDA include.
struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace convncf {

// Offset of element `col` of embedding row `row` in a row-major (rows, E) table.
CONVNCF_HD int64_t embedding_offset(int32_t row, int E, int col) {
  return static_cast<int64_t>(row) * E + col;
}

// Offset of out[b][0][a][c] in the (B, 1, E, E) map.
CONVNCF_HD int64_t outer_product_index(int64_t b, int E, int a, int c) {
  return (b * E + a) * static_cast<int64_t>(E) + c;
}

// The inverse of outer_product_index: which (b, a, c) a flat output index belongs to.
struct OuterProductCoord {
  int64_t b;
  int a;
  int c;
};
CONVNCF_HD OuterProductCoord outer_product_coord(int64_t idx, int E) {
  const int64_t e2 = static_cast<int64_t>(E) * E;
  const int64_t b = idx / e2;
  const int64_t r = idx - b * e2;
  return {b, static_cast<int>(r / E), static_cast<int>(r % E)};
}

// One element of the map: a single multiply, so every implementation gives the same bits.
template <typename T>
CONVNCF_HD T outer_product_value(const T* P, const T* Q, int32_t u, int32_t i, int E, int a,
                                 int c) {
  return P[embedding_offset(u, E, a)] * Q[embedding_offset(i, E, c)];
}

// CPU twin. user, item: (B,) row ids, which must be valid rows of P and Q.
template <typename T>
void outer_product_fwd_cpu(int64_t B, int E,
                           const int32_t* user,  // (B,)
                           const int32_t* item,  // (B,)
                           const T* P,           // (n_users, E)
                           const T* Q,           // (n_items, E)
                           T* out);              // (B, 1, E, E)

// GPU launcher; all pointers are device pointers, the launch is asynchronous on `stream`.
// variant 1: one thread per output element (the plain port of the twin);
// variant 2: one block per pair, rows staged in shared memory, float4 stores when E % 4 == 0.
// Throws convncf::Error(kExitSoftware) on bad sizes, a null pointer or an unknown variant, and on
// a failed launch. B == 0 launches nothing.
void outer_product_fwd(int64_t B, int E,
                       const int32_t* __restrict__ user,  // (B,)
                       const int32_t* __restrict__ item,  // (B,)
                       const float* __restrict__ P,       // (n_users, E)
                       const float* __restrict__ Q,       // (n_items, E)
                       float* __restrict__ out,           // (B, 1, E, E)
                       cudaStream_t stream, int variant = 1);

// The launcher's argument checks (sizes, variant, and the pointers when B > 0), shared with every
// implementation of it; throws Error(kExitSoftware) naming the problem.
void check_outer_product_fwd_args(int64_t B, int E, const int32_t* user, const int32_t* item,
                                  const float* P, const float* Q, const float* out, int variant);

// Largest E the launcher accepts (variant 2 stages 2*E floats in shared memory).
inline constexpr int kOuterProductMaxE = 4096;

// ---- Backward ----

// Largest E outer_product_bwd accepts (its kernel keeps E running sums in shared memory).
inline constexpr int kPairBwdMaxE = 4096;

// dp[b] = G[b] q, dq[b] = G[b]^T p for the rows p = P[pair_user[b]], q = Q[pair_item[b]]. Device
// pointers, asynchronous on `stream`; n_pairs == 0 launches nothing.
void outer_product_bwd(int64_t n_pairs, int E,
                       const int32_t* __restrict__ pair_user,  // (n_pairs,)
                       const int32_t* __restrict__ pair_item,  // (n_pairs,)
                       const float* __restrict__ P,            // (n_users, E)
                       const float* __restrict__ Q,            // (n_items, E)
                       const float* __restrict__ G,            // (n_pairs, 1, E, E)
                       float* __restrict__ dp,                 // (n_pairs, E) overwritten
                       float* __restrict__ dq,                 // (n_pairs, E) overwritten
                       cudaStream_t stream);

// CPU twin: same arguments, host pointers.
void outer_product_bwd_cpu(int64_t n_pairs, int E, const int32_t* pair_user,
                           const int32_t* pair_item, const float* P, const float* Q,
                           const float* G, float* dp, float* dq);

// outer_product_bwd's argument checks (n_pairs >= 0, 1 <= E <= kPairBwdMaxE, no null pointer when
// n_pairs > 0), shared by the launcher, its twin (who = "outer_product_bwd_cpu") and the emulated
// launcher; throws Error(kExitSoftware) naming `who`.
void check_outer_product_bwd_args(int64_t n_pairs, int E, const int32_t* pair_user,
                                  const int32_t* pair_item, const float* P, const float* Q,
                                  const float* G, const float* dp, const float* dq,
                                  const char* who = "outer_product_bwd");

}  // namespace convncf
