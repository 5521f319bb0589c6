// fused_tower.cu: the fused ConvNCF tower (engine: fused; see include/convncf/fused_tower.hpp for
// the algorithm and the shared-memory layouts). CPU twins: kernels/fused_tower_cpu.cpp. Tests:
// tests/test_fused_tower_gpu.cu, each kernel against its twin on a GPU:
//   build/convncf_tests --gtest_filter='FusedTowerGpu.*'
// and, on any machine, tests/kernel_emulation (this file's kernels on an emulated device, bit for
// bit against the twins):
//   build/tests/kernel_emulation/convncf_kernel_emulation_tests
//
// One block of kFusedThreads per chunk of pairs, every phase a block-strided loop over the
// phase's elements (or, in variant 3, a warp-strided loop over 16 x 16 output tiles), each element
// computed by a shared element function, __syncthreads() between phases.
//   fused_fwd_kernel<false>  variant 1, the plain port of the twin: score of each pair; FP32 CUDA
//                            cores in every precision (tf32 and bf16 round the operands of layers
//                            2..L exactly as the tensor cores' input formats do)
//   fused_bwd_kernel<false>  variant 1: recomputes a pair's forward, then backward in place;
//                            weight gradients go to the block's own slice of `partial` (no
//                            atomics: each slice element has one owning thread per phase, and a
//                            block's pairs run in order)
//   fused_*_kernel<true>     variant 2: on tiled layers (FusedLayer::tiled) each thread computes
//                            four outputs (conv: four output channels of a position; dW: four
//                            output channels of a weight row; dX: four input channels of a
//                            position) with 16-byte weight loads, so a loaded operand feeds four
//                            FMAs instead of one; the same sums in the same order as variant 1.
//                            The engine's variant in fp32.
//   fused_tc_*_kernel<P>     variant 3, tf32 and bf16 (the engine's where FusedTc::ok): layers
//                            2..L forward, dX = dY.W^T and dW = X^T.dY as WMMA tile products
//                            (m16n16k8 tf32, m16n16k16 bf16, FP32 accumulators) on the tensor
//                            cores, one warp per 16 x 16 output tile, through a per-warp staging
//                            tile for the element-wise epilogue (bias, ReLU, mask, rounding).
//                            Maps are stored in the rows the next layer's patches read (FusedTc),
//                            in the operand format, zero-padded; the weights come pre-rounded and
//                            padded from fused_pack. Each warp keeps its weight-gradient tiles in
//                            registers over all of the block's pairs and writes them to the slice
//                            once. Layer 1, the head and layer 1's backward stay on FP32 cores as
//                            in variant 1. One pair at a time per block, as in 1 and 2: the small
//                            last maps use a fraction of a 16-row tile (bench/NOTES.md).
//   fused_tc4_*_kernel<P>    variant 4, tf32 and bf16 (the engine's where FusedTc4::ok): variant
//                            3's tile products (the same helpers' sums, element by element) with
//                            two changes (FusedTc4): a block takes its pairs in groups and runs the
//                            layers whose maps have fewer than 16 rows (from FusedTc4::stack0 on)
//                            once per group, the pairs' rows stacked in one tile product (recbole:
//                            layers 3 and 4 over 16 pairs); and layer 1 is computed chunk by chunk
//                            into a buffer of a few of layer 2's input tiles, as layer 2's products
//                            consume it, never as a whole map (the paper tower's 128 KiB first
//                            map). The backward recomputes each chunk for layer 2's dW and dX and
//                            sums the chunk's part of layer 1's gradient (dU, dq, db1) in place;
//                            the group's stacked layers go back once for the group, then each pair
//                            (its p, q and U staged again) through its own layers. Weight-gradient
//                            tiles in registers over all of the block's pairs, as in 3.
//   fused_pack_kernel1, fused_reduce_kernel1: one thread per element
// Weights are read from global memory (L1/L2-resident: the packed recbole tower is 25,249
// parameters, 101 KB, plus as much for the transposed copy and, with tc.packed, the padded
// operand-format copy).
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <mma.h>

#include <algorithm>
#include <cstdint>

#include "convncf/cuda_check.hpp"
#include "convncf/errors.hpp"
#include "convncf/fused_tower.hpp"

namespace convncf {
namespace {

constexpr int64_t kMaxGrid = 65536;

// One pair's forward into shared memory (the twin's forward_pair). cur_user is the same in every
// thread, so the branches on it are uniform.
// The pair's rows of P and Q into shared memory, and the user's side U when the user changes.
__device__ void stage_pair(const FusedTower& t, const float* __restrict__ P, const float* __restrict__ Q,
                           const float* __restrict__ packed, int32_t user, int32_t item, int32_t& cur_user,
                           float* sm) {
  const int tid = threadIdx.x, nt = blockDim.x, E = t.E;
  const bool new_user = user != cur_user;
  if (new_user)
    for (int e = tid; e < E; e += nt) sm[t.p_off + e] = P[int64_t(user) * E + e];
  for (int e = tid; e < E; e += nt) sm[t.q_off + e] = Q[int64_t(item) * E + e];
  __syncthreads();
  if (new_user) {
    for (int i = tid; i < t.u_size(); i += nt) sm[t.u_off + i] = fused_user_side(t, packed, sm + t.p_off, i);
    cur_user = user;
    __syncthreads();
  }
}

// A pair with dscore 0 contributes nothing: its dp and dq rows are zeroed and it is skipped (the
// branch is uniform: every thread reads the same dscore).
__device__ bool skip_pair(const FusedTower& t, float ds, int64_t k, float* __restrict__ dp, float* __restrict__ dq) {
  if (ds != 0.0f) return false;
  for (int e = threadIdx.x; e < t.E; e += blockDim.x) {
    dp[k * t.E + e] = 0.0f;
    dq[k * t.E + e] = 0.0f;
  }
  return true;
}

// The output layer's backward: dw_out and db_out into the slice, h becomes dh.
__device__ void head_bwd(const FusedTower& t, const float* __restrict__ packed, float ds, const DropoutArgs& drop,
                         int64_t k, float* h, float* __restrict__ slice) {
  const int tid = threadIdx.x, nt = blockDim.x;
  for (int c = tid; c < t.layer[t.L - 1].cout; c += nt) {
    slice[t.out_w_off + c] += fused_dw_out(ds, h[c], drop, k, c);
    h[c] = fused_dh(t, packed, ds, drop, k, c);
  }
  if (tid == 0) slice[t.out_b_off] += ds;
}

// Layer 1's backward from its masked gradient g(x, y, c): dU, dq and db1, then dW1 and dp.
template <typename GAt>
__device__ void layer1_bwd(const FusedTower& t, const GAt& g, const float* __restrict__ packed, float* sm, int64_t k,
                           float* __restrict__ dp, float* __restrict__ dq, float* __restrict__ slice) {
  const int tid = threadIdx.x, nt = blockDim.x, E = t.E;
  const FusedLayer& l0 = t.layer[0];
  float* dU = sm + t.du_off;
  for (int i = tid; i < t.u_size(); i += nt) dU[i] = fused_dU_at(t, g, sm + t.q_off, i);
  for (int e = tid; e < E; e += nt) dq[k * E + e] = fused_dq_at(t, g, sm + t.u_off, e);
  for (int c = tid; c < l0.cout; c += nt) slice[l0.b_off + c] += fused_db0_at(t, g, c);
  __syncthreads();
  for (int w = tid; w < l0.k * l0.k * l0.cout; w += nt) slice[l0.w_off + w] += fused_dW1(t, sm + t.p_off, dU, w);
  for (int e = tid; e < E; e += nt) dp[k * E + e] = fused_dp(t, packed, dU, e);
  __syncthreads();  // the next pair overwrites p, q and the maps
}

template <bool kTiled>
__device__ void fwd_pair(const FusedTower& t, const float* __restrict__ P, const float* __restrict__ Q,
                         const float* __restrict__ packed, int32_t user, int32_t item, int32_t& cur_user,
                         float* sm) {
  const int tid = threadIdx.x, nt = blockDim.x;
  stage_pair(t, P, Q, packed, user, item, cur_user, sm);
  const FusedLayer& l0 = t.layer[0];
  for (int i = tid; i < l0.out_size * l0.out_size * l0.cout; i += nt)
    sm[l0.act_off + i] = fused_layer1(t, packed, sm + t.u_off, sm + t.q_off, i);
  __syncthreads();
  for (int li = 1; li < t.L; ++li) {
    const FusedLayer& l = t.layer[li];
    const float* X = sm + t.layer[li - 1].act_off;
    if (kTiled && l.tiled) {
      const int c4 = l.cout / 4;
      for (int i = tid; i < l.out_size * l.out_size * c4; i += nt) {
        const int pos = i / c4, co0 = (i % c4) * 4;
        float o[4];
        fused_conv4(t, li, packed, X, pos, co0, o);
        *reinterpret_cast<float4*>(sm + l.act_off + pos * l.cout + co0) = make_float4(o[0], o[1], o[2], o[3]);
      }
    } else {
      for (int i = tid; i < l.out_size * l.out_size * l.cout; i += nt)
        sm[l.act_off + i] = fused_conv(t, li, packed, X, i);
    }
    __syncthreads();
  }
  const FusedLayer& last = t.layer[t.L - 1];
  for (int c = tid; c < last.cout; c += nt) sm[t.h_off + c] = fused_head_sum(t, sm + last.act_off, c);
  __syncthreads();
}

template <bool kTiled>
CONVNCF_HOT_KERNEL void fused_fwd_kernel(const FusedTower t, int64_t n_pairs, int n_blocks, const int32_t* __restrict__ pair_user,
                  const int32_t* __restrict__ pair_item, const float* __restrict__ P,
                  const float* __restrict__ Q, const float* __restrict__ packed, DropoutArgs drop,
                  float* __restrict__ score) {
  extern __shared__ __align__(32) float sm[];  // float4 views: 16 bytes (variant 3: 32)
  const PairRange r = fused_block_pairs(n_pairs, n_blocks, int(blockIdx.x));
  int32_t cur_user = -1;
  for (int64_t k = r.lo; k < r.hi; ++k) {
    fwd_pair<kTiled>(t, P, Q, packed, pair_user[k], pair_item[k], cur_user, sm);
    if (threadIdx.x == 0) score[k] = fused_score(t, packed, sm + t.h_off, drop, k);
    __syncthreads();
  }
}

template <bool kTiled>
CONVNCF_HOT_KERNEL void fused_bwd_kernel(const FusedTower t, int64_t n_pairs, int n_blocks, const int32_t* __restrict__ pair_user,
                  const int32_t* __restrict__ pair_item, const float* __restrict__ P,
                  const float* __restrict__ Q, const float* __restrict__ packed, DropoutArgs drop,
                  const float* __restrict__ dscore, float* __restrict__ dp, float* __restrict__ dq,
                  float* __restrict__ partial) {
  extern __shared__ __align__(32) float sm[];  // float4 views: 16 bytes (variant 3: 32)
  const int tid = threadIdx.x, nt = blockDim.x;
  float* slice = partial + int64_t(blockIdx.x) * t.n_params;
  for (int64_t i = tid; i < t.n_params; i += nt) slice[i] = 0.0f;
  __syncthreads();  // the zeros are visible to every thread before any slice update
  const PairRange r = fused_block_pairs(n_pairs, n_blocks, int(blockIdx.x));
  int32_t cur_user = -1;
  for (int64_t k = r.lo; k < r.hi; ++k) {
    const float ds = dscore[k];
    if (skip_pair(t, ds, k, dp, dq)) continue;
    fwd_pair<kTiled>(t, P, Q, packed, pair_user[k], pair_item[k], cur_user, sm);
    const FusedLayer& last = t.layer[t.L - 1];
    float* h = sm + t.h_off;
    head_bwd(t, packed, ds, drop, k, h, slice);
    __syncthreads();
    float* a = sm + last.act_off;
    for (int i = tid; i < last.out_size * last.out_size * last.cout; i += nt)
      a[i] = a[i] > 0.0f ? h[i % last.cout] : 0.0f;
    __syncthreads();
    for (int li = t.L - 1; li >= 1; --li) {
      const FusedLayer& l = t.layer[li];
      const float* G = sm + l.act_off;
      float* X = sm + t.layer[li - 1].act_off;
      const int K = l.k * l.k * l.cin;
      if (kTiled && l.tiled) {
        const int c4 = l.cout / 4;
        for (int i = tid; i < K * c4; i += nt) {
          const int kk = i / c4, co0 = (i % c4) * 4;
          float g4[4];
          fused_dW4(t, li, G, X, kk, co0, g4);
          float* d = slice + l.w_off + int64_t(kk) * l.cout + co0;
          d[0] += g4[0];
          d[1] += g4[1];
          d[2] += g4[2];
          d[3] += g4[3];
        }
      } else {
        for (int w = tid; w < K * l.cout; w += nt) slice[l.w_off + w] += fused_dW(t, li, G, X, w);
      }
      for (int co = tid; co < l.cout; co += nt) slice[l.b_off + co] += fused_db(t, li, G, co);
      __syncthreads();  // X is read by the weight gradient before it becomes its own gradient
      if (kTiled && l.tiled) {
        const int c4 = l.cin / 4;
        for (int i = tid; i < l.in_size * l.in_size * c4; i += nt) {
          const int pin = i / c4, ci0 = (i % c4) * 4;
          float o[4];
          fused_dX4(t, li, packed, G, X, pin, ci0, o);  // reads only these four of X
          *reinterpret_cast<float4*>(X + pin * l.cin + ci0) = make_float4(o[0], o[1], o[2], o[3]);
        }
      } else {
        for (int i = tid; i < l.in_size * l.in_size * l.cin; i += nt) X[i] = fused_dX(t, li, packed, G, X, i);
      }
      __syncthreads();
    }
    const FusedLayer& l0 = t.layer[0];
    layer1_bwd(t, FusedNaturalMap{sm + l0.act_off, l0.out_size, l0.cout}, packed, sm, k, dp, dq, slice);
  }
}

// ---- Variant 3: the tensor cores ----
namespace wmma = nvcuda::wmma;

// The WMMA shapes and types of each precision; T is the operand format in memory (fused_tc_get).
template <Precision Pr>
struct Tc;
template <>
struct Tc<Precision::TF32> {
  using T = float;
  using Mem = float;  // what load_matrix_sync reads
  using Elem = wmma::precision::tf32;
  static constexpr int kK = 8;
};
template <>
struct Tc<Precision::BF16> {
  using T = uint16_t;
  using Mem = __nv_bfloat16;
  using Elem = __nv_bfloat16;
  static constexpr int kK = 16;
};
template <Precision Pr>
using TcAcc = wmma::fragment<wmma::accumulator, 16, 16, Tc<Pr>::kK, float>;

// acc += sum over n_steps k-steps of A-tile(s) . B-tile(s), the tiles at a + s*a_step and
// b + s*b_step (elements), leading dimensions lda and ldb. Warp-collective.
template <Precision Pr, typename LayoutA, typename LayoutB>
__device__ __forceinline__ void tc_mma(TcAcc<Pr>& acc, const typename Tc<Pr>::T* a, unsigned lda, int a_step,
                                       const typename Tc<Pr>::T* b, unsigned ldb, int b_step, int n_steps) {
  using Mem = typename Tc<Pr>::Mem;
  for (int s = 0; s < n_steps; ++s) {
    wmma::fragment<wmma::matrix_a, 16, 16, Tc<Pr>::kK, typename Tc<Pr>::Elem, LayoutA> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, Tc<Pr>::kK, typename Tc<Pr>::Elem, LayoutB> fb;
    // the operands are stored rounded (tf32 values, bf16): no conversion after the load
    wmma::load_matrix_sync(fa, reinterpret_cast<const Mem*>(a + int64_t(s) * a_step), lda);
    wmma::load_matrix_sync(fb, reinterpret_cast<const Mem*>(b + int64_t(s) * b_step), ldb);
    wmma::mma_sync(acc, fa, fb, acc);
  }
}

// The accumulator tile through the warp's staging tile: f(i, j, value) for each of its 256
// elements (row i, column j), each by one lane. Warp-collective.
template <Precision Pr, typename F>
__device__ __forceinline__ void tc_epilogue(const TcAcc<Pr>& acc, float* stage, const F& f) {
  wmma::store_matrix_sync(stage, acc, 16, wmma::mem_row_major);
  __syncwarp();
  for (int e = int(threadIdx.x % 32); e < 256; e += 32) f(e / 16, e % 16, stage[e]);
  __syncwarp();  // the next tile's store overwrites the staging tile
}

// The warp's weight-gradient register tiles (slot s holds tile warp + s * kFusedWarps) into the
// block's slice, at the end of a backward kernel of variant 3 or 4: their elements are written
// only here. Warp-collective.
template <Precision Pr>
__device__ void store_weight_tiles(const FusedTower& t, const TcAcc<Pr> (&dw)[kFusedTcSlots], float* stage, int warp,
                                   float* __restrict__ slice) {
#pragma unroll
  for (int s = 0; s < kFusedTcSlots; ++s) {
    const int j = warp + s * kFusedWarps;
    if (j >= t.tc.tiles) continue;
    const FusedTcTile tile = fused_tc_tile(t, j);
    tc_epilogue<Pr>(dw[s], stage, [&](int i, int jj, float v) {
      const int64_t idx = fused_tc_weight_index(t, tile.li, tile.kt * 16 + i, tile.nt * 16 + jj);
      if (idx >= 0) slice[idx] = v;
    });
  }
}

template <Precision Pr>
__device__ typename Tc<Pr>::T* tc_map(float* sm, int off) {
  return reinterpret_cast<typename Tc<Pr>::T*>(sm + off);
}

// Variant 3's zero-filled maps (their padding stays 0) and map 0's row table, before any pair.
__device__ void tc_init(const FusedTower& t, float* sm, int* rowq) {
  const int tid = threadIdx.x, nt = blockDim.x, S = t.layer[0].out_size;
  for (int i = t.tc.layer[0].map_off + tid; i < t.tc.stage_off; i += nt) sm[i] = 0.0f;
  for (int i = tid; i < S * S; i += nt) rowq[i] = fused_tc_row(t, i / S, i % S);
}

// One pair's forward (the twin's forward_pair_tc): layer 1 into map 0's rows, layers 2..L as
// tile products, the head's sums.
template <Precision Pr>
__device__ void tc_fwd_pair(const FusedTower& t, const float* __restrict__ P, const float* __restrict__ Q,
                            const float* __restrict__ packed, const int* rowq, int32_t user, int32_t item,
                            int32_t& cur_user, float* sm) {
  using T = typename Tc<Pr>::T;
  constexpr int kK = Tc<Pr>::kK;
  const int tid = threadIdx.x, nt = blockDim.x, warp = tid / 32, n_warps = nt / 32;
  const FusedTc& tc = t.tc;
  stage_pair(t, P, Q, packed, user, item, cur_user, sm);
  const FusedLayer& l0 = t.layer[0];
  T* m0 = tc_map<Pr>(sm, tc.layer[0].map_off);
  for (int i = tid; i < l0.out_size * l0.out_size * l0.cout; i += nt)
    fused_tc_put(m0, int64_t(rowq[i / l0.cout]) * tc.np0 + i % l0.cout,
                 fused_layer1(t, packed, sm + t.u_off, sm + t.q_off, i), true);
  __syncthreads();
  float* stage = sm + tc.stage_off + warp * 256;
  float* last = sm + tc.last_off;
  for (int li = 1; li < t.L; ++li) {
    const FusedTcLayer& c = tc.layer[li];
    const int cout = t.layer[li].cout, n_nt = c.np / 16;
    const T* A = tc_map<Pr>(sm, tc.layer[li - 1].map_off);
    const T* W = reinterpret_cast<const T*>(packed + c.w_off);
    T* out = tc_map<Pr>(sm, c.map_off);
    const bool is_last = li + 1 == t.L;
    for (int tile = warp; tile < c.mrows / 16 * n_nt; tile += n_warps) {  // warp-uniform
      const int mt = tile / n_nt, ntile = tile % n_nt;
      TcAcc<Pr> acc;
      wmma::fill_fragment(acc, 0.0f);
      tc_mma<Pr, wmma::row_major, wmma::row_major>(acc, A + int64_t(mt) * 16 * c.kp, c.kp, kK, W + ntile * 16, c.np,
                                                  kK * c.np, c.kp / kK);
      tc_epilogue<Pr>(acc, stage, [&](int i, int j, float v) {
        const int row = mt * 16 + i, co = ntile * 16 + j;
        if (row >= c.rows || co >= cout) return;
        const float o = fused_tc_out(t, li, packed, v, co);
        if (is_last) {
          last[row * cout + co] = o;
        } else {
          fused_tc_put(out, int64_t(row) * c.np + co, o, true);
        }
      });
    }
    __syncthreads();
  }
  const FusedLayer& lastl = t.layer[t.L - 1];
  for (int co = tid; co < lastl.cout; co += nt) sm[tc.h_off + co] = fused_head_sum(t, last, co);
  __syncthreads();
}

template <Precision Pr>
CONVNCF_TENSOR_CORE_KERNEL void fused_tc_fwd_kernel(const FusedTower t, int64_t n_pairs, int n_blocks,
                                                    const int32_t* __restrict__ pair_user,
                                                    const int32_t* __restrict__ pair_item, const float* __restrict__ P,
                                                    const float* __restrict__ Q, const float* __restrict__ packed,
                                                    DropoutArgs drop, float* __restrict__ score) {
  extern __shared__ __align__(32) float sm[];  // WMMA pointers: 32 bytes (256 bits)
  int* rowq = reinterpret_cast<int*>(sm + t.tc.rowq_off);
  tc_init(t, sm, rowq);
  __syncthreads();
  const PairRange r = fused_block_pairs(n_pairs, n_blocks, int(blockIdx.x));
  int32_t cur_user = -1;
  for (int64_t k = r.lo; k < r.hi; ++k) {
    tc_fwd_pair<Pr>(t, P, Q, packed, rowq, pair_user[k], pair_item[k], cur_user, sm);
    if (threadIdx.x == 0) score[k] = fused_score(t, packed, sm + t.tc.h_off, drop, k);
    __syncthreads();
  }
}

template <Precision Pr>
CONVNCF_TENSOR_CORE_KERNEL void fused_tc_bwd_kernel(const FusedTower t, int64_t n_pairs, int n_blocks,
                                                    const int32_t* __restrict__ pair_user,
                                                    const int32_t* __restrict__ pair_item, const float* __restrict__ P,
                                                    const float* __restrict__ Q, const float* __restrict__ packed,
                                                    DropoutArgs drop, const float* __restrict__ dscore,
                                                    float* __restrict__ dp, float* __restrict__ dq,
                                                    float* __restrict__ partial) {
  using T = typename Tc<Pr>::T;
  constexpr int kK = Tc<Pr>::kK;
  extern __shared__ __align__(32) float sm[];  // WMMA pointers: 32 bytes (256 bits)
  const int tid = threadIdx.x, nt = blockDim.x, warp = tid / 32, n_warps = nt / 32;
  const FusedTc& tc = t.tc;
  float* slice = partial + int64_t(blockIdx.x) * t.n_params;
  for (int64_t i = tid; i < t.n_params; i += nt) slice[i] = 0.0f;
  int* rowq = reinterpret_cast<int*>(sm + tc.rowq_off);
  tc_init(t, sm, rowq);
  // This warp's weight-gradient tiles j = warp + s * kFusedWarps (fused_tc_tile_slot), summed over
  // all of the block's pairs.
  TcAcc<Pr> dw[kFusedTcSlots];
#pragma unroll
  for (int s = 0; s < kFusedTcSlots; ++s) wmma::fill_fragment(dw[s], 0.0f);
  __syncthreads();
  float* stage = sm + tc.stage_off + warp * 256;
  const PairRange r = fused_block_pairs(n_pairs, n_blocks, int(blockIdx.x));
  int32_t cur_user = -1;
  for (int64_t k = r.lo; k < r.hi; ++k) {
    const float ds = dscore[k];
    if (skip_pair(t, ds, k, dp, dq)) continue;
    tc_fwd_pair<Pr>(t, P, Q, packed, rowq, pair_user[k], pair_item[k], cur_user, sm);
    float* h = sm + tc.h_off;
    head_bwd(t, packed, ds, drop, k, h, slice);
    __syncthreads();
    const FusedLayer& lastl = t.layer[t.L - 1];
    const FusedTcLayer& cl = tc.layer[t.L - 1];
    T* glast = tc_map<Pr>(sm, tc.glast_off);
    for (int i = tid; i < cl.rows * lastl.cout; i += nt) {
      const int row = i / lastl.cout, co = i % lastl.cout;
      fused_tc_put(glast, int64_t(row) * cl.np + co, fused_tc_glast(t, sm + tc.last_off, h, row, co), true);
    }
    __syncthreads();
    for (int li = t.L - 1; li >= 1; --li) {
      const FusedTcLayer& c = tc.layer[li];
      const FusedLayer& l = t.layer[li];
      T* X = tc_map<Pr>(sm, tc.layer[li - 1].map_off);
      const T* G = li + 1 == t.L ? glast : tc_map<Pr>(sm, c.map_off);
      const T* W = reinterpret_cast<const T*>(packed + c.w_off);
      // dW += X^T G over this pair's (padded) rows, in the warp's register tiles of this layer
      const int n_nt = c.np / 16, n_tiles = c.kp / 16 * n_nt;
#pragma unroll
      for (int s = 0; s < kFusedTcSlots; ++s) {
        const int local = warp + s * kFusedWarps - c.tile0;  // warp-uniform
        if (local < 0 || local >= n_tiles) continue;
        const int kt = local / n_nt, ntile = local % n_nt;
        tc_mma<Pr, wmma::col_major, wmma::row_major>(dw[s], X + kt * 16, c.kp, kK * c.kp, G + ntile * 16, c.np,
                                                    kK * c.np, c.mrows / kK);
      }
      for (int co = tid; co < l.cout; co += nt) slice[l.b_off + co] += fused_tc_db(t, li, G, co);
      __syncthreads();  // X is read by the weight gradient before it becomes its own gradient
      // dX = G W^T, masked, into X in place
      const int npp = li == 1 ? tc.np0 : tc.layer[li - 1].np, n_kt = c.kp / 16;
      for (int tile = warp; tile < c.mrows / 16 * n_kt; tile += n_warps) {
        const int mt = tile / n_kt, kt = tile % n_kt;
        TcAcc<Pr> acc;
        wmma::fill_fragment(acc, 0.0f);
        tc_mma<Pr, wmma::row_major, wmma::col_major>(acc, G + int64_t(mt) * 16 * c.np, c.np, kK,
                                                    W + int64_t(kt) * 16 * c.np, c.np, kK, c.np / kK);
        tc_epilogue<Pr>(acc, stage, [&](int i, int j, float v) {
          const int row = mt * 16 + i, kk = kt * 16 + j;
          if (row >= c.rows || kk % npp >= l.cin) return;  // the padding stays 0
          const int64_t idx = int64_t(row) * c.kp + kk;
          fused_tc_put(X, idx, fused_tc_get(X, idx) > 0.0f ? v : 0.0f, li > 1);
        });
      }
      __syncthreads();
    }
    layer1_bwd(t, FusedTcMap0<T>{tc_map<Pr>(sm, tc.layer[0].map_off), rowq, t.layer[0].out_size, tc.np0}, packed,
               sm, k, dp, dq, slice);
  }
  store_weight_tiles<Pr>(t, dw, stage, warp, slice);
}

// ---- Variant 4: variant 3's tile products over groups of pairs, layer 1 in chunks (FusedTc4) ----

__device__ int* tc4_ints(float* sm, int off) { return reinterpret_cast<int*>(sm + off); }

// Variant 4's maps zeroed (their padding stays 0), map 0's row tables both ways and the chunks'
// boxes, before any pair (the twin's tc4_init). Ends with a barrier.
__device__ void tc4_init(const FusedTower& t, float* sm) {
  const int tid = threadIdx.x, nt = blockDim.x, S = t.layer[0].out_size;
  const FusedTc4& v = t.tc4;
  for (int i = v.map_off[0] + tid; i < v.stage_off; i += nt) sm[i] = 0.0f;
  int* rowq = tc4_ints(sm, v.rowq_off);
  int* posq = tc4_ints(sm, v.posq_off);
  for (int i = tid; i < S * S; i += nt) {
    const int r = fused_tc_row(t, i / S, i % S);
    rowq[i] = r;
    posq[r] = i;
  }
  __syncthreads();  // posq complete
  int* box = tc4_ints(sm, v.box_off);
  for (int ch = tid; ch < v.chunks; ch += nt) {
    const FusedTc4Box b = fused_tc4_box(t, posq, ch);
    box[4 * ch] = b.x0;
    box[4 * ch + 1] = b.x1;
    box[4 * ch + 2] = b.y0;
    box[4 * ch + 3] = b.y1;
  }
  __syncthreads();
}

// Layer li's forward: nrows rows of A (leading dimension kp) times W into out (rows x np, the
// operand format) or, the last layer, last (rows x cout, FP32); one warp per 16 x 16 tile.
template <Precision Pr>
__device__ void tc4_layer_fwd(const FusedTower& t, int li, const float* __restrict__ packed,
                              const typename Tc<Pr>::T* A, int nrows, typename Tc<Pr>::T* out, float* last,
                              float* stage) {
  using T = typename Tc<Pr>::T;
  constexpr int kK = Tc<Pr>::kK;
  const int warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
  const FusedTcLayer& c = t.tc.layer[li];
  const int cout = t.layer[li].cout, n_nt = c.np / 16, n_mt = (nrows + 15) / 16;
  const T* W = reinterpret_cast<const T*>(packed + c.w_off);
  const bool is_last = li + 1 == t.L;
  for (int tile = warp; tile < n_mt * n_nt; tile += n_warps) {  // warp-uniform
    const int mt = tile / n_nt, ntile = tile % n_nt;
    TcAcc<Pr> acc;
    wmma::fill_fragment(acc, 0.0f);
    tc_mma<Pr, wmma::row_major, wmma::row_major>(acc, A + int64_t(mt) * 16 * c.kp, c.kp, kK, W + ntile * 16, c.np,
                                                kK * c.np, c.kp / kK);
    tc_epilogue<Pr>(acc, stage, [&](int i, int j, float v) {
      const int row = mt * 16 + i, co = ntile * 16 + j;
      if (row >= nrows || co >= cout) return;
      const float o = fused_tc_out(t, li, packed, v, co);
      if (is_last) {
        last[row * cout + co] = o;
      } else {
        fused_tc_put(out, int64_t(row) * c.np + co, o, true);
      }
    });
  }
}

// Layer li's weight gradient X^T G over nrows rows (padded to 16) into this warp's register tiles.
template <Precision Pr>
__device__ __forceinline__ void tc4_layer_dW(const FusedTower& t, int li, const typename Tc<Pr>::T* X,
                                             const typename Tc<Pr>::T* G, int nrows,
                                             TcAcc<Pr> (&dw)[kFusedTcSlots]) {
  constexpr int kK = Tc<Pr>::kK;
  const int warp = threadIdx.x / 32;
  const FusedTcLayer& c = t.tc.layer[li];
  const int n_nt = c.np / 16, n_tiles = c.kp / 16 * n_nt, mrows = (nrows + 15) / 16 * 16;
#pragma unroll
  for (int s = 0; s < kFusedTcSlots; ++s) {
    const int local = warp + s * kFusedWarps - c.tile0;  // warp-uniform
    if (local < 0 || local >= n_tiles) continue;
    const int kt = local / n_nt, ntile = local % n_nt;
    tc_mma<Pr, wmma::col_major, wmma::row_major>(dw[s], X + kt * 16, c.kp, kK * c.kp, G + ntile * 16, c.np,
                                                kK * c.np, mrows / kK);
  }
}

// X (nrows rows of kp) becomes its masked gradient G W^T, in place (the padding stays 0).
template <Precision Pr>
__device__ void tc4_layer_dX(const FusedTower& t, int li, const float* __restrict__ packed,
                             const typename Tc<Pr>::T* G, int nrows, typename Tc<Pr>::T* X, float* stage) {
  using T = typename Tc<Pr>::T;
  constexpr int kK = Tc<Pr>::kK;
  const int warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
  const FusedTcLayer& c = t.tc.layer[li];
  const int cin = t.layer[li].cin, npp = li == 1 ? t.tc.np0 : t.tc.layer[li - 1].np;
  const int n_kt = c.kp / 16, n_mt = (nrows + 15) / 16;
  const T* W = reinterpret_cast<const T*>(packed + c.w_off);
  for (int tile = warp; tile < n_mt * n_kt; tile += n_warps) {
    const int mt = tile / n_kt, kt = tile % n_kt;
    TcAcc<Pr> acc;
    wmma::fill_fragment(acc, 0.0f);
    tc_mma<Pr, wmma::row_major, wmma::col_major>(acc, G + int64_t(mt) * 16 * c.np, c.np, kK,
                                                W + int64_t(kt) * 16 * c.np, c.np, kK, c.np / kK);
    tc_epilogue<Pr>(acc, stage, [&](int i, int j, float v) {
      const int row = mt * 16 + i, kk = kt * 16 + j;
      if (row >= nrows || kk % npp >= cin) return;
      const int64_t idx = int64_t(row) * c.kp + kk;
      fused_tc_put(X, idx, fused_tc_get(X, idx) > 0.0f ? v : 0.0f, li > 1);
    });
  }
}

// Layer li's bias gradient over n pairs' rows (stacked or one pair's), each pair in order.
template <typename T>
__device__ void tc4_layer_db(const FusedTower& t, int li, const T* G, int n, float* __restrict__ slice) {
  for (int co = threadIdx.x; co < t.layer[li].cout; co += blockDim.x)
    for (int g = 0; g < n; ++g) slice[t.layer[li].b_off + co] += fused_tc_db(t, li, G + g * fused_tc4_slot(t, li), co);
}

// Layer 1 at chunk c's rows of map 0 into the chunk buffer, zeros past them (the twin's
// tc4_layer1_chunk).
template <Precision Pr>
__device__ void tc4_layer1_chunk(const FusedTower& t, const float* __restrict__ packed, const FusedTc4Chunk& c,
                                 float* sm) {
  typename Tc<Pr>::T* buf = tc_map<Pr>(sm, t.tc4.map_off[0]);
  const int* posq = tc4_ints(sm, t.tc4.posq_off);
  const int C = t.layer[0].cout, kk = t.layer[1].k * t.layer[1].k, n = c.tiles * 16 * kk * C;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const int r = c.r0 + i / C, ch = i % C;
    const float v = r < c.r1 ? fused_layer1(t, packed, sm + t.u_off, sm + t.q_off, posq[r] * C + ch) : 0.0f;
    fused_tc_put(buf, int64_t(i / C) * t.tc.np0 + ch, v, true);
  }
}

// The next group from kb (< hi): up to `group` pairs in order; with dscore, pairs whose dscore is
// 0 zero their dp and dq rows and take no slot. The slots (k - kb) into the slot table; returns the
// end, n the count (uniform: every thread reads the same dscore). Ends with a barrier.
__device__ int64_t tc4_form_group(const FusedTower& t, const float* __restrict__ dscore, int64_t kb, int64_t hi,
                                  float* __restrict__ dp, float* __restrict__ dq, float* sm, int& n) {
  int* slot = tc4_ints(sm, t.tc4.slot_off);
  n = 0;
  int64_t k = kb;
  for (; k < hi && n < t.tc4.group; ++k) {
    if (dscore && skip_pair(t, dscore[k], k, dp, dq)) continue;
    if (threadIdx.x == 0) slot[n] = int(k - kb);
    ++n;
  }
  __syncthreads();  // the slot table
  return k;
}

// A group's forward (the twin's tc4_group_fwd): each pair's own layers (layer 1 in chunks into
// layer 2, or into the group's map 0), the stacked layers, then the head sums of each pair.
template <Precision Pr>
__device__ void tc4_group_fwd(const FusedTower& t, const float* __restrict__ P, const float* __restrict__ Q,
                              const float* __restrict__ packed, const int32_t* __restrict__ pair_user,
                              const int32_t* __restrict__ pair_item, int64_t kb, int n, int32_t& cur_user,
                              float* sm) {
  using T = typename Tc<Pr>::T;
  const int tid = threadIdx.x, nt = blockDim.x, warp = tid / 32;
  const FusedTc4& v = t.tc4;
  const FusedTc& tc = t.tc;
  const int L = t.L, s = v.stack0;
  const int* slot = tc4_ints(sm, v.slot_off);
  const int* rowq = tc4_ints(sm, v.rowq_off);
  float* stage = sm + v.stage_off + warp * 256;
  float* last = sm + v.last_off;
  if (n < v.group) {  // the unused slots of the stacked maps and of the last gradient: zeros
    for (int li = s - 1; li < L; ++li) {
      T* m = tc_map<Pr>(sm, li + 1 == L ? v.glast_off : v.map_off[li]);
      const int64_t slot_n = fused_tc4_slot(t, li);
      for (int64_t i = n * slot_n + tid; i < v.group * slot_n; i += nt) fused_tc_put(m, i, 0.0f, false);
    }
  }
  for (int g = 0; g < n; ++g) {
    const int64_t k = kb + slot[g];
    stage_pair(t, P, Q, packed, pair_user[k], pair_item[k], cur_user, sm);
    if (s == 1) {
      T* m0 = tc_map<Pr>(sm, v.map_off[0]) + g * fused_tc4_slot(t, 0);
      const FusedLayer& l0 = t.layer[0];
      for (int i = tid; i < l0.out_size * l0.out_size * l0.cout; i += nt)
        fused_tc_put(m0, int64_t(rowq[i / l0.cout]) * tc.np0 + i % l0.cout,
                     fused_layer1(t, packed, sm + t.u_off, sm + t.q_off, i), true);
      __syncthreads();  // the next pair's stage overwrites q and U
      continue;
    }
    T* out1 = L > 2 ? tc_map<Pr>(sm, v.map_off[1]) + (s == 2 ? g * fused_tc4_slot(t, 1) : 0) : nullptr;
    for (int ch = 0; ch < v.chunks; ++ch) {
      const FusedTc4Chunk c = fused_tc4_chunk(t, ch);
      tc4_layer1_chunk<Pr>(t, packed, c, sm);
      __syncthreads();
      tc4_layer_fwd<Pr>(t, 1, packed, tc_map<Pr>(sm, v.map_off[0]), c.rows,
                        out1 ? out1 + int64_t(c.row0) * tc.layer[1].np : nullptr, last + c.row0 * t.layer[1].cout,
                        stage);
      __syncthreads();  // the next chunk overwrites the buffer
    }
    for (int li = 2; li < s; ++li) {  // stack0 == L: the pair's other layers
      tc4_layer_fwd<Pr>(t, li, packed, tc_map<Pr>(sm, v.map_off[li - 1]), tc.layer[li].rows,
                        li + 1 < L ? tc_map<Pr>(sm, v.map_off[li]) : nullptr, last, stage);
      __syncthreads();
    }
  }
  for (int li = s; li < L; ++li) {  // the stacked layers
    tc4_layer_fwd<Pr>(t, li, packed, tc_map<Pr>(sm, v.map_off[li - 1]), n * tc.layer[li].rows,
                      li + 1 < L ? tc_map<Pr>(sm, v.map_off[li]) : nullptr, last, stage);
    __syncthreads();
  }
  const int C = t.layer[L - 1].cout;
  for (int i = tid; i < n * C; i += nt)
    sm[v.h_off + i] = fused_head_sum(t, last + (i / C) * tc.layer[L - 1].rows * C, i % C);
  __syncthreads();
}

template <Precision Pr>
CONVNCF_TENSOR_CORE_KERNEL void fused_tc4_fwd_kernel(const FusedTower t, int64_t n_pairs, int n_blocks,
                                                     const int32_t* __restrict__ pair_user,
                                                     const int32_t* __restrict__ pair_item,
                                                     const float* __restrict__ P, const float* __restrict__ Q,
                                                     const float* __restrict__ packed, DropoutArgs drop,
                                                     float* __restrict__ score) {
  extern __shared__ __align__(32) float sm[];  // WMMA pointers: 32 bytes (256 bits)
  tc4_init(t, sm);
  const PairRange r = fused_block_pairs(n_pairs, n_blocks, int(blockIdx.x));
  const int C = t.layer[t.L - 1].cout;
  const int* slot = tc4_ints(sm, t.tc4.slot_off);
  int32_t cur_user = -1;
  for (int64_t kb = r.lo; kb < r.hi;) {
    int n = 0;
    const int64_t ke = tc4_form_group(t, nullptr, kb, r.hi, nullptr, nullptr, sm, n);
    tc4_group_fwd<Pr>(t, P, Q, packed, pair_user, pair_item, kb, n, cur_user, sm);
    for (int g = threadIdx.x; g < n; g += blockDim.x)
      score[kb + slot[g]] = fused_score(t, packed, sm + t.tc4.h_off + g * C, drop, kb + slot[g]);
    __syncthreads();  // the next group overwrites the slots and the head sums
    kb = ke;
  }
}

template <Precision Pr>
CONVNCF_TENSOR_CORE_KERNEL void fused_tc4_bwd_kernel(const FusedTower t, int64_t n_pairs, int n_blocks,
                                                     const int32_t* __restrict__ pair_user,
                                                     const int32_t* __restrict__ pair_item,
                                                     const float* __restrict__ P, const float* __restrict__ Q,
                                                     const float* __restrict__ packed, DropoutArgs drop,
                                                     const float* __restrict__ dscore, float* __restrict__ dp,
                                                     float* __restrict__ dq, float* __restrict__ partial) {
  using T = typename Tc<Pr>::T;
  extern __shared__ __align__(32) float sm[];  // WMMA pointers: 32 bytes (256 bits)
  const int tid = threadIdx.x, nt = blockDim.x, warp = tid / 32;
  const FusedTc4& v = t.tc4;
  const FusedTc& tc = t.tc;
  const int L = t.L, s = v.stack0, E = t.E, C = t.layer[L - 1].cout;
  const FusedLayer& l0 = t.layer[0];
  float* slice = partial + int64_t(blockIdx.x) * t.n_params;
  for (int64_t i = tid; i < t.n_params; i += nt) slice[i] = 0.0f;
  tc4_init(t, sm);  // its barriers make the zeros visible before any slice update
  // This warp's weight-gradient tiles j = warp + s * kFusedWarps (fused_tc_tile_slot), summed over
  // all of the block's pairs.
  TcAcc<Pr> dw[kFusedTcSlots];
#pragma unroll
  for (int j = 0; j < kFusedTcSlots; ++j) wmma::fill_fragment(dw[j], 0.0f);
  float* stage = sm + v.stage_off + warp * 256;
  const int* slot = tc4_ints(sm, v.slot_off);
  const int* rowq = tc4_ints(sm, v.rowq_off);
  float* h = sm + v.h_off;
  T* glast = tc_map<Pr>(sm, v.glast_off);
  // layer li's output gradient (pair 0's slot)
  auto grad_of = [&](int li) { return li + 1 == L ? glast : tc_map<Pr>(sm, v.map_off[li]); };
  const PairRange r = fused_block_pairs(n_pairs, n_blocks, int(blockIdx.x));
  int32_t cur_user = -1;
  for (int64_t kb = r.lo; kb < r.hi;) {
    int n = 0;
    const int64_t ke = tc4_form_group(t, dscore, kb, r.hi, dp, dq, sm, n);
    if (n == 0) {  // uniform
      kb = ke;
      continue;
    }
    tc4_group_fwd<Pr>(t, P, Q, packed, pair_user, pair_item, kb, n, cur_user, sm);
    // the output layer of each pair in order: dw_out and db_out into the slice, h becomes dh
    for (int c = tid; c < C; c += nt)
      for (int g = 0; g < n; ++g) {
        const int64_t k = kb + slot[g];
        const float ds = dscore[k];
        slice[t.out_w_off + c] += fused_dw_out(ds, h[g * C + c], drop, k, c);
        h[g * C + c] = fused_dh(t, packed, ds, drop, k, c);
      }
    if (tid == 0)
      for (int g = 0; g < n; ++g) slice[t.out_b_off] += dscore[kb + slot[g]];
    __syncthreads();
    const FusedTcLayer& cl = tc.layer[L - 1];
    for (int i = tid; i < n * cl.rows * C; i += nt) {
      const int row = i / C, co = i % C;
      fused_tc_put(glast, int64_t(row) * cl.np + co,
                   fused_tc_glast(t, sm + v.last_off, h + row / cl.rows * C, row, co), true);
    }
    __syncthreads();
    // the stacked layers for the whole group: dW, db, then X becomes its own gradient
    for (int li = L - 1; li >= s; --li) {
      T* X = tc_map<Pr>(sm, v.map_off[li - 1]);
      const T* G = grad_of(li);
      const int nrows = n * tc.layer[li].rows;
      tc4_layer_dW<Pr>(t, li, X, G, nrows, dw);
      tc4_layer_db(t, li, G, n, slice);
      __syncthreads();  // X is read by the weight gradient before it becomes its own gradient
      tc4_layer_dX<Pr>(t, li, packed, G, nrows, X, stage);
      __syncthreads();
    }
    // each pair: its own layers, then layer 1
    for (int g = 0; g < n; ++g) {
      const int64_t k = kb + slot[g];
      if (v.group > 1) stage_pair(t, P, Q, packed, pair_user[k], pair_item[k], cur_user, sm);
      if (s == 1) {
        const T* m0 = tc_map<Pr>(sm, v.map_off[0]) + g * fused_tc4_slot(t, 0);
        layer1_bwd(t, FusedTcMap0<T>{m0, rowq, l0.out_size, tc.np0}, packed, sm, k, dp, dq, slice);
        continue;
      }
      for (int li = s - 1; li >= 2; --li) {  // stack0 == L (group 1): the pair's maps are still there
        T* X = tc_map<Pr>(sm, v.map_off[li - 1]);
        const T* G = grad_of(li);
        tc4_layer_dW<Pr>(t, li, X, G, tc.layer[li].rows, dw);
        tc4_layer_db(t, li, G, 1, slice);
        __syncthreads();
        tc4_layer_dX<Pr>(t, li, packed, G, tc.layer[li].rows, X, stage);
        __syncthreads();
      }
      // layer 2 chunk by chunk: layer 1 again, dW, dX, then the chunk's part of layer 1's gradient
      const T* G2 = grad_of(1) + (s == 2 && L > 2 ? g * fused_tc4_slot(t, 1) : 0);
      const int np2 = tc.layer[1].np;
      tc4_layer_db(t, 1, G2, 1, slice);
      float* dU = sm + t.du_off;
      float* dqa = sm + v.dq_off;
      float* db1 = sm + v.db1_off;
      for (int i = tid; i < t.u_size(); i += nt) dU[i] = 0.0f;
      for (int e = tid; e < E; e += nt) dqa[e] = 0.0f;
      for (int c = tid; c < l0.cout; c += nt) db1[c] = 0.0f;
      T* cb = tc_map<Pr>(sm, v.map_off[0]);
      for (int ch = 0; ch < v.chunks; ++ch) {
        const FusedTc4Chunk c = fused_tc4_chunk(t, ch);
        tc4_layer1_chunk<Pr>(t, packed, c, sm);
        __syncthreads();
        tc4_layer_dW<Pr>(t, 1, cb, G2 + int64_t(c.row0) * np2, c.rows, dw);
        __syncthreads();  // the chunk is read by the weight gradient before it becomes its gradient
        tc4_layer_dX<Pr>(t, 1, packed, G2 + int64_t(c.row0) * np2, c.rows, cb, stage);
        __syncthreads();
        const FusedTc4Map0<T> g0{cb, rowq, l0.out_size, tc.np0, c.r0, c.r1};
        const int* bx = tc4_ints(sm, v.box_off) + 4 * ch;
        const FusedTc4Box box{bx[0], bx[1], bx[2], bx[3]};
        for (int i = tid; i < t.u_size(); i += nt) dU[i] += fused_tc4_dU_part(t, g0, box, sm + t.q_off, i);
        for (int e = tid; e < E; e += nt) dqa[e] += fused_tc4_dq_part(t, g0, box, sm + t.u_off, e);
        for (int c1 = tid; c1 < l0.cout; c1 += nt) db1[c1] += fused_tc4_db1_part(g0, box, c1);
        __syncthreads();  // the next chunk overwrites the buffer
      }
      for (int e = tid; e < E; e += nt) dq[k * E + e] = dqa[e];
      for (int c1 = tid; c1 < l0.cout; c1 += nt) slice[l0.b_off + c1] += db1[c1];
      for (int w = tid; w < l0.k * l0.k * l0.cout; w += nt) slice[l0.w_off + w] += fused_dW1(t, sm + t.p_off, dU, w);
      for (int e = tid; e < E; e += nt) dp[k * E + e] = fused_dp(t, packed, dU, e);
      __syncthreads();  // the next pair overwrites p, q, U, dU and the maps
    }
    kb = ke;
  }
  store_weight_tiles<Pr>(t, dw, stage, warp, slice);
}

__global__ void fused_pack_kernel1(const FusedTower t, const float* __restrict__ net, float* __restrict__ packed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < t.packed_size();
       i += int64_t(gridDim.x) * blockDim.x)
    packed[i] = fused_pack_value(t, net, i);
}

// One thread per packed index j (neighbouring threads read neighbouring slice elements), the
// sum scattered to its PyTorch-layout place: the twin's sums, in its order.
__global__ void fused_reduce_kernel1(const FusedTower t, int n_blocks, const float* __restrict__ partial,
                                     float* __restrict__ dnet) {
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < t.n_params;
       j += int64_t(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (int b = 0; b < n_blocks; ++b) s += partial[int64_t(b) * t.n_params + j];
    dnet[fused_unpacked_index(t, j)] = s;
  }
}

unsigned grid_for(int64_t n) {
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(kMaxGrid, ceil_div<int64_t>(n, 256))));
}

// Kernels with the tower's dynamic shared memory (above the 48 KiB default). The attribute is set
// to the device's maximum, the same value for every tower, so that engines with different towers
// on several host threads cannot lower it under each other's launches.
template <typename K>
void allow_smem(K kernel, size_t bytes) {
  const size_t max = fused_max_smem_bytes();
  if (bytes > max)
    throw Error(kExitUsage, "engine: fused: the tower needs " + std::to_string(bytes / 1024) +
                                " KiB of shared memory per block, the device allows " + std::to_string(max / 1024) +
                                " KiB; use engine: cudnn");
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(max)));
}

using FwdKernel = void (*)(const FusedTower, int64_t, int, const int32_t*, const int32_t*, const float*, const float*,
                           const float*, DropoutArgs, float*);
using BwdKernel = void (*)(const FusedTower, int64_t, int, const int32_t*, const int32_t*, const float*, const float*,
                           const float*, DropoutArgs, const float*, float*, float*, float*);

// Each variant's kernels and shared memory (check_fused_variant has accepted the variant).
FwdKernel fwd_kernel(const FusedTower& t, int variant) {
  if (variant == 4)
    return t.precision == Precision::BF16 ? fused_tc4_fwd_kernel<Precision::BF16>
                                          : fused_tc4_fwd_kernel<Precision::TF32>;
  if (variant == 3)
    return t.precision == Precision::BF16 ? fused_tc_fwd_kernel<Precision::BF16> : fused_tc_fwd_kernel<Precision::TF32>;
  return variant == 2 ? fused_fwd_kernel<true> : fused_fwd_kernel<false>;
}
BwdKernel bwd_kernel(const FusedTower& t, int variant) {
  if (variant == 4)
    return t.precision == Precision::BF16 ? fused_tc4_bwd_kernel<Precision::BF16>
                                          : fused_tc4_bwd_kernel<Precision::TF32>;
  if (variant == 3)
    return t.precision == Precision::BF16 ? fused_tc_bwd_kernel<Precision::BF16> : fused_tc_bwd_kernel<Precision::TF32>;
  return variant == 2 ? fused_bwd_kernel<true> : fused_bwd_kernel<false>;
}
size_t smem_of(const FusedTower& t, int variant) { return fused_variant_smem_bytes(t, variant); }

}  // namespace

size_t fused_max_smem_bytes() {
  int dev = 0, v = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  return size_t(v);
}

int fused_tower_grid(const FusedTower& t, bool backward) {
  check_fused_args("fused_tower_grid", t, 0, 1, {});
  int dev = 0, sms = 0, per_sm = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  // the engine variant's kernels (variant 1's use variant 2's shared memory)
  const int variant = fused_engine_variant(t);
  const size_t smem = smem_of(t, variant);
  if (backward) {
    const BwdKernel kernel = bwd_kernel(t, variant);
    allow_smem(kernel, smem);
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kFusedThreads, smem));
  } else {
    const FwdKernel kernel = fwd_kernel(t, variant);
    allow_smem(kernel, smem);
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kFusedThreads, smem));
  }
  if (per_sm < 1)
    throw Error(kExitUsage, "engine: fused: no block of the tower's kernel fits on an SM (" +
                                std::to_string(smem / 1024) + " KiB of shared memory); use engine: cudnn");
  return std::max(1, sms * per_sm);
}

void fused_pack(const FusedTower& t, const float* net, float* packed, cudaStream_t stream) {
  check_fused_args("fused_pack", t, 1, 1, {net, packed});
  fused_pack_kernel1<<<grid_for(t.packed_size()), 256, 0, stream>>>(t, net, packed);
  CUDA_CHECK_LAUNCH();
}

void fused_tower_fwd(const FusedTower& t, int64_t n_pairs, int n_blocks, const int32_t* pair_user,
                     const int32_t* pair_item, const float* P, const float* Q, const float* packed,
                     DropoutArgs drop, float* score, cudaStream_t stream, int variant) {
  check_fused_args("fused_tower_fwd", t, n_pairs, n_blocks, {pair_user, pair_item, P, Q, packed, score});
  check_fused_variant("fused_tower_fwd", t, variant);
  if (n_pairs == 0) return;
  const int grid = int(std::min<int64_t>(n_blocks, n_pairs));
  const FwdKernel kernel = fwd_kernel(t, variant);
  const size_t smem = smem_of(t, variant);
  allow_smem(kernel, smem);
  // `grid` chunks: the same pairs per block as n_blocks chunks would give when n_blocks > n_pairs
  kernel<<<grid, kFusedThreads, smem, stream>>>(t, n_pairs, grid, pair_user, pair_item, P, Q, packed, drop, score);
  CUDA_CHECK_LAUNCH();
}

void fused_tower_bwd(const FusedTower& t, int64_t n_pairs, int n_blocks, const int32_t* pair_user,
                     const int32_t* pair_item, const float* P, const float* Q, const float* packed,
                     DropoutArgs drop, const float* dscore, float* dp, float* dq, float* partial,
                     cudaStream_t stream, int variant) {
  check_fused_tower_bwd_args("fused_tower_bwd", t, n_pairs, n_blocks, pair_user, pair_item, P, Q, packed, dscore, dp,
                             dq, partial);
  check_fused_variant("fused_tower_bwd", t, variant);
  const BwdKernel kernel = bwd_kernel(t, variant);
  const size_t smem = smem_of(t, variant);
  allow_smem(kernel, smem);
  kernel<<<n_blocks, kFusedThreads, smem, stream>>>(t, n_pairs, n_blocks, pair_user, pair_item, P, Q, packed, drop,
                                                    dscore, dp, dq, partial);
  CUDA_CHECK_LAUNCH();
}

void fused_reduce_grads(const FusedTower& t, int n_blocks, const float* partial, float* dnet, cudaStream_t stream) {
  check_fused_args("fused_reduce_grads", t, 1, n_blocks, {partial, dnet});
  // 64-thread blocks: a tower has some 25k parameters, which fills every SM only in small blocks
  const unsigned grid = unsigned(std::min<int64_t>(kMaxGrid, ceil_div<int64_t>(t.n_params, 64)));
  fused_reduce_kernel1<<<grid, 64, 0, stream>>>(t, n_blocks, partial, dnet);
  CUDA_CHECK_LAUNCH();
}

}  // namespace convncf
