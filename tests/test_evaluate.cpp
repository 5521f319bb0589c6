// test_evaluate.cpp: the evaluation protocols and metrics (host/evaluate.cpp).
// - every metric worked out by hand: one positive, three positives (IDCG truncated at K), ties
//   between a positive and negatives and among positives, K beyond the candidate list, NaN
//   scores, the paper's AUC 1 - p/(n+1);
// - make_eval_set: sampled negatives distinct, never the user's items, deterministic for a
//   seed, different for another stream, independent of the thread count; pop never draws a
//   zero-count item and leans to popular ones; file lines pass through; full-mode exclusions;
// - evaluate(): a popularity model by hand under full and file modes; full mode equals the same
//   queries listed explicitly; 1 and 2 threads give identical metrics;
// - scorers: BPR score_all against naive dot products at odd sizes, ConvNCF score_all against
//   score_items; top_k with exclusions, ties and NaN.
// Splits are built by hand here (split_of), independent of the splitters in dataset.cpp.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <set>

#include "convncf/errors.hpp"
#include "convncf/evaluate.hpp"
#include "convncf/rng.hpp"
#include "rank_test_util.hpp"

using namespace convncf;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();
using test::csr_of;

// A split from per-user item lists (train, valid, test); `all` and the counts follow.
Split split_of(int32_t n_items, const std::vector<std::vector<int32_t>>& train,
               const std::vector<std::vector<int32_t>>& valid,
               const std::vector<std::vector<int32_t>>& test) {
  Split s;
  s.n_users = int32_t(train.size());
  s.n_items = n_items;
  s.train = csr_of(train);
  s.valid = csr_of(valid);
  s.test = csr_of(test);
  std::vector<std::vector<int32_t>> all(train.size());
  s.item_train_count.assign(size_t(n_items), 0);
  for (size_t u = 0; u < train.size(); ++u) {
    for (int32_t i : train[u]) {
      s.train_user.push_back(int32_t(u));
      s.train_item.push_back(i);
      ++s.item_train_count[size_t(i)];
    }
    all[u] = train[u];
    all[u].insert(all[u].end(), valid[u].begin(), valid[u].end());
    all[u].insert(all[u].end(), test[u].begin(), test[u].end());
  }
  s.all = csr_of(all);
  s.method = "by hand";
  return s;
}

// Random users with `deg` distinct items each: one valid, `n_test` test, the rest train.
Split random_split(uint64_t seed, int32_t n_users, int32_t n_items, int deg, int n_test) {
  Rng rng(seed, 99);
  std::vector<std::vector<int32_t>> tr(static_cast<size_t>(n_users)), va(static_cast<size_t>(n_users)), te(static_cast<size_t>(n_users));
  std::vector<int32_t> perm(static_cast<size_t>(n_items));
  for (int32_t u = 0; u < n_users; ++u) {
    for (int32_t i = 0; i < n_items; ++i) perm[size_t(i)] = i;
    for (int k = 0; k < deg; ++k) std::swap(perm[size_t(k)], perm[size_t(k) + rng.index(uint32_t(n_items - k))]);
    va[size_t(u)] = {perm[0]};
    te[size_t(u)].assign(perm.begin() + 1, perm.begin() + 1 + n_test);
    tr[size_t(u)].assign(perm.begin() + 1 + n_test, perm.begin() + deg);
  }
  return split_of(n_items, tr, va, te);
}

Metrics metrics_of(const std::vector<std::vector<int64_t>>& positions,
                   const std::vector<int64_t>& n_negatives, const std::vector<int>& topk) {
  MetricSum s(topk);
  for (size_t q = 0; q < positions.size(); ++q)
    s.add(positions[q].data(), int64_t(positions[q].size()), n_negatives[q]);
  return s.mean();
}

std::vector<int64_t> positions_of(const std::vector<float>& pos, const std::vector<float>& neg) {
  std::vector<int64_t> out(pos.size(), -1);
  positive_positions(pos.data(), int64_t(pos.size()), neg.data(), int64_t(neg.size()), out.data());
  return out;
}

Params<float> pop_params(const std::vector<float>& counts, int32_t n_users) {
  Params<float> p;
  p.model = ModelKind::Pop;
  p.n_users = n_users;
  p.n_items = int32_t(counts.size());
  p.net = counts;
  return p;
}

Params<float> random_mf(ModelKind model, int32_t n_users, int32_t n_items, int E, uint64_t seed) {
  Params<float> p;
  p.model = model;
  p.E = E;
  p.n_users = n_users;
  p.n_items = n_items;
  Rng rng(seed, kStreamInit);
  p.P.resize(size_t(n_users) * E);
  p.Q.resize(size_t(n_items) * E);
  for (float& v : p.P) v = float(rng.normal());
  for (float& v : p.Q) v = float(rng.normal());
  return p;
}

// A small ConvNCF model: E = 16, tower 16 -> 8 -> 2 -> 1, PyTorch-style uniform weights.
struct SmallConv {
  TowerSpec tower = TowerSpec::make(16, {1, 4, 6, 5}, {2, 4, 2}, {2, 4, 2});
  Params<float> params;
  SmallConv(int32_t n_users, int32_t n_items, uint64_t seed) {
    params = random_mf(ModelKind::ConvNCF, n_users, n_items, 16, seed);
    Rng rng(seed, kStreamInit + 100);
    params.net.resize(size_t(tower.n_params));
    for (float& v : params.net) v = float(0.5 * (2 * rng.uniform() - 1));
  }
};

void expect_same_metrics(const Metrics& a, const Metrics& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_EQ(a[i].second, b[i].second) << a[i].first;
  }
}

void expect_usage_error(const std::function<void()>& f) {
  try {
    f();
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitUsage) << e.what();
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Positions and metrics by hand

TEST(EvalPositions, TiesWithNegativesCountAgainstThePositive) {
  EXPECT_EQ(positions_of({0.5f}, {0.5f, 0.4f, 0.6f, 0.5f}), (std::vector<int64_t>{3}));
  EXPECT_EQ(positions_of({0.7f}, {0.5f, 0.4f, 0.6f, 0.5f}), (std::vector<int64_t>{0}));
  EXPECT_EQ(positions_of({0.1f}, {0.5f, 0.4f, 0.6f, 0.5f}), (std::vector<int64_t>{4}));
  EXPECT_EQ(positions_of({0.1f}, {}), (std::vector<int64_t>{0}));
}

TEST(EvalPositions, TiesAmongPositives) {
  // 0.9+ | 0.7- | 0.5- (tie goes first) | 0.5+ 0.5+ | 0.1-  -> positives at 0, 3, 4
  EXPECT_EQ(positions_of({0.5f, 0.5f, 0.9f}, {0.5f, 0.7f, 0.1f}), (std::vector<int64_t>{0, 3, 4}));
  // all tied: the three negatives first
  EXPECT_EQ(positions_of({1.f, 1.f}, {1.f, 1.f, 1.f}), (std::vector<int64_t>{3, 4}));
}

TEST(EvalPositions, NaNScores) {
  // A NaN negative ranks above every positive; a NaN positive ranks last.
  EXPECT_EQ(positions_of({0.5f}, {kNaN, 0.1f}), (std::vector<int64_t>{1}));
  EXPECT_EQ(positions_of({kNaN}, {0.5f, 0.4f, 0.6f, 0.5f}), (std::vector<int64_t>{4}));
  // 0.3+: NaN- and 0.5- above -> 2; NaN+ after everything -> 4
  EXPECT_EQ(positions_of({kNaN, 0.3f}, {kNaN, 0.2f, 0.5f}), (std::vector<int64_t>{2, 4}));
}

TEST(EvalMetrics, OnePositiveThreeQueries) {
  // Positions 0, 3 and 4 among 4 negatives; K = 10 exceeds the 5 candidates.
  const Metrics m = metrics_of({{0}, {3}, {4}}, {4, 4, 4}, {1, 5, 10});
  EXPECT_NEAR(metric_value(m, "hit@1"), 1.0 / 3, 1e-15);
  EXPECT_NEAR(metric_value(m, "recall@1"), 1.0 / 3, 1e-15);
  EXPECT_NEAR(metric_value(m, "ndcg@1"), 1.0 / 3, 1e-15);
  EXPECT_NEAR(metric_value(m, "mrr@1"), 1.0 / 3, 1e-15);
  EXPECT_NEAR(metric_value(m, "precision@1"), 1.0 / 3, 1e-15);
  EXPECT_NEAR(metric_value(m, "hit@5"), 1.0, 1e-15);
  EXPECT_NEAR(metric_value(m, "recall@5"), 1.0, 1e-15);
  EXPECT_NEAR(metric_value(m, "ndcg@5"), 0.6058431217693115, 1e-12);  // (1 + 1/log2 5 + 1/log2 6) / 3
  EXPECT_NEAR(metric_value(m, "mrr@5"), (1 + 0.25 + 0.2) / 3, 1e-15);
  EXPECT_NEAR(metric_value(m, "precision@5"), 0.2, 1e-15);
  EXPECT_NEAR(metric_value(m, "hit@10"), 1.0, 1e-15);
  EXPECT_NEAR(metric_value(m, "precision@10"), 0.1, 1e-15);
  EXPECT_NEAR(metric_value(m, "auc"), (1.0 + 0.4 + 0.2) / 3, 1e-15);  // 1 - p / 5
}

TEST(EvalMetrics, ThreePositivesIdcgTruncatedAtK) {
  // m = 3 positives at 1, 4, 7 among 10 candidates (7 negatives).
  const Metrics m = metrics_of({{1, 4, 7}}, {7}, {2, 5, 10});
  // K = 2: only p = 1 counts; IDCG = 1 + 1/log2 3 (min(m, K) = 2 terms)
  EXPECT_EQ(metric_value(m, "hit@2"), 1.0);
  EXPECT_NEAR(metric_value(m, "recall@2"), 1.0 / 3, 1e-15);
  EXPECT_NEAR(metric_value(m, "precision@2"), 0.5, 1e-15);
  EXPECT_NEAR(metric_value(m, "mrr@2"), 0.5, 1e-15);
  EXPECT_NEAR(metric_value(m, "ndcg@2"), 0.38685280723454163, 1e-12);
  // K = 5: p = 1, 4; DCG = 1/log2 3 + 1/log2 6, IDCG = 1 + 1/log2 3 + 1/log2 4
  EXPECT_NEAR(metric_value(m, "recall@5"), 2.0 / 3, 1e-15);
  EXPECT_NEAR(metric_value(m, "precision@5"), 0.4, 1e-15);
  EXPECT_NEAR(metric_value(m, "mrr@5"), 0.5, 1e-15);
  EXPECT_NEAR(metric_value(m, "ndcg@5"), 0.4776237035032179, 1e-12);
  // K = 10: all three; DCG adds 1/log2 9
  EXPECT_NEAR(metric_value(m, "recall@10"), 1.0, 1e-15);
  EXPECT_NEAR(metric_value(m, "precision@10"), 0.3, 1e-15);
  EXPECT_NEAR(metric_value(m, "ndcg@10"), 0.6256646589861505, 1e-12);
  // negatives above each: 1, 3, 5 -> mean 3; auc = 1 - 3 / 8
  EXPECT_NEAR(metric_value(m, "auc"), 0.625, 1e-15);
}

TEST(EvalMetrics, KBeyondTheCandidateList) {
  // 3 candidates, the positive last: K = 10 still divides precision by 10.
  const Metrics m = metrics_of({{2}}, {2}, {10});
  EXPECT_EQ(metric_value(m, "hit@10"), 1.0);
  EXPECT_NEAR(metric_value(m, "precision@10"), 0.1, 1e-15);
  EXPECT_NEAR(metric_value(m, "ndcg@10"), 0.5, 1e-15);  // 1/log2 4
  EXPECT_NEAR(metric_value(m, "mrr@10"), 1.0 / 3, 1e-15);
  EXPECT_NEAR(metric_value(m, "auc"), 1.0 / 3, 1e-15);
  // two positives, both inside K: ndcg is 1 when they lead, recall 1
  const Metrics two = metrics_of({{0, 1}}, {1}, {10});
  EXPECT_NEAR(metric_value(two, "ndcg@10"), 1.0, 1e-15);
  EXPECT_NEAR(metric_value(two, "precision@10"), 0.2, 1e-15);
  EXPECT_NEAR(metric_value(two, "auc"), 1.0, 1e-15);
}

TEST(EvalMetrics, PaperAucOnePositive) {
  for (int64_t p : {0, 9, 10, 500, 999}) {
    const Metrics m = metrics_of({{p}}, {999}, {10});
    EXPECT_NEAR(metric_value(m, "auc"), 1.0 - double(p) / 1000.0, 1e-15) << p;
    EXPECT_EQ(metric_value(m, "hit@10"), p < 10 ? 1.0 : 0.0);
    EXPECT_NEAR(metric_value(m, "ndcg@10"), p < 10 ? std::log(2.0) / std::log(double(p) + 2) : 0.0, 1e-15);
  }
}

TEST(EvalMetrics, NaNScoresThroughMetrics) {
  // The NaN positive is last among 3 negatives + 1 positive: position 4 of 5 candidates.
  const std::vector<int64_t> p = positions_of({kNaN, 0.3f}, {kNaN, 0.2f, 0.5f});
  const Metrics m = metrics_of({p}, {3}, {5});
  EXPECT_NEAR(metric_value(m, "recall@5"), 1.0, 1e-15);
  EXPECT_NEAR(metric_value(m, "mrr@5"), 1.0 / 3, 1e-15);
  EXPECT_NEAR(metric_value(m, "auc"), 1.0 - (2.0 + 3.0) / 2 / 4, 1e-15);
}

TEST(EvalMetrics, OrderMergeAndReporting) {
  const Metrics m = metrics_of({{0}}, {1}, {2, 5});
  const std::vector<std::string> names = {"hit@2", "recall@2", "precision@2", "ndcg@2", "mrr@2",
                                          "hit@5", "recall@5", "precision@5", "ndcg@5", "mrr@5", "auc"};
  ASSERT_EQ(m.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) EXPECT_EQ(m[i].first, names[i]);
  EXPECT_EQ(metrics_json(metrics_of({{0}}, {1}, {2})),
            "{\"hit@2\":1,\"recall@2\":1,\"precision@2\":0.5,\"ndcg@2\":1,\"mrr@2\":1,\"auc\":1}");
  EXPECT_EQ(metrics_brief(m, {"hit@2", "precision@5"}), "hit@2 1.0000  precision@5 0.2000");
  try {
    metric_value(m, "ndcg@20");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitUsage);
    EXPECT_NE(std::string(e.what()).find("ndcg@20"), std::string::npos);
  }
  // merge: two halves equal the whole
  MetricSum a({1, 3}), b({1, 3}), whole({1, 3});
  const int64_t p1[] = {0, 2}, p2[] = {4};
  a.add(p1, 2, 5);
  b.add(p2, 1, 9);
  whole.add(p1, 2, 5);
  whole.add(p2, 1, 9);
  a.merge(b);
  expect_same_metrics(a.mean(), whole.mean());
  // no queries: every metric named, all zero
  const Metrics empty = MetricSum({10}).mean();
  EXPECT_EQ(metric_value(empty, "ndcg@10"), 0.0);
}

// ---------------------------------------------------------------------------------------------
// Protocols

TEST(EvalMode, ParsesNames) {
  for (const char* ok : {"full", "file", "uni1", "uni99", "uni999", "pop100"}) EXPECT_NO_THROW(check_eval_mode(ok)) << ok;
  for (const char* bad : {"", "uni", "uni0", "pop-1", "uni99x", "unif", "Full", "pop 10", "popular100"})
    expect_usage_error([&] { check_eval_mode(bad); });
}

TEST(EvalSetTest, FullModeExclusions) {
  const Split s = split_of(6, {{0}, {1, 2}, {3}}, {{2}, {}, {4}}, {{3}, {0, 5}, {}});
  const EvalSet v = make_eval_set(s, false, "full", 1, kStreamEvalValid, nullptr);
  EXPECT_TRUE(v.full());
  EXPECT_EQ(v.user, (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(v.positives, (std::vector<int32_t>{2, 4}));
  EXPECT_EQ(v.pos_offsets, (std::vector<int64_t>{0, 1, 2}));
  ASSERT_EQ(v.exclude.size(), 1u);
  EXPECT_EQ(v.exclude[0], &s.train);
  const EvalSet t = make_eval_set(s, true, "full", 1, kStreamEvalTest, nullptr);
  EXPECT_EQ(t.user, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(t.positives, (std::vector<int32_t>{3, 0, 5}));
  EXPECT_EQ(t.pos_offsets, (std::vector<int64_t>{0, 1, 3}));
  ASSERT_EQ(t.exclude.size(), 2u);
  EXPECT_EQ(t.exclude[0], &s.train);
  EXPECT_EQ(t.exclude[1], &s.valid);
}

// A rank's share of the queries as a set of its own (the GPU evaluation's, evaluate.hpp): the
// queries' users, positives and negatives in order, offsets from 0, the same exclusions.
TEST(EvalSetTest, SliceOfQueries) {
  const Split s = split_of(8, {{0}, {1, 2}, {3}, {4}}, {{2}, {}, {4}, {5}}, {{3}, {0, 5}, {6}, {1, 7}});
  for (const char* mode : {"full", "uni3"}) {
    SCOPED_TRACE(mode);
    const EvalSet t = make_eval_set(s, true, mode, 1, kStreamEvalTest, nullptr);
    ASSERT_EQ(t.size(), 4);
    const EvalSet part = slice_queries(t, 1, 3);
    EXPECT_EQ(part.mode, t.mode);
    EXPECT_EQ(part.user, (std::vector<int32_t>{1, 2}));
    EXPECT_EQ(part.positives, (std::vector<int32_t>{0, 5, 6}));
    EXPECT_EQ(part.pos_offsets, (std::vector<int64_t>{0, 2, 3}));
    EXPECT_EQ(part.exclude, t.exclude);
    if (t.full()) {
      EXPECT_TRUE(part.neg_offsets.empty());
    } else {
      ASSERT_EQ(part.neg_offsets.size(), 3u);
      EXPECT_EQ(part.neg_offsets[0], 0);
      EXPECT_EQ(part.negatives, std::vector<int32_t>(t.negatives.begin() + t.neg_offsets[1],
                                                     t.negatives.begin() + t.neg_offsets[3]));
      EXPECT_EQ(part.neg_offsets[2], t.neg_offsets[3] - t.neg_offsets[1]);
    }
    EXPECT_EQ(slice_queries(t, 2, 2).size(), 0);
    EXPECT_EQ(slice_queries(t, 0, 4).positives, t.positives);
    EXPECT_THROW(slice_queries(t, 3, 5), Error);
    const QueryRange all = rank_queries(t);  // one process ranks every query
    EXPECT_EQ(all.lo, 0);
    EXPECT_EQ(all.hi, 4);
  }
}

TEST(EvalSetTest, UniformNegativesDistinctAndNeverTheUsersItems) {
  // 60 items; user degrees from 3 to 45, so both the rejection path (few needed) and the
  // Fisher-Yates path (more than half the free items) run, and some users are capped.
  std::vector<std::vector<int32_t>> tr, va, te;
  Rng rng(5, 1);
  for (int u = 0; u < 12; ++u) {
    std::vector<int32_t> perm(60);
    for (int i = 0; i < 60; ++i) perm[size_t(i)] = i;
    const int deg = 3 + 4 * u - (u == 11 ? 4 : 0);
    for (int k = 0; k < deg; ++k) std::swap(perm[size_t(k)], perm[size_t(k) + rng.index(uint32_t(60 - k))]);
    va.push_back({perm[0]});
    te.push_back({perm[1], perm[2]});
    tr.emplace_back(perm.begin() + 3, perm.begin() + deg);
  }
  const Split s = split_of(60, tr, va, te);
  for (const char* mode : {"uni5", "uni10", "uni40"}) {
    const int64_t N = std::stoll(std::string(mode).substr(3));
    const EvalSet e = make_eval_set(s, true, mode, 42, kStreamEvalTest, nullptr);
    ASSERT_EQ(e.size(), 12);
    ASSERT_EQ(int64_t(e.neg_offsets.size()), 13);
    for (int64_t q = 0; q < e.size(); ++q) {
      const int32_t u = e.user[size_t(q)];
      const int64_t free_items = 60 - s.all.degree(u);
      const int64_t n = e.neg_offsets[size_t(q) + 1] - e.neg_offsets[size_t(q)];
      EXPECT_EQ(n, std::min(2 * N, free_items)) << mode << " user " << u;
      std::set<int32_t> seen;
      for (int64_t j = e.neg_offsets[size_t(q)]; j < e.neg_offsets[size_t(q) + 1]; ++j) {
        const int32_t it = e.negatives[size_t(j)];
        ASSERT_GE(it, 0);
        ASSERT_LT(it, 60);
        EXPECT_FALSE(s.all.contains(u, it)) << mode << " user " << u << " item " << it;
        EXPECT_TRUE(seen.insert(it).second) << "repeated " << it;
      }
    }
    // Deterministic for a seed, different for another stream or seed.
    const EvalSet again = make_eval_set(s, true, mode, 42, kStreamEvalTest, nullptr);
    EXPECT_EQ(again.negatives, e.negatives);
    EXPECT_NE(make_eval_set(s, true, mode, 42, kStreamEvalValid, nullptr).negatives, e.negatives);
    EXPECT_NE(make_eval_set(s, true, mode, 43, kStreamEvalTest, nullptr).negatives, e.negatives);
  }
}

TEST(EvalSetTest, UniformDrawsCoverTheFreeItemsEvenly) {
  // 400 users with the same 10 items, 1 test item each, uni5: each of the 90 free items is
  // expected 400 * 5 / 90 = 22.2 times.
  std::vector<std::vector<int32_t>> tr(400, {0, 1, 2, 3, 4, 5, 6, 7, 8}), va(400), te(400, {9});
  const Split s = split_of(100, tr, va, te);
  const EvalSet e = make_eval_set(s, true, "uni5", 3, kStreamEvalTest, nullptr);
  std::vector<int> hits(100, 0);
  for (int32_t it : e.negatives) ++hits[size_t(it)];
  for (int i = 0; i < 10; ++i) EXPECT_EQ(hits[size_t(i)], 0);
  for (int i = 10; i < 100; ++i) {
    EXPECT_GT(hits[size_t(i)], 5) << i;
    EXPECT_LT(hits[size_t(i)], 45) << i;
  }
}

TEST(EvalSetTest, PopularNegativesFollowCountsAndSkipZeroCounts) {
  // Items 0..9 have training count 1, items 10..19 count 9, items 20..29 count 0.
  // Users 0..9 carry the training rows and hold nothing else; user 10.. are the evaluated ones.
  std::vector<std::vector<int32_t>> tr, va, te;
  for (int i = 0; i < 10; ++i) {  // 10 trainers: item i once, items 10..19 nine times overall
    std::vector<int32_t> row = {i};
    if (i < 9) for (int j = 10; j < 20; ++j) row.push_back(j);
    tr.push_back(row);
    va.push_back({});
    te.push_back({});
  }
  for (int u = 0; u < 500; ++u) {
    tr.push_back({});
    va.push_back({});
    te.push_back({20 + u % 10});
  }
  const Split s = split_of(30, tr, va, te);
  for (int i = 0; i < 30; ++i) ASSERT_EQ(s.item_train_count[size_t(i)], i < 10 ? 1 : i < 20 ? 9 : 0);
  const EvalSet e = make_eval_set(s, true, "pop1", 11, kStreamEvalTest, nullptr);
  ASSERT_EQ(e.size(), 500);
  int64_t heavy = 0;
  for (int32_t it : e.negatives) {
    EXPECT_LT(it, 20) << "zero-count item drawn";
    heavy += it >= 10;
  }
  ASSERT_EQ(e.negatives.size(), 500u);
  // P(heavy) = 90 / 100
  EXPECT_GT(heavy, 400);
  EXPECT_LT(heavy, 490);
  // Fewer eligible items than asked for: all 20 of them.
  const EvalSet all = make_eval_set(s, true, "pop50", 11, kStreamEvalTest, nullptr);
  for (int64_t q = 0; q < all.size(); ++q) {
    std::vector<int32_t> got(all.negatives.begin() + all.neg_offsets[size_t(q)],
                             all.negatives.begin() + all.neg_offsets[size_t(q) + 1]);
    std::sort(got.begin(), got.end());
    std::vector<int32_t> want(20);
    for (int i = 0; i < 20; ++i) want[size_t(i)] = i;
    ASSERT_EQ(got, want);
  }
}

TEST(EvalSetTest, PopularSamplingWhenTheUserHoldsThePopularMass) {
  // Item 0 holds almost all the popularity and belongs to the user: rejection from the CDF
  // stalls, and the exponential-key fallback must still give distinct eligible items.
  std::vector<std::vector<int32_t>> tr, va, te;
  for (int i = 0; i < 20000; ++i) {  // item 0 trained by 20000 users, items 1..29 by user 0
    tr.push_back({0});
    va.push_back({});
    te.push_back({});
  }
  for (int j = 1; j < 30; ++j) tr[0].push_back(j);
  tr.push_back({0, 1});
  va.push_back({});
  te.push_back({2});
  const Split s = split_of(40, tr, va, te);
  const EvalSet e = make_eval_set(s, true, "pop10", 1, kStreamEvalTest, nullptr);
  ASSERT_EQ(e.size(), 1);
  ASSERT_EQ(e.negatives.size(), 10u);
  std::set<int32_t> seen(e.negatives.begin(), e.negatives.end());
  EXPECT_EQ(seen.size(), 10u);
  for (int32_t it : e.negatives) {
    EXPECT_GE(it, 3);
    EXPECT_LT(it, 30);
  }
  EXPECT_EQ(make_eval_set(s, true, "pop10", 1, kStreamEvalTest, nullptr).negatives, e.negatives);
}

TEST(EvalSetTest, SampledSetsDoNotDependOnThreadsOrOtherUsers) {
  const Split s = random_split(8, 300, 200, 40, 2);
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  const EvalSet one = make_eval_set(s, true, "uni50", 9, kStreamEvalTest, nullptr);
  const EvalSet pone = make_eval_set(s, true, "pop20", 9, kStreamEvalTest, nullptr);
  omp_set_num_threads(2);
  const EvalSet two = make_eval_set(s, true, "uni50", 9, kStreamEvalTest, nullptr);
  const EvalSet ptwo = make_eval_set(s, true, "pop20", 9, kStreamEvalTest, nullptr);
  omp_set_num_threads(before);
  EXPECT_EQ(one.negatives, two.negatives);
  EXPECT_EQ(pone.negatives, ptwo.negatives);
  // A user's negatives do not depend on the other users: drop users 0..149's test items.
  Split half = s;
  std::vector<std::vector<int32_t>> te(300);
  for (int32_t u = 150; u < 300; ++u) te[size_t(u)].assign(s.test.row(u), s.test.row(u) + s.test.degree(u));
  half.test = csr_of(te);
  const EvalSet h = make_eval_set(half, true, "uni50", 9, kStreamEvalTest, nullptr);
  ASSERT_EQ(h.size(), 150);
  EXPECT_TRUE(std::equal(h.negatives.begin(), h.negatives.end(), one.negatives.begin() + one.neg_offsets[150]));
}

TEST(EvalSetTest, FileModePassesLinesThrough) {
  const Split s = split_of(6, {{0}, {1, 2}, {3}}, {{2}, {}, {4}}, {{3}, {0, 5}, {}});
  FileNegatives fn;
  fn.user = {1, 0, 1};
  fn.positive = {5, 3, 0};
  fn.offsets = {0, 2, 3, 5};
  fn.negatives = {4, 3, 1, 3, 4};
  const EvalSet e = make_eval_set(s, true, "file", 1, kStreamEvalTest, &fn);
  EXPECT_EQ(e.mode, "file");
  EXPECT_FALSE(e.full());
  EXPECT_EQ(e.user, fn.user);
  EXPECT_EQ(e.positives, fn.positive);
  EXPECT_EQ(e.pos_offsets, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(e.neg_offsets, fn.offsets);
  EXPECT_EQ(e.negatives, fn.negatives);
  // Validation falls back to full; the test set needs the file.
  EXPECT_TRUE(make_eval_set(s, false, "file", 1, kStreamEvalValid, &fn).full());
  EXPECT_TRUE(make_eval_set(s, false, "file", 1, kStreamEvalValid, nullptr).full());
  expect_usage_error([&] { make_eval_set(s, true, "file", 1, kStreamEvalTest, nullptr); });
  const FileNegatives none;
  expect_usage_error([&] { make_eval_set(s, true, "file", 1, kStreamEvalTest, &none); });
  expect_usage_error([&] { make_eval_set(s, true, "uni", 1, kStreamEvalTest, nullptr); });
}

// ---------------------------------------------------------------------------------------------
// evaluate()

TEST(EvalEvaluate, PopularityFullModeByHand) {
  // Counts 5 1 3 3 0 2.
  // Validation (exclude train): user 0 holds out 2 (3) against 1 3 4 5 -> tie with 3 -> p = 1;
  //   user 2 holds out 4 (0) against 0 1 2 5 -> p = 4.
  // Test (exclude train + valid): user 0 holds out 3 (3) against 1 4 5 -> p = 0;
  //   user 1 holds out 0 (5), 5 (2) against 3 (3), 4 (0) -> positions 0, 2.
  const Split s = split_of(6, {{0}, {1, 2}, {3}}, {{2}, {}, {4}}, {{3}, {0, 5}, {}});
  const Params<float> prm = pop_params({5, 1, 3, 3, 0, 2}, 3);
  CpuEngine<float> eng(ModelKind::Pop, nullptr, 3, 6, 0, 2);
  auto scorer = make_scorer(eng, prm);
  const Metrics v = evaluate(*scorer, make_eval_set(s, false, "full", 1, kStreamEvalValid, nullptr), {1, 3});
  EXPECT_EQ(metric_value(v, "hit@1"), 0.0);
  EXPECT_NEAR(metric_value(v, "hit@3"), 0.5, 1e-15);
  EXPECT_NEAR(metric_value(v, "recall@3"), 0.5, 1e-15);
  EXPECT_NEAR(metric_value(v, "precision@3"), 1.0 / 6, 1e-15);
  EXPECT_NEAR(metric_value(v, "mrr@3"), 0.25, 1e-15);
  EXPECT_NEAR(metric_value(v, "ndcg@3"), 0.31546487678572877, 1e-12);
  EXPECT_NEAR(metric_value(v, "auc"), (0.8 + 0.2) / 2, 1e-15);

  const Metrics t = evaluate(*scorer, make_eval_set(s, true, "full", 1, kStreamEvalTest, nullptr), {1, 3});
  EXPECT_NEAR(metric_value(t, "hit@1"), 1.0, 1e-15);
  EXPECT_NEAR(metric_value(t, "recall@1"), 0.75, 1e-15);
  EXPECT_NEAR(metric_value(t, "precision@1"), 1.0, 1e-15);
  EXPECT_NEAR(metric_value(t, "ndcg@1"), 1.0, 1e-15);
  EXPECT_NEAR(metric_value(t, "mrr@1"), 1.0, 1e-15);
  EXPECT_NEAR(metric_value(t, "recall@3"), 1.0, 1e-15);
  EXPECT_NEAR(metric_value(t, "precision@3"), 0.5, 1e-15);
  EXPECT_NEAR(metric_value(t, "ndcg@3"), 0.9598603945740938, 1e-12);  // (1 + 1.5/(1 + 1/log2 3)) / 2
  EXPECT_NEAR(metric_value(t, "auc"), (1.0 + (1.0 - 0.5 / 3)) / 2, 1e-15);
}

TEST(EvalEvaluate, PopularityFileModeByHand) {
  // User 0 holds out 2 against {1, 3}: tie with 3 -> p = 1; user 1 holds out 0 against
  // {1, 2, 3} -> p = 0.
  const Split s = split_of(4, {{0}, {3}}, {{}, {}}, {{2}, {0}});
  FileNegatives fn;
  fn.user = {0, 1};
  fn.positive = {2, 0};
  fn.offsets = {0, 2, 5};
  fn.negatives = {1, 3, 1, 2, 3};
  const Params<float> prm = pop_params({5, 1, 3, 3}, 2);
  CpuEngine<float> eng(ModelKind::Pop, nullptr, 2, 4, 0, 2);
  auto scorer = make_scorer(eng, prm);
  const Metrics m = evaluate(*scorer, make_eval_set(s, true, "file", 1, kStreamEvalTest, &fn), {1});
  EXPECT_NEAR(metric_value(m, "hit@1"), 0.5, 1e-15);
  EXPECT_NEAR(metric_value(m, "auc"), ((1 - 1.0 / 3) + 1.0) / 2, 1e-15);
}

TEST(EvalEvaluate, FullModeEqualsTheSameQueriesListed) {
  // Popularity with many ties and several positives per user: full mode must equal the
  // sampled path given every non-excluded item as a negative.
  const int32_t U = 70, I = 90;
  const Split s = random_split(21, U, I, 25, 4);
  std::vector<float> counts(static_cast<size_t>(I));
  Rng rng(3, 4);
  for (float& c : counts) c = float(rng.index(6));
  counts[7] = kNaN;
  const Params<float> prm = pop_params(counts, U);
  CpuEngine<float> eng(ModelKind::Pop, nullptr, U, I, 0, 2);
  auto scorer = make_scorer(eng, prm);
  const EvalSet full = make_eval_set(s, true, "full", 1, kStreamEvalTest, nullptr);
  EvalSet listed = full;
  listed.mode = "file";
  listed.exclude.clear();
  listed.neg_offsets = {0};
  for (int64_t q = 0; q < full.size(); ++q) {
    const int32_t u = full.user[size_t(q)];
    for (int32_t i = 0; i < I; ++i)
      if (!s.train.contains(u, i) && !s.valid.contains(u, i) && !s.test.contains(u, i)) listed.negatives.push_back(i);
    listed.neg_offsets.push_back(int64_t(listed.negatives.size()));
  }
  const Metrics a = evaluate(*scorer, full, {1, 5, 20});
  const Metrics b = evaluate(*scorer, listed, {1, 5, 20});
  expect_same_metrics(a, b);
  EXPECT_GT(metric_value(a, "recall@20"), 0.0);
}

TEST(EvalEvaluate, OneAndTwoThreadsGiveIdenticalMetrics) {
  const int32_t U = 500, I = 400;
  const Split s = random_split(4, U, I, 30, 2);
  const Params<float> bpr = random_mf(ModelKind::BPR, U, I, 24, 6);
  SmallConv conv(U, I, 7);
  for (const char* mode : {"full", "uni20", "pop20"}) {
    const EvalSet set = make_eval_set(s, true, mode, 5, kStreamEvalTest, nullptr);
    CpuEngine<float> e1(ModelKind::BPR, nullptr, U, I, 24, 1), e2(ModelKind::BPR, nullptr, U, I, 24, 2);
    auto s1 = make_scorer(e1, bpr);
    auto s2 = make_scorer(e2, bpr);
    const Metrics m1 = evaluate(*s1, set, {1, 10, 50});
    expect_same_metrics(m1, evaluate(*s2, set, {1, 10, 50}));
    EXPECT_GT(metric_value(m1, "auc"), 0.0);
  }
  const EvalSet set = make_eval_set(s, true, "uni20", 5, kStreamEvalTest, nullptr);
  CpuEngine<float> c1(ModelKind::ConvNCF, &conv.tower, U, I, 16, 1), c2(ModelKind::ConvNCF, &conv.tower, U, I, 16, 2);
  auto s1 = make_scorer(c1, conv.params);
  auto s2 = make_scorer(c2, conv.params);
  expect_same_metrics(evaluate(*s1, set, {10}), evaluate(*s2, set, {10}));
}

// ---------------------------------------------------------------------------------------------
// Scorers and top_k

TEST(EvalScorer, BprScoreAllEqualsNaiveDotProducts) {
  // Odd sizes: no multiple of the 6-user or 16-item blocks; repeated users.
  for (int E : {1, 19, 64}) {
    const int32_t U = 37, I = 101;
    const Params<float> prm = random_mf(ModelKind::BPR, U, I, E, 100 + uint64_t(E));
    CpuEngine<float> eng(ModelKind::BPR, nullptr, U, I, E, 2);
    auto scorer = make_scorer(eng, prm);
    const std::vector<int32_t> users = {3, 36, 0, 5, 5, 17, 22, 9, 30, 11, 2, 1, 35};
    std::vector<float> out(users.size() * size_t(I), kNaN);
    scorer->score_all(users.data(), int64_t(users.size()), out.data());
    double worst = 0.0, largest = 0.0;
    for (size_t r = 0; r < users.size(); ++r)
      for (int32_t i = 0; i < I; ++i) {
        double ref = 0.0, mag = 0.0;
        for (int e = 0; e < E; ++e) {
          const double a = prm.P[size_t(users[r]) * size_t(E) + size_t(e)], b = prm.Q[size_t(i) * size_t(E) + size_t(e)];
          ref += a * b;
          mag += std::abs(a * b);
        }
        const double got = out[r * size_t(I) + size_t(i)];
        ASSERT_FALSE(std::isnan(got)) << "unwritten " << r << "," << i;
        worst = std::max(worst, std::abs(got - ref) / (1e-6 + 1e-6 * mag));
        largest = std::max(largest, std::abs(ref));
      }
    EXPECT_LE(worst, 1.0) << "E = " << E;
    EXPECT_GT(largest, 0.1);
    // score_items agrees as well
    std::vector<int32_t> items(static_cast<size_t>(I));
    for (int32_t i = 0; i < I; ++i) items[size_t(i)] = I - 1 - i;
    std::vector<float> one(static_cast<size_t>(I));
    scorer->score_items(users[1], items.data(), I, one.data(), 0);
    for (int32_t i = 0; i < I; ++i)
      EXPECT_NEAR(one[size_t(i)], out[size_t(I) + size_t(I - 1 - i)], 1e-4) << i;
  }
}

TEST(EvalScorer, ConvNcfScoreAllEqualsScoreItems) {
  const int32_t U = 9, I = 300;  // 300: more than one 256-item chunk, not a multiple of it
  SmallConv conv(U, I, 13);
  CpuEngine<float> eng(ModelKind::ConvNCF, &conv.tower, U, I, 16, 2);
  auto scorer = make_scorer(eng, conv.params);
  const std::vector<int32_t> users = {8, 0, 4};
  std::vector<float> all(users.size() * size_t(I), kNaN);
  scorer->score_all(users.data(), 3, all.data());
  std::vector<int32_t> items(static_cast<size_t>(I));
  for (int32_t i = 0; i < I; ++i) items[size_t(i)] = i;
  std::vector<float> one(static_cast<size_t>(I));
  bool nonzero = false;
  for (size_t r = 0; r < users.size(); ++r) {
    scorer->score_items(users[r], items.data(), I, one.data(), 1);
    for (int32_t i = 0; i < I; ++i) {
      ASSERT_EQ(all[r * size_t(I) + size_t(i)], one[size_t(i)]) << r << "," << i;
      nonzero |= one[size_t(i)] != 0.f;
    }
  }
  EXPECT_TRUE(nonzero);
}

TEST(EvalTopK, ExclusionsTiesAndNaN) {
  // Counts 5 1 3 3 0 2; user 0 excludes item 0: 2 and 3 tie at 3 -> lower index first.
  const Split s = split_of(6, {{0}, {1, 2}, {}}, {{2}, {}, {}}, {{3}, {0, 5}, {}});
  const Params<float> prm = pop_params({5, 1, 3, 3, 0, 2}, 3);
  CpuEngine<float> eng(ModelKind::Pop, nullptr, 3, 6, 0, 2);
  auto scorer = make_scorer(eng, prm);
  using List = std::vector<std::pair<int32_t, float>>;
  auto top = top_k(*scorer, {0, 1, 2}, {&s.train}, 3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0], (List{{2, 3.f}, {3, 3.f}, {5, 2.f}}));
  EXPECT_EQ(top[1], (List{{0, 5.f}, {3, 3.f}, {5, 2.f}}));
  EXPECT_EQ(top[2], (List{{0, 5.f}, {2, 3.f}, {3, 3.f}}));
  // two exclusion rows; k beyond the candidates gives them all
  top = top_k(*scorer, {1}, {&s.train, &s.test}, 10);
  EXPECT_EQ(top[0], (List{{3, 3.f}, {4, 0.f}}));
  // NaN ranks last
  const Params<float> nan_prm = pop_params({5, kNaN, 3, 3, 0, 2}, 3);
  auto nan_scorer = make_scorer(eng, nan_prm);
  top = top_k(*nan_scorer, {2}, {}, 6);
  ASSERT_EQ(top[0].size(), 6u);
  EXPECT_EQ(top[0][4], (std::pair<int32_t, float>{4, 0.f}));
  EXPECT_EQ(top[0][5].first, 1);
  EXPECT_TRUE(std::isnan(top[0][5].second));
}
