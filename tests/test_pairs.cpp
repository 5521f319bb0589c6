// test_pairs.cpp: the CPU twins of the pair-layout kernels (kernels/pairs_cpu.cpp), the oracles of
// tests/test_pairs_gpu.cu, checked by definition and by hand: make_pairs, gather_row_grads,
// interleave_rows and range_pairs (PairLayout.CpuTwinsByHand also covers regularization's
// scale_add_cpu). Always runs; no GPU needed.
//   build/convncf_tests --gtest_filter='MakePairsCpu.*:GatherRowGradsCpu.*:PairLayout.CpuTwinsByHand'
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "convncf/pairs.hpp"
#include "convncf/regularization.hpp"
#include "convncf/rng.hpp"
#include "kernel_test_util.hpp"

using namespace convncf;
using namespace convncf::test;

TEST(MakePairsCpu, InterleavesAndPadsWithRowZero) {
  const std::vector<int32_t> user{5, 6, 7, 99}, pos{1, 2, 3, 99}, neg{8, 9, 4, 99};
  std::vector<int32_t> pu(8, -1), pi(8, -1);
  make_pairs_cpu(4, 3, user.data(), pos.data(), neg.data(), pu.data(), pi.data());
  EXPECT_EQ(pu, (std::vector<int32_t>{5, 5, 6, 6, 7, 7, 0, 0}));
  EXPECT_EQ(pi, (std::vector<int32_t>{1, 8, 2, 9, 3, 4, 0, 0}));
  // n_valid = 0: every pair is padding, and the id arrays are not read
  make_pairs_cpu(4, 0, nullptr, nullptr, nullptr, pu.data(), pi.data());
  EXPECT_EQ(pu, std::vector<int32_t>(8, 0));
  EXPECT_EQ(pi, std::vector<int32_t>(8, 0));
}

TEST(GatherRowGradsCpu, MatchesDefinitionAndPadsWithZero) {
  const int E = 3;
  const int64_t B_cap = 3, n_valid = 2;
  Rng rng(50, kStreamSynthetic);
  const std::vector<float> dp = normals(size_t(2 * B_cap * E), 1, rng);
  const std::vector<float> dq = normals(size_t(2 * B_cap * E), 1, rng);
  std::vector<float> rows(size_t(3 * B_cap * E), NAN);
  gather_row_grads_cpu(B_cap, n_valid, E, dp.data(), dq.data(), rows.data());
  for (int64_t t = 0; t < B_cap; ++t)
    for (int e = 0; e < E; ++e) {
      const bool pad = t >= n_valid;
      const size_t pos = size_t(2 * t * E + e), neg = size_t((2 * t + 1) * E + e);
      EXPECT_EQ(rows[size_t((0 * B_cap + t) * E + e)], pad ? 0.0f : dp[pos] + dp[neg]);
      EXPECT_EQ(rows[size_t((1 * B_cap + t) * E + e)], pad ? 0.0f : dq[pos]);
      EXPECT_EQ(rows[size_t((2 * B_cap + t) * E + e)], pad ? 0.0f : dq[neg]);
    }
}

namespace {

TEST(PairLayout, CpuTwinsByHand) {
  // rows (3, B=2, E=2): user rows, then positive, then negative item rows
  const std::vector<float> rows{0, 1, 2, 3, /*pos*/ 10, 11, 12, 13, /*neg*/ 20, 21, 22, 23};
  std::vector<float> out(8);
  interleave_rows_cpu(2, 2, rows.data(), out.data());
  EXPECT_EQ(out, (std::vector<float>{10, 11, 20, 21, 12, 13, 22, 23}));
  const std::vector<int32_t> users{7, 9};
  std::vector<int32_t> pu(8, -1), pi(8, -1);
  range_pairs_cpu(2, users.data(), 5, 3, 8, pu.data(), pi.data());
  EXPECT_EQ(pu, (std::vector<int32_t>{7, 7, 7, 9, 9, 9, 0, 0}));
  EXPECT_EQ(pi, (std::vector<int32_t>{5, 6, 7, 5, 6, 7, 0, 0}));
  std::vector<float> y{1, 2};
  scale_add_cpu(2, 0.5f, std::vector<float>{4, 8}.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{3, 6}));
}

}  // namespace
