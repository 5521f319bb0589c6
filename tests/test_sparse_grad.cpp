// test_sparse_grad.cpp: the CPU twin of the row-gradient combiner (kernels/sparse_grad_cpu.cpp),
// the oracle of tests/test_sparse_grad_gpu.cu, against a case worked out by hand and against the
// plain per-id definition. Always runs.
//   build/convncf_tests --gtest_filter='CombineRowsCpu*'
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "convncf/errors.hpp"
#include "convncf/rng.hpp"
#include "convncf/sparse_grad.hpp"

using namespace convncf;

// Values are small binary fractions, so every sum below is exact and can be written down.
TEST(CombineRowsCpu, HandWorkedCase) {
  const int E = 2;
  const std::vector<int32_t> ids = {3, 1, 3, 0, 3};
  const std::vector<float> rows = {0.5f,  1.0f,               // -> row 3
                                   2.0f,  -1.0f,              // -> row 1
                                   0.25f, 0.5f,               // -> row 3
                                   -4.0f, 8.0f,               // -> row 0
                                   1.0f,  0.125f};            // -> row 3
  std::vector<float> table = {1, 1, 2, 2, 3, 3, 4, 4, 5, 5};  // (5, 2)
  const std::vector<int32_t> distinct =
      combine_rows_cpu(int64_t(ids.size()), E, ids.data(), rows.data(), table.data());
  EXPECT_EQ(distinct, (std::vector<int32_t>{0, 1, 3}));
  const std::vector<float> want = {-3.0f, 9.0f,    // 1 - 4, 1 + 8
                                   4.0f,  1.0f,    // 2 + 2, 2 - 1
                                   3.0f,  3.0f,    // untouched
                                   5.75f, 5.625f,  // 4 + 0.5 + 0.25 + 1, 4 + 1 + 0.5 + 0.125
                                   5.0f,  5.0f};   // untouched
  EXPECT_EQ(table, want);
}

// Random ids with many repeats: each listed row equals its start value plus its entries added one
// at a time in entry order (float), every other row is untouched, and the distinct ids are the
// ascending set of ids.
TEST(CombineRowsCpu, MatchesPerIdDefinition) {
  Rng rng(41, kStreamSynthetic);
  for (int trial = 0; trial < 20; ++trial) {
    const int E = 1 + int(rng.index(70));
    const int32_t n_table = 1 + int32_t(rng.index(50));
    const int64_t n = int64_t(rng.index(200));
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (int32_t& id : ids) id = int32_t(rng.index(uint32_t(n_table)));
    std::vector<float> rows(size_t(n) * E), table(size_t(n_table) * E);
    for (float& x : rows) x = float(rng.normal());
    for (float& x : table) x = float(rng.normal());
    std::vector<float> got = table;
    const std::vector<int32_t> distinct =
        combine_rows_cpu(n, E, ids.data(), rows.data(), got.data());

    std::vector<int32_t> want_ids;
    for (int32_t id = 0; id < n_table; ++id) {
      bool seen = false;
      for (int e = 0; e < E; ++e) {
        float acc = table[size_t(id) * E + e];
        for (int64_t j = 0; j < n; ++j)
          if (ids[size_t(j)] == id) {
            acc += rows[size_t(j) * E + e];
            seen = true;
          }
        ASSERT_EQ(got[size_t(id) * E + e], acc)
            << "trial " << trial << " row " << id << " col " << e;
      }
      if (seen) want_ids.push_back(id);
    }
    EXPECT_EQ(distinct, want_ids) << "trial " << trial;
  }
}

TEST(CombineRowsCpu, EmptyBatchAndBadSizes) {
  float table[2] = {1.0f, 2.0f};
  EXPECT_TRUE(combine_rows_cpu(0, 2, nullptr, nullptr, table).empty());
  EXPECT_EQ(table[0], 1.0f);
  EXPECT_EQ(table[1], 2.0f);
  EXPECT_THROW(combine_rows_cpu(-1, 2, nullptr, nullptr, table), Error);
  EXPECT_THROW(combine_rows_cpu(0, 0, nullptr, nullptr, table), Error);
}
