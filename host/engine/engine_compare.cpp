// engine_compare.cpp: one epoch on the CUDA engine and on the CPU reference engine, compared
// (see engine_compare.hpp). The CPU side is train.cpp's loop for one epoch, written out.
#include "convncf/engine_compare.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "convncf/config.hpp"
#include "convncf/cpu_engine.hpp"
#include "convncf/dataset.hpp"
#include "convncf/gpu_engine.hpp"
#include "convncf/model.hpp"
#include "convncf/options.hpp"
#include "convncf/optim.hpp"
#include "convncf/rng.hpp"

namespace convncf {
namespace {

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
};

// Adds the comparison of two arrays to r: the worst error in units of the tolerance.
void compare(const std::string& what, const std::vector<float>& gpu, const std::vector<float>& cpu,
             const EngineTolerance& tol, EngineComparison& r) {
  if (gpu.size() != cpu.size()) {
    r.ok = false;
    r.detail += what + ": sizes differ\n";
    return;
  }
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double err = std::fabs(double(gpu[i]) - double(cpu[i]));
    const double units = std::isnan(err) ? INFINITY : err / (tol.param_atol + tol.param_rtol * std::fabs(double(cpu[i])));
    if (units > worst) {
      worst = units;
      at = i;
    }
  }
  r.worst_param = std::max(r.worst_param, worst);
  if (worst > 1) {
    r.ok = false;
    std::ostringstream s;
    s << what << "[" << at << "]: gpu " << gpu[at] << ", cpu " << cpu[at] << "\n";
    r.detail += s.str();
  }
}

}  // namespace

EngineTolerance engine_tolerance(Precision precision) {
  switch (precision) {
    case Precision::FP32: return {1e-4, 1e-5, 2e-3};
    // Rounding moves the pre-activations of ReLUs near zero across it, and each such flip adds or
    // drops a pair's whole contribution to a layer's weight gradients; Adam then turns the
    // differences into learning-rate-sized parameter steps, and the trajectories part. So the
    // per-step losses are the sharp check; the parameters and optimizer state only catch gross
    // errors (on the engine tests' data, one epoch: worst state difference 0.05 for tf32 and
    // bf16, losses within 6e-5). The one-step gradients are checked closely by the fused
    // twins' own tests against CpuEngine.
    case Precision::TF32: return {1e-3, 0.1, 0.5};
    case Precision::BF16: return {3e-3, 0.1, 0.5};
  }
  return {};
}

Split small_synthetic_split() {
  SyntheticSpec spec;
  spec.n_users = 70;
  spec.n_items = 90;
  spec.n_interactions = 1500;
  spec.min_per_user = 5;
  return ratio_split(make_synthetic(11, spec), {0.8, 0.1, 0.1}, SplitOrder::Random, 11);
}

EngineComparison compare_engines(const std::vector<std::string>& args, const EngineTolerance& tol) {
  EngineComparison r;
  const Config cfg = Config::from_args(args);
  const Split split = small_synthetic_split();
  const bool conv = cfg.model == ModelKind::ConvNCF;
  TowerSpec tower;
  if (conv) tower = TowerSpec::make(cfg.embedding_size, cfg.cnn_channels, cfg.cnn_kernels, cfg.cnn_strides);
  Params<float> prm = init_params(cfg, conv ? &tower : nullptr, split.n_users, split.n_items);
  const int E = cfg.embedding_size;

  const int phase = cfg.warmup_epochs > 0 ? 1 : 0;  // epoch 1 is the warm-up when there is one
  const Learner learner = phase ? Learner::Adagrad : cfg.learner;
  const double emb_lr = cfg.embedding_learning_rate > 0 ? cfg.embedding_learning_rate : cfg.learning_rate;
  const double lr_e = phase ? cfg.warmup_learning_rate : emb_lr, lr_n = phase ? cfg.warmup_learning_rate : cfg.learning_rate;
  HostOptim cpu_opt(cfg, learner, lr_e, lr_n, prm), gpu_opt(cfg, learner, lr_e, lr_n, prm);

  CpuEngine<float> cpu(cfg.model, conv ? &tower : nullptr, split.n_users, split.n_items, E, 1);
  GpuEngineOptions go = gpu_engine_options(cfg);
  go.eval_pairs = 256;
  GpuEngine gpu(cfg.model, conv ? &tower : nullptr, split, E, go);
  gpu.upload_params(prm);
  gpu.upload_optimizers(phase, {&gpu_opt.P, &gpu_opt.Q, &gpu_opt.net});

  const int64_t T = int64_t(split.train_user.size()), B = cfg.train_batch_size;
  r.partial_last_batch = T % B != 0;
  std::vector<int64_t> order(static_cast<size_t>(T));
  std::iota(order.begin(), order.end(), 0);
  Rng shuffle(cfg.seed, kStreamShuffle);
  for (int64_t i = T - 1; i > 0; --i) std::swap(order[size_t(i)], order[shuffle.index(uint32_t(i + 1))]);
  gpu.set_epoch_order(order);
  const int epoch = 1;
  const RegSpec reg{cfg.reg_type, cfg.reg_weights, phase == 0};
  const bool rows_ok = learner != Learner::Adam && cfg.weight_decay == 0;
  std::vector<int32_t> bu(static_cast<size_t>(B)), bp(static_cast<size_t>(B)), bn(static_cast<size_t>(B));
  uint64_t step = 0;
  for (int64_t lo = 0; lo < T; lo += B) {
    const int64_t n = std::min(B, T - lo);
    for (int64_t j = 0; j < n; ++j) {
      const int64_t t = order[size_t(lo + j)];
      const int32_t u = split.train_user[size_t(t)];
      bu[size_t(j)] = u;
      bp[size_t(j)] = split.train_item[size_t(t)];
      bn[size_t(j)] = sample_negative(split.train.row(u), split.train.degree(u), split.n_items,
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
    if (conv) cpu_opt.net.step(prm.net.data(), g.net.data(), int64_t(prm.net.size()));

    const GpuEngine::StepResult got = gpu.train_step(epoch, lo, n, phase, reg, drop, cfg.seed);
    ++r.steps;
    if (!got.non_finite.empty()) {
      r.ok = false;
      r.detail += "step " + std::to_string(step) + ": non-finite " + got.non_finite + "\n";
    }
    const double pairs[2][2] = {{got.loss.bpr, want.bpr}, {got.loss.reg, want.reg}};
    for (int k = 0; k < 2; ++k) {
      const double err = std::fabs(pairs[k][0] - pairs[k][1]);
      const double rel = err / std::max(std::fabs(pairs[k][1]), 1e-12);
      if (err > 1e-12) r.worst_loss_rel = std::max(r.worst_loss_rel, std::isnan(rel) ? INFINITY : rel);
      if (!(err <= tol.loss_rtol * std::fabs(pairs[k][1]) + 1e-12)) {
        r.ok = false;
        std::ostringstream s;
        s << "step " << step << " " << (k ? "reg" : "bpr") << " loss: gpu " << pairs[k][0] << ", cpu " << pairs[k][1] << "\n";
        r.detail += s.str();
      }
    }
  }
  Params<float> got = prm;
  gpu.download_params(got);
  gpu.download_optimizers(phase, {&gpu_opt.P, &gpu_opt.Q, &gpu_opt.net});
  compare("P", got.P, prm.P, tol, r);
  compare("Q", got.Q, prm.Q, tol, r);
  if (conv) compare("net", got.net, prm.net, tol, r);
  const EngineTolerance state_tol{tol.loss_rtol, tol.param_atol, 10 * tol.param_rtol};
  compare("P optimizer state", gpu_opt.P.state0(), cpu_opt.P.state0(), state_tol, r);
  compare("Q optimizer state", gpu_opt.Q.state0(), cpu_opt.Q.state0(), state_tol, r);
  if (conv) compare("net optimizer state", gpu_opt.net.state0(), cpu_opt.net.state0(), state_tol, r);
  if (gpu_opt.P.steps() != cpu_opt.P.steps() || gpu_opt.net.steps() != cpu_opt.net.steps()) {
    r.ok = false;
    r.detail += "optimizer step counts differ\n";
  }
  return r;
}

}  // namespace convncf
