// test_cpu_engine.cpp: the CPU reference engine checked against itself and by hand.
// - the fast tower (rank-1 layer 1, channels-last patches) equals the explicit-map definition;
// - finite differences in double for every gradient: both presets, three other towers, dropout
//   off and on (fixed masks), both regularization forms, MF-BPR;
// - the float kernels against the double ones; a score independent of the items scored with it;
// - the stable BPR loss; determinism; the thread count asked for.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include "convncf/cpu_engine.hpp"
#include "convncf/errors.hpp"
#include "convncf/options.hpp"
#include "convncf/rng.hpp"

using namespace convncf;

namespace {

struct TowerCase {
  const char* name;
  int E;
  std::vector<int> channels, kernels;
};

const std::vector<TowerCase>& tower_cases() {
  static const std::vector<TowerCase> cases = {
      {"recbole", 64, {1, 32, 32, 32, 32}, {4, 4, 2, 2}},
      {"paper", 64, {1, 32, 32, 32, 32, 32, 32}, {2, 2, 2, 2, 2, 2}},
      {"two_layer_8x8", 64, {1, 8, 4}, {8, 8}},
      {"odd_16", 16, {1, 4, 6, 5}, {2, 4, 2}},
      {"last_map_2x2", 12, {1, 3, 5}, {3, 2}},  // 12 -> 4 -> 2: the last map is summed
  };
  return cases;
}

Config config_for(ModelKind model, InitKind init) {
  Config c;
  c.model = model;
  c.init = init;
  c.seed = 7;
  return c;
}

Params<double> to_double(const Params<float>& f) {
  Params<double> d;
  d.model = f.model;
  d.E = f.E;
  d.n_users = f.n_users;
  d.n_items = f.n_items;
  d.P.assign(f.P.begin(), f.P.end());
  d.Q.assign(f.Q.begin(), f.Q.end());
  d.net.assign(f.net.begin(), f.net.end());
  return d;
}

// A batch with repeated users and items, so row gradients must be summed.
struct Triples {
  std::vector<int32_t> u{0, 1, 0, 2, 3}, p{1, 2, 3, 1, 0}, n{4, 0, 1, 3, 2};
  TripleBatch batch() const { return {u.data(), p.data(), n.data(), int64_t(u.size())}; }
};

double total(const LossParts& l) { return l.bpr + l.reg; }

// Central differences on `count` coordinates of `v` (all when count < 0, else a seeded sample).
void check_fd(const char* what, std::vector<double>& v, const std::vector<double>& analytic,
              const std::function<double()>& f, int count, uint64_t seed) {
  ASSERT_EQ(v.size(), analytic.size());
  std::vector<size_t> idx;
  if (count < 0 || size_t(count) >= v.size()) {
    for (size_t i = 0; i < v.size(); ++i) idx.push_back(i);
  } else {
    Rng rng(seed, 99);
    for (int i = 0; i < count; ++i) idx.push_back(rng.index(uint32_t(v.size())));
  }
  double max_err = 0, max_g = 0;
  size_t worst = 0;
  for (size_t i : idx) {
    const double x0 = v[i];
    const double h = 1e-6 * std::max(1.0, std::abs(x0));
    v[i] = x0 + h;
    const double fp = f();
    v[i] = x0 - h;
    const double fm = f();
    v[i] = x0;
    const double fd = (fp - fm) / (2 * h);
    const double err = std::abs(fd - analytic[i]) / (1e-6 + 1e-4 * std::abs(analytic[i]) + 1e-4 * std::abs(fd));
    max_g = std::max(max_g, std::abs(analytic[i]));
    if (err > max_err) {
      max_err = err;
      worst = i;
    }
  }
  EXPECT_LE(max_err, 1.0) << what << ": worst index " << worst << " analytic " << analytic[worst];
  EXPECT_GT(max_g, 0.0) << what << ": every checked gradient is zero, the test would pass on nothing";
}

struct GradCase {
  ModelKind model;
  TowerCase tower;
  RegType reg_type;
  std::vector<double> reg_weights;
  double dropout;
  InitKind init;
};

void run_grad_case(const GradCase& gc) {
  SCOPED_TRACE(std::string(gc.tower.name) + (gc.reg_type == RegType::Norm ? " norm" : " squared") +
               " dropout " + std::to_string(gc.dropout));
  const int32_t n_users = 4, n_items = 5;
  TowerSpec tower;
  const TowerSpec* tp = nullptr;
  if (gc.model == ModelKind::ConvNCF) {
    tower = TowerSpec::make(gc.tower.E, gc.tower.channels, gc.tower.kernels, gc.tower.kernels);
    tp = &tower;
  }
  Config cfg = config_for(gc.model, gc.init);
  cfg.embedding_size = gc.tower.E;
  Params<double> prm = to_double(init_params(cfg, tp, n_users, n_items));
  if (gc.init == InitKind::Paper)  // tiny embeddings give tiny signals: scale them up for FD
    for (auto* t : {&prm.P, &prm.Q})
      for (double& x : *t) x *= 30;
  CpuEngine<double> eng(gc.model, tp, n_users, n_items, gc.tower.E, 2);
  Triples tr;
  RegSpec reg{gc.reg_type, gc.reg_weights, true};
  DropoutSpec drop{gc.dropout, 11, 3};
  const LossParts lp = eng.compute(prm, tr.batch(), reg, drop);
  ASSERT_TRUE(std::isfinite(total(lp)));
  const Gradients<double> g = eng.grads();
  auto f = [&] { return total(eng.loss(prm, tr.batch(), reg, drop)); };
  EXPECT_NEAR(total(eng.loss(prm, tr.batch(), reg, drop)), total(lp), 1e-9 * std::abs(total(lp)));
  check_fd("P", prm.P, g.P, f, -1, 1);
  check_fd("Q", prm.Q, g.Q, f, -1, 2);
  if (gc.model == ModelKind::ConvNCF) {
    const bool small = tower.n_params < 3000;
    check_fd("net", prm.net, g.net, f, small ? -1 : 400, 3);
    // every layer's weights and biases, the output layer included, get checked coordinates
    for (const ConvLayer& l : tower.layers) {
      std::vector<double> sub_g(g.net.begin() + l.b_offset, g.net.begin() + l.b_offset + l.cout);
      double m = 0;
      for (double x : sub_g) m = std::max(m, std::abs(x));
      EXPECT_GT(m, 0.0) << "bias gradient of a layer is all zero";
    }
    for (int64_t i = tower.out_w_offset; i < tower.n_params; ++i) {
      const double x0 = prm.net[size_t(i)];
      const double h = 1e-6;
      prm.net[size_t(i)] = x0 + h;
      const double fp = f();
      prm.net[size_t(i)] = x0 - h;
      const double fm = f();
      prm.net[size_t(i)] = x0;
      EXPECT_NEAR((fp - fm) / (2 * h), g.net[size_t(i)], 1e-6 + 1e-4 * std::abs(g.net[size_t(i)]));
    }
  }
}

}  // namespace

TEST(CpuEngine, FastTowerMatchesExplicitMap) {
  for (const TowerCase& tc : tower_cases()) {
    SCOPED_TRACE(tc.name);
    const TowerSpec tower = TowerSpec::make(tc.E, tc.channels, tc.kernels, tc.kernels);
    Config cfg = config_for(ModelKind::ConvNCF, InitKind::PyTorch);
    cfg.embedding_size = tc.E;
    const Params<double> prm = to_double(init_params(cfg, &tower, 3, 3));
    CpuEngine<double> eng(ModelKind::ConvNCF, &tower, 3, 3, tc.E, 1);
    std::vector<double> packed(size_t(eng.packed_size()));
    eng.pack(prm.net.data(), packed.data());
    PairWork<double> w;
    w.resize(tower);
    std::vector<double> mask(size_t(tower.last_channels()));
    for (size_t c = 0; c < mask.size(); ++c) mask[c] = (c % 3 == 0) ? 0.0 : 1.25;
    int nonzero = 0;
    for (int u = 0; u < 3; ++u)
      for (int i = 0; i < 3; ++i) {
        const double* p = prm.P.data() + u * tc.E;
        const double* q = prm.Q.data() + i * tc.E;
        for (const double* m : {static_cast<const double*>(nullptr), static_cast<const double*>(mask.data())}) {
          const double fast = eng.forward_pair(packed.data(), p, q, m, w);
          const double ref = convncf_score_naive(tower, prm.net.data(), p, q, m);
          EXPECT_NEAR(fast, ref, 1e-12 * (1 + std::abs(ref)));
          nonzero += std::abs(ref - prm.net[size_t(tower.out_b_offset)]) > 1e-9;
        }
      }
    EXPECT_GT(nonzero, 0) << "every score equals the output bias: the tower is dead";
  }
}

// The float kernels (three patch rows per register block, and the blocks of two and one that
// finish a layer) against the double ones (one row per block): loss and every gradient of a
// batch, both presets and a small tower (the plain loops).
TEST(CpuEngine, FloatKernelsMatchDouble) {
  for (const size_t ci : {size_t(0), size_t(1), size_t(3)}) {
    const TowerCase& tc = tower_cases()[ci];
    SCOPED_TRACE(tc.name);
    const TowerSpec tower = TowerSpec::make(tc.E, tc.channels, tc.kernels, tc.kernels);
    Config cfg = config_for(ModelKind::ConvNCF, InitKind::PyTorch);
    cfg.embedding_size = tc.E;
    const int32_t U = 7, I = 9;
    const Params<float> pf = init_params(cfg, &tower, U, I);
    const Params<double> pd = to_double(pf);
    std::vector<int32_t> u, p, n;
    Rng rng(5, 1);
    for (int t = 0; t < 11; ++t) {
      u.push_back(int32_t(rng.index(U)));
      p.push_back(int32_t(rng.index(I)));
      n.push_back(int32_t(rng.index(I)));
    }
    const TripleBatch b{u.data(), p.data(), n.data(), int64_t(u.size())};
    const RegSpec reg{RegType::Norm, {0.1, 0.1}, true};
    const DropoutSpec drop{0.2, 3, 4};
    CpuEngine<float> ef(ModelKind::ConvNCF, &tower, U, I, tc.E, 2);
    CpuEngine<double> ed(ModelKind::ConvNCF, &tower, U, I, tc.E, 2);
    const LossParts lf = ef.compute(pf, b, reg, drop), ld = ed.compute(pd, b, reg, drop);
    EXPECT_NEAR(lf.bpr, ld.bpr, 1e-4 * (1 + std::abs(ld.bpr)));
    auto expect_close = [](const char* what, const std::vector<float>& f, const std::vector<double>& d) {
      ASSERT_EQ(f.size(), d.size()) << what;
      double big = 0, worst = 0;
      size_t at = 0;
      for (size_t i = 0; i < d.size(); ++i) {
        big = std::max(big, std::abs(d[i]));
        if (std::abs(double(f[i]) - d[i]) > worst) worst = std::abs(double(f[i]) - d[i]), at = i;
      }
      EXPECT_GT(big, 0.0) << what << ": all zero, the test would pass on nothing";
      EXPECT_LE(worst, 1e-4 * big) << what << "[" << at << "] = " << f[at] << ", double " << d[at];
    };
    expect_close("P", ef.grads().P, ed.grads().P);
    expect_close("Q", ef.grads().Q, ed.grads().Q);
    expect_close("net", ef.grads().net, ed.grads().net);
  }
}

// A score is one chain of operations in a fixed order whatever the other items pushed through
// the tower with it: score_items (kScorePairs items at a time, then the rest) equals
// forward_pair on each item alone, bit for bit, in either order of the items.
TEST(CpuEngine, ScoresDoNotDependOnTheirBatch) {
  for (const size_t ci : {size_t(0), size_t(1), size_t(3)}) {
    const TowerCase& tc = tower_cases()[ci];
    SCOPED_TRACE(tc.name);
    const TowerSpec tower = TowerSpec::make(tc.E, tc.channels, tc.kernels, tc.kernels);
    Config cfg = config_for(ModelKind::ConvNCF, InitKind::PyTorch);
    cfg.embedding_size = tc.E;
    const int32_t U = 2, I = 2 * CpuEngine<float>::kScorePairs + 3;
    const Params<float> prm = init_params(cfg, &tower, U, I);
    CpuEngine<float> eng(ModelKind::ConvNCF, &tower, U, I, tc.E, 1);
    eng.prepare_scoring(prm);
    PairWork<float> w = eng.make_work();
    std::vector<int32_t> items(static_cast<size_t>(I)), reversed(static_cast<size_t>(I));
    for (int32_t i = 0; i < I; ++i) items[size_t(i)] = i, reversed[size_t(i)] = I - 1 - i;
    std::vector<float> out(static_cast<size_t>(I)), out_rev(static_cast<size_t>(I));
    eng.score_items(prm, 1, items.data(), I, out.data(), w);
    eng.score_items(prm, 1, reversed.data(), I, out_rev.data(), w);
    std::vector<float> packed(static_cast<size_t>(eng.packed_size()));
    eng.pack(prm.net.data(), packed.data());
    PairWork<float> one;
    one.resize(tower);
    std::vector<float> distinct;
    for (int32_t i = 0; i < I; ++i) {
      const float alone = eng.forward_pair(packed.data(), prm.P.data() + tc.E, prm.Q.data() + int64_t(i) * tc.E,
                                           nullptr, one);
      EXPECT_EQ(out[size_t(i)], alone) << "item " << i;
      EXPECT_EQ(out_rev[size_t(I - 1 - i)], alone) << "item " << i;
      distinct.push_back(alone);
    }
    std::sort(distinct.begin(), distinct.end());
    EXPECT_GT(std::unique(distinct.begin(), distinct.end()) - distinct.begin(), I / 2) << "a dead tower";
  }
}

// --threads and OpenMP's own settings: the engine asks for the threads it was given, else for
// omp_get_max_threads() (OMP_NUM_THREADS, or omp_set_num_threads as the commands call it for
// --threads), and its step runs on a team of that size.
TEST(CpuEngine, ThreadsAsAskedElseOpenMPsDefault) {
  const TowerCase& tc = tower_cases()[3];
  const TowerSpec tower = TowerSpec::make(tc.E, tc.channels, tc.kernels, tc.kernels);
  Config cfg = config_for(ModelKind::ConvNCF, InitKind::PyTorch);
  cfg.embedding_size = tc.E;
  const Params<float> prm = init_params(cfg, &tower, 4, 5);
  Triples tr;
  const RegSpec reg{RegType::Norm, {0.1, 0.1}, true};
  const bool exact = !omp_get_dynamic() && omp_get_thread_limit() >= 3;  // else fewer may come
  auto team_of = [&](int threads) {
    CpuEngine<float> eng(ModelKind::ConvNCF, &tower, 4, 5, tc.E, threads);
    eng.compute(prm, tr.batch(), reg, {});
    EXPECT_GE(eng.last_team(), 1);
    EXPECT_LE(eng.last_team(), eng.threads());
    if (exact) {
      EXPECT_EQ(eng.last_team(), eng.threads());
    }
    return eng.threads();
  };
  EXPECT_EQ(team_of(3), 3);
  EXPECT_EQ(team_of(1), 1);
  EXPECT_EQ(team_of(0), omp_get_max_threads());
  const int before = omp_get_max_threads();
  omp_set_num_threads(3);
  EXPECT_EQ(team_of(0), 3);
  EXPECT_EQ(team_of(2), 2);  // an explicit count wins over the default
  omp_set_num_threads(before);
}

// The engine cuts its batches into shares itself (ranks x threads virtual threads, dist.hpp); the
// cut must be what OpenMP's schedule(static) gives, so that the shares equal the threads' of one
// process: contiguous, the first n % parts one longer, for every size and thread count.
TEST(CpuEngine, StaticSharesAreOpenMPsStaticSchedule) {
  for (int threads : {1, 2, 3, 4, 7}) {
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(2), int64_t(5), int64_t(6), int64_t(7), int64_t(100), int64_t(2049)}) {
      std::vector<int> owner(size_t(n), -1);
      int team = 0;
#pragma omp parallel num_threads(threads)
      {
#pragma omp single
        team = omp_get_num_threads();
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; ++i) owner[size_t(i)] = omp_get_thread_num();
      }
      if (team != threads) GTEST_SKIP() << "OpenMP gave " << team << " threads for " << threads;
      int64_t next = 0;
      for (int v = 0; v < threads; ++v) {
        const int64_t b = static_share_begin(n, threads, v), e = static_share_end(n, threads, v);
        ASSERT_EQ(b, next) << "n " << n << " parts " << threads << " share " << v;
        for (int64_t i = b; i < e; ++i) ASSERT_EQ(owner[size_t(i)], v) << "n " << n << " parts " << threads << " item " << i;
        next = e;
      }
      EXPECT_EQ(next, n);
    }
  }
}

TEST(CpuEngine, PackUnpackRoundTrip) {
  const TowerSpec tower = TowerSpec::make(16, {1, 4, 6, 5}, {2, 4, 2}, {2, 4, 2});
  Config cfg = config_for(ModelKind::ConvNCF, InitKind::PyTorch);
  cfg.embedding_size = 16;
  const Params<double> prm = to_double(init_params(cfg, &tower, 1, 1));
  CpuEngine<double> eng(ModelKind::ConvNCF, &tower, 1, 1, 16, 1);
  std::vector<double> packed(size_t(eng.packed_size())), back(size_t(tower.n_params), 0.0);
  eng.pack(prm.net.data(), packed.data());
  eng.unpack_add(packed.data(), back.data());
  EXPECT_EQ(back, prm.net);
}

TEST(CpuEngineGrad, RecbolePresetNormRegDropout) {
  run_grad_case({ModelKind::ConvNCF, tower_cases()[0], RegType::Norm, {0.1, 0.1}, 0.2, InitKind::PyTorch});
}
TEST(CpuEngineGrad, RecbolePresetNoDropout) {
  run_grad_case({ModelKind::ConvNCF, tower_cases()[0], RegType::Norm, {0.1, 0.1}, 0.0, InitKind::PyTorch});
}
TEST(CpuEngineGrad, PaperPresetSquaredReg) {
  run_grad_case({ModelKind::ConvNCF, tower_cases()[1], RegType::Squared, {0.01, 10, 1}, 0.0, InitKind::Paper});
}
TEST(CpuEngineGrad, PaperTowerWithDropoutAndNormReg) {
  run_grad_case({ModelKind::ConvNCF, tower_cases()[1], RegType::Norm, {0.1, 0.1}, 0.3, InitKind::PyTorch});
}
TEST(CpuEngineGrad, OtherTowersBothRegForms) {
  for (size_t i = 2; i < tower_cases().size(); ++i) {
    run_grad_case({ModelKind::ConvNCF, tower_cases()[i], RegType::Norm, {0.1, 0.2}, 0.0, InitKind::PyTorch});
    run_grad_case({ModelKind::ConvNCF, tower_cases()[i], RegType::Squared, {0.01, 0.5, 0.3}, 0.5, InitKind::PyTorch});
    run_grad_case({ModelKind::ConvNCF, tower_cases()[i], RegType::Norm, {}, 0.0, InitKind::PyTorch});
  }
}
TEST(CpuEngineGrad, MfBprBothRegForms) {
  const TowerCase mf{"mf", 8, {}, {}};
  run_grad_case({ModelKind::BPR, mf, RegType::Squared, {0.01}, 0.0, InitKind::Paper});
  run_grad_case({ModelKind::BPR, mf, RegType::Norm, {0.1}, 0.0, InitKind::PyTorch});
  run_grad_case({ModelKind::BPR, mf, RegType::Norm, {0.0}, 0.0, InitKind::PyTorch});
}

TEST(CpuEngine, RegularizationValuesByHand) {
  // MF with 2 users, 2 items, E = 2: every term computable by hand.
  Params<double> prm;
  prm.model = ModelKind::BPR;
  prm.E = 2;
  prm.n_users = 2;
  prm.n_items = 2;
  prm.P = {1, 2, 2, 0};  // ||P|| = 3
  prm.Q = {0, 3, 4, 0};  // ||Q|| = 5
  CpuEngine<double> eng(ModelKind::BPR, nullptr, 2, 2, 2, 1);
  std::vector<int32_t> u{0}, p{0}, n{1};
  TripleBatch b{u.data(), p.data(), n.data(), 1};
  // s_pos = 1*0 + 2*3 = 6, s_neg = 1*4 + 2*0 = 4, x = 2
  const LossParts norm = eng.loss(prm, b, {RegType::Norm, {0.5}, true}, {});
  EXPECT_NEAR(norm.bpr, std::log1p(std::exp(-2.0)), 1e-15);
  EXPECT_NEAR(norm.reg, 0.5 * (3 + 5), 1e-15);
  const LossParts sq = eng.loss(prm, b, {RegType::Squared, {0.25}, true}, {});
  EXPECT_NEAR(sq.bpr, std::log1p(std::exp(-2.0)), 1e-15);
  EXPECT_NEAR(sq.reg, 0.25 * (5 + 9 + 16), 1e-15);  // ||p_0||^2 + ||q_0||^2 + ||q_1||^2
  const LossParts off = eng.loss(prm, b, {RegType::Squared, {0.25}, false}, {});
  EXPECT_EQ(off.reg, 0.0);
}

TEST(BprLoss, StableAndExact) {
  for (double x : {-30.0, -5.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 5.0, 30.0}) {
    EXPECT_NEAR(bpr_loss(x), std::log(1 + std::exp(-x)), 1e-12 * (1 + std::abs(x))) << x;
    const double sig = 1 / (1 + std::exp(x));  // sigmoid(-x)
    EXPECT_NEAR(bpr_grad(x), -sig, 1e-15) << x;
  }
  for (double x : {-1e4, -800.0, 800.0, 1e4}) {  // naive log(1+exp(-x)) overflows at x = -800
    EXPECT_TRUE(std::isfinite(bpr_loss(x))) << x;
    EXPECT_TRUE(std::isfinite(bpr_grad(x))) << x;
  }
  EXPECT_DOUBLE_EQ(bpr_loss(-1e4), 1e4);
  EXPECT_DOUBLE_EQ(bpr_grad(-1e4), -1.0);
  EXPECT_EQ(bpr_loss(1e4), 0.0);
  EXPECT_TRUE(std::isfinite(bpr_loss(-100.0f)));
  EXPECT_FLOAT_EQ(bpr_loss(-100.0f), 100.0f);
}

TEST(CpuEngine, DeterministicForSeedAndThreads) {
  const TowerCase& tc = tower_cases()[0];
  const TowerSpec tower = TowerSpec::make(tc.E, tc.channels, tc.kernels, tc.kernels);
  Config cfg = config_for(ModelKind::ConvNCF, InitKind::PyTorch);
  const Params<float> prm = init_params(cfg, &tower, 4, 5);
  Triples tr;
  RegSpec reg{RegType::Norm, {0.1, 0.1}, true};
  DropoutSpec drop{0.2, 5, 9};
  CpuEngine<float> a(ModelKind::ConvNCF, &tower, 4, 5, 64, 2), b(ModelKind::ConvNCF, &tower, 4, 5, 64, 2);
  CpuEngine<float> one(ModelKind::ConvNCF, &tower, 4, 5, 64, 1);
  const LossParts la = a.compute(prm, tr.batch(), reg, drop);
  const LossParts lb = b.compute(prm, tr.batch(), reg, drop);
  const LossParts l1 = one.compute(prm, tr.batch(), reg, drop);
  EXPECT_EQ(la.bpr, lb.bpr);
  EXPECT_EQ(a.grads().net, b.grads().net);
  EXPECT_EQ(a.grads().P, b.grads().P);
  EXPECT_EQ(la.bpr, l1.bpr);  // the loss is summed in triple order whatever the thread count
  EXPECT_EQ(a.grads().Q, one.grads().Q);  // row gradients too
  for (size_t i = 0; i < a.grads().net.size(); ++i)
    EXPECT_NEAR(a.grads().net[i], one.grads().net[i], 1e-4 * (1 + std::abs(one.grads().net[i])));
}

TEST(TowerSpec, RejectsBadTowersNamingTheLayer) {
  auto expect_usage = [](int E, std::vector<int> ch, std::vector<int> k, std::vector<int> s,
                         const std::string& needle) {
    try {
      TowerSpec::make(E, ch, k, s);
      ADD_FAILURE() << "accepted a bad tower; expected: " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), kExitUsage);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_usage(64, {2, 32}, {4}, {4}, "cnn_channels[0] must be 1");
  expect_usage(64, {1, 32, 32}, {4, 4}, {4, 2}, "layer 2: stride 2 differs from kernel 4");
  expect_usage(64, {1, 32, 32}, {4, 3}, {4, 3}, "layer 2: input map 16x16 is not divisible by kernel 3");
  expect_usage(64, {1, 32}, {4, 4}, {4, 4}, "expected one more channel than kernels");
  expect_usage(64, {1, 32, 32}, {4, 4}, {4}, "cnn_strides has 1 entries");
  expect_usage(64, {1, 0}, {4}, {4}, "layer 1: cnn_channels[1] must be positive");
  expect_usage(64, {1}, {}, {}, "at least one conv layer");
  expect_usage(0, {1, 4}, {4}, {4}, "embedding_size must be positive");
  const TowerSpec ok = TowerSpec::make(64, {1, 32, 32, 32, 32}, {4, 4, 2, 2}, {4, 4, 2, 2});
  EXPECT_EQ(ok.last_size(), 1);
  EXPECT_EQ(ok.n_params, 32 * 16 + 32 + (32 * 32 * 16 + 32) + 2 * (32 * 32 * 4 + 32) + 32 + 1);
}
