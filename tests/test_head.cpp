// test_head.cpp: the CPU twins of the head kernels (kernels/head_cpu.cpp), the oracles of
// tests/test_head_gpu.cu, checked themselves. Always runs; no GPU needed.
// - by hand: the forward of a small case;
// - gradients by central differences: the head is linear in each input, so on small-integer
//   inputs (exact in float) the differences are exact and must match bit for bit;
// - against CpuEngine: the head on a one-layer tower (forward_pair / backward_pair, dropout on
//   and off).
//   build/convncf_tests --gtest_filter='HeadCpu.*'
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "convncf/cpu_engine.hpp"
#include "convncf/errors.hpp"
#include "convncf/head.hpp"
#include "convncf/model.hpp"
#include "convncf/options.hpp"
#include "convncf/rng.hpp"
#include "kernel_test_util.hpp"

using namespace convncf;
using namespace convncf::test;

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
