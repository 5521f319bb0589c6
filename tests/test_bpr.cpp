// test_bpr.cpp: the CPU twins of the BPR kernels (kernels/bpr_cpu.cpp), the oracles of
// tests/test_bpr_gpu.cu, checked themselves. Always runs; no GPU needed.
// - by definition or by hand: bpr_loss_grad (with padding), MF-BPR;
// - against CpuEngine: MF-BPR and the squared row terms (regularization's rows_squared_reg_cpu)
//   on a whole batch (loss and summed row gradients), MF scores.
//   build/convncf_tests --gtest_filter='BprLossGradCpu.*:MfBprCpu.*:MfScorePairsCpu.*'
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "convncf/bpr.hpp"
#include "convncf/cpu_engine.hpp"
#include "convncf/errors.hpp"
#include "convncf/model.hpp"
#include "convncf/pairs.hpp"
#include "convncf/regularization.hpp"
#include "convncf/rng.hpp"
#include "kernel_test_util.hpp"

using namespace convncf;
using namespace convncf::test;

TEST(BprLossGradCpu, MatchesDefinitionAndPadsWithZero) {
  // Scores of 5 triples, the last one padding (its scores would give a nonzero loss).
  const std::vector<float> score{2.0f, 1.0f, -3.0f, 4.0f, 0.0f, 0.0f, 30.0f, -60.0f, 1.0f, 5.0f};
  std::vector<double> loss(5, -1.0);
  std::vector<float> dscore(10, -1.0f);
  bpr_loss_grad_cpu(5, 4, score.data(), loss.data(), dscore.data());
  for (int t = 0; t < 4; ++t) {
    const double x = double(score[size_t(2 * t)] - score[size_t(2 * t + 1)]);
    EXPECT_NEAR(loss[size_t(t)], std::log1p(std::exp(-x)), 1e-6 * (1 + std::abs(x))) << t;
    // d/dx softplus(-x) by central differences in double
    const double hstep = 1e-5;
    const double fd =
        (std::log1p(std::exp(-(x + hstep))) - std::log1p(std::exp(-(x - hstep)))) / (2 * hstep);
    EXPECT_NEAR(dscore[size_t(2 * t)], fd, 1e-6) << t;
    EXPECT_EQ(dscore[size_t(2 * t + 1)], -dscore[size_t(2 * t)]) << t;
  }
  EXPECT_FLOAT_EQ(float(loss[2]), std::log(2.0f));  // x = 0: log 2, computed in float
  EXPECT_EQ(loss[4], 0.0);
  EXPECT_EQ(dscore[8], 0.0f);
  EXPECT_EQ(dscore[9], 0.0f);
  EXPECT_FALSE(std::signbit(dscore[9])) << "padding gets +0, not -0";
}

TEST(MfBprCpu, ByHand) {
  // p = (1, 2), q+ = (0, 3), q- = (4, 0): s+ = 6, s- = 4, x = 2 (CpuEngine's hand-worked case).
  const std::vector<float> P{1, 2}, Q{0, 3, 4, 0};
  const std::vector<int32_t> u{0, 0}, p{0, 0}, n{1, 1};
  std::vector<double> loss(2, -1.0);
  std::vector<float> rows(12, NAN);
  mf_bpr_fwd_bwd_cpu(2, 1, 2, u.data(), p.data(), n.data(), P.data(), Q.data(), loss.data(),
                     rows.data());
  EXPECT_NEAR(loss[0], std::log1p(std::exp(-2.0)), 1e-7);
  EXPECT_EQ(loss[1], 0.0);
  const float g = softplus_neg_grad(2.0f);
  EXPECT_NEAR(g, -1.0 / (1.0 + std::exp(2.0)), 1e-7);
  // rows (3, B_cap = 2, E = 2): triple 0 at t = 0, padding at t = 1
  EXPECT_EQ(rows[0], g * -4.0f);
  EXPECT_EQ(rows[1], g * 3.0f);
  EXPECT_EQ(rows[4], g * 1.0f);
  EXPECT_EQ(rows[5], g * 2.0f);
  EXPECT_EQ(rows[8], -g * 1.0f);
  EXPECT_EQ(rows[9], -g * 2.0f);
  for (const size_t i : {2, 3, 6, 7, 10, 11}) EXPECT_EQ(rows[i], 0.0f) << "padding row " << i;
}

// MF-BPR with and without the squared row terms, composed as the GPU step composes them, against
// CpuEngine<float> with ModelKind::BPR on the same batch: the same loss sum and, summed per row
// in triple order, the same gradients.
TEST(MfBprCpu, MatchesCpuEngineOnBatch) {
  const int32_t n_users = 7, n_items = 11;
  uint64_t seed = 60;
  for (const int E : {1, 13, 64})
    for (const double l : {0.0, 0.01}) {
      SCOPED_TRACE("E=" + std::to_string(E) + " l=" + std::to_string(l));
      Rng rng(seed++, kStreamSynthetic);
      const int64_t B = 37, B_cap = 40;
      Params<float> prm;
      prm.model = ModelKind::BPR;
      prm.E = E;
      prm.n_users = n_users;
      prm.n_items = n_items;
      prm.P = normals(size_t(n_users * E), 0.5, rng);
      prm.Q = normals(size_t(n_items * E), 0.5, rng);
      std::vector<int32_t> u = ids(size_t(B_cap), n_users, rng),
                           p = ids(size_t(B_cap), n_items, rng),
                           n = ids(size_t(B_cap), n_items, rng);
      CpuEngine<float> eng(ModelKind::BPR, nullptr, n_users, n_items, E, 2);
      const RegSpec reg{RegType::Squared, {l}, true};
      const LossParts want = eng.compute(prm, {u.data(), p.data(), n.data(), B}, reg, {});

      std::vector<double> loss(static_cast<size_t>(B_cap)), regs(static_cast<size_t>(B_cap));
      std::vector<float> rows(static_cast<size_t>(3 * B_cap * E));
      mf_bpr_fwd_bwd_cpu(B_cap, B, E, u.data(), p.data(), n.data(), prm.P.data(), prm.Q.data(),
                         loss.data(), rows.data());
      rows_squared_reg_cpu(B_cap, B, E, l, u.data(), p.data(), n.data(), prm.P.data(), prm.Q.data(),
                           rows.data(), regs.data());
      double bpr = 0, rg = 0;
      for (int64_t t = 0; t < B_cap; ++t) bpr += loss[size_t(t)], rg += regs[size_t(t)];
      EXPECT_NEAR(bpr, want.bpr, 1e-6 * want.bpr);
      EXPECT_NEAR(rg, want.reg, 1e-12 * (1 + want.reg));
      if (l > 0) {
        EXPECT_GT(rg, 0.0);
      }
      std::vector<float> gP(prm.P.size(), 0.0f), gQ(prm.Q.size(), 0.0f);
      for (int64_t t = 0; t < B_cap; ++t)
        for (int e = 0; e < E; ++e) {
          if (t >= B) {  // padding: zero rows, whatever the ids say
            for (int which = 0; which < 3; ++which)
              EXPECT_EQ(rows[size_t(row_grad_offset(which, B_cap, t, E) + e)], 0.0f);
            continue;
          }
          gP[size_t(u[size_t(t)] * E + e)] += rows[size_t(row_grad_offset(0, B_cap, t, E) + e)];
          gQ[size_t(p[size_t(t)] * E + e)] += rows[size_t(row_grad_offset(1, B_cap, t, E) + e)];
          gQ[size_t(n[size_t(t)] * E + e)] += rows[size_t(row_grad_offset(2, B_cap, t, E) + e)];
        }
      const std::vector<float>& eP = eng.grads().P;
      const std::vector<float>& eQ = eng.grads().Q;
      for (size_t i = 0; i < gP.size(); ++i)
        EXPECT_NEAR(gP[i], eP[i], 1e-5 * (1 + std::abs(eP[i]))) << "P " << i;
      for (size_t i = 0; i < gQ.size(); ++i)
        EXPECT_NEAR(gQ[i], eQ[i], 1e-5 * (1 + std::abs(eQ[i]))) << "Q " << i;
      EXPECT_TRUE(any_nonzero(gP) && any_nonzero(gQ));
    }
}

TEST(MfScorePairsCpu, MatchesCpuEngineScores) {
  const int E = 13;
  const int32_t n_users = 3, n_items = 9;
  Rng rng(70, kStreamSynthetic);
  Params<float> prm;
  prm.model = ModelKind::BPR;
  prm.E = E;
  prm.n_users = n_users;
  prm.n_items = n_items;
  prm.P = normals(size_t(n_users * E), 1, rng);
  prm.Q = normals(size_t(n_items * E), 1, rng);
  CpuEngine<float> eng(ModelKind::BPR, nullptr, n_users, n_items, E, 1);
  PairWork<float> w = eng.make_work();
  std::vector<int32_t> items(static_cast<size_t>(n_items));
  for (int32_t i = 0; i < n_items; ++i) items[size_t(i)] = i;
  for (int32_t user = 0; user < n_users; ++user) {
    std::vector<float> want(static_cast<size_t>(n_items)), got(static_cast<size_t>(n_items));
    eng.score_items(prm, user, items.data(), n_items, want.data(), w);
    const std::vector<int32_t> us(size_t(n_items), user);
    mf_score_pairs_cpu(n_items, E, us.data(), items.data(), prm.P.data(), prm.Q.data(), got.data());
    for (int32_t i = 0; i < n_items; ++i)
      EXPECT_NEAR(got[size_t(i)], want[size_t(i)], 1e-5 * (1 + std::abs(want[size_t(i)])));
  }
}
