// rank_test_util.hpp: inputs of the ranking tests (tests/test_rank.cpp, tests/test_rank_gpu.cu,
// tests/test_eval_gpu.cu): scores with many ties and some NaNs, and sets of distinct items.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "convncf/rng.hpp"

namespace convncf {
namespace test {

inline const float kNaN = std::numeric_limits<float>::quiet_NaN();

// Scores with many ties (12 values on a quarter-step grid) and about 1 in 25 NaN.
inline float tied_score(Rng& rng) {
  if (rng.index(25) == 0) return kNaN;
  return float(rng.index(12)) * 0.25f - 1.0f;
}

// `count` distinct items of [0, n_items), sorted, avoiding the sorted `avoid`.
inline std::vector<int32_t> distinct_items(Rng& rng, int32_t n_items, int64_t count,
                                           const std::vector<int32_t>& avoid) {
  std::vector<int32_t> free_items;
  for (int32_t i = 0; i < n_items; ++i)
    if (!std::binary_search(avoid.begin(), avoid.end(), i)) free_items.push_back(i);
  count = std::min<int64_t>(count, int64_t(free_items.size()));
  for (int64_t k = 0; k < count; ++k)
    std::swap(free_items[size_t(k)],
              free_items[size_t(k) + rng.index(uint32_t(free_items.size() - size_t(k)))]);
  std::vector<int32_t> out(free_items.begin(), free_items.begin() + count);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace test
}  // namespace convncf
