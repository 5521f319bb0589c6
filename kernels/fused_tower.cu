// fused_tower.cu: the fused ConvNCF tower (engine: fused; see include/convncf/fused_tower.hpp for
// the algorithm and the shared-memory layout). CPU twins: kernels/fused_tower_cpu.cpp. Tests:
// tests/test_fused_tower_gpu.cu, each kernel against its twin:
//   build/convncf_tests --gtest_filter='FusedTowerGpu.*'
//
// One block of kFusedThreads per chunk of pairs, every phase a block-strided loop over the
// phase's elements, each element computed by the shared element function, __syncthreads()
// between phases. FP32 CUDA cores for every precision: tf32 and bf16 round the operands of
// layers 2..L exactly as the tensor cores' input formats do, so they give the numbers of a
// tensor-core version, not yet its speed.
//   fused_fwd_kernel<false>  variant 1, the plain port of the twin: score of each pair
//   fused_bwd_kernel<false>  variant 1: recomputes a pair's forward, then backward in place;
//                            weight gradients go to the block's own slice of `partial` (no
//                            atomics: each slice element has one owning thread per phase, and a
//                            block's pairs run in order)
//   fused_*_kernel<true>     variant 2: on tiled layers (FusedLayer::tiled) each thread computes
//                            four outputs (conv: four output channels of a position; dW: four
//                            output channels of a weight row; dX: four input channels of a
//                            position) with 16-byte weight loads, so a loaded operand feeds four
//                            FMAs instead of one; the same sums in the same order as variant 1
//   fused_pack_kernel1, fused_reduce_kernel1: one thread per element
// Weights are read from global memory (L1/L2-resident: the packed recbole tower is 25,249
// parameters, 101 KB, plus as much for the transposed copy).
#include <cuda_runtime.h>

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
template <bool kTiled>
__device__ void fwd_pair(const FusedTower& t, const float* __restrict__ P, const float* __restrict__ Q,
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
  extern __shared__ float sm[];
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
  extern __shared__ float sm[];
  const int tid = threadIdx.x, nt = blockDim.x, E = t.E;
  float* slice = partial + int64_t(blockIdx.x) * t.n_params;
  for (int64_t i = tid; i < t.n_params; i += nt) slice[i] = 0.0f;
  __syncthreads();  // the zeros are visible to every thread before any slice update
  const PairRange r = fused_block_pairs(n_pairs, n_blocks, int(blockIdx.x));
  int32_t cur_user = -1;
  for (int64_t k = r.lo; k < r.hi; ++k) {
    const float ds = dscore[k];
    if (ds == 0.0f) {  // uniform: every thread reads the same dscore
      for (int e = tid; e < E; e += nt) {
        dp[k * E + e] = 0.0f;
        dq[k * E + e] = 0.0f;
      }
      continue;
    }
    fwd_pair<kTiled>(t, P, Q, packed, pair_user[k], pair_item[k], cur_user, sm);
    const FusedLayer& last = t.layer[t.L - 1];
    float* h = sm + t.h_off;
    for (int c = tid; c < last.cout; c += nt) {
      slice[t.out_w_off + c] += fused_dw_out(ds, h[c], drop, k, c);
      h[c] = fused_dh(t, packed, ds, drop, k, c);
    }
    if (tid == 0) slice[t.out_b_off] += ds;
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
    const float* G = sm + l0.act_off;
    float* dU = sm + t.du_off;
    for (int i = tid; i < t.u_size(); i += nt) dU[i] = fused_dU(t, G, sm + t.q_off, i);
    for (int e = tid; e < E; e += nt) dq[k * E + e] = fused_dq(t, G, sm + t.u_off, e);
    for (int c = tid; c < l0.cout; c += nt) slice[l0.b_off + c] += fused_db(t, 0, G, c);
    __syncthreads();
    for (int w = tid; w < l0.k * l0.k * l0.cout; w += nt) slice[l0.w_off + w] += fused_dW1(t, sm + t.p_off, dU, w);
    for (int e = tid; e < E; e += nt) dp[k * E + e] = fused_dp(t, packed, dU, e);
    __syncthreads();  // the next pair overwrites p, q and the maps
  }
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
void allow_smem(K kernel, const FusedTower& t) {
  const size_t max = fused_max_smem_bytes();
  if (t.smem_bytes() > max)
    throw Error(kExitUsage, "engine: fused: the tower needs " + std::to_string(t.smem_bytes() / 1024) +
                                " KiB of shared memory per block, the device allows " + std::to_string(max / 1024) +
                                " KiB; use engine: cudnn");
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(max)));
}

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
  // variant 2's kernels, the engine's (variant 1's use the same shared memory)
  if (backward) {
    allow_smem(fused_bwd_kernel<true>, t);
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fused_bwd_kernel<true>, kFusedThreads,
                                                             t.smem_bytes()));
  } else {
    allow_smem(fused_fwd_kernel<true>, t);
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fused_fwd_kernel<true>, kFusedThreads,
                                                             t.smem_bytes()));
  }
  if (per_sm < 1)
    throw Error(kExitUsage, "engine: fused: no block of the tower's kernel fits on an SM (" +
                                std::to_string(t.smem_bytes() / 1024) + " KiB of shared memory); use engine: cudnn");
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
  check_fused_variant("fused_tower_fwd", variant);
  if (n_pairs == 0) return;
  const int grid = int(std::min<int64_t>(n_blocks, n_pairs));
  auto kernel = variant == 2 ? fused_fwd_kernel<true> : fused_fwd_kernel<false>;
  allow_smem(kernel, t);
  // `grid` chunks: the same pairs per block as n_blocks chunks would give when n_blocks > n_pairs
  kernel<<<grid, kFusedThreads, t.smem_bytes(), stream>>>(t, n_pairs, grid, pair_user, pair_item, P, Q, packed, drop,
                                                          score);
  CUDA_CHECK_LAUNCH();
}

void fused_tower_bwd(const FusedTower& t, int64_t n_pairs, int n_blocks, const int32_t* pair_user,
                     const int32_t* pair_item, const float* P, const float* Q, const float* packed,
                     DropoutArgs drop, const float* dscore, float* dp, float* dq, float* partial,
                     cudaStream_t stream, int variant) {
  check_fused_tower_bwd_args("fused_tower_bwd", t, n_pairs, n_blocks, pair_user, pair_item, P, Q, packed, dscore, dp,
                             dq, partial);
  check_fused_variant("fused_tower_bwd", variant);
  auto kernel = variant == 2 ? fused_bwd_kernel<true> : fused_bwd_kernel<false>;
  allow_smem(kernel, t);
  kernel<<<n_blocks, kFusedThreads, t.smem_bytes(), stream>>>(t, n_pairs, n_blocks, pair_user, pair_item, P, Q, packed,
                                                              drop, dscore, dp, dq, partial);
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
