// rank_cpu.cpp: CPU twins of kernels/rank.cu (same arguments, same per-element rules from
// rank.hpp), the launchers' argument checks, and the step from beat counts to positions. Plain
// loops, one thread: these are the oracles of tests/test_rank_gpu.cu and are themselves checked by
// tests/test_rank.cpp (against positive_positions() and top_k() of evaluate.hpp).
#include <algorithm>
#include <string>
#include <vector>

#include "convncf/errors.hpp"
#include "convncf/rank.hpp"

namespace convncf {

void check_count_beating_args(int64_t nu, int32_t n, const float* scores,
                              const int64_t* pos_offsets, const int64_t* excl_offsets,
                              const char* who) {
  if (nu < 0 || n < 0)
    throw_internal(std::string(who) + ": bad sizes nu=" + std::to_string(nu) +
                   " n=" + std::to_string(n) + " (expected >= 0)");
  // positives, pos_score and beat may be null when no user of the block has a positive (the
  // kernel then never reads them); the offsets and the scores are always read.
  if (nu > 0 && n > 0 && (!scores || !pos_offsets || !excl_offsets))
    throw_internal(std::string(who) + ": null pointer argument");
}

void check_top_k_merge_args(int64_t nu, int32_t n, int32_t k, const float* scores,
                            const int64_t* excl_offsets, const int32_t* list_item,
                            const float* list_score, const int32_t* list_count,
                            const char* who) {
  if (nu < 0 || n < 0 || k < 1 || k > kTopKGpuMax)
    throw_internal(std::string(who) + ": bad sizes nu=" + std::to_string(nu) + " n=" +
                   std::to_string(n) + " k=" + std::to_string(k) +
                   " (expected nu, n >= 0, 1 <= k <= " + std::to_string(kTopKGpuMax) + ")");
  if (nu > 0 && n > 0 && (!scores || !excl_offsets || !list_item || !list_score || !list_count))
    throw_internal(std::string(who) + ": null pointer argument");
}

void positions_from_beats(const int64_t* beat, int64_t m, int64_t* out) {
  // positive_positions sorts the positives by score (descending, NaN last) and places the j-th
  // at j + (negatives ranked above it). That count never decreases along the sorted order (a
  // lower score is beaten by a superset of negatives, a NaN positive by all), so sorting the
  // counts gives the same sequence without the scores.
  if (m <= 0) return;
  std::copy(beat, beat + m, out);
  std::sort(out, out + m);
  for (int64_t j = 0; j < m; ++j) out[j] += j;
}

void count_beating_cpu(int64_t nu, int32_t item_lo, int32_t n, const float* scores,
                       const int64_t* pos_offsets, const int32_t* positives,
                       const float* pos_score, const int64_t* excl_offsets,
                       const int32_t* excl_items, int64_t* beat) {
  check_count_beating_args(nu, n, scores, pos_offsets, excl_offsets, "count_beating_cpu");
  for (int64_t u = 0; u < nu; ++u) {
    const int64_t pb = pos_offsets[u], m = pos_offsets[u + 1] - pb;
    const int64_t eb = excl_offsets[u], deg = excl_offsets[u + 1] - eb;
    const float* row = scores + u * int64_t(n);
    for (int32_t i = 0; i < n; ++i) {
      const int32_t item = item_lo + i;
      if (sorted_contains(excl_items + eb, deg, item) || sorted_contains(positives + pb, m, item))
        continue;
      const float v = row[i];
      for (int64_t j = 0; j < m; ++j) beat[pb + j] += ranks_above(v, pos_score[pb + j]);
    }
  }
}

void top_k_merge_cpu(int64_t nu, int32_t item_lo, int32_t n, int32_t k, const float* scores,
                     const int64_t* excl_offsets, const int32_t* excl_items, int32_t* list_item,
                     float* list_score, int32_t* list_count) {
  check_top_k_merge_args(nu, n, k, scores, excl_offsets, list_item, list_score, list_count,
                         "top_k_merge_cpu");
  std::vector<std::pair<float, int32_t>> all;
  for (int64_t u = 0; u < nu; ++u) {
    const int64_t eb = excl_offsets[u], deg = excl_offsets[u + 1] - eb;
    int32_t* li = list_item + u * k;
    float* ls = list_score + u * k;
    all.clear();
    for (int32_t j = 0; j < list_count[u]; ++j) all.emplace_back(ls[j], li[j]);
    for (int32_t i = 0; i < n; ++i) {
      const int32_t item = item_lo + i;
      if (!sorted_contains(excl_items + eb, deg, item)) all.emplace_back(scores[u * n + i], item);
    }
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
      return ranks_before(a.first, a.second, b.first, b.second);
    });
    const int32_t c = int32_t(std::min<size_t>(size_t(k), all.size()));
    for (int32_t j = 0; j < c; ++j) {
      ls[j] = all[size_t(j)].first;
      li[j] = all[size_t(j)].second;
    }
    list_count[u] = c;
  }
}

}  // namespace convncf
