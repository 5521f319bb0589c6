// test_optim.cpp: each optimizer against a two-step example worked out by hand (p0 = 1,
// gradients 0.5 then -0.2, lr 0.1), and the row-wise step against the dense one.
#include <gtest/gtest.h>

#include <cmath>

#include "convncf/optim.hpp"

using namespace convncf;

namespace {
std::vector<double> two_steps(const OptimizerSpec& spec) {
  Optimizer<double> opt(spec, 1);
  double p = 1.0;
  std::vector<double> out;
  for (double g : {0.5, -0.2}) {
    opt.step(&p, &g, 1);
    out.push_back(p);
  }
  return out;
}
}  // namespace

TEST(Optimizer, SgdTwoSteps) {
  OptimizerSpec s;
  s.learner = Learner::SGD;
  s.lr = 0.1;
  const auto p = two_steps(s);
  EXPECT_NEAR(p[0], 0.95, 1e-15);  // 1 - 0.1 * 0.5
  EXPECT_NEAR(p[1], 0.97, 1e-15);  // 0.95 + 0.1 * 0.2
}

TEST(Optimizer, AdagradPyTorchTwoSteps) {
  OptimizerSpec s;
  s.learner = Learner::Adagrad;
  s.lr = 0.1;
  s.adagrad_initial_accumulator = 0.0;
  s.adagrad_eps = 1e-10;
  const auto p = two_steps(s);
  // acc = 0.25: 1 - 0.1 * 0.5 / (0.5 + 1e-10)
  EXPECT_NEAR(p[0], 0.9, 1e-10);
  // acc = 0.29: 0.9 + 0.1 * 0.2 / sqrt(0.29) = 0.9 + 0.0371390676...
  EXPECT_NEAR(p[1], 0.9371390676354104, 1e-10);
}

TEST(Optimizer, AdagradTensorFlowTwoSteps) {
  OptimizerSpec s;
  s.learner = Learner::Adagrad;
  s.lr = 0.1;
  s.adagrad_initial_accumulator = 0.1;
  s.adagrad_eps = 0.0;
  const auto p = two_steps(s);
  EXPECT_NEAR(p[0], 0.9154845745271484, 1e-14);  // acc 0.35: 1 - 0.05 / sqrt(0.35)
  EXPECT_NEAR(p[1], 0.9475102052881658, 1e-14);  // acc 0.39: + 0.02 / sqrt(0.39)
}

TEST(Optimizer, AdamPyTorchTwoSteps) {
  OptimizerSpec s;
  s.learner = Learner::Adam;
  s.lr = 0.1;
  const auto p = two_steps(s);
  // step 1: m = 0.05, v = 0.00025, m_hat = 0.5, sqrt(v_hat) = 0.5: p = 1 - 0.1 * 0.5 / (0.5 + 1e-8)
  EXPECT_NEAR(p[0], 0.900000002, 1e-12);
  // step 2: m = 0.025, v = 0.00028975; bias corrections 0.19 and 0.001999:
  // sqrt(v_hat) = 0.38071967868..., p = p1 - (0.1 / 0.19) * 0.025 / (0.38071967868 + 1e-8)
  EXPECT_NEAR(p[1], 0.8654394181165108, 1e-12);
}

TEST(Optimizer, WeightDecayAddsToGradient) {
  OptimizerSpec s;
  s.learner = Learner::SGD;
  s.lr = 0.1;
  s.weight_decay = 0.5;
  Optimizer<double> opt(s, 1);
  double p = 1.0, g = 0.5;
  opt.step(&p, &g, 1);
  EXPECT_NEAR(p, 1.0 - 0.1 * (0.5 + 0.5 * 1.0), 1e-15);
}

TEST(Optimizer, RowStepEqualsDenseForSgdAndAdagrad) {
  for (Learner l : {Learner::SGD, Learner::Adagrad}) {
    OptimizerSpec s;
    s.learner = l;
    s.lr = 0.05;
    s.adagrad_initial_accumulator = 0.1;
    const int rows = 5, E = 3;
    std::vector<float> a(rows * E), g(rows * E, 0.f);
    for (size_t i = 0; i < a.size(); ++i) a[i] = 0.1f * float(i) - 0.4f;
    std::vector<float> b = a;
    for (int e = 0; e < E; ++e) {
      g[1 * E + e] = 0.3f * float(e + 1);
      g[3 * E + e] = -0.2f;
    }
    Optimizer<float> dense(s, rows * E), sparse(s, rows * E);
    dense.step(a.data(), g.data(), rows * E);
    sparse.step_rows(b.data(), g.data(), {1, 3}, E);
    EXPECT_EQ(a, b);
    EXPECT_EQ(dense.state0(), sparse.state0());
  }
}
