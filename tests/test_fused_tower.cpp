// test_fused_tower.cpp: the fused tower's CPU twins (kernels/fused_tower_cpu.cpp) against the CPU
// reference engine in double, its layout, packing and operand rounding. The GPU kernels are
// checked against these twins in tests/test_fused_tower_gpu.cu.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "convncf/cpu_engine.hpp"
#include "convncf/errors.hpp"
#include "convncf/fused_tower.hpp"
#include "convncf/model.hpp"
#include "convncf/rng.hpp"
#include "fused_test_util.hpp"

using namespace convncf;
using namespace convncf::fused_test;

namespace {

float bits_float(uint32_t u) { return fused_bits_float(u); }

struct Reference {
  std::vector<double> score, dp, dq, dnet;  // dp, dq: (n, E); dnet: PyTorch layout
};

// CpuEngine<double> pair by pair, with the masks of pair k = (k / 2, k % 2).
Reference reference(const TowerSpec& tower, const Params<float>& prm, const std::vector<int32_t>& user,
                    const std::vector<int32_t>& item, const std::vector<float>& dscore, double p_drop) {
  const int E = tower.E;
  const int64_t n = int64_t(user.size());
  CpuEngine<double> eng(ModelKind::ConvNCF, &tower, prm.n_users, prm.n_items, E, 1);
  const std::vector<double> net(prm.net.begin(), prm.net.end());
  std::vector<double> packed(size_t(eng.packed_size())), dpacked(packed.size(), 0.0);
  eng.pack(net.data(), packed.data());
  PairWork<double> w = eng.make_work();
  Reference r;
  r.score.resize(size_t(n));
  r.dp.assign(size_t(n * E), 0.0);
  r.dq.assign(size_t(n * E), 0.0);
  const DropoutSpec spec{p_drop, 5, 11};
  std::vector<double> mask(size_t(tower.last_channels()));
  for (int64_t k = 0; k < n; ++k) {
    const std::vector<double> p(prm.P.begin() + user[size_t(k)] * E, prm.P.begin() + (user[size_t(k)] + 1) * E);
    const std::vector<double> q(prm.Q.begin() + item[size_t(k)] * E, prm.Q.begin() + (item[size_t(k)] + 1) * E);
    for (size_t c = 0; c < mask.size(); ++c) mask[c] = double(float(dropout_scale(spec, k / 2, int(k % 2), int(c))));
    const double* m = p_drop > 0 ? mask.data() : nullptr;
    r.score[size_t(k)] = eng.forward_pair(packed.data(), p.data(), q.data(), m, w);
    eng.backward_pair(packed.data(), p.data(), q.data(), m, double(dscore[size_t(k)]), w, dpacked.data(),
                      r.dp.data() + k * E, r.dq.data() + k * E);
  }
  r.dnet.assign(size_t(tower.n_params), 0.0);
  eng.unpack_add(dpacked.data(), r.dnet.data());
  return r;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

// |got - want| <= tol * max|want| for every element; returns the worst ratio to that bound.
double expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol, const char* what) {
  EXPECT_EQ(got.size(), want.size()) << what;
  const double bound = tol * std::max(max_abs(want), 1e-30);
  double worst = 0;
  int bad = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    const double err = std::abs(double(got[i]) - want[i]);
    worst = std::max(worst, err / bound);
    if (!(err <= bound) && bad++ < 5) ADD_FAILURE() << what << "[" << i << "] = " << got[i] << ", want " << want[i];
  }
  return worst;
}

// The twins from net (packed here), with the reference's dropout seed and step.
TwinOutputs run_twin(const FusedTower& ft, const Params<float>& prm, const Batch& b, int n_blocks, double p_drop,
                     int variant = 1) {
  std::vector<float> packed(size_t(ft.packed_size()), -7.0f);
  fused_pack_cpu(ft, prm.net.data(), packed.data());
  return run_twins(ft, prm, b, packed.data(), n_blocks, DropoutArgs{p_drop, 5, 11}, variant);
}

}  // namespace

TEST(FusedTower, OperandRounding) {
  const float one = 1.0f;
  // tf32: 10 mantissa bits, ties away from zero
  EXPECT_EQ(round_operand(bits_float(0x3f801000u), Precision::TF32), bits_float(0x3f802000u));  // 1 + 2^-11: up
  EXPECT_EQ(round_operand(bits_float(0x3f800fffu), Precision::TF32), one);
  EXPECT_EQ(round_operand(bits_float(0xbf801000u), Precision::TF32), bits_float(0xbf802000u));  // away from zero
  EXPECT_EQ(round_operand(bits_float(0x3f803000u), Precision::TF32), bits_float(0x3f804000u));  // tie, odd: up
  // bf16: 7 mantissa bits, ties to even
  EXPECT_EQ(round_operand(bits_float(0x3f808000u), Precision::BF16), one);                      // tie to even: down
  EXPECT_EQ(round_operand(bits_float(0x3f818000u), Precision::BF16), bits_float(0x3f820000u));  // tie to even: up
  EXPECT_EQ(round_operand(bits_float(0x3f808001u), Precision::BF16), bits_float(0x3f810000u));
  EXPECT_EQ(round_operand(0.1f, Precision::FP32), 0.1f);
  for (Precision p : {Precision::TF32, Precision::BF16}) {
    EXPECT_TRUE(std::isnan(round_operand(std::nanf(""), p)));
    EXPECT_EQ(round_operand(std::numeric_limits<float>::infinity(), p), std::numeric_limits<float>::infinity());
    EXPECT_EQ(round_operand(0.0f, p), 0.0f);
    const float x = 0.1f, r = round_operand(x, p);
    EXPECT_NE(r, x);
    EXPECT_LT(std::abs(r - x), (p == Precision::TF32 ? 0x1p-11f : 0x1p-8f) * x);
  }
  EXPECT_EQ(parse_precision("bf16"), Precision::BF16);
  EXPECT_STREQ(precision_name(Precision::TF32), "tf32");
  try {
    parse_precision("fp16");
    ADD_FAILURE() << "fp16 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitUsage);
  }
}

TEST(FusedTower, SharedMemoryLayoutOfThePresets) {
  // recbole: p, q 128 + U, dU 2 x 16*4*32 + maps 16*16*32, 4*4*32, 2*2*32, 32 + h 32
  const TowerSpec rb = TowerSpec::make(64, {1, 32, 32, 32, 32}, {4, 4, 2, 2}, {4, 4, 2, 2});
  const FusedTower a = make_fused_tower(rb, Precision::FP32, 0);
  EXPECT_EQ(a.smem_floats, 128 + 4096 + 8192 + 512 + 128 + 32 + 32);
  EXPECT_EQ(a.layer[1].act_off, 128 + 4096 + 8192);
  EXPECT_EQ(a.h_off, a.smem_floats - 32);
  // paper: U, dU 2 x 32*2*32; maps 32^2*32 .. 1*32
  const TowerSpec pp = TowerSpec::make(64, {1, 32, 32, 32, 32, 32, 32}, {2, 2, 2, 2, 2, 2}, {2, 2, 2, 2, 2, 2});
  const FusedTower b = make_fused_tower(pp, Precision::BF16, 227 * 1024);
  EXPECT_EQ(b.smem_floats, 128 + 4096 + 32768 + 8192 + 2048 + 512 + 128 + 32 + 32);
  EXPECT_EQ(b.smem_bytes(), size_t(b.smem_floats) * 4);
  EXPECT_LE(b.smem_bytes(), size_t(227 * 1024));  // fits an H100/H200 block
  EXPECT_EQ(b.precision, Precision::BF16);
  // too big for the device, and too deep
  try {
    make_fused_tower(pp, Precision::FP32, 100 * 1024);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitUsage);
    EXPECT_NE(std::string(e.what()).find("engine: cudnn"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("188 KiB"), std::string::npos) << e.what();
  }
  const std::vector<int> ch(18, 1), k(17, 1);
  std::vector<int> chans = ch;
  try {
    make_fused_tower(TowerSpec::make(4, chans, k, k), Precision::FP32, 0);
    ADD_FAILURE() << "17 layers accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitUsage);
  }
}

TEST(FusedTower, PackMatchesCpuEngineAndIndexInverts) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const TowerSpec tower = TowerSpec::make(c.E, c.channels, c.kernels, c.kernels);
    const FusedTower ft = make_fused_tower(tower, Precision::FP32, 0);
    const Params<float> prm = make_params(tower, 1, 1, 3);
    CpuEngine<float> eng(ModelKind::ConvNCF, &tower, 1, 1, c.E, 1);
    std::vector<float> want(size_t(eng.packed_size()), 0.0f), got(size_t(ft.packed_size()), -1.0f);
    ASSERT_EQ(ft.wkt_base % 4, 0);
    ASSERT_GE(ft.wkt_base, tower.n_params);
    ASSERT_LT(ft.wkt_base, tower.n_params + 4);
    eng.pack(prm.net.data(), want.data());
    fused_pack_cpu(ft, prm.net.data(), got.data());
    for (int64_t i = 0; i < tower.n_params; ++i) ASSERT_EQ(got[size_t(i)], want[size_t(i)]) << i;
    for (int64_t i = tower.n_params; i < ft.wkt_base; ++i) EXPECT_EQ(got[size_t(i)], 0.0f) << "padding " << i;
    for (const ConvLayer& l : tower.layers)  // the transposed copies of the conv weights, from wkt_base
      for (int64_t i = l.w_offset; i < l.w_offset + l.w_size(); ++i)
        ASSERT_EQ(got[size_t(ft.wkt_base + i)], want[size_t(tower.n_params + i)]) << i;
    std::vector<int> seen(size_t(tower.n_params), 0);
    for (int64_t i = 0; i < tower.n_params; ++i) {
      const int64_t j = fused_packed_index(ft, i);
      ASSERT_GE(j, 0);
      ASSERT_LT(j, tower.n_params);
      EXPECT_EQ(got[size_t(j)], prm.net[size_t(i)]) << i;
      EXPECT_EQ(fused_unpacked_index(ft, j), i) << "unpacked index of " << j;
      ++seen[size_t(j)];
    }
    EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), tower.n_params) << "not a permutation";
  }
}

// The twins in FP32 against CpuEngine in double: scores, embedding-row gradients and the network
// gradient, with and without dropout, over several block counts (some blocks hold one user's two
// pairs, some split them; some pairs have dscore 0 and are skipped).
TEST(FusedTower, Fp32TwinsMatchCpuEngine) {
  for (const Case& c : cases()) {
    for (const double p_drop : {0.0, 0.25}) {
      SCOPED_TRACE(std::string(c.name) + " dropout " + std::to_string(p_drop));
      const TowerSpec tower = TowerSpec::make(c.E, c.channels, c.kernels, c.kernels);
      const FusedTower ft = make_fused_tower(tower, Precision::FP32, 0);
      const Params<float> prm = make_params(tower, 5, 9, 21);
      const Batch b = make_batch(9, 5, 9, 4);
      const Reference ref = reference(tower, prm, b.user, b.item, b.dscore, p_drop);
      ASSERT_GT(max_abs(ref.dnet), 0.0);
      std::vector<float> first_score;
      for (const int n_blocks : {1, 4, 25}) {
        SCOPED_TRACE("blocks " + std::to_string(n_blocks));
        const TwinOutputs o = run_twin(ft, prm, b, n_blocks, p_drop);
        expect_close(o.score, ref.score, 1e-5, "score");
        expect_close(o.dp, ref.dp, 1e-4, "dp");
        expect_close(o.dq, ref.dq, 1e-4, "dq");
        expect_close(o.dnet, ref.dnet, 1e-4, "dnet");
        if (first_score.empty()) first_score = o.score;
        EXPECT_EQ(o.score, first_score) << "scores depend on the block count";
        for (size_t k = 0; k < b.dscore.size(); ++k)
          if (b.dscore[k] == 0.0f)
            for (int e = 0; e < c.E; ++e) {
              EXPECT_EQ(o.dp[k * size_t(c.E) + size_t(e)], 0.0f);
              EXPECT_EQ(o.dq[k * size_t(c.E) + size_t(e)], 0.0f);
            }
      }
    }
  }
}

// sqrt(sum err^2 / sum want^2)
double rms_ratio(const std::vector<float>& got, const std::vector<double>& want) {
  double e = 0, w = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    e += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    w += want[i] * want[i];
  }
  return std::sqrt(e / std::max(w, 1e-300));
}

// TF32 and BF16 inputs: near the FP32 result, and really rounded. Scores and weight gradients
// move by about the format's rounding. The embedding-row gradients move more (measured on these
// cases: up to 12% of max|dq| for tf32, 24% for bf16, where FP32 is within 5e-7): the forward's
// rounding flips the ReLUs of layer-1 units near zero, and each flip reroutes a whole unit's
// gradient; the RMS error stays at a few percent. A tower of one layer has no rounded product.
// Variant 3's twin (the tensor cores' tile products, maps held in the operand format) and variant
// 4's keep the same bounds.
TEST(FusedTower, ReducedPrecisionTwinsStayNearCpuEngine) {
  for (const Case& c : cases()) {
    const TowerSpec tower = TowerSpec::make(c.E, c.channels, c.kernels, c.kernels);
    const Params<float> prm = make_params(tower, 5, 9, 8);
    const Batch b = make_batch(7, 5, 9, 6);
    const Reference ref = reference(tower, prm, b.user, b.item, b.dscore, 0.0);
    const TwinOutputs fp32 = run_twin(make_fused_tower(tower, Precision::FP32, 0), prm, b, 3, 0.0);
    for (const Precision p : {Precision::TF32, Precision::BF16})
     for (const int variant : {1, 3, 4}) {
      const FusedTower ft = make_fused_tower(tower, p, 0);
      EXPECT_EQ(ft.tc.ok, c.channels.size() > 2) << c.name;
      EXPECT_EQ(ft.tc4.ok, c.channels.size() > 2) << c.name;
      if (variant == 3 && !ft.tc.ok) continue;
      if (variant == 4 && !ft.tc4.ok) continue;
      SCOPED_TRACE(std::string(c.name) + " " + precision_name(p) + " variant " + std::to_string(variant));
      const bool tf = p == Precision::TF32;
      const TwinOutputs o = run_twin(ft, prm, b, 3, 0.0, variant);
      if (c.channels.size() == 2) {
        EXPECT_EQ(o.score, fp32.score) << "layer 1 must stay FP32";
        EXPECT_EQ(o.dnet, fp32.dnet) << "layer 1 must stay FP32";
        continue;
      }
      EXPECT_NE(o.score, fp32.score) << "the precision changed nothing";
      expect_close(o.score, ref.score, tf ? 2e-3 : 2e-2, "score");
      expect_close(o.dnet, ref.dnet, tf ? 2e-2 : 1e-1, "dnet");
      expect_close(o.dp, ref.dp, tf ? 0.25 : 0.5, "dp");
      expect_close(o.dq, ref.dq, tf ? 0.25 : 0.5, "dq");
      EXPECT_LT(rms_ratio(o.dp, ref.dp), tf ? 0.05 : 0.15);
      EXPECT_LT(rms_ratio(o.dq, ref.dq), tf ? 0.1 : 0.25);
      EXPECT_LT(rms_ratio(o.score, ref.score), tf ? 1e-3 : 1e-2);
    }
  }
}

// Variant 2's four-output functions equal four single calls, on every tiled layer of every case,
// in every precision, on maps with zeros (ReLU off) and negatives: the same sums in the same
// order, so only FMA contraction can differ (the host compiler contracts the two differently;
// the difference is a last-bit one, bounded here by 1e-6 of the terms' size).
TEST(FusedTower, FourOutputFunctionsEqualSingleCalls) {
  int tiled_layers = 0;
  for (const Case& c : cases()) {
    const TowerSpec tower = TowerSpec::make(c.E, c.channels, c.kernels, c.kernels);
    const Params<float> prm = make_params(tower, 1, 1, 4);
    for (const Precision prec : {Precision::FP32, Precision::TF32, Precision::BF16}) {
      const FusedTower ft = make_fused_tower(tower, prec, 0);
      std::vector<float> packed(size_t(ft.packed_size()));
      fused_pack_cpu(ft, prm.net.data(), packed.data());
      Rng rng(7, 3);
      for (int li = 1; li < ft.L; ++li) {
        const FusedLayer& l = ft.layer[li];
        for (int a = 0; a < li; ++a) EXPECT_EQ(ft.layer[a].act_off % 4, 0);
        if (!l.tiled) continue;
        tiled_layers += prec == Precision::FP32;
        SCOPED_TRACE(std::string(c.name) + " layer " + std::to_string(li + 1) + " " + precision_name(prec));
        std::vector<float> X(size_t(l.in_size) * l.in_size * l.cin), G(size_t(l.out_size) * l.out_size * l.cout);
        for (float& v : X) v = rng.uniform() < 0.3 ? 0.0f : float(rng.uniform());
        for (float& v : G) v = float(rng.uniform() - 0.5);
        // every term is below 1 in size, so a sum of K of them rounds within K * 2^-24
        const double tol = 1e-6 * double(l.k * l.k * std::max(l.cin, l.cout) + l.out_size * l.out_size);
        for (int pos = 0; pos < l.out_size * l.out_size; ++pos)
          for (int co0 = 0; co0 < l.cout; co0 += 4) {
            float o[4];
            fused_conv4(ft, li, packed.data(), X.data(), pos, co0, o);
            for (int q = 0; q < 4; ++q)
              ASSERT_NEAR(o[q], fused_conv(ft, li, packed.data(), X.data(), pos * l.cout + co0 + q), tol) << pos << " " << co0;
          }
        for (int kk = 0; kk < l.k * l.k * l.cin; ++kk)
          for (int co0 = 0; co0 < l.cout; co0 += 4) {
            float a[4];
            fused_dW4(ft, li, G.data(), X.data(), kk, co0, a);
            for (int q = 0; q < 4; ++q)
              ASSERT_NEAR(a[q], fused_dW(ft, li, G.data(), X.data(), kk * l.cout + co0 + q), tol) << kk << " " << co0;
          }
        for (int pin = 0; pin < l.in_size * l.in_size; ++pin)
          for (int ci0 = 0; ci0 < l.cin; ci0 += 4) {
            float o[4];
            fused_dX4(ft, li, packed.data(), G.data(), X.data(), pin, ci0, o);
            for (int q = 0; q < 4; ++q)
              ASSERT_NEAR(o[q], fused_dX(ft, li, packed.data(), G.data(), X.data(), pin * l.cin + ci0 + q), tol) << pin;
            for (int q = 0; q < 4; ++q)  // the ReLU mask exactly
              ASSERT_EQ(o[q] == 0.0f, X[size_t(pin * l.cin + ci0 + q)] == 0.0f) << pin;
          }
      }
    }
  }
  EXPECT_GE(tiled_layers, 3 + 5) << "the presets' layers 2..L should all be tiled";
}

// Variant 3's layout: map 0's rows are a permutation of its positions, in which every patch of
// layer 2 is one row; the padded sizes; the tiles; the packed operand-format weights.
TEST(FusedTower, TensorCoreLayout) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const TowerSpec tower = TowerSpec::make(c.E, c.channels, c.kernels, c.kernels);
    EXPECT_FALSE(make_fused_tower(tower, Precision::FP32, 0).tc.ok) << "fp32 keeps the FP32 cores";
    for (const Precision prec : {Precision::TF32, Precision::BF16}) {
      const FusedTower ft = make_fused_tower(tower, prec, 0);
      if (ft.L < 2) {
        EXPECT_FALSE(ft.tc.ok);
        EXPECT_EQ(ft.packed_size(), ft.wkt_base + ft.n_params);
        continue;
      }
      ASSERT_TRUE(ft.tc.ok);
      const FusedTc& tc = ft.tc;
      const int S = ft.layer[0].out_size, k2 = ft.layer[1].k;
      std::vector<int> seen(size_t(S * S), 0);
      for (int x = 0; x < S; ++x)
        for (int y = 0; y < S; ++y) {
          const int q = fused_tc_row(ft, x, y);
          ASSERT_GE(q, 0);
          ASSERT_LT(q, S * S);
          ++seen[size_t(q)];
          // the row of layer 2's patch: q / k2^2 is the output position's row, q % k2^2 = r*k2 + s
          EXPECT_EQ(q % (k2 * k2), (x % k2) * k2 + y % k2);
        }
      EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), S * S) << "not a permutation";
      EXPECT_EQ(tc.np0 % 16, 0);
      int tiles = 0;
      for (int li = 1; li < ft.L; ++li) {
        const FusedTcLayer& l = tc.layer[li];
        EXPECT_EQ(l.rows, ft.layer[li].out_size * ft.layer[li].out_size);
        EXPECT_EQ(l.mrows % 16, 0);
        EXPECT_GE(l.mrows, l.rows);
        EXPECT_EQ(l.np % 16, 0);
        EXPECT_EQ(l.kp, ft.layer[li].k * ft.layer[li].k * (li == 1 ? tc.np0 : tc.layer[li - 1].np));
        EXPECT_EQ(l.tile0, tiles);
        EXPECT_EQ(l.w_off % 8, 0);
        EXPECT_EQ(tc.layer[li - 1].map_off % 8, 0);
        tiles += l.kp / 16 * (l.np / 16);
      }
      EXPECT_EQ(tc.tiles, tiles);
      for (int j = 0; j < tiles; ++j) {
        const FusedTcTile t = fused_tc_tile(ft, j);
        EXPECT_EQ(tc.layer[t.li].tile0 + t.kt * (tc.layer[t.li].np / 16) + t.nt, j);
      }
      EXPECT_LT(tc.glast_off, tc.stage_off);
      EXPECT_LE(tc.smem_floats, 64 * 1024);
      // the packed weights: each real weight once, rounded, at its padded place; padding 0
      const Params<float> prm = make_params(tower, 1, 1, 4);
      std::vector<float> packed(size_t(ft.packed_size()), -1.0f);
      fused_pack_cpu(ft, prm.net.data(), packed.data());
      int64_t real = 0;
      for (int li = 1; li < ft.L; ++li) {
        const FusedTcLayer& l = tc.layer[li];
        for (int kk = 0; kk < l.kp; ++kk)
          for (int co = 0; co < l.np; ++co) {
            const int64_t e = int64_t(kk) * l.np + co, j = fused_tc_weight_index(ft, li, kk, co);
            float v;
            if (prec == Precision::TF32) {
              v = packed[size_t(l.w_off + e)];
            } else {
              uint16_t h[2];
              std::memcpy(h, &packed[size_t(l.w_off + e / 2)], sizeof h);
              v = fused_bf16_float(h[e % 2]);
            }
            if (j < 0) {
              ASSERT_EQ(v, 0.0f) << li << " " << kk << " " << co;
            } else {
              ++real;
              ASSERT_EQ(v, round_operand(prm.net[size_t(fused_unpacked_index(ft, j))], prec)) << li << " " << kk;
            }
          }
      }
      int64_t conv_weights = 0;
      for (size_t li = 1; li < tower.layers.size(); ++li) conv_weights += tower.layers[li].w_size();
      EXPECT_EQ(real, conv_weights);
    }
  }
  // the presets: the tiles fit the registers; variant 3's shared memory
  const TowerSpec rb = TowerSpec::make(64, {1, 32, 32, 32, 32}, {4, 4, 2, 2}, {4, 4, 2, 2});
  const FusedTower r = make_fused_tower(rb, Precision::TF32, 227 * 1024);
  EXPECT_EQ(r.tc.tiles, 96);
  EXPECT_TRUE(r.tc.ok);
  EXPECT_EQ(fused_engine_variant(r), 4) << "variant 4 where it applies";
  EXPECT_EQ(fused_engine_variant(make_fused_tower(rb, Precision::FP32, 0)), 2);
  const TowerSpec pp = TowerSpec::make(64, {1, 32, 32, 32, 32, 32, 32}, {2, 2, 2, 2, 2, 2}, {2, 2, 2, 2, 2, 2});
  const FusedTower pb = make_fused_tower(pp, Precision::BF16, 227 * 1024);
  EXPECT_EQ(pb.tc.tiles, 80);
  EXPECT_TRUE(pb.tc.ok);
  // a tower with more weight-gradient tiles than the registers hold runs variant 2
  const TowerSpec wide = TowerSpec::make(16, {1, 64, 128}, {2, 2}, {2, 2});
  const FusedTower w = make_fused_tower(wide, Precision::TF32, 0);
  EXPECT_GT(w.tc.tiles, kFusedWarps * kFusedTcSlots);
  EXPECT_FALSE(w.tc.ok);
  EXPECT_EQ(fused_engine_variant(w), 2);
}

TEST(FusedTower, ArgumentChecks) {
  const TowerSpec tower = TowerSpec::make(4, {1, 3}, {2}, {2});
  const FusedTower ft = make_fused_tower(tower, Precision::FP32, 0);
  std::vector<float> v(64, 0.0f), partial(size_t(ft.n_params), 0.0f);
  std::vector<int32_t> ids(2, 0);
  auto code = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.code();
    }
    return 0;
  };
  EXPECT_EQ(code([&] {
              fused_tower_fwd_cpu(ft, 2, 0, ids.data(), ids.data(), v.data(), v.data(), v.data(), {}, v.data());
            }),
            kExitSoftware);
  EXPECT_EQ(code([&] {
              fused_tower_fwd_cpu(ft, 2, 1, nullptr, ids.data(), v.data(), v.data(), v.data(), {}, v.data());
            }),
            kExitSoftware);
  EXPECT_EQ(code([&] { fused_tower_fwd_cpu(FusedTower{}, 2, 1, ids.data(), ids.data(), v.data(), v.data(), v.data(), {}, v.data()); }),
            kExitSoftware);
  // variant 3 only where the tower has a tensor-core layout
  EXPECT_EQ(code([&] {
              fused_tower_fwd_cpu(ft, 2, 1, ids.data(), ids.data(), v.data(), v.data(), v.data(), {}, v.data(), 3);
            }),
            kExitSoftware);
  EXPECT_EQ(code([&] {
              fused_tower_fwd_cpu(ft, 2, 1, ids.data(), ids.data(), v.data(), v.data(), v.data(), {}, v.data(), 4);
            }),
            kExitSoftware);
  // no pairs: nothing read, the block slices still zeroed
  std::fill(partial.begin(), partial.end(), 3.0f);
  fused_tower_bwd_cpu(ft, 0, 1, nullptr, nullptr, nullptr, nullptr, nullptr, {}, nullptr, nullptr, nullptr,
                      partial.data());
  EXPECT_EQ(partial, std::vector<float>(partial.size(), 0.0f));
}

// Variant 4's layouts: the automatic choice (stack0, group, chunks) on every case, and the
// overrides; the stacked layers' rows fill whole tiles; the chunks partition layer 2's rows and map
// 0's rows, and each box holds its chunk's positions; the arrays lie in order, 32-byte aligned.
TEST(FusedTower, GroupedTensorCoreLayout) {
  for (const Case& c : cases()) {
    const TowerSpec tower = TowerSpec::make(c.E, c.channels, c.kernels, c.kernels);
    EXPECT_FALSE(make_fused_tower(tower, Precision::FP32, 0).tc4.ok) << "fp32 keeps the FP32 cores";
    for (const Precision prec : {Precision::TF32, Precision::BF16}) {
      const FusedTower base = make_fused_tower(tower, prec, 227 * 1024);
      if (base.L < 2) {
        EXPECT_FALSE(base.tc4.ok);
        continue;
      }
      ASSERT_TRUE(base.tc4.ok) << c.name;
      EXPECT_EQ(fused_engine_variant(base), 4);
      EXPECT_EQ(fused_engine_smem_bytes(base), base.tc4.smem_bytes());
      // the automatic stack0: the first layer whose rows are not whole tiles, if it is layer 2 or 3
      int first = base.L;
      for (int li = 1; li < base.L; ++li)
        if (base.tc.layer[li].rows % 16 != 0) {
          first = li;
          break;
        }
      EXPECT_EQ(base.tc4.stack0, first <= 2 ? first : base.L) << c.name;
      std::vector<FusedTc4Choice> choices = {{}, {base.L, 0}, {base.L, 1}, {1, 0}};
      if (base.L > 2 && base.tc.layer[1].rows % 16 == 0) choices.push_back({2, 3});
      for (const FusedTc4Choice& choice : choices) {
        const FusedTower ft = make_fused_tower(tower, prec, 0, choice);
        SCOPED_TRACE(std::string(c.name) + " " + precision_name(prec) + " stack0 " + std::to_string(choice.stack0) +
                     " chunk_tiles " + std::to_string(choice.chunk_tiles));
        ASSERT_TRUE(ft.tc4.ok);
        const FusedTc4& v = ft.tc4;
        const FusedTc& tc = ft.tc;
        if (choice.stack0 != 0) {
          EXPECT_EQ(v.stack0, choice.stack0);
        }
        EXPECT_EQ(v.group == 1, v.stack0 == ft.L);
        for (int li = v.stack0; li < ft.L; ++li) EXPECT_EQ(v.group * tc.layer[li].rows % 16, 0) << "layer " << li + 1;
        EXPECT_LE(v.group, 16);
        // the chunks partition layer 2's rows and map 0's
        const int S = ft.layer[0].out_size, k2 = ft.layer[1].k;
        if (v.stack0 >= 2) {
          if (choice.chunk_tiles > 0) {
            EXPECT_EQ(v.chunk_tiles, std::min(choice.chunk_tiles, (tc.layer[1].rows + 15) / 16));
          }
          int row = 0, r = 0;
          std::vector<int> posq(size_t(S * S)), rowq(size_t(S * S));
          for (int i = 0; i < S * S; ++i) {
            rowq[size_t(i)] = fused_tc_row(ft, i / S, i % S);
            posq[size_t(rowq[size_t(i)])] = i;
          }
          for (int ch = 0; ch < v.chunks; ++ch) {
            const FusedTc4Chunk k = fused_tc4_chunk(ft, ch);
            EXPECT_EQ(k.row0, row);
            EXPECT_EQ(k.r0, r);
            EXPECT_GE(k.rows, 1);
            EXPECT_LE(k.tiles, v.chunk_tiles);
            EXPECT_EQ(k.r1 - k.r0, k.rows * k2 * k2);
            row += k.rows;
            r = k.r1;
            const FusedTc4Box b = fused_tc4_box(ft, posq.data(), ch);
            int inside = 0;
            for (int x = 0; x < S; ++x)
              for (int y = 0; y < S; ++y) {
                const int q = rowq[size_t(x * S + y)];
                const bool in_chunk = q >= k.r0 && q < k.r1;
                const bool in_box = x >= b.x0 && x < b.x1 && y >= b.y0 && y < b.y1;
                if (in_chunk) {
                  EXPECT_TRUE(in_box) << x << " " << y;
                }
                inside += in_box;
              }
            EXPECT_GE(inside, k.r1 - k.r0);
          }
          EXPECT_EQ(row, tc.layer[1].rows);
          EXPECT_EQ(r, S * S);
        } else {
          EXPECT_EQ(v.chunks, 0);
        }
        // the arrays: in order, 32-byte aligned, within the block's shared memory
        std::vector<int> offs = {v.map_off[0]};
        for (int li = 1; li + 1 < ft.L; ++li) offs.push_back(v.map_off[li]);
        for (const int o : {v.last_off, v.glast_off, v.stage_off, v.rowq_off, v.posq_off, v.box_off, v.slot_off,
                            v.h_off, v.dq_off, v.db1_off})
          offs.push_back(o);
        EXPECT_GE(offs[0], ft.du_off + ft.u_size());
        for (size_t i = 0; i < offs.size(); ++i) {
          EXPECT_EQ(offs[i] % 8, 0) << i;
          if (i > 0) {
            EXPECT_GE(offs[i], offs[i - 1]) << i;
          }
        }
        EXPECT_GE(v.smem_floats, v.db1_off + ft.layer[0].cout);
        // room for the chunk buffer, the stacked maps' `group` slots, the last gradient's
        const int per_float = prec == Precision::BF16 ? 2 : 1;
        auto room = [&](int li) {  // operand elements between map li and the next array
          return int64_t((li + 2 < ft.L ? v.map_off[li + 1] : v.last_off) - v.map_off[li]) * per_float;
        };
        if (v.stack0 >= 2) {
          EXPECT_GE(room(0), int64_t(v.chunk_tiles) * 16 * tc.layer[1].kp);
        }
        for (int li = std::max(0, v.stack0 - 1); li + 1 < ft.L; ++li)
          EXPECT_GE(room(li), v.group * fused_tc4_slot(ft, li));
        EXPECT_GE(int64_t(v.stage_off - v.glast_off) * per_float, v.group * fused_tc4_slot(ft, ft.L - 1));
      }
    }
  }
  // the presets: recbole stacks layers 3 and 4 over 16 pairs, layer 1 in one chunk; the paper tower
  // stacks nothing and never holds its whole first map (32 x 32 positions x 32 channels)
  const TowerSpec rb = TowerSpec::make(64, {1, 32, 32, 32, 32}, {4, 4, 2, 2}, {4, 4, 2, 2});
  const TowerSpec pp = TowerSpec::make(64, {1, 32, 32, 32, 32, 32, 32}, {2, 2, 2, 2, 2, 2}, {2, 2, 2, 2, 2, 2});
  for (const Precision prec : {Precision::TF32, Precision::BF16}) {
    const FusedTower r = make_fused_tower(rb, prec, 227 * 1024);
    EXPECT_EQ(r.tc4.stack0, 2);
    EXPECT_EQ(r.tc4.group, 16);
    EXPECT_EQ(r.tc4.chunks, 1);
    const FusedTower p = make_fused_tower(pp, prec, 227 * 1024);
    EXPECT_EQ(p.tc4.stack0, p.L);
    EXPECT_EQ(p.tc4.group, 1);
    EXPECT_GT(p.tc4.chunks, 1);
    const int64_t elem = prec == Precision::BF16 ? 2 : 4;
    EXPECT_LT(int64_t(p.tc4.map_off[1] - p.tc4.map_off[0]) * 4, 32 * 32 * 32 * elem) << "the whole first map";
    EXPECT_LT(p.tc4.smem_bytes(), p.tc.smem_bytes());
    EXPECT_LE(2 * (p.tc4.smem_bytes() + 1024), size_t(228 * 1024)) << "two blocks per SM";
  }
  // overrides it cannot take
  auto code = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.code();
    }
    return 0;
  };
  const TowerSpec odd = TowerSpec::make(8, {1, 3, 5}, {4, 2}, {4, 2});
  EXPECT_EQ(code([&] { make_fused_tower(rb, Precision::TF32, 0, {3, 0}); }), kExitSoftware);  // layer 4: no
  EXPECT_EQ(code([&] { make_fused_tower(pp, Precision::TF32, 0, {2, 0}); }), 0);
  EXPECT_EQ(code([&] { make_fused_tower(odd, Precision::FP32, 0, {1, 0}); }), kExitSoftware);  // no tensor cores
  EXPECT_EQ(code([&] { make_fused_tower(rb, Precision::BF16, 0, {0, -1}); }), kExitSoftware);
}

// Variant 4's twins sum like variant 3's: the same scores always, and the same gradients bit for bit
// where layer 1 is one chunk; with several chunks only layer 1's gradient sums (dW1, db1, dp, dq)
// differ, by rounding. Over block counts that give partial groups, blocks without pairs, pairs with
// dscore 0 and groups of several users, with dropout, in every layout the tower can take.
TEST(FusedTower, GroupedTwinsSumAsVariant3) {
  int multi_chunk = 0, stacked = 0;
  std::vector<LayoutCase> runs;
  for (const Case& c : cases()) runs.push_back({c, {}});
  for (const LayoutCase& lc : layout_cases()) runs.push_back(lc);
  runs.push_back({cases()[1], {6, 1}});  // the paper tower in chunks of one tile
  for (const LayoutCase& run : runs) {
    const Case& c = run.tower;
    const TowerSpec tower = TowerSpec::make(c.E, c.channels, c.kernels, c.kernels);
    if (tower.layers.size() < 2) continue;
    const Params<float> prm = make_params(tower, 5, 9, 13);
    const Batch b = make_batch(c.E == 64 ? 9 : 23, 5, 9, 8);
    const int64_t n = int64_t(b.user.size());
    for (const Precision prec : {Precision::TF32, Precision::BF16}) {
      for (const FusedTc4Choice& choice : {run.choice}) {
        const FusedTower ft = make_fused_tower(tower, prec, 227 * 1024, choice);
        ASSERT_TRUE(ft.tc4.ok) << c.name << " " << precision_name(prec) << " stack0 " << choice.stack0;
        multi_chunk += ft.tc4.chunks > 1;
        stacked += ft.tc4.group > 1;
        std::vector<float> packed(size_t(ft.packed_size()));
        fused_pack_cpu(ft, prm.net.data(), packed.data());
        for (const int n_blocks : {1, 3, int(n) + 4}) {
          SCOPED_TRACE(std::string(c.name) + " " + precision_name(prec) + " stack0 " + std::to_string(ft.tc4.stack0) +
                       " chunks " + std::to_string(ft.tc4.chunks) + " blocks " + std::to_string(n_blocks));
          const DropoutArgs drop{0.3, 3, 8};
          const TwinOutputs v3 = run_twins(ft, prm, b, packed.data(), n_blocks, drop, 3);
          const TwinOutputs v4 = run_twins(ft, prm, b, packed.data(), n_blocks, drop, 4);
          EXPECT_EQ(std::memcmp(v4.score.data(), v3.score.data(), v3.score.size() * 4), 0) << "scores";
          if (ft.tc4.chunks <= 1) {
            EXPECT_EQ(std::memcmp(v4.dp.data(), v3.dp.data(), v3.dp.size() * 4), 0) << "dp";
            EXPECT_EQ(std::memcmp(v4.dq.data(), v3.dq.data(), v3.dq.size() * 4), 0) << "dq";
            EXPECT_EQ(std::memcmp(v4.dnet.data(), v3.dnet.data(), v3.dnet.size() * 4), 0) << "dnet";
            continue;
          }
          const ConvLayer& l1 = tower.layers[0];
          for (size_t i = 0; i < v3.dnet.size(); ++i) {
            const int64_t j = int64_t(i);
            if ((j >= l1.w_offset && j < l1.w_offset + l1.w_size()) || (j >= l1.b_offset && j < l1.b_offset + l1.cout))
              continue;  // layer 1's weights and bias
            ASSERT_EQ(std::memcmp(&v4.dnet[i], &v3.dnet[i], 4), 0) << "dnet " << i;
          }
          auto near = [](const std::vector<float>& a, const std::vector<float>& w, const char* what) {
            double m = 0;
            for (float x : w) m = std::max(m, double(std::fabs(x)));
            for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], w[i], 1e-5 * m) << what << " " << i;
          };
          near(v4.dp, v3.dp, "dp");
          near(v4.dq, v3.dq, "dq");
          near(v4.dnet, v3.dnet, "dnet");
          EXPECT_NE(v4.dq, v3.dq) << "several chunks summed as one";
        }
      }
    }
  }
  EXPECT_GT(multi_chunk, 0);
  EXPECT_GT(stacked, 0);
}
