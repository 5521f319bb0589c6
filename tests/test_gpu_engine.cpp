// test_gpu_engine.cpp: the CUDA engine against the CPU reference engine, end to end. Both engines
// start from the same parameters and optimizer state and see the same batches (the GPU samples
// its negatives on the device with the host's generator); after every step the losses must
// agree, and after the last step (an epoch's partial batch included) the parameters and the
// optimizer state. Also: deterministic sparse gradients give bit-identical runs, and the
// engine's evaluation scores equal the CPU engine's. Skips without a GPU.
//   build/convncf_tests --gtest_filter='GpuEngine.*'
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "convncf/config.hpp"
#include "convncf/cpu_engine.hpp"
#include "convncf/dataset.hpp"
#include "convncf/gpu_engine.hpp"
#include "convncf/model.hpp"
#include "convncf/optim.hpp"
#include "convncf/rng.hpp"
#include "gpu_test_util.hpp"

namespace {

using namespace convncf;

struct Case {
  std::string name;
  std::vector<std::string> args;  // Config::from_args
  double loss_rtol, param_atol, param_rtol;
};

struct HostOptim {
  Optimizer<float> P, Q, net;
  HostOptim(const Config& cfg, Learner learner, double emb_lr, double net_lr, const Params<float>& prm) {
    OptimizerSpec s;
    s.learner = learner;
    s.weight_decay = cfg.weight_decay;
    s.adagrad_initial_accumulator = cfg.adagrad_initial_accumulator;
    s.adagrad_eps = cfg.adagrad_eps;
    s.lr = emb_lr;
    P = Optimizer<float>(s, int64_t(prm.P.size()));
    Q = Optimizer<float>(s, int64_t(prm.Q.size()));
    s.lr = net_lr;
    net = Optimizer<float>(s, int64_t(prm.net.size()));
  }
  OptimizerSet set() { return {&P, &Q, &net}; }
};

struct Fixture {
  Config cfg;
  Interactions data;
  Split split;
  TowerSpec tower;
  bool conv;
  Params<float> prm;
};

Fixture make_setup(const std::vector<std::string>& args) {
  Fixture s;
  s.cfg = Config::from_args(args);
  SyntheticSpec spec;
  spec.n_users = 70;
  spec.n_items = 90;
  spec.n_interactions = 1500;
  spec.min_per_user = 5;
  s.data = make_synthetic(11, spec);
  s.split = ratio_split(s.data, {0.8, 0.1, 0.1}, SplitOrder::Random, 11);
  s.conv = s.cfg.model == ModelKind::ConvNCF;
  if (s.conv)
    s.tower = TowerSpec::make(s.cfg.embedding_size, s.cfg.cnn_channels, s.cfg.cnn_kernels, s.cfg.cnn_strides);
  s.prm = init_params(s.cfg, s.conv ? &s.tower : nullptr, s.split.n_users, s.split.n_items);
  return s;
}

GpuEngineOptions options_for(const Config& cfg) {
  GpuEngineOptions o;
  o.batch_cap = cfg.train_batch_size;
  o.eval_pairs = 300;
  o.deterministic = cfg.sparse_grad == "deterministic";
  o.lazy_adam = cfg.embedding_update == "lazy";
  return o;
}

// Runs one epoch (all batches, the last one partial) on both engines and compares.
void run_case(const Case& c) {
  SCOPED_TRACE(c.name);
  Fixture s = make_setup(c.args);
  const Config& cfg = s.cfg;
  const int E = cfg.embedding_size;
  const double emb_lr = cfg.embedding_learning_rate > 0 ? cfg.embedding_learning_rate : cfg.learning_rate;
  const int phase = cfg.warmup_epochs > 0 ? 1 : 0;  // epoch 1 is the warm-up when there is one
  const Learner learner = phase ? Learner::Adagrad : cfg.learner;
  const double lr_e = phase ? cfg.warmup_learning_rate : emb_lr, lr_n = phase ? cfg.warmup_learning_rate : cfg.learning_rate;
  HostOptim cpu_opt(cfg, learner, lr_e, lr_n, s.prm), gpu_opt(cfg, learner, lr_e, lr_n, s.prm);
  CpuEngine<float> cpu(cfg.model, s.conv ? &s.tower : nullptr, s.split.n_users, s.split.n_items, E, 1);
  GpuEngine gpu(cfg.model, s.conv ? &s.tower : nullptr, s.split, E, options_for(cfg));
  Params<float> prm = s.prm;
  gpu.upload_params(prm);
  gpu.upload_optimizers(phase, gpu_opt.set());

  const int64_t T = int64_t(s.split.train_user.size()), B = cfg.train_batch_size;
  ASSERT_NE(T % B, 0) << "the case needs a partial last batch";
  std::vector<int64_t> order(static_cast<size_t>(T));
  std::iota(order.begin(), order.end(), 0);
  Rng shuffle(cfg.seed, kStreamShuffle);
  for (int64_t i = T - 1; i > 0; --i) std::swap(order[size_t(i)], order[shuffle.index(uint32_t(i + 1))]);
  gpu.set_epoch_order(order);
  const int epoch = 1;
  RegSpec reg{cfg.reg_type, cfg.reg_weights, phase == 0};
  const bool rows_ok = learner != Learner::Adam && cfg.weight_decay == 0;
  std::vector<int32_t> bu(static_cast<size_t>(B)), bp(static_cast<size_t>(B)), bn(static_cast<size_t>(B));
  uint64_t step = 0;
  for (int64_t lo = 0; lo < T; lo += B) {
    const int64_t n = std::min(B, T - lo);
    for (int64_t j = 0; j < n; ++j) {
      const int64_t t = order[size_t(lo + j)];
      const int32_t u = s.split.train_user[size_t(t)];
      bu[size_t(j)] = u;
      bp[size_t(j)] = s.split.train_item[size_t(t)];
      bn[size_t(j)] = sample_negative(s.split.train.row(u), s.split.train.degree(u), s.split.n_items,
                                      rng_hash(cfg.seed, kStreamNegative, (uint64_t(epoch) << 40) + uint64_t(lo + j)));
    }
    ++step;
    const DropoutSpec drop{cfg.dropout_prob, cfg.seed, step};
    const LossParts want = cpu.compute(prm, {bu.data(), bp.data(), bn.data(), n}, reg, drop);
    const Gradients<float>& g = cpu.grads();
    if (rows_ok && !cpu.all_rows()) {
      cpu_opt.P.step_rows(prm.P.data(), g.P.data(), cpu.touched_users(), E);
      cpu_opt.Q.step_rows(prm.Q.data(), g.Q.data(), cpu.touched_items(), E);
    } else {
      cpu_opt.P.step(prm.P.data(), g.P.data(), int64_t(prm.P.size()));
      cpu_opt.Q.step(prm.Q.data(), g.Q.data(), int64_t(prm.Q.size()));
    }
    if (s.conv) cpu_opt.net.step(prm.net.data(), g.net.data(), int64_t(prm.net.size()));

    const GpuEngine::StepResult got = gpu.train_step(epoch, lo, n, phase, reg, drop, cfg.seed);
    EXPECT_TRUE(got.non_finite.empty()) << got.non_finite;
    EXPECT_NEAR(got.loss.bpr, want.bpr, c.loss_rtol * std::fabs(want.bpr)) << "bpr loss, step " << step;
    EXPECT_NEAR(got.loss.reg, want.reg, c.loss_rtol * std::fabs(want.reg) + 1e-12) << "reg loss, step " << step;
  }
  Params<float> got = prm;
  gpu.download_params(got);
  gpu.download_optimizers(phase, gpu_opt.set());
  test::expect_close(got.P, prm.P, c.param_atol, c.param_rtol, "P");
  test::expect_close(got.Q, prm.Q, c.param_atol, c.param_rtol, "Q");
  if (s.conv) test::expect_close(got.net, prm.net, c.param_atol, c.param_rtol, "net");
  EXPECT_EQ(gpu_opt.P.steps(), cpu_opt.P.steps());
  EXPECT_EQ(gpu_opt.net.steps(), cpu_opt.net.steps());
  if (!cpu_opt.P.state0().empty())
    test::expect_close(gpu_opt.P.state0(), cpu_opt.P.state0(), c.param_atol, 10 * c.param_rtol, "P state0");
  if (s.conv && !cpu_opt.net.state0().empty())
    test::expect_close(gpu_opt.net.state0(), cpu_opt.net.state0(), c.param_atol, 10 * c.param_rtol, "net state0");
}

// A small tower (E 16: 16 -> 4 -> 1) keeps the case fast; batch 256 leaves a partial last batch.
const std::vector<std::string> kSmall{"--embedding_size=16", "--cnn_channels=[1,8,8]", "--cnn_kernels=[4,4]",
                                      "--cnn_strides=[4,4]", "--train_batch_size=256", "--seed=5"};

std::vector<std::string> with(std::vector<std::string> a, std::initializer_list<const char*> more) {
  for (const char* m : more) a.push_back(m);
  return a;
}

TEST(GpuEngine, RecBolePresetStepsMatchCpuEngine) {
  CONVNCF_REQUIRE_GPU();
  // Adam, dropout 0.2, whole-table norms: every row moves every step.
  run_case({"recbole", with(kSmall, {"--preset=recbole", "--model=ConvNCF"}), 1e-4, 1e-5, 2e-3});
}

TEST(GpuEngine, PaperPresetWarmupStepsMatchCpuEngine) {
  CONVNCF_REQUIRE_GPU();
  // Epoch 1 of the paper preset: the warm-up Adagrad on the loss without regularization.
  run_case({"paper warm-up", with(kSmall, {"--preset=paper", "--model=ConvNCF", "--drop_last_batch=false"}), 1e-4, 1e-5,
            1e-3});
}

TEST(GpuEngine, PaperPresetMainStepsMatchCpuEngine) {
  CONVNCF_REQUIRE_GPU();
  // The paper's main phase: Adagrad with squared row and network norms (rows-only updates).
  run_case({"paper main", with(kSmall, {"--preset=paper", "--model=ConvNCF", "--warmup_epochs=0",
                                        "--drop_last_batch=false"}), 1e-4, 1e-5, 1e-3});
}

TEST(GpuEngine, BprStepsMatchCpuEngine) {
  CONVNCF_REQUIRE_GPU();
  run_case({"bpr adam", with(kSmall, {"--model=BPR"}), 1e-5, 1e-5, 1e-3});
  run_case({"bpr sgd", with(kSmall, {"--model=BPR", "--learner=sgd", "--learning_rate=0.05"}), 1e-5, 1e-6, 1e-4});
}

TEST(GpuEngine, DeterministicModeIsBitReproducible) {
  CONVNCF_REQUIRE_GPU();
  Fixture s = make_setup(with(kSmall, {"--preset=recbole", "--model=ConvNCF"}));
  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    HostOptim o(s.cfg, s.cfg.learner, s.cfg.learning_rate, s.cfg.learning_rate, s.prm);
    GpuEngine gpu(s.cfg.model, &s.tower, s.split, s.cfg.embedding_size, options_for(s.cfg));
    gpu.upload_params(s.prm);
    gpu.upload_optimizers(0, o.set());
    std::vector<int64_t> order(s.split.train_user.size());
    std::iota(order.begin(), order.end(), 0);
    gpu.set_epoch_order(order);
    RegSpec reg{s.cfg.reg_type, s.cfg.reg_weights, true};
    for (int64_t lo = 0, st = 1; lo + 256 <= int64_t(order.size()) && st <= 3; lo += 256, ++st)
      gpu.train_step(1, lo, 256, 0, reg, DropoutSpec{0.2, 5, uint64_t(st)}, 5);
    Params<float> p = s.prm;
    gpu.download_params(p);
    std::vector<float> all = p.P;
    all.insert(all.end(), p.Q.begin(), p.Q.end());
    all.insert(all.end(), p.net.begin(), p.net.end());
    if (run == 0) first = all;
    else EXPECT_TRUE(all == first) << "two deterministic runs differ";
  }
}

TEST(GpuEngine, EvaluationScoresMatchCpuEngine) {
  CONVNCF_REQUIRE_GPU();
  for (const char* model : {"--model=ConvNCF", "--model=BPR"}) {
    SCOPED_TRACE(model);
    Fixture s = make_setup(with(kSmall, {model}));
    CpuEngine<float> cpu(s.cfg.model, s.conv ? &s.tower : nullptr, s.split.n_users, s.split.n_items,
                         s.cfg.embedding_size, 1);
    GpuEngine gpu(s.cfg.model, s.conv ? &s.tower : nullptr, s.split, s.cfg.embedding_size, options_for(s.cfg));
    gpu.upload_params(s.prm);
    cpu.prepare_scoring(s.prm);
    PairWork<float> w = cpu.make_work();
    // users 3 and 4 against items 10 .. 10+60 (120 pairs, eval_pairs is 300)
    const std::vector<int32_t> users{3, 4};
    DeviceBuffer<int32_t> du(users);
    DeviceBuffer<float> out(120);
    test::poison(out);
    gpu.score_range(du.data(), 2, 10, 60, out.data(), gpu.stream());
    CUDA_CHECK(cudaStreamSynchronize(gpu.stream()));
    std::vector<int32_t> items(60);
    std::iota(items.begin(), items.end(), 10);
    std::vector<float> want(120);
    for (int j = 0; j < 2; ++j) cpu.score_items(s.prm, users[size_t(j)], items.data(), 60, want.data() + 60 * j, w);
    test::expect_close(out.download(), want, 1e-5, 1e-4, "score_range");
  }
}

}  // namespace
