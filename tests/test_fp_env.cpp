// test_fp_env.cpp: subnormals flushed to zero on the CPU engine's threads (fp_env.hpp).
// - the guard sets FTZ and DAZ and restores the thread's previous mode;
// - in every OpenMP worker of a team, each with its own guard;
// - the engine's training step, its scorers (ConvNCF and MF-BPR, full ranking and sampled) and
//   the optimizers compute as if a subnormal operand were zero: subnormal user embeddings give the
//   same bits as zero ones. With the switch off the same inputs give other bits (the test can
//   fail: it fails when any worker computes without the flush).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "convncf/cpu_engine.hpp"
#include "convncf/evaluate.hpp"
#include "convncf/fp_env.hpp"
#include "convncf/optim.hpp"
#include "convncf/options.hpp"

using namespace convncf;

namespace {

#if defined(__x86_64__) || defined(__aarch64__)
constexpr bool kCanFlush = true;
#else
constexpr bool kCanFlush = false;
#endif

// The switch back on whatever a test does.
struct SwitchOn {
  ~SwitchOn() { set_flush_denormals(true); }
};

constexpr float kSub = 1e-39f;  // subnormal: below FLT_MIN (1.18e-38), above 0

TEST(FpEnv, GuardSetsAndRestoresTheMode) {
  if (!kCanFlush) GTEST_SKIP() << "no flush-to-zero control on this processor";
  ASSERT_TRUE(std::fpclassify(kSub) == FP_SUBNORMAL);
  const bool before = flushing_denormals();
  {
    const FlushDenormals f;
    EXPECT_TRUE(flushing_denormals());
    volatile float x = kSub;
    EXPECT_EQ(x * 1.0f, 0.0f);  // DAZ: the operand reads as zero
  }
  EXPECT_EQ(flushing_denormals(), before);
  SwitchOn restore;
  set_flush_denormals(false);
  {
    const FlushDenormals f;
    EXPECT_EQ(flushing_denormals(), before);
  }
}

TEST(FpEnv, InForceInEveryWorkerOfATeam) {
  if (!kCanFlush) GTEST_SKIP() << "no flush-to-zero control on this processor";
  const int T = 4;
  std::vector<int> on(T, -1), after(T, -1);
#pragma omp parallel num_threads(T)
  {
    const int t = omp_get_thread_num();
    {
      const FlushDenormals f;
      on[size_t(t)] = flushing_denormals();
    }
    after[size_t(t)] = flushing_denormals();
  }
  for (int t = 0; t < omp_get_max_threads() && t < T; ++t) {
    if (on[size_t(t)] < 0) continue;  // the team had fewer threads
    EXPECT_EQ(on[size_t(t)], 1) << "thread " << t;
    EXPECT_EQ(after[size_t(t)], 0) << "thread " << t;
  }
}

// A ConvNCF model whose items have large embeddings (so that p * q leaves the subnormal range
// when p is subnormal and read as such) and zero biases.
struct Model {
  TowerSpec tower = TowerSpec::make(16, {1, 4, 4}, {4, 4}, {4, 4});
  Params<float> prm;
  explicit Model(ModelKind kind, float p_value) {
    Config c;
    c.model = kind;
    c.seed = 3;
    prm = init_params(c, kind == ModelKind::ConvNCF ? &tower : nullptr, 6, 8);
    for (float& v : prm.P) v = p_value;
    for (size_t i = 0; i < prm.Q.size(); ++i) prm.Q[i] = 1e15f * float(1 + i % 5);
    if (kind != ModelKind::ConvNCF) return;
    for (const ConvLayer& l : tower.layers)
      for (int c2 = 0; c2 < l.cout; ++c2) prm.net[size_t(l.b_offset + c2)] = 0.f;
    prm.net[size_t(tower.out_b_offset)] = 0.f;
  }
};

struct Outcome {
  LossParts loss;
  std::vector<float> dP, dQ, dnet, scores_all, scores_some, after_step;
};

Outcome run(ModelKind kind, float p_value) {
  Model m(kind, p_value);
  const TowerSpec* tp = kind == ModelKind::ConvNCF ? &m.tower : nullptr;
  CpuEngine<float> eng(kind, tp, 6, 8, 16, 3);
  std::vector<int32_t> u{0, 1, 2, 3, 4, 5, 0, 1, 2}, p{1, 2, 3, 4, 5, 6, 7, 0, 1},
      n{7, 6, 5, 4, 3, 2, 1, 0, 2};
  Outcome r;
  r.loss = eng.compute(m.prm, {u.data(), p.data(), n.data(), int64_t(u.size())},
                       RegSpec{RegType::Squared, {0.0, 0.0, 0.0}, true}, DropoutSpec{0.0, 1, 1});
  r.dP = eng.grads().P;
  r.dQ = eng.grads().Q;
  r.dnet = eng.grads().net;
  const std::unique_ptr<Scorer> sc = make_scorer(eng, m.prm);
  std::vector<int32_t> users{0, 1, 2, 3, 4, 5};
  r.scores_all.resize(users.size() * 8);
  sc->score_all(users.data(), int64_t(users.size()), r.scores_all.data());
  std::vector<int32_t> items{0, 3, 7};
  r.scores_some.resize(items.size());
  sc->score_items(2, items.data(), int64_t(items.size()), r.scores_some.data(), 0);
  // an SGD step on the user table: a subnormal parameter with a zero gradient stays as it reads
  OptimizerSpec os;
  os.learner = Learner::SGD;
  os.lr = 0.5;
  Optimizer<float> opt(os, int64_t(m.prm.P.size()));
  std::vector<float> P = m.prm.P, g(P.size(), 0.f);
  opt.step(P.data(), g.data(), int64_t(P.size()));
  r.after_step = P;
  return r;
}

void expect_same(const Outcome& a, const Outcome& b, const char* what) {
  EXPECT_EQ(a.loss.bpr, b.loss.bpr) << what;
  EXPECT_EQ(a.dP, b.dP) << what;
  EXPECT_EQ(a.dQ, b.dQ) << what;
  EXPECT_EQ(a.dnet, b.dnet) << what;
  EXPECT_EQ(a.scores_all, b.scores_all) << what;
  EXPECT_EQ(a.scores_some, b.scores_some) << what;
  EXPECT_EQ(a.after_step, b.after_step) << what;
}

bool differs(const Outcome& a, const Outcome& b) {
  return a.loss.bpr != b.loss.bpr || a.dQ != b.dQ || a.scores_all != b.scores_all ||
         a.scores_some != b.scores_some;
}

TEST(FpEnv, EngineTreatsSubnormalOperandsAsZero) {
  if (!kCanFlush) GTEST_SKIP() << "no flush-to-zero control on this processor";
  for (const ModelKind kind : {ModelKind::ConvNCF, ModelKind::BPR}) {
    const char* what = kind == ModelKind::ConvNCF ? "ConvNCF" : "BPR";
    const Outcome zero = run(kind, 0.f), sub = run(kind, kSub);
    expect_same(sub, zero, what);
    for (const float v : sub.after_step) EXPECT_EQ(v, 0.f) << what << ": FTZ on the update";
    // The same inputs without the flush: the subnormal embeddings count, so the test above
    // would fail if a thread of the engine computed without it.
    SwitchOn restore;
    set_flush_denormals(false);
    const Outcome slow = run(kind, kSub);
    EXPECT_TRUE(differs(slow, zero)) << what << ": subnormals without the flush should count";
  }
  // The engine's OpenMP workers come back with the mode they had: none keeps flushing.
  std::vector<int> left(3, -1);
#pragma omp parallel num_threads(3)
  left[size_t(omp_get_thread_num())] = flushing_denormals();
  for (const int v : left) EXPECT_NE(v, 1) << "a worker kept FTZ/DAZ after the engine returned";
}

}  // namespace
