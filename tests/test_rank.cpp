// test_rank.cpp: the CPU twins of the GPU ranking kernels (kernels/rank_cpu.cpp), checked without
// a GPU against the plain definitions in evaluate.hpp, so that they can be the oracles of
// tests/test_rank_gpu.cu:
// - count_beating_cpu: a case worked by hand (ties, NaN on either side, exclusions, "adds to");
//   random blocks of users with several positives, items split into awkward chunks, scores with
//   many ties and some NaNs: positions_from_beats of the counts equal positive_positions() over
//   the candidate negatives;
// - positions_from_beats by hand;
// - top_k_merge_cpu: chunk by chunk from empty lists equals top_k() on the same scores;
// - the shared rules (ranks_above, sorted_contains, ranks_before) at their edges.
//   build/convncf_tests --gtest_filter='CountBeating.Cpu*:PositionsFromBeats.*:TopKMerge.Cpu*:RankRules.*'
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "convncf/evaluate.hpp"
#include "convncf/rank.hpp"
#include "convncf/rng.hpp"
#include "rank_test_util.hpp"

using namespace convncf;
using namespace convncf::test;

namespace {

std::vector<int64_t> from_beats(const std::vector<int64_t>& beat) {
  std::vector<int64_t> out(beat.size(), -1);
  positions_from_beats(beat.data(), int64_t(beat.size()), out.data());
  return out;
}

}  // namespace

TEST(RankRules, TiesNaNAndSearch) {
  EXPECT_TRUE(ranks_above(0.5f, 0.5f));   // a tie counts against the positive
  EXPECT_TRUE(ranks_above(0.6f, 0.5f));
  EXPECT_FALSE(ranks_above(0.4f, 0.5f));
  EXPECT_TRUE(ranks_above(kNaN, 0.5f));   // a NaN negative beats every positive
  EXPECT_TRUE(ranks_above(-1e30f, kNaN));  // a NaN positive is beaten by all
  EXPECT_TRUE(ranks_above(kNaN, kNaN));
  const int32_t a[] = {1, 4, 9, 10};
  for (int32_t x = -1; x < 12; ++x)
    EXPECT_EQ(sorted_contains(a, 4, x), x == 1 || x == 4 || x == 9 || x == 10) << x;
  EXPECT_FALSE(sorted_contains(nullptr, 0, 3));
  EXPECT_TRUE(ranks_before(0.5f, 7, 0.4f, 1));   // higher score first
  EXPECT_TRUE(ranks_before(0.5f, 1, 0.5f, 7));   // tie: lower item first
  EXPECT_FALSE(ranks_before(0.5f, 7, 0.5f, 1));
  EXPECT_TRUE(ranks_before(-1e30f, 9, kNaN, 0));  // NaN last
  EXPECT_FALSE(ranks_before(kNaN, 0, -1e30f, 9));
  EXPECT_TRUE(ranks_before(kNaN, 2, kNaN, 3));   // two NaNs: by item
  EXPECT_FALSE(ranks_before(0.f, 3, -0.f, 3));   // irreflexive
}

TEST(PositionsFromBeats, ByHand) {
  // Counts of negatives above each positive, in any order; positions ascending.
  EXPECT_EQ(from_beats({3, 0, 3}), (std::vector<int64_t>{0, 4, 5}));
  EXPECT_EQ(from_beats({2}), (std::vector<int64_t>{2}));
  EXPECT_EQ(from_beats({}), (std::vector<int64_t>{}));
  // the tie example of test_evaluate.cpp: pos {0.5, 0.5, 0.9}, neg {0.5, 0.7, 0.1}
  EXPECT_EQ(from_beats({2, 2, 0}), (std::vector<int64_t>{0, 3, 4}));
}

TEST(CountBeating, CpuHandWorked) {
  // Items 10..15 in one chunk. User 0: positives 11 (0.5) and 14 (0.3), item 10 excluded;
  // candidates 12 (0.7), 13 (0.4), 15 (NaN): above 0.5 are 0.7 and NaN, above 0.3 all three.
  // User 1: positive 12 scored NaN, 13 and 15 excluded: the three candidates 10, 11, 14 all
  // rank above it.
  const float scores[] = {9.0f, 0.5f, 0.7f, 0.4f, 0.3f, kNaN,   // user 0
                          1.0f, 2.0f, kNaN, 0.0f, 5.0f, 0.0f};  // user 1
  const int64_t pos_offsets[] = {0, 2, 3};
  const int32_t positives[] = {11, 14, 12};
  const float pos_score[] = {0.5f, 0.3f, kNaN};
  const int64_t excl_offsets[] = {0, 1, 3};
  const int32_t excl_items[] = {10, 13, 15};
  int64_t beat[] = {100, 200, 300};  // the counts are added
  count_beating_cpu(2, 10, 6, scores, pos_offsets, positives, pos_score, excl_offsets,
                    excl_items, beat);
  EXPECT_EQ(beat[0], 102);
  EXPECT_EQ(beat[1], 203);
  EXPECT_EQ(beat[2], 303);
  // nu = 0 or n = 0 adds nothing
  count_beating_cpu(0, 10, 6, scores, pos_offsets, positives, pos_score, excl_offsets,
                    excl_items, beat);
  count_beating_cpu(2, 10, 0, scores, pos_offsets, positives, pos_score, excl_offsets,
                    excl_items, beat);
  EXPECT_EQ(beat[0], 102);
  EXPECT_EQ(beat[2], 303);
}

TEST(CountBeating, CpuMatchesPositivePositions) {
  Rng rng(2024, 1);
  for (int trial = 0; trial < 60; ++trial) {
    const int32_t N = 1 + int32_t(rng.index(300));
    const int64_t nu = 1 + int64_t(rng.index(6));
    // Per user: positives (0 .. 40, so some users cross the kernel's 32-positive tiles),
    // excluded items disjoint from them, and a score row over all N items.
    std::vector<int64_t> pos_offsets = {0}, excl_offsets = {0};
    std::vector<int32_t> positives, excl;
    std::vector<float> table(size_t(nu) * size_t(N)), pos_score;
    for (int64_t u = 0; u < nu; ++u) {
      const std::vector<int32_t> p = distinct_items(rng, N, rng.index(41), {});
      const std::vector<int32_t> x = distinct_items(rng, N, rng.index(uint32_t(N) + 1) / 2, p);
      positives.insert(positives.end(), p.begin(), p.end());
      excl.insert(excl.end(), x.begin(), x.end());
      pos_offsets.push_back(int64_t(positives.size()));
      excl_offsets.push_back(int64_t(excl.size()));
      for (int32_t i = 0; i < N; ++i) table[size_t(u) * size_t(N) + size_t(i)] = tied_score(rng);
      for (int32_t it : p) pos_score.push_back(table[size_t(u) * size_t(N) + size_t(it)]);
    }
    // Chunks of random sizes, each with its own (nu, n) score block.
    std::vector<int64_t> beat(positives.size(), 0);
    std::vector<float> chunk;
    for (int32_t lo = 0; lo < N;) {
      const int32_t n = std::min<int32_t>(N - lo, 1 + int32_t(rng.index(uint32_t(N))));
      chunk.assign(size_t(nu) * size_t(n), 0.f);
      for (int64_t u = 0; u < nu; ++u)
        std::copy_n(table.begin() + u * N + lo, n, chunk.begin() + u * n);
      count_beating_cpu(nu, lo, n, chunk.data(), pos_offsets.data(), positives.data(),
                        pos_score.data(), excl_offsets.data(), excl.data(), beat.data());
      lo += n;
    }
    for (int64_t u = 0; u < nu; ++u) {
      const int64_t pb = pos_offsets[size_t(u)], m = pos_offsets[size_t(u) + 1] - pb;
      std::vector<float> neg;
      for (int32_t i = 0; i < N; ++i) {
        if (std::binary_search(excl.begin() + excl_offsets[size_t(u)], excl.begin() + excl_offsets[size_t(u) + 1], i) ||
            std::binary_search(positives.begin() + pb, positives.begin() + pb + m, i))
          continue;
        neg.push_back(table[size_t(u) * size_t(N) + size_t(i)]);
      }
      std::vector<int64_t> want(static_cast<size_t>(m)), got(static_cast<size_t>(m));
      positive_positions(pos_score.data() + pb, m, neg.data(), int64_t(neg.size()), want.data());
      positions_from_beats(beat.data() + pb, m, got.data());
      EXPECT_EQ(got, want) << "trial " << trial << " user " << u << " N " << N << " m " << m;
    }
  }
}

TEST(TopKMerge, CpuChunksMatchTopK) {
  Rng rng(77, 2);
  for (int trial = 0; trial < 30; ++trial) {
    const int32_t N = 1 + int32_t(rng.index(400)), U = 1 + int32_t(rng.index(5));
    const int32_t k = 1 + int32_t(rng.index(trial % 3 == 0 ? uint32_t(N) + 10 : 20));
    std::vector<float> table(size_t(U) * size_t(N));
    for (float& v : table) v = tied_score(rng);
    std::vector<std::vector<int32_t>> rows(static_cast<size_t>(U));
    Csr ex;
    ex.offsets = {0};
    for (int32_t u = 0; u < U; ++u) {
      rows[size_t(u)] = distinct_items(rng, N, rng.index(uint32_t(N) + 1) * (u % 2), {});
      ex.items.insert(ex.items.end(), rows[size_t(u)].begin(), rows[size_t(u)].end());
      ex.offsets.push_back(int64_t(ex.items.size()));
    }
    std::vector<int32_t> users(static_cast<size_t>(U));
    for (int32_t u = 0; u < U; ++u) users[size_t(u)] = u;
    TableScorer scorer(N, table);
    const auto want = top_k(scorer, users, {&ex}, k);

    std::vector<int32_t> li(size_t(U) * size_t(k), -1), cnt(size_t(U), 0);
    std::vector<float> ls(size_t(U) * size_t(k), kNaN), chunk;
    for (int32_t lo = 0; lo < N;) {
      const int32_t n = std::min<int32_t>(N - lo, 1 + int32_t(rng.index(uint32_t(N))));
      chunk.assign(size_t(U) * size_t(n), 0.f);
      for (int32_t u = 0; u < U; ++u)
        std::copy_n(table.begin() + int64_t(u) * N + lo, n, chunk.begin() + int64_t(u) * n);
      top_k_merge_cpu(U, lo, n, k, chunk.data(), ex.offsets.data(), ex.items.data(), li.data(),
                      ls.data(), cnt.data());
      lo += n;
    }
    for (int32_t u = 0; u < U; ++u) {
      ASSERT_EQ(size_t(cnt[size_t(u)]), want[size_t(u)].size()) << "trial " << trial;
      for (int32_t j = 0; j < cnt[size_t(u)]; ++j) {
        const size_t at = size_t(u) * size_t(k) + size_t(j);
        EXPECT_EQ(li[at], want[size_t(u)][size_t(j)].first) << "trial " << trial << " user " << u;
        const float a = ls[at], b = want[size_t(u)][size_t(j)].second;
        EXPECT_TRUE(a == b || (std::isnan(a) && std::isnan(b)));
      }
    }
  }
}
