// test_pair_kernels.cpp: the CPU twins of the per-pair kernels (kernels/pair_kernels_cpu.cpp), the
// oracles of tests/test_pair_kernels_gpu.cu, checked themselves. Always runs; no GPU needed.
// - by definition or by hand: make_pairs, gather_row_grads, bpr_loss_grad, MF-BPR, squared rows;
// - gradients by central differences: the head and the outer-product backward are linear in each
//   input, so on small-integer inputs (exact in float) the differences are exact and must match
//   bit for bit;
// - against CpuEngine: the head on a one-layer tower (forward_pair / backward_pair, dropout on
//   and off), MF-BPR and the squared row terms on a whole batch (loss and summed row gradients).
//   build/convncf_tests --gtest_filter='*Cpu.*'
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "convncf/cpu_engine.hpp"
#include "convncf/errors.hpp"
#include "convncf/model.hpp"
#include "convncf/options.hpp"
#include "convncf/outer_product.hpp"
#include "convncf/bpr.hpp"
#include "convncf/head.hpp"
#include "convncf/pairs.hpp"
#include "convncf/regularization.hpp"
#include "convncf/rng.hpp"

using namespace convncf;

namespace {

// Small integers in [-k, k]: sums and products of a few of them are exact in float.
std::vector<float> small_ints(size_t n, int k, Rng& rng) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(static_cast<int>(rng.index(uint32_t(2 * k + 1))) - k);
  return v;
}

std::vector<float> normals(size_t n, double scale, Rng& rng) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(scale * rng.normal());
  return v;
}

std::vector<int32_t> ids(size_t n, int32_t bound, Rng& rng) {
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = static_cast<int32_t>(rng.index(uint32_t(bound)));
  return v;
}

bool any_nonzero(const std::vector<float>& v) {
  return std::any_of(v.begin(), v.end(), [](float x) { return x != 0.0f; });
}

}  // namespace

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

TEST(HeadCpu, ForwardByHand) {
  // 2 pairs, C = 2, HW = 2; dropout off, then a mask worked out from dropout_mask itself.
  const std::vector<float> Y{1, 2, 3, -4, 0.5f, 0.5f, -1, 2};  // (2, 2, 2)
  const std::vector<float> w{2, -1}, b{0.25f};
  std::vector<float> h(4), s(2);
  head_fwd_cpu(2, 2, 2, Y.data(), w.data(), b.data(), {}, h.data(), s.data());
  EXPECT_EQ(h, (std::vector<float>{3, -1, 1, 1}));
  EXPECT_EQ(s[0], 0.25f + 2 * 3 - 1 * -1);  // 7.25
  EXPECT_EQ(s[1], 0.25f + 2 * 1 - 1 * 1);   // 1.25
  const DropoutArgs drop{0.5, 42, 7};
  head_fwd_cpu(2, 2, 2, Y.data(), w.data(), b.data(), drop, h.data(), s.data());
  const float base[4] = {3, -1, 1, 1};
  for (int p = 0; p < 2; ++p) {
    float want = 0.25f;
    for (int c = 0; c < 2; ++c) {
      const double m = dropout_mask(0.5, 42, 7, p / 2, p % 2, c);
      ASSERT_TRUE(m == 0.0 || m == 2.0);
      EXPECT_EQ(h[size_t(p * 2 + c)], base[p * 2 + c] * float(m));
      want += w[size_t(c)] * base[p * 2 + c] * float(m);
    }
    EXPECT_EQ(s[size_t(p)], want);
  }
}

// L = sum_p r[p] * score[p]: head_bwd_cpu with dscore = r must give dL/dY, dL/dw_out, dL/db_out.
// The score is linear in each of Y, w_out, b_out, and with small integers and masks 0 or 2 every
// value is exact, so a central difference with step 1 is the exact derivative.
TEST(HeadCpu, BackwardMatchesExactFiniteDifferences) {
  struct Size {
    int64_t n_pairs;
    int C, HW;
  };
  uint64_t seed = 10;
  int live = 0;
  for (const Size sz : {Size{1, 1, 1}, Size{4, 3, 4}, Size{6, 5, 1}, Size{2, 32, 4}})
    for (const double p_drop : {0.0, 0.5}) {
      SCOPED_TRACE("n_pairs=" + std::to_string(sz.n_pairs) + " C=" + std::to_string(sz.C) +
                   " HW=" + std::to_string(sz.HW) + " p=" + std::to_string(p_drop));
      Rng rng(seed++, kStreamSynthetic);
      const int64_t n = sz.n_pairs;
      std::vector<float> Y = small_ints(size_t(n * sz.C * sz.HW), 3, rng);
      std::vector<float> w = small_ints(size_t(sz.C), 3, rng), b = small_ints(1, 3, rng);
      const std::vector<float> r = small_ints(size_t(n), 2, rng);
      const DropoutArgs drop{p_drop, 3, 5};
      std::vector<float> h(static_cast<size_t>(n * sz.C)), s(static_cast<size_t>(n));
      auto L = [&] {
        head_fwd_cpu(n, sz.C, sz.HW, Y.data(), w.data(), b.data(), drop, h.data(), s.data());
        double acc = 0;
        for (int64_t p = 0; p < n; ++p) acc += double(r[size_t(p)]) * s[size_t(p)];
        return acc;
      };
      L();
      const std::vector<float> h_fwd = h;
      std::vector<float> dY(Y.size(), -7.0f), dw(w.size(), -7.0f), db(1, -7.0f);
      head_bwd_cpu(n, sz.C, sz.HW, r.data(), w.data(), h_fwd.data(), drop, dY.data(), dw.data(),
                   db.data());
      auto fd = [&](std::vector<float>& v, size_t i) {
        const float x0 = v[i];
        v[i] = x0 + 1;
        const double lp = L();
        v[i] = x0 - 1;
        const double lm = L();
        v[i] = x0;
        return (lp - lm) / 2;
      };
      for (size_t i = 0; i < Y.size(); ++i) EXPECT_EQ(double(dY[i]), fd(Y, i)) << "dY " << i;
      for (size_t c = 0; c < w.size(); ++c) EXPECT_EQ(double(dw[c]), fd(w, c)) << "dw_out " << c;
      EXPECT_EQ(double(db[0]), fd(b, 0)) << "db_out";
      live += any_nonzero(dY) && any_nonzero(dw);
    }
  EXPECT_GE(live, 6) << "most cases have zero gradients: the check would pass on nothing";
}

TEST(HeadCpu, EmptyBatchWritesZeroSums) {
  std::vector<float> dw(3, -1.0f), db(1, -1.0f);
  const std::vector<float> w(3, 1.0f);
  head_bwd_cpu(0, 3, 4, nullptr, w.data(), nullptr, {}, nullptr, dw.data(), db.data());
  EXPECT_EQ(dw, std::vector<float>(3, 0.0f));
  EXPECT_EQ(db[0], 0.0f);
}

// The head of a one-layer tower (E = 8, kernel 4: a 2 x 2 map of C channels, so HW = 4) against
// CpuEngine's own forward_pair / backward_pair, with its dropout masks for (triple, side).
TEST(HeadCpu, MatchesCpuEngineOnOneLayerTower) {
  const int E = 8, C = 5, HW = 4;
  const TowerSpec tower = TowerSpec::make(E, {1, C}, {4}, {4});
  ASSERT_EQ(tower.last_size() * tower.last_size(), HW);
  Config cfg;
  cfg.model = ModelKind::ConvNCF;
  cfg.embedding_size = E;
  cfg.seed = 3;
  const Params<float> prm = init_params(cfg, &tower, 3, 4);
  CpuEngine<float> eng(ModelKind::ConvNCF, &tower, 3, 4, E, 1);
  std::vector<float> packed(size_t(eng.packed_size()));
  eng.pack(prm.net.data(), packed.data());
  const float* w_out = prm.net.data() + tower.out_w_offset;
  const float* b_out = prm.net.data() + tower.out_b_offset;
  PairWork<float> work = eng.make_work();
  int live = 0;
  for (const double p_drop : {0.0, 0.3}) {
    const DropoutArgs drop{p_drop, 17, 4};
    const DropoutSpec spec{p_drop, 17, 4};
    for (int64_t t = 0; t < 3; ++t)
      for (int side = 0; side < 2; ++side) {
        SCOPED_TRACE("p=" + std::to_string(p_drop) + " triple " + std::to_string(t) + " side " +
                     std::to_string(side));
        const int64_t pair = 2 * t + side;
        const float* p = prm.P.data() + t * E;
        const float* q = prm.Q.data() + (t + side) * E;
        std::vector<float> mask(static_cast<size_t>(C));
        for (int c = 0; c < C; ++c) mask[size_t(c)] = float(dropout_scale(spec, t, side, c));
        const float* m = p_drop > 0 ? mask.data() : nullptr;
        const float want = eng.forward_pair(packed.data(), p, q, m, work);
        // Y[c][s] from the engine's channels-last last map (HW, C). Only this pair's slot of
        // a batch of 2t+side+1 pairs is used, so the masks see the right pair index.
        const int64_t n_pairs = pair + 1;
        std::vector<float> Y(size_t(n_pairs * C * HW), 0.0f);
        for (int s = 0; s < HW; ++s)
          for (int c = 0; c < C; ++c)
            Y[size_t((pair * C + c) * HW + s)] = work.act.back()[size_t(s * C + c)];
        std::vector<float> h(static_cast<size_t>(n_pairs * C)), score(static_cast<size_t>(n_pairs));
        head_fwd_cpu(n_pairs, C, HW, Y.data(), w_out, b_out, drop, h.data(), score.data());
        double scale = std::abs(*b_out);
        for (int c = 0; c < C; ++c) scale += std::abs(w_out[c] * h[size_t(pair * C + c)]);
        EXPECT_NEAR(score[size_t(pair)], want, 1e-6 * scale);
        live += want != *b_out;

        // backward with dscore = g on this pair, 0 on the others
        const float g = 0.75f - 0.5f * float(side);
        std::vector<float> dpacked(packed.size(), 0.0f), dp(size_t(E), 0.0f), dq(size_t(E), 0.0f);
        eng.backward_pair(packed.data(), p, q, m, g, work, dpacked.data(), dp.data(), dq.data());
        std::vector<float> dscore(size_t(n_pairs), 0.0f);
        dscore[size_t(pair)] = g;
        std::vector<float> dY(Y.size()), dw(static_cast<size_t>(C)), db(1);
        head_bwd_cpu(n_pairs, C, HW, dscore.data(), w_out, h.data(), drop, dY.data(), dw.data(),
                     db.data());
        for (int c = 0; c < C; ++c) {
          for (int s = 0; s < HW; ++s)
            EXPECT_EQ(dY[size_t((pair * C + c) * HW + s)], work.dh[size_t(c)]) << "c " << c;
          const float ref = dpacked[size_t(tower.out_w_offset + c)];
          EXPECT_NEAR(dw[size_t(c)], ref, 1e-6 * std::abs(ref)) << "dw_out " << c;
        }
        EXPECT_EQ(db[0], dpacked[size_t(tower.out_b_offset)]);
      }
  }
  EXPECT_GT(live, 0) << "every score equals the output bias: the tower is dead";
}

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

// dp = G q and dq = G^T p are the gradients of L = sum_{a,c} G[a][c] p[a] q[c], which is linear in
// each of p and q: on small integers a central difference with step 1 is exact.
TEST(OuterProductBwdCpu, MatchesExactFiniteDifferences) {
  uint64_t seed = 30;
  for (const int E : {1, 3, 13, 64}) {
    SCOPED_TRACE("E=" + std::to_string(E));
    Rng rng(seed++, kStreamSynthetic);
    const int64_t n_pairs = 3;
    const int32_t n_users = 2, n_items = 3;
    std::vector<float> P = small_ints(size_t(n_users * E), 3, rng);
    std::vector<float> Q = small_ints(size_t(n_items * E), 3, rng);
    const std::vector<float> G = small_ints(size_t(n_pairs * E * E), 3, rng);
    const std::vector<int32_t> pu{1, 0, 1}, pi{2, 2, 0};
    std::vector<float> dp(size_t(n_pairs * E), NAN), dq(size_t(n_pairs * E), NAN);
    outer_product_bwd_cpu(n_pairs, E, pu.data(), pi.data(), P.data(), Q.data(), G.data(), dp.data(),
                          dq.data());
    for (int64_t b = 0; b < n_pairs; ++b) {
      auto L = [&] {
        double acc = 0;
        for (int a = 0; a < E; ++a)
          for (int c = 0; c < E; ++c)
            acc += double(G[size_t(outer_product_index(b, E, a, c))]) * P[size_t(pu[b] * E + a)] *
                   Q[size_t(pi[b] * E + c)];
        return acc;
      };
      auto fd = [&](std::vector<float>& v, size_t i) {
        const float x0 = v[i];
        v[i] = x0 + 1;
        const double lp = L();
        v[i] = x0 - 1;
        const double lm = L();
        v[i] = x0;
        return (lp - lm) / 2;
      };
      for (int e = 0; e < E; ++e) {
        EXPECT_EQ(double(dp[size_t(b * E + e)]), fd(P, size_t(pu[b] * E + e))) << b << " dp " << e;
        EXPECT_EQ(double(dq[size_t(b * E + e)]), fd(Q, size_t(pi[b] * E + e))) << b << " dq " << e;
      }
    }
    EXPECT_TRUE(any_nonzero(dp) && any_nonzero(dq));
  }
}

// Random floats, E not a multiple of anything: close to the sums in double.
TEST(OuterProductBwdCpu, CloseToDoubleSums) {
  const int E = 77;
  Rng rng(40, kStreamSynthetic);
  const std::vector<float> P = normals(size_t(E), 1, rng), Q = normals(size_t(2 * E), 1, rng);
  const std::vector<float> G = normals(size_t(2 * E * E), 1, rng);
  const std::vector<int32_t> pu{0, 0}, pi{1, 0};
  std::vector<float> dp(static_cast<size_t>(2 * E)), dq(static_cast<size_t>(2 * E));
  outer_product_bwd_cpu(2, E, pu.data(), pi.data(), P.data(), Q.data(), G.data(), dp.data(),
                        dq.data());
  for (int b = 0; b < 2; ++b)
    for (int e = 0; e < E; ++e) {
      double sp = 0, sq = 0, mp = 0, mq = 0;
      for (int k = 0; k < E; ++k) {
        const double gp =
            double(G[size_t(outer_product_index(b, E, e, k))]) * Q[size_t(pi[b] * E + k)];
        const double gq = double(G[size_t(outer_product_index(b, E, k, e))]) * P[size_t(k)];
        sp += gp, sq += gq, mp += std::abs(gp), mq += std::abs(gq);
      }
      EXPECT_NEAR(dp[size_t(b * E + e)], sp, 1e-5 * mp);
      EXPECT_NEAR(dq[size_t(b * E + e)], sq, 1e-5 * mq);
    }
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

TEST(RowsSquaredRegCpu, ByHand) {
  // ||p||^2 = 5, ||q+||^2 = 9, ||q-||^2 = 16 (CpuEngine's hand-worked case), l = 0.25.
  const std::vector<float> P{1, 2}, Q{0, 3, 4, 0};
  const std::vector<int32_t> u{0, 0}, p{0, 0}, n{1, 1};
  std::vector<float> rows(12, 1.0f);
  std::vector<double> reg(2, -1.0);
  rows_squared_reg_cpu(2, 1, 2, 0.25, u.data(), p.data(), n.data(), P.data(), Q.data(), rows.data(),
                       reg.data());
  EXPECT_EQ(reg[0], 0.25 * (5 + 9 + 16));
  EXPECT_EQ(reg[1], 0.0);
  const std::vector<float> want{1.5f, 2.0f, 0, 0, 1.0f, 2.5f, 0, 0, 3.0f, 1.0f, 0, 0};
  EXPECT_EQ(rows, want);
  // l = 0 changes nothing and adds no loss
  std::vector<float> before = rows;
  rows_squared_reg_cpu(2, 1, 2, 0.0, u.data(), p.data(), n.data(), P.data(), Q.data(), rows.data(),
                       reg.data());
  EXPECT_EQ(rows, before);
  EXPECT_EQ(reg[0], 0.0);
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

TEST(PairKernelsCpu, TwinsRejectBadArguments) {
  const int32_t id = 0;
  float x = 0.0f;
  double d = 0.0;
  EXPECT_THROW(make_pairs_cpu(2, 3, &id, &id, &id, nullptr, nullptr), Error);  // n_valid > B_cap
  EXPECT_THROW(make_pairs_cpu(-1, 0, &id, &id, &id, nullptr, nullptr), Error);
  EXPECT_THROW(head_fwd_cpu(1, 0, 1, &x, &x, &x, {}, &x, &x), Error);           // C = 0
  EXPECT_THROW(head_fwd_cpu(1, 1, 1, &x, &x, &x, {1.0, 0, 0}, &x, &x), Error);  // p = 1
  EXPECT_THROW(head_fwd_cpu(1, 1, 1, nullptr, &x, &x, {}, &x, &x), Error);
  EXPECT_THROW(outer_product_bwd_cpu(1, kPairBwdMaxE + 1, &id, &id, &x, &x, &x, &x, &x), Error);
  EXPECT_THROW(rows_squared_reg_cpu(1, 1, 1, -0.5, &id, &id, &id, &x, &x, &x, &d), Error);
  EXPECT_THROW(rows_squared_reg_cpu(1, 1, 1, NAN, &id, &id, &id, &x, &x, &x, &d), Error);
  EXPECT_THROW(mf_score_pairs_cpu(1, 0, &id, &id, &x, &x, &x), Error);
  EXPECT_NO_THROW(mf_bpr_fwd_bwd_cpu(0, 0, 4, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                     nullptr));  // an empty batch touches nothing
}
