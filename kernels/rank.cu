// rank.cu: the ranking kernels of GPU evaluation (include/convncf/rank.hpp; used by
// host/cuda/eval_gpu.cpp). CPU twins and argument checks: kernels/rank_cpu.cpp, with the
// per-element rules (ranks_above, sorted_contains, ranks_before) shared through rank.hpp. Tests:
// tests/test_rank.cpp (the twins against evaluate()'s positive_positions and top_k),
// tests/test_rank_gpu.cu, which compares each kernel with its twin exactly (integer counts, copied
// scores), and tests/test_eval_gpu.cu (evaluate_gpu / top_k_gpu against evaluate() / top_k()):
//   build/convncf_tests --gtest_filter='CountBeating.*:TopKMerge.*:EvalGpu.*'
// Variants (one of each so far):
//   count_beating_kernel1: one block per user (grid-stride over users). The user's positives
//      go through shared memory in tiles of 32 scores; each warp takes 32 consecutive items of
//      the chunk at a time, lane l one item (candidate test: two binary searches, in the user's
//      sorted excluded list and the query's sorted positives), then for each positive j of the
//      tile the warp ballots "my item is a candidate that ranks above positive j" and lane j
//      adds the popcount, so lane j holds positive j's count in one register. The warps' counts
//      meet in shared memory and one thread per positive adds their sum to beat[] (no atomics:
//      the same result on every run). A user with more than 32 positives takes several passes
//      over the chunk (most users have few held-out items).
//   top_k_merge_kernel1: one block per user (grid-stride). The running list (best first,
//      <= k entries) is staged in shared memory; the chunk goes past in windows of kTopKWindow
//      items. A window's non-excluded items that beat the list's last entry (all of them while
//      the list is short) are gathered in shared memory, sorted by counting for each how many
//      others come before it (ranks_before is a strict total order on distinct items, so the
//      ranks are a permutation), then merged with the list: each entry's new place is its old
//      place plus the number of entries of the other side before it (a binary search), and
//      places >= k are dropped. O(window^2 / threads) per window while the list fills, then
//      almost nothing once the list's last entry is better than most items.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "convncf/common.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/rank.hpp"

namespace convncf {
namespace {

constexpr int kWarp = 32;
constexpr int kCountBlock = 256;  // a multiple of the warp size: every lane joins the ballots
constexpr int kCountWarps = kCountBlock / kWarp;
constexpr int kTopKBlock = 256;
constexpr int kTopKWindow = 1024;
// Grid caps: one block per user up to this many, then grid-stride loops over users.
constexpr int64_t kMaxGrid = 16384;

CONVNCF_HOT_KERNEL void count_beating_kernel1(int64_t nu, int32_t item_lo, int32_t n,
                                              const float* __restrict__ scores,         // (nu, n)
                                              const int64_t* __restrict__ pos_offsets,  // (nu+1,)
                                              const int32_t* __restrict__ positives,    // sorted per user
                                              const float* __restrict__ pos_score,      // like positives
                                              const int64_t* __restrict__ excl_offsets,  // (nu+1,)
                                              const int32_t* __restrict__ excl_items,   // sorted per user
                                              int64_t* __restrict__ beat) {             // like positives
  __shared__ float s_x[kWarp];                     // the tile's positive scores
  __shared__ int32_t s_count[kCountWarps][kWarp];  // per warp, per positive of the tile
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int warp = static_cast<int>(threadIdx.x) / kWarp;
  for (int64_t u = blockIdx.x; u < nu; u += gridDim.x) {
    const int64_t pb = pos_offsets[u], m = pos_offsets[u + 1] - pb;
    const int64_t eb = excl_offsets[u], deg = excl_offsets[u + 1] - eb;
    const int32_t* pos = positives + pb;
    const int32_t* excl = excl_items + eb;
    const float* row = scores + u * static_cast<int64_t>(n);
    for (int64_t t0 = 0; t0 < m; t0 += kWarp) {
      const int tm = static_cast<int>(m - t0 < kWarp ? m - t0 : kWarp);
      __syncthreads();  // the previous tile's (or user's) reads of s_x and s_count are done
      if (static_cast<int>(threadIdx.x) < tm) s_x[threadIdx.x] = pos_score[pb + t0 + threadIdx.x];
      __syncthreads();
      int32_t mine = 0;  // lane j: candidates of this warp's items ranked above positive t0 + j
      // `base` is the same for the 32 lanes of a warp, so all of them reach every ballot.
      for (int64_t base = static_cast<int64_t>(warp) * kWarp; base < n;
           base += static_cast<int64_t>(kCountWarps) * kWarp) {
        const int64_t i = base + lane;
        bool cand = false;
        float v = 0.f;
        if (i < n) {
          const int32_t item = item_lo + static_cast<int32_t>(i);
          cand = !sorted_contains(excl, deg, item) && !sorted_contains(pos, m, item);
          if (cand) v = row[i];
        }
        for (int j = 0; j < tm; ++j) {
          const unsigned ball = __ballot_sync(0xffffffffu, cand && ranks_above(v, s_x[j]));
          if (lane == j) mine += __popc(ball);
        }
      }
      s_count[warp][lane] = mine;
      __syncthreads();
      if (static_cast<int>(threadIdx.x) < tm) {
        int64_t sum = 0;
        for (int w = 0; w < kCountWarps; ++w) sum += s_count[w][threadIdx.x];
        beat[pb + t0 + threadIdx.x] += sum;  // the only writer of this entry in this launch
      }
    }
  }
}

CONVNCF_HOT_KERNEL void top_k_merge_kernel1(int64_t nu, int32_t item_lo, int32_t n, int32_t k,
                                            const float* __restrict__ scores,          // (nu, n)
                                            const int64_t* __restrict__ excl_offsets,  // (nu+1,)
                                            const int32_t* __restrict__ excl_items,    // sorted per user
                                            int32_t* __restrict__ list_item,           // (nu, k)
                                            float* __restrict__ list_score,            // (nu, k)
                                            int32_t* __restrict__ list_count) {        // (nu,)
  __shared__ int32_t s_li[kTopKGpuMax];  // the running list, best first
  __shared__ float s_ls[kTopKGpuMax];
  __shared__ int32_t s_ni[kTopKGpuMax];  // the merged list being built
  __shared__ float s_ns[kTopKGpuMax];
  __shared__ int32_t s_wi[kTopKWindow];  // the window's gathered items, in gather order
  __shared__ float s_ws[kTopKWindow];
  __shared__ int32_t s_ti[kTopKWindow];  // the same, sorted
  __shared__ float s_ts[kTopKWindow];
  __shared__ int32_t s_nw;               // how many were gathered
  const int tid = static_cast<int>(threadIdx.x);
  const int bd = static_cast<int>(blockDim.x);
  for (int64_t u = blockIdx.x; u < nu; u += gridDim.x) {
    const int64_t eb = excl_offsets[u], deg = excl_offsets[u + 1] - eb;
    const int32_t* excl = excl_items + eb;
    const float* row = scores + u * static_cast<int64_t>(n);
    int32_t* li = list_item + u * k;
    float* ls = list_score + u * k;
    int32_t c = list_count[u];  // the same in every thread, and kept so
    __syncthreads();            // the previous user's last reads of shared memory are done
    for (int j = tid; j < c; j += bd) {
      s_li[j] = li[j];
      s_ls[j] = ls[j];
    }
    for (int64_t w0 = 0; w0 < n; w0 += kTopKWindow) {
      const int wn = static_cast<int>(n - w0 < kTopKWindow ? n - w0 : kTopKWindow);
      __syncthreads();  // the list is loaded or merged; everyone has read s_nw
      if (tid == 0) s_nw = 0;
      __syncthreads();
      for (int t = tid; t < wn; t += bd) {
        const int32_t item = item_lo + static_cast<int32_t>(w0 + t);
        if (sorted_contains(excl, deg, item)) continue;
        const float v = row[w0 + t];
        if (c == k && !ranks_before(v, item, s_ls[k - 1], s_li[k - 1])) continue;
        const int slot = atomicAdd(&s_nw, 1);  // order does not matter: sorted below
        s_wi[slot] = item;
        s_ws[slot] = v;
      }
      __syncthreads();
      const int nw = s_nw;
      if (nw == 0) continue;
      for (int j = tid; j < nw; j += bd) {
        const float v = s_ws[j];
        const int32_t item = s_wi[j];
        int r = 0;
        for (int i = 0; i < nw; ++i) r += ranks_before(s_ws[i], s_wi[i], v, item);
        s_ti[r] = item;
        s_ts[r] = v;
      }
      __syncthreads();
      // New place = old place + entries of the other side before it (binary search there).
      for (int j = tid; j < c; j += bd) {
        int lo = 0, hi = nw;
        while (lo < hi) {
          const int mid = (lo + hi) / 2;
          if (ranks_before(s_ts[mid], s_ti[mid], s_ls[j], s_li[j])) lo = mid + 1; else hi = mid;
        }
        const int p = j + lo;
        if (p < k) {
          s_ni[p] = s_li[j];
          s_ns[p] = s_ls[j];
        }
      }
      for (int j = tid; j < nw; j += bd) {
        int lo = 0, hi = c;
        while (lo < hi) {
          const int mid = (lo + hi) / 2;
          if (ranks_before(s_ls[mid], s_li[mid], s_ts[j], s_ti[j])) lo = mid + 1; else hi = mid;
        }
        const int p = j + lo;
        if (p < k) {
          s_ni[p] = s_ti[j];
          s_ns[p] = s_ts[j];
        }
      }
      c = c + nw < k ? c + nw : k;
      __syncthreads();
      for (int j = tid; j < c; j += bd) {
        s_li[j] = s_ni[j];
        s_ls[j] = s_ns[j];
      }
    }
    __syncthreads();
    for (int j = tid; j < c; j += bd) {
      li[j] = s_li[j];
      ls[j] = s_ls[j];
    }
    if (tid == 0) list_count[u] = c;
  }
}

}  // namespace

void count_beating_gpu(int64_t nu, int32_t item_lo, int32_t n, const float* __restrict__ scores,
                       const int64_t* __restrict__ pos_offsets,
                       const int32_t* __restrict__ positives, const float* __restrict__ pos_score,
                       const int64_t* __restrict__ excl_offsets,
                       const int32_t* __restrict__ excl_items, int64_t* __restrict__ beat,
                       cudaStream_t stream) {
  check_count_beating_args(nu, n, scores, pos_offsets, excl_offsets);
  if (nu == 0 || n == 0) return;
  // One block per user (ceil_div by one user per block), capped; the kernel strides over users.
  const int64_t grid = std::min<int64_t>(ceil_div<int64_t>(nu, 1), kMaxGrid);
  count_beating_kernel1<<<static_cast<unsigned>(grid), kCountBlock, 0, stream>>>(
      nu, item_lo, n, scores, pos_offsets, positives, pos_score, excl_offsets, excl_items, beat);
  CUDA_CHECK_LAUNCH();
}

void top_k_merge_gpu(int64_t nu, int32_t item_lo, int32_t n, int32_t k,
                     const float* __restrict__ scores, const int64_t* __restrict__ excl_offsets,
                     const int32_t* __restrict__ excl_items, int32_t* __restrict__ list_item,
                     float* __restrict__ list_score, int32_t* __restrict__ list_count,
                     cudaStream_t stream) {
  check_top_k_merge_args(nu, n, k, scores, excl_offsets, list_item, list_score, list_count);
  if (nu == 0 || n == 0) return;
  const int64_t grid = std::min<int64_t>(ceil_div<int64_t>(nu, 1), kMaxGrid);
  top_k_merge_kernel1<<<static_cast<unsigned>(grid), kTopKBlock, 0, stream>>>(
      nu, item_lo, n, k, scores, excl_offsets, excl_items, list_item, list_score, list_count);
  CUDA_CHECK_LAUNCH();
}

}  // namespace convncf
