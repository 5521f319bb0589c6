// eval_gpu.hpp: evaluation on the GPU. The model side is a DeviceScorer (the GPU engine, or in the
// tests a table of scores); this file ranks.
//   full ranking  users in blocks; for each block, items in chunks: the scorer writes the block's
//                 (users x chunk) scores on the device, and a counting kernel adds, for every
//                 held-out positive, how many of the chunk's candidate negatives (not excluded,
//                 not a positive of the query) beat it (score >= its score; NaN rules as in
//                 evaluate.hpp). The positions, hence every metric, are exact, and no more than a
//                 block's chunk of scores ever exists.
//   sampled/file  every candidate (positives and negatives) of a batch of queries as (user, item)
//                 pairs, scored in large launches, ranked on the host by positive_positions.
//   top_k_gpu     each user's best k items, training items masked, kept on the device and merged
//                 chunk by chunk (ties by lower item index), for `recommend`.
// Metrics come out of MetricSum, so evaluate_gpu equals evaluate() on the same scores.
// Kernels: kernels/rank.cu. Tests: tests/test_eval_gpu.cu (against evaluate() and top_k()).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "convncf/common.hpp"
#include "convncf/evaluate.hpp"

struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace convncf {

class DeviceScorer {
 public:
  virtual ~DeviceScorer() = default;
  virtual int32_t n_items() const = 0;
  // The most (user, item) pairs one call below may score; evaluate_gpu sizes its blocks by it.
  virtual int64_t max_pairs() const = 0;
  // out (nu, n) row-major, device: scores of users[j] against items item_lo .. item_lo+n-1.
  // users is a device array; nu * n <= max_pairs().
  virtual void score_range(const int32_t* users, int64_t nu, int32_t item_lo, int32_t n,
                           float* out, cudaStream_t stream) = 0;
  // out[k] = score of (user[k], item[k]), device arrays, n <= max_pairs().
  virtual void score_pairs(const int32_t* user, const int32_t* item, int64_t n, float* out,
                           cudaStream_t stream) = 0;
};

Metrics evaluate_gpu(DeviceScorer& scorer, const EvalSet& set, const std::vector<int>& topk,
                     cudaStream_t stream);

// As top_k() in evaluate.hpp: best first, ties by lower item index, excluded items skipped.
// k <= 0 gives empty lists; k above kTopKGpuMax (below) throws Error(kExitUsage).
std::vector<std::vector<std::pair<int32_t, float>>> top_k_gpu(
    DeviceScorer& scorer, const std::vector<int32_t>& users, const std::vector<const Csr*>& exclude,
    int32_t k, cudaStream_t stream);

// ---------------------------------------------------------------------------------------------
// Per-element rules shared by the CPU twins (kernels/rank_cpu.cpp) and the kernels (kernels/rank.cu).

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

}  // namespace convncf
