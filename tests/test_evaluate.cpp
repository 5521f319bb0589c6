// test_evaluate.cpp: metrics worked out by hand: ties, K beyond the candidate list, NaN scores,
// and the scorer plumbing of evaluate_sampled with a popularity model.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "convncf/errors.hpp"
#include "convncf/evaluate.hpp"

using namespace convncf;

TEST(RankPosition, TiesCountAgainstThePositive) {
  const float neg[] = {0.5f, 0.4f, 0.6f, 0.5f};
  EXPECT_EQ(rank_position(0.5f, neg, 4), 3);  // two ties and one higher
  EXPECT_EQ(rank_position(0.7f, neg, 4), 0);
  EXPECT_EQ(rank_position(0.1f, neg, 4), 4);
  EXPECT_EQ(rank_position(0.1f, neg, 0), 0);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float with_nan[] = {nan, 0.1f};
  EXPECT_EQ(rank_position(0.5f, with_nan, 2), 1);  // a NaN negative counts against
  EXPECT_EQ(rank_position(nan, neg, 4), 4);        // a NaN positive ranks last
}

TEST(Metrics, HandWorkedThreeUsers) {
  // Users at positions 0, 3 and 4 among 4 negatives (5 candidates); K = 10 exceeds the list.
  const Metrics m = metrics_from_positions({0, 3, 4}, {4, 4, 4}, {1, 5, 10});
  const double l2 = std::log(2.0);
  EXPECT_NEAR(metric_value(m, "hit@1"), 1.0 / 3, 1e-15);
  EXPECT_NEAR(metric_value(m, "ndcg@1"), 1.0 / 3, 1e-15);
  EXPECT_NEAR(metric_value(m, "mrr@1"), 1.0 / 3, 1e-15);
  EXPECT_NEAR(metric_value(m, "precision@1"), 1.0 / 3, 1e-15);
  EXPECT_NEAR(metric_value(m, "hit@5"), 1.0, 1e-15);
  EXPECT_NEAR(metric_value(m, "recall@5"), 1.0, 1e-15);
  EXPECT_NEAR(metric_value(m, "ndcg@5"), (1 + l2 / std::log(5.0) + l2 / std::log(6.0)) / 3, 1e-15);
  EXPECT_NEAR(metric_value(m, "ndcg@5"), 0.6058433, 1e-6);  // (1 + 0.4306766 + 0.3868528) / 3
  EXPECT_NEAR(metric_value(m, "mrr@5"), (1 + 0.25 + 0.2) / 3, 1e-15);
  EXPECT_NEAR(metric_value(m, "precision@5"), 0.2, 1e-15);
  EXPECT_NEAR(metric_value(m, "hit@10"), 1.0, 1e-15);
  EXPECT_NEAR(metric_value(m, "precision@10"), 0.1, 1e-15);
  EXPECT_NEAR(metric_value(m, "auc"), (1.0 + 0.4 + 0.2) / 3, 1e-15);  // 1 - pos / 5
}

TEST(Metrics, PaperAucWith999Negatives) {
  const Metrics m = metrics_from_positions({9}, {999}, {10});
  EXPECT_NEAR(metric_value(m, "auc"), 1 - 9.0 / 1000, 1e-15);
  EXPECT_NEAR(metric_value(m, "ndcg@10"), std::log(2.0) / std::log(11.0), 1e-15);
  EXPECT_EQ(metric_value(m, "hit@10"), 1.0);
  const Metrics miss = metrics_from_positions({10}, {999}, {10});
  EXPECT_EQ(metric_value(miss, "hit@10"), 0.0);
  EXPECT_EQ(metric_value(miss, "ndcg@10"), 0.0);
}

TEST(Metrics, UnknownMetricIsAUsageError) {
  const Metrics m = metrics_from_positions({0}, {1}, {10});
  try {
    metric_value(m, "ndcg@20");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitUsage);
  }
  EXPECT_EQ(metrics_json(metrics_from_positions({0}, {1}, {2})),
            "{\"hit@2\":1,\"ndcg@2\":1,\"mrr@2\":1,\"recall@2\":1,\"precision@2\":0.5,\"auc\":1}");
}

TEST(EvaluateSampled, PopularityByHand) {
  // Item counts 5, 1, 3, 3: user 0 holds out item 2 against {1, 3}: tie with 3 -> position 1;
  // user 1 holds out item 0 against {1, 2, 3} -> position 0.
  Params<float> prm;
  prm.model = ModelKind::Pop;
  prm.n_users = 2;
  prm.n_items = 4;
  prm.net = {5, 1, 3, 3};
  CpuEngine<float> eng(ModelKind::Pop, nullptr, 2, 4, 0, 2);
  EvalCandidates c;
  c.user = {0, 1};
  c.positive = {2, 0};
  c.offsets = {0, 2, 5};
  c.negatives = {1, 3, 1, 2, 3};
  const Metrics m = evaluate_sampled(eng, prm, c, {1});
  EXPECT_NEAR(metric_value(m, "hit@1"), 0.5, 1e-15);
  EXPECT_NEAR(metric_value(m, "auc"), ((1 - 1.0 / 3) + 1.0) / 2, 1e-15);
}
