// rank.hpp: the ranking kernels of GPU evaluation (host/cuda/eval_gpu.cpp, eval_gpu.hpp), with
// their CPU twins and the per-element rules both run.
//   count_beating  for every held-out positive of a block of users, how many of a chunk's
//                  candidate negatives (not excluded, not a positive of the query) rank above it;
//                  positions_from_beats turns the counts into the positives' positions
//   top_k_merge    each user's running list of its best k items, merged with a chunk's items
//                  (ties by lower item index, excluded items skipped), for top_k_gpu
// The rules follow evaluate.hpp (ties and NaN count against the positive), so the positions, hence
// every metric, equal evaluate()'s. Kernels: kernels/rank.cu. CPU twins and argument checks:
// kernels/rank_cpu.cpp. Tests: tests/test_rank.cpp (the twins, against positive_positions() and
// top_k()), tests/test_rank_gpu.cu (the kernels against the twins).
#pragma once
#include <cstdint>

#include "convncf/common.hpp"

struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace convncf {

// ---- Per-element rules shared by the CPU twins and the kernels ----

// A candidate negative scored v ranks above a positive scored x: ties and a NaN negative count
// against the positive, and every negative ranks above a NaN positive (evaluate.hpp).
CONVNCF_HD bool ranks_above(float v, float x) { return !(v < x); }

// Is x among the sorted a[0 .. n)? (binary search)
CONVNCF_HD bool sorted_contains(const int32_t* a, int64_t n, int32_t x) {
  int64_t lo = 0, hi = n;  // first j with a[j] >= x
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (a[mid] < x) lo = mid + 1; else hi = mid;
  }
  return lo < n && a[lo] == x;
}

// top_k's order: (score sa, item a) comes before (sb, b) when its score is higher, a NaN score
// last, equal scores (and two NaNs) by lower item index. A strict total order on distinct items.
CONVNCF_HD bool ranks_before(float sa, int32_t a, float sb, int32_t b) {
  const bool na = sa != sa, nb = sb != sb;  // NaN tests that need no <cmath> on the device
  if (na != nb) return nb;
  if (!na && sa != sb) return sa > sb;
  return a < b;
}

// The 0-based positions of a query's m positives, ascending, from beat[j] = the candidate
// negatives ranked above positive j (any order of the positives): out = sort(beat) + (0, 1, ..).
// Equal to positive_positions() on the same scores (tests/test_rank.cpp).
void positions_from_beats(const int64_t* beat, int64_t m, int64_t* out);

// The counting kernel's twin, exposed for tests: for nu users of a block with their queries'
// positives (pos_offsets (nu+1), positives sorted, their scores pos_score), the excluded items
// (excl_offsets (nu+1), excl_items sorted per user) and the chunk's scores (nu, n) of items
// item_lo .., adds to beat[j] the number of the chunk's candidate negatives that rank above
// positive j.
// The offsets index positives, pos_score, beat and excl_items directly (pos_offsets[0] need not
// be 0), so a block of users passes pos_offsets + q0 and the whole arrays. Positives of one
// user occupy distinct entries; nu == 0 or n == 0 adds nothing (and launches nothing).
void count_beating_cpu(int64_t nu, int32_t item_lo, int32_t n, const float* scores,
                       const int64_t* pos_offsets, const int32_t* positives,
                       const float* pos_score, const int64_t* excl_offsets,
                       const int32_t* excl_items, int64_t* beat);
void count_beating_gpu(int64_t nu, int32_t item_lo, int32_t n, const float* scores,
                       const int64_t* pos_offsets, const int32_t* positives,
                       const float* pos_score, const int64_t* excl_offsets,
                       const int32_t* excl_items, int64_t* beat, cudaStream_t stream);

// The largest k top_k_gpu serves (its merge keeps the running lists in shared memory).
inline constexpr int32_t kTopKGpuMax = 1024;

// The top-k merge kernel's twin, exposed for tests: nu users, each with a running list of its
// best list_count[u] (<= k) items so far, best first (list_item, list_score (nu, k)), and the
// chunk's scores (nu, n) of items item_lo ..; merges the chunk's items that are not excluded
// (excl_offsets (nu+1) into excl_items, sorted per user; offsets used as given) into the lists,
// which then hold the best min(k, items seen) under ranks_before. 1 <= k <= kTopKGpuMax.
void top_k_merge_cpu(int64_t nu, int32_t item_lo, int32_t n, int32_t k, const float* scores,
                     const int64_t* excl_offsets, const int32_t* excl_items, int32_t* list_item,
                     float* list_score, int32_t* list_count);
void top_k_merge_gpu(int64_t nu, int32_t item_lo, int32_t n, int32_t k, const float* scores,
                     const int64_t* excl_offsets, const int32_t* excl_items, int32_t* list_item,
                     float* list_score, int32_t* list_count, cudaStream_t stream);

// The launchers' argument checks, shared by each launcher, its twin (who = "<name>_cpu") and the
// emulated launcher; they throw Error(kExitSoftware) naming `who`. count_beating: nu, n >= 0 and,
// when there is work (nu, n > 0), scores and both offset arrays not null (positives, pos_score
// and beat are read only for users with positives). top_k_merge: nu, n >= 0, 1 <= k <=
// kTopKGpuMax and, when there is work, no null pointer but excl_items.
void check_count_beating_args(int64_t nu, int32_t n, const float* scores,
                              const int64_t* pos_offsets, const int64_t* excl_offsets,
                              const char* who = "count_beating_gpu");
void check_top_k_merge_args(int64_t nu, int32_t n, int32_t k, const float* scores,
                            const int64_t* excl_offsets, const int32_t* list_item,
                            const float* list_score, const int32_t* list_count,
                            const char* who = "top_k_merge_gpu");

}  // namespace convncf
