// test_sampling.cpp: the training sampler's CPU twin and its pieces (include/convncf/sampling.hpp,
// kernels/sampling_cpu.cpp): the weighted search against its plain definition, the popularity
// tables, the distributions drawn, RecBole's batch layout for N negatives per positive, the
// dynamic candidates, the schedule's positives per batch, and the engine's use of all of them.
//   build/tests/convncf_tests --gtest_filter='NegSampling*'
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "convncf/dataset.hpp"
#include "convncf/engine.hpp"
#include "convncf/errors.hpp"
#include "convncf/head.hpp"
#include "convncf/model.hpp"
#include "convncf/rng.hpp"
#include "convncf/sampling.hpp"
#include "convncf/schedule.hpp"

namespace {

using namespace convncf;

// One sorted CSR row per user; each user interacts with a random share of the items.
Csr random_csr(Rng& rng, int32_t n_users, int32_t n_items, double max_share) {
  Csr c;
  c.offsets.push_back(0);
  for (int32_t u = 0; u < n_users; ++u) {
    const double share = rng.uniform() * max_share;
    for (int32_t i = 0; i < n_items; ++i)
      if (rng.uniform() < share) c.items.push_back(i);
    c.offsets.push_back(int64_t(c.items.size()));
  }
  return c;
}

// A random training CSR, its positives (user, item) in CSR order and a shuffled epoch order of them.
struct Positives {
  Csr train;
  std::vector<int32_t> user, item;
  std::vector<int64_t> order;
};
Positives random_positives(Rng& rng, int32_t n_users, int32_t n_items) {
  Positives p;
  p.train = random_csr(rng, n_users, n_items, 0.8);
  for (int32_t u = 0; u < n_users; ++u)
    for (int64_t k = p.train.offsets[size_t(u)]; k < p.train.offsets[size_t(u) + 1]; ++k)
      p.user.push_back(u), p.item.push_back(p.train.items[size_t(k)]);
  p.order.resize(p.user.size());
  std::iota(p.order.begin(), p.order.end(), 0);
  for (int64_t t = int64_t(p.order.size()) - 1; t > 0; --t)
    std::swap(p.order[size_t(t)], p.order[rng.index(uint32_t(t + 1))]);
  return p;
}

// The plain definition: walk the absent items in order, adding their weights, until past r.
int32_t walk_absent(const std::vector<uint64_t>& w, const int32_t* row, int64_t deg, uint64_t r) {
  uint64_t acc = 0;
  for (int32_t i = 0; i < int32_t(w.size()); ++i) {
    if (std::binary_search(row, row + deg, i)) continue;
    acc += w[size_t(i)];
    if (acc > r) return i;
  }
  return -1;
}

// A split built from explicit (user, item, role) rows.
Split split_of(int32_t n_users, int32_t n_items, const std::vector<std::array<int32_t, 3>>& rows) {
  Interactions in;
  for (int32_t u = 0; u < n_users; ++u) in.users.get_or_add(std::to_string(u));
  for (int32_t i = 0; i < n_items; ++i) in.items.get_or_add(std::to_string(i));
  std::vector<uint8_t> role;
  for (const auto& r : rows) {
    in.user.push_back(r[0]);
    in.item.push_back(r[1]);
    in.time.push_back(double(in.time.size()));
    role.push_back(uint8_t(r[2]));
  }
  return split_from_roles(in, role);
}

TEST(NegSampling, WeightedSearchMatchesPlainDefinition) {
  Rng rng(41, kStreamSynthetic);
  int64_t checked = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const int32_t n_items = 1 + int32_t(rng.index(30));
    std::vector<int64_t> counts(static_cast<size_t>(n_items));
    for (int64_t& c : counts) c = rng.uniform() < 0.3 ? 0 : 1 + int64_t(rng.index(9));  // zero weights too
    const Csr train = random_csr(rng, 1, n_items, 1.0);
    const PopularityTable t = make_popularity_table(train, counts, 1.0);
    std::vector<uint64_t> w(counts.begin(), counts.end());
    const int64_t deg = train.degree(0);
    const uint64_t absent = t.absent(train, 0);
    uint64_t want_absent = 0;
    for (int32_t i = 0; i < n_items; ++i)
      if (!std::binary_search(train.row(0), train.row(0) + deg, i)) want_absent += w[size_t(i)];
    ASSERT_EQ(absent, want_absent);
    for (uint64_t r = 0; r < absent; ++r, ++checked) {
      const int32_t got = nth_absent_weighted(t.cdf.data(), n_items, train.row(0), t.row_cum.data(), deg, r);
      ASSERT_EQ(got, walk_absent(w, train.row(0), deg, r)) << "trial " << trial << " r " << r;
      ASSERT_GT(w[size_t(got)], 0u);
    }
  }
  EXPECT_GT(checked, 3000);
}

TEST(NegSampling, PopularityTableByHand) {
  // items 0..4 with counts 3, 0, 1, 5, 2; user 0 has items 0 and 3, user 1 none
  Csr train;
  train.offsets = {0, 2, 2};
  train.items = {0, 3};
  const PopularityTable t = make_popularity_table(train, {3, 0, 1, 5, 2}, 1.0);
  EXPECT_EQ(t.cdf, (std::vector<uint64_t>{0, 3, 3, 4, 9, 11}));
  EXPECT_EQ(t.row_cum, (std::vector<uint64_t>{3, 8}));
  EXPECT_EQ(t.absent(train, 0), 3u);   // items 2 and 4
  EXPECT_EQ(t.absent(train, 1), 11u);
  // alpha 0: every item that occurs weighs the same (2^20 in fixed point), unseen ones nothing
  const PopularityTable z = make_popularity_table(train, {3, 0, 1, 5, 2}, 0.0);
  const uint64_t one = uint64_t(1) << kWeightShift;
  EXPECT_EQ(z.cdf, (std::vector<uint64_t>{0, one, one, 2 * one, 3 * one, 4 * one}));
  // alpha 0.5: rounded fixed point of sqrt(count)
  const PopularityTable h = make_popularity_table(train, {4, 0, 1, 9, 2}, 0.5);
  EXPECT_EQ(h.cdf[1], 2 * one);
  EXPECT_EQ(h.cdf[4] - h.cdf[3], 3 * one);
  EXPECT_EQ(h.cdf[5] - h.cdf[4], uint64_t(std::llround(std::sqrt(2.0) * double(one))));
  EXPECT_THROW(make_popularity_table(train, {std::numeric_limits<int32_t>::max(), 0, 1, 1, 1}, 3.0), Error);
}

TEST(NegSampling, PopularityDrawsFollowTheWeights) {
  // items weigh 1, 2, 0, 4, 8, 5 (counts); the user has item 3: the absent weight is 16
  Csr train;
  train.offsets = {0, 1};
  train.items = {3};
  const std::vector<int64_t> counts = {1, 2, 0, 4, 8, 5};
  const PopularityTable t = make_popularity_table(train, counts, 1.0);
  std::vector<int64_t> hits(counts.size(), 0);
  const int64_t draws = 160000;
  for (int64_t k = 0; k < draws; ++k)
    ++hits[size_t(draw_negative(negative_bits(7, 1, k, 0), train.row(0), 1, 6, t.cdf.data(), t.row_cum.data()))];
  EXPECT_EQ(hits[2], 0);  // never seen
  EXPECT_EQ(hits[3], 0);  // the user's own
  const double want[6] = {1 / 16.0, 2 / 16.0, 0, 0, 8 / 16.0, 5 / 16.0};
  for (size_t i = 0; i < counts.size(); ++i) {
    const double p = want[i], sd = std::sqrt(p * (1 - p) / double(draws));
    EXPECT_NEAR(double(hits[i]) / double(draws), p, 5 * sd + 1e-12) << "item " << i;
  }
}

TEST(NegSampling, NegativeTableCountsEverySplitPart) {
  // RecBole's sampler counts train, valid and test: items 2 and 4 occur only in test and valid
  const Split s = split_of(2, 5, {{0, 0, kRoleTrain}, {0, 1, kRoleTrain}, {1, 1, kRoleTrain}, {1, 4, kRoleValid},
                                  {1, 2, kRoleTest}});
  NegativeSpec spec;
  EXPECT_TRUE(negative_table(s, spec).cdf.empty());  // uniform needs no table
  spec.distribution = NegDistribution::Popularity;
  const PopularityTable t = negative_table(s, spec);
  // counts over all parts: 1, 2, 1, 0, 1
  EXPECT_EQ(t.cdf, (std::vector<uint64_t>{0, 1, 3, 4, 4, 5}));
  // user 0 (items 0 and 1 in training) draws items 2 and 4, never 3, which never occurs
  EXPECT_TRUE(has_negative(s.train, s.n_items, 0, &t));
  std::vector<int64_t> hits(5, 0);
  for (int64_t k = 0; k < 400; ++k)
    ++hits[size_t(draw_negative(negative_bits(3, 1, k, 0), s.train.row(0), s.train.degree(0), s.n_items,
                                t.cdf.data(), t.row_cum.data() + s.train.offsets[0]))];
  EXPECT_EQ(hits[0] + hits[1] + hits[3], 0);
  EXPECT_GT(hits[2], 100);
  EXPECT_GT(hits[4], 100);
  // a user whose training items hold all the weight has no negative under popularity
  const Split full = split_of(1, 3, {{0, 0, kRoleTrain}, {0, 1, kRoleTrain}});
  const PopularityTable f = negative_table(full, spec);
  EXPECT_FALSE(has_negative(full.train, full.n_items, 0, &f));
  EXPECT_TRUE(has_negative(full.train, full.n_items, 0, nullptr));  // uniform: item 2 is there
  ScheduleOptions o;
  o.negatives = spec;
  EXPECT_EQ(Schedule(o, full).positives(), 0);
  EXPECT_EQ(Schedule(o, full).skipped(), 2);
  o.negatives = NegativeSpec{};
  EXPECT_EQ(Schedule(o, full).positives(), 2);
}

// The twin against its definition: RecBole's layout (the batch N times, copy k with the k-th
// negatives), N = 1 uniform equal to the sampler every earlier version had, padding zeroed.
TEST(NegSampling, GatherBatchLayoutAndDraws) {
  Rng rng(5, kStreamSynthetic);
  const int32_t n_users = 30, n_items = 50;
  const Positives ps = random_positives(rng, n_users, n_items);
  const Csr& train = ps.train;
  const std::vector<int32_t>& tu = ps.user;
  const std::vector<int32_t>& ti = ps.item;
  const std::vector<int64_t>& order = ps.order;
  std::vector<int64_t> counts(static_cast<size_t>(n_items));
  for (int64_t& c : counts) c = int64_t(rng.index(6));
  const PopularityTable pop = make_popularity_table(train, counts, 1.0);
  const int64_t lo = 7, n = 40;
  const int epoch = 3;
  const uint64_t seed = 99;
  for (const bool popular : {false, true}) {
    const uint64_t* cdf = popular ? pop.cdf.data() : nullptr;
    const uint64_t* row_cum = popular ? pop.row_cum.data() : nullptr;
    for (const int32_t N : {1, 2, 5}) {
      SCOPED_TRACE(std::string(popular ? "popularity" : "uniform") + " N " + std::to_string(N));
      const int64_t B_cap = n * N + 3;
      std::vector<int32_t> user(size_t(B_cap), -1), pos(size_t(B_cap), -1), neg(size_t(B_cap), -1);
      gather_batch_cpu(B_cap, n, N, lo, epoch, seed, order.data(), tu.data(), ti.data(), train.offsets.data(),
                       train.items.data(), n_items, cdf, row_cum, user.data(), pos.data(), neg.data());
      int64_t differ = 0;
      for (int32_t k = 0; k < N; ++k)
        for (int64_t j = 0; j < n; ++j) {
          const size_t s = size_t(k * n + j);
          const int64_t t = order[size_t(lo + j)];
          ASSERT_EQ(user[s], tu[size_t(t)]);
          ASSERT_EQ(pos[s], ti[size_t(t)]);
          const int32_t u = user[s];
          ASSERT_FALSE(std::binary_search(train.row(u), train.row(u) + train.degree(u), neg[s]));
          ASSERT_GE(neg[s], 0);
          ASSERT_LT(neg[s], n_items);
          if (popular) {
            ASSERT_GT(counts[size_t(neg[s])], 0);
          }
          const uint64_t bits = negative_bits(seed, epoch, lo + j, k);
          ASSERT_EQ(neg[s], draw_negative(bits, train.row(u), train.degree(u), n_items, cdf,
                                          popular ? row_cum + train.offsets[size_t(u)] : nullptr));
          if (k == 0 && !popular) {  // the earlier sampler's draw, bit for bit
            ASSERT_EQ(neg[s], sample_negative(train.row(u), train.degree(u), n_items,
                                              rng_hash(seed, kStreamNegative, (uint64_t(epoch) << 40) + uint64_t(lo + j))));
          }
          if (k > 0) differ += neg[s] != neg[size_t(j)];
        }
      if (N > 1) {
        EXPECT_GT(differ, 0);  // the copies draw afresh
      }
      for (int64_t s = n * N; s < B_cap; ++s) {
        EXPECT_EQ(user[size_t(s)], 0);
        EXPECT_EQ(pos[size_t(s)], 0);
        EXPECT_EQ(neg[size_t(s)], 0);
      }
    }
  }
}

// The CUDA engine's data-parallel step (gpu_engine.hpp): each rank samples its share of the step's
// positives as a step of its own; reassembled block by block (for_each_share_block) the shares are
// the step, and share_triple_in_step (dropout's masks) names the same triples.
TEST(NegSampling, RankSharesReassembleTheStep) {
  Rng rng(8, kStreamSynthetic);
  const int32_t n_users = 20, n_items = 40;
  const Positives ps = random_positives(rng, n_users, n_items);
  const int64_t lo = 5;
  DropoutArgs whole;
  whole.p = 0.5;
  whole.seed = 3;
  whole.step = 9;
  for (const int W : {1, 2, 3, 5})
    for (const int64_t n : {int64_t(1), int64_t(4), int64_t(11)})
      for (const int32_t N : {1, 3}) {
        SCOPED_TRACE("ranks " + std::to_string(W) + " positives " + std::to_string(n) + " N " + std::to_string(N));
        const int64_t B = n * N;
        std::vector<int32_t> user(static_cast<size_t>(B)), pos(user.size()), neg(user.size());
        gather_batch_cpu(B, n, N, lo, 2, 7, ps.order.data(), ps.user.data(), ps.item.data(),
                         ps.train.offsets.data(), ps.train.items.data(), n_items, nullptr, nullptr, user.data(),
                         pos.data(), neg.data());
        std::vector<int32_t> got(static_cast<size_t>(3 * B), -1);
        int64_t covered = 0;
        for (int r = 0; r < W; ++r) {
          const StepShare sh = step_share(n, W, r);
          EXPECT_EQ(sh.lo, covered);
          covered += sh.n;
          const int64_t b = sh.n * N;
          std::vector<int32_t> su(size_t(std::max<int64_t>(b, 1))), sp(su.size()), sn(su.size());
          gather_batch_cpu(b, sh.n, N, lo + sh.lo, 2, 7, ps.order.data(), ps.user.data(), ps.item.data(),
                           ps.train.offsets.data(), ps.train.items.data(), n_items, nullptr, nullptr, su.data(),
                           sp.data(), sn.data());
          for (int64_t t = 0; t < b; ++t) {
            const size_t g = size_t(share_triple_in_step(t, sh.n, sh.lo, n));
            ASSERT_LT(g, size_t(B));
            EXPECT_EQ(su[size_t(t)], user[g]);
            EXPECT_EQ(sn[size_t(t)], neg[g]);
            DropoutArgs part = whole;  // the share's dropout masks are the step's
            part.share_n = sh.n;
            part.share_lo = sh.lo;
            part.step_n = n;
            for (int side = 0; side < 2; ++side)
              for (int c = 0; c < 4; ++c)
                ASSERT_EQ(pair_mask(part, 2 * t + side, c), pair_mask(whole, 2 * int64_t(g) + side, c));
          }
          // three values per triple, as the rows' (user, pos, neg) are moved
          std::vector<int32_t> local(size_t(3 * b));
          for (int64_t t = 0; t < b; ++t) {
            local[size_t(3 * t)] = su[size_t(t)];
            local[size_t(3 * t + 1)] = sp[size_t(t)];
            local[size_t(3 * t + 2)] = sn[size_t(t)];
          }
          for_each_share_block(sh, n, N, 3, [&](int64_t to, int64_t from, int64_t count) {
            std::copy_n(local.begin() + from, count, got.begin() + to);
          });
        }
        EXPECT_EQ(covered, n);
        for (int64_t s = 0; s < B; ++s) {
          ASSERT_EQ(got[size_t(3 * s)], user[size_t(s)]) << "triple " << s;
          ASSERT_EQ(got[size_t(3 * s + 1)], pos[size_t(s)]) << "triple " << s;
          ASSERT_EQ(got[size_t(3 * s + 2)], neg[size_t(s)]) << "triple " << s;
        }
      }
}

TEST(NegSampling, ArgumentChecks) {
  int32_t x[6] = {0, 0, 0, 0, 0, 0};
  const int64_t o[2] = {0, 0};
  const uint64_t w[2] = {0, 1};
  auto call = [&](int64_t B_cap, int64_t n, int32_t N, int64_t lo, int32_t n_items, const uint64_t* cdf,
                  const uint64_t* cum) {
    check_gather_batch_args(B_cap, n, N, lo, &o[0], &x[0], &x[1], &o[1], n_items, cdf, cum, &x[3], &x[4], &x[5]);
  };
  EXPECT_NO_THROW(call(4, 2, 2, 0, 10, nullptr, nullptr));
  EXPECT_NO_THROW(call(4, 2, 2, 0, 10, w, w));
  EXPECT_THROW(call(4, 3, 2, 0, 10, nullptr, nullptr), Error);  // n * N > B_cap
  EXPECT_THROW(call(4, 5, 1, 0, 10, nullptr, nullptr), Error);
  EXPECT_THROW(call(4, -1, 1, 0, 10, nullptr, nullptr), Error);
  EXPECT_THROW(call(4, 2, 0, 0, 10, nullptr, nullptr), Error);
  EXPECT_THROW(call(4, 2, 1, -1, 10, nullptr, nullptr), Error);
  EXPECT_THROW(call(4, 2, 1, 0, 0, nullptr, nullptr), Error);
  EXPECT_THROW(call(4, 2, 1, 0, 10, w, nullptr), Error);  // tables come in pairs
  EXPECT_NO_THROW(call(0, 0, 1, 0, 10, nullptr, nullptr));
}

TEST(NegSampling, DynamicCandidatesAndPick) {
  Rng rng(8, kStreamSynthetic);
  const Csr train = random_csr(rng, 5, 40, 0.5);
  const std::vector<int32_t> user = {0, 1, 2, 3, 4, 0, 1, 2, 3, 4};  // n = 5, N = 2
  const int32_t C = 4;
  std::vector<int32_t> cand(user.size() * C);
  draw_candidates_cpu(5, 2, C, 11, 2, 21, user.data(), train.offsets.data(), train.items.data(), 40, nullptr, nullptr,
                      cand.data());
  for (int64_t s = 0; s < 10; ++s)
    for (int32_t c = 0; c < C; ++c) {
      const int64_t k = s / 5, j = s % 5;
      const int32_t u = user[size_t(s)];
      // candidate c of negative k is draw number c * N + k of positive j (RecBole's order)
      EXPECT_EQ(cand[size_t(s * C + c)], draw_negative(negative_bits(21, 2, 11 + j, c * 2 + k), train.row(u),
                                                       train.degree(u), 40, nullptr, nullptr));
    }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float a[] = {1, 3, 3, 2};
  EXPECT_EQ(best_candidate(a, 4), 1);  // the first of the ties
  const float b[] = {nan, 0, nan, 5};
  EXPECT_EQ(best_candidate(b, 4), 3);  // a NaN never wins
  const float c[] = {nan, nan};
  EXPECT_EQ(best_candidate(c, 2), 0);
  EXPECT_EQ(best_candidate(a, 1), 0);
}

TEST(NegSampling, SchedulePositivesPerBatch) {
  EXPECT_EQ(positives_per_batch(2048, 1), 2048);
  EXPECT_EQ(positives_per_batch(2048, 5), 409);  // RecBole: 2048 // 5, batches of 2045 triples
  EXPECT_EQ(positives_per_batch(3, 5), 1);
  Rng rng(9, kStreamSynthetic);
  std::vector<std::array<int32_t, 3>> rows;
  for (int32_t u = 0; u < 20; ++u)
    for (int32_t i = 0; i < 30; ++i)
      if (rng.uniform() < 0.4) rows.push_back({u, i, kRoleTrain});
  const Split s = split_of(20, 30, rows);
  ScheduleOptions o;
  o.batch_size = 100;
  o.negatives.sample_num = 3;
  const Schedule sch(o, s);
  EXPECT_EQ(sch.batch_size(), 33);
  EXPECT_EQ(sch.negatives(), 3);
  EXPECT_EQ(sch.batches(), (sch.positives() + 32) / 33);
  EXPECT_EQ(sch.batch_n(sch.batches() - 1), sch.positives() - 33 * (sch.batches() - 1));
  o.drop_last = true;
  EXPECT_EQ(Schedule(o, s).batches(), sch.positives() / 33);
}

// The engine trains on the twin's n · N triples, and dynamic picks the best-scoring candidate:
// MF-BPR with E = 1, every user 1 and item i's embedding i / 64, so a pair scores i / 64 and the
// best candidate is the largest item id.
TEST(NegSampling, CpuEngineTrainsOnNTriplesPerPositiveAndPicksDynamically) {
  Rng rng(10, kStreamSynthetic);
  std::vector<std::array<int32_t, 3>> rows;
  for (int32_t u = 0; u < 12; ++u)
    for (int32_t i = 0; i < 64; ++i)
      if (rng.uniform() < 0.3) rows.push_back({u, i, kRoleTrain});
  const Split s = split_of(12, 64, rows);
  std::vector<int64_t> order(s.train_user.size());
  std::iota(order.begin(), order.end(), 0);
  Params<float> p;
  p.model = ModelKind::BPR;
  p.E = 1;
  p.n_users = 12;
  p.n_items = 64;
  p.P.assign(12, 1.0f);
  for (int32_t i = 0; i < 64; ++i) p.Q.push_back(float(i) / 64.0f);
  const auto softplus = [](double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); };
  const int64_t lo = 3, n = 10;
  for (const bool dynamic : {false, true}) {
    SCOPED_TRACE(dynamic ? "dynamic" : "static");
    EngineOptions o;
    o.model = ModelKind::BPR;
    o.E = 1;
    o.device = Device::Cpu;
    o.threads = 2;
    o.seed = 17;
    o.negatives.sample_num = 3;
    o.negatives.dynamic = dynamic;
    o.negatives.candidate_num = dynamic ? 4 : 1;
    OptimizerSpec sgd;
    sgd.learner = Learner::SGD;
    sgd.lr = 0.0;  // nothing moves: the loss is the triples' alone
    o.phases[0] = {sgd, sgd};
    o.phases[1] = {sgd, sgd};
    const std::unique_ptr<Engine> e = make_cpu_engine(o, s);
    e->set_params(p);
    e->begin_epoch(2, order);
    StepSpec spec;
    spec.reg = RegSpec{RegType::Norm, {0.0, 0.0}, false};
    const StepResult r = e->step(lo, n, spec);
    const int64_t nt = n * 3;
    std::vector<int32_t> user(static_cast<size_t>(nt)), pos(static_cast<size_t>(nt)), neg(static_cast<size_t>(nt));
    gather_batch_cpu(nt, n, 3, lo, 2, 17, order.data(), s.train_user.data(), s.train_item.data(),
                     s.train.offsets.data(), s.train.items.data(), s.n_items, nullptr, nullptr, user.data(), pos.data(),
                     neg.data());
    if (dynamic) {
      std::vector<int32_t> cand(size_t(nt * 4));
      draw_candidates_cpu(n, 3, 4, lo, 2, 17, user.data(), s.train.offsets.data(), s.train.items.data(), s.n_items,
                          nullptr, nullptr, cand.data());
      for (int64_t t = 0; t < nt; ++t) neg[size_t(t)] = *std::max_element(&cand[size_t(t * 4)], &cand[size_t(t * 4 + 4)]);
    }
    double want = 0;
    for (int64_t t = 0; t < nt; ++t) want += softplus(-(double(pos[size_t(t)]) - double(neg[size_t(t)])) / 64.0);
    EXPECT_NEAR(r.loss.bpr, want, 1e-4 * want);
  }
}

}  // namespace
