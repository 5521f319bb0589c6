// rank_test_util.hpp: inputs of the ranking and evaluation tests (tests/test_rank.cpp,
// tests/test_rank_gpu.cu, tests/test_eval_gpu.cu, tests/test_evaluate.cpp): scores with many ties
// and some NaNs, sets of distinct items, CSR rows from item lists, and a Scorer over a table.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "convncf/evaluate.hpp"
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

// A CSR of the rows, each sorted.
inline Csr csr_of(const std::vector<std::vector<int32_t>>& rows) {
  Csr c;
  c.offsets.push_back(0);
  for (std::vector<int32_t> r : rows) {
    std::sort(r.begin(), r.end());
    c.items.insert(c.items.end(), r.begin(), r.end());
    c.offsets.push_back(int64_t(c.items.size()));
  }
  return c;
}

// A host Scorer over a (n_users, n_items) row-major table of scores, with `threads` threads.
class TableScorer final : public Scorer {
 public:
  TableScorer(int32_t n_items, std::vector<float> table, int threads = 1)
      : m_n(n_items), m_threads(threads), m_t(std::move(table)) {}
  int threads() const override { return m_threads; }
  int32_t n_items() const override { return m_n; }
  void score_items(int32_t user, const int32_t* items, int64_t n, float* out, int) override {
    for (int64_t i = 0; i < n; ++i) out[i] = m_t[size_t(user) * size_t(m_n) + size_t(items[i])];
  }
  void score_all(const int32_t* users, int64_t nu, float* out) override {
    for (int64_t u = 0; u < nu; ++u)
      std::copy_n(m_t.begin() + int64_t(users[u]) * m_n, m_n, out + u * m_n);
  }

 private:
  int32_t m_n;
  int m_threads;
  std::vector<float> m_t;
};

}  // namespace test
}  // namespace convncf
