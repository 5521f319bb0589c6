// engine_compare.cpp: one epoch on the CUDA engine and on the CPU reference engine, compared
// (see engine_compare.hpp): both engines made by the factory, driven by the training schedule's run_epoch.
#include "convncf/engine_compare.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "convncf/config.hpp"
#include "convncf/cpu_engine.hpp"
#include "convncf/dataset.hpp"
#include "convncf/engine.hpp"
#include "convncf/model.hpp"
#include "convncf/options.hpp"
#include "convncf/optim.hpp"
#include "convncf/schedule.hpp"

namespace convncf {
namespace {

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
  EngineOptions cpu_opts = engine_options(cfg), gpu_opts = cpu_opts;
  cpu_opts.device = Device::Cpu;
  cpu_opts.threads = 1;
  gpu_opts.device = Device::Cuda;
  gpu_opts.cuda.eval_pairs = 256;
  const std::unique_ptr<Engine> cpu = make_cpu_engine(cpu_opts, split);
  const std::unique_ptr<Engine> gpu = make_cuda_engine(gpu_opts, split);
  const Params<float> start = init_params(cfg, cfg.model == ModelKind::ConvNCF ? &cpu_opts.tower : nullptr,
                                          split.n_users, split.n_items);
  cpu->set_params(start);
  gpu->set_params(start);

  // Epoch 1 of the run's schedule on each engine (the warm-up's optimizer when the configuration
  // has warm-up epochs), every step's loss recorded.
  const Schedule schedule(schedule_options(cfg), split);
  r.partial_last_batch = schedule.positives() % schedule.batch_size() != 0;
  const int epoch = 1;
  std::vector<LossParts> want, got;
  uint64_t step = 0;
  run_epoch(*cpu, schedule, epoch, step, [&](int64_t, int64_t, const StepResult& s) { want.push_back(s.loss); });
  step = 0;
  run_epoch(*gpu, schedule, epoch, step, [&](int64_t, int64_t, const StepResult& s) {
    got.push_back(s.loss);
    if (s.bad.any()) {
      r.ok = false;
      r.detail += "step " + std::to_string(got.size()) + ": non-finite " +
                  (s.bad.detail.empty() ? "value at index " + std::to_string(s.bad.index) : s.bad.detail) + "\n";
    }
  });
  r.steps = int(got.size());
  for (size_t k = 0; k < got.size() && k < want.size(); ++k) {
    const double pairs[2][2] = {{got[k].bpr, want[k].bpr}, {got[k].reg, want[k].reg}};
    for (int j = 0; j < 2; ++j) {
      const double err = std::fabs(pairs[j][0] - pairs[j][1]);
      const double rel = err / std::max(std::fabs(pairs[j][1]), 1e-12);
      if (err > 1e-12) r.worst_loss_rel = std::max(r.worst_loss_rel, std::isnan(rel) ? INFINITY : rel);
      if (!(err <= tol.loss_rtol * std::fabs(pairs[j][1]) + 1e-12)) {
        r.ok = false;
        std::ostringstream s;
        s << "step " << k + 1 << " " << (j ? "reg" : "bpr") << " loss: gpu " << pairs[j][0] << ", cpu " << pairs[j][1] << "\n";
        r.detail += s.str();
      }
    }
  }
  const Params<float> pc = cpu->params(), pg = gpu->params();
  compare("P", pg.P, pc.P, tol, r);
  compare("Q", pg.Q, pc.Q, tol, r);
  const bool conv = cfg.model == ModelKind::ConvNCF;
  if (conv) compare("net", pg.net, pc.net, tol, r);
  const std::vector<OptimizerState> sc = cpu->optimizer_states(), sg = gpu->optimizer_states();
  const size_t at = size_t(schedule.warm(epoch) ? 3 : 0);  // the epoch's phase: P, Q, network
  const EngineTolerance state_tol{tol.loss_rtol, tol.param_atol, 10 * tol.param_rtol};
  compare("P optimizer state", sg[at].s0, sc[at].s0, state_tol, r);
  compare("Q optimizer state", sg[at + 1].s0, sc[at + 1].s0, state_tol, r);
  if (conv) compare("net optimizer state", sg[at + 2].s0, sc[at + 2].s0, state_tol, r);
  if (sg[at].steps != sc[at].steps || sg[at + 2].steps != sc[at + 2].steps) {
    r.ok = false;
    r.detail += "optimizer step counts differ\n";
  }
  return r;
}

}  // namespace convncf
