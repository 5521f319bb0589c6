// cuda_training_engine.cpp: the CUDA engine behind the Engine interface (engine.hpp). The device
// work is GpuEngine's (gpu_engine.hpp: sampling, tower, updates, the finite check, on one stream;
// with several ranks, the exchange through NCCL, nccl.hpp); this file owns the communicator, keeps
// the host side of the optimizers (their specs and, for phases that have not stepped on the
// device yet, their state), names a non-finite value, and scores through evaluate_gpu /
// top_k_gpu (eval_gpu.hpp; with several ranks each ranks its share of the queries).
#include <memory>
#include <string>
#include <vector>

#include "convncf/dist.hpp"
#include "convncf/engine.hpp"
#include "convncf/errors.hpp"
#include "convncf/eval_gpu.hpp"
#include "convncf/gpu_engine.hpp"
#include "convncf/nccl.hpp"

namespace convncf {
namespace {

class CudaTrainingEngine final : public Engine {
 public:
  CudaTrainingEngine(const EngineOptions& o, const Split& split)
      : m_opts(o),
        m_comm(World::get().distributed() || nccl_forced() ? std::make_unique<NcclComm>(World::get()) : nullptr),
        m_gpu(o.model, o.model == ModelKind::ConvNCF ? &m_opts.tower : nullptr, split, o.E, gpu_options(o, m_comm.get())) {
    const int64_t nP = int64_t(split.n_users) * o.E, nQ = int64_t(split.n_items) * o.E;
    const int64_t nN = o.model == ModelKind::ConvNCF ? m_opts.tower.n_params : 0;
    for (int k = 0; k < kPhases; ++k) {
      m_opt[k][0] = Optimizer<float>(o.phases[k].embeddings, nP);
      m_opt[k][1] = Optimizer<float>(o.phases[k].embeddings, nQ);
      m_opt[k][2] = Optimizer<float>(o.phases[k].network, nN);
    }
    m_shape.model = o.model;
    m_shape.E = o.E;
    m_shape.n_users = split.n_users;
    m_shape.n_items = split.n_items;
  }

  const char* name() const override { return "CUDA"; }
  std::string describe() const override { return m_gpu.describe(); }

  void set_params(const Params<float>& p) override {
    if (p.model != m_shape.model || p.E != m_shape.E || p.n_users != m_shape.n_users || p.n_items != m_shape.n_items)
      throw_internal("CudaTrainingEngine::set_params: parameters of another shape");
    m_gpu.upload_params(p);
  }
  Params<float> params() const override {
    Params<float> p = m_shape;
    m_gpu.download_params(p);
    return p;
  }

  // A phase's state goes to the device before its first step (upload_optimizers allocates its
  // state there); until then the host copy is the state.
  void set_optimizer_states(const std::vector<OptimizerState>& s) override {
    if (s.size() != size_t(kPhases) * 3)
      throw_data("expected " + std::to_string(kPhases * 3) + " optimizer states, found " + std::to_string(s.size()));
    size_t at = 0;
    for (int k = 0; k < kPhases; ++k) {
      for (Optimizer<float>& o : m_opt[k]) {
        const OptimizerState& st = s[at++];
        if (st.s0.size() != o.state0().size() || st.s1.size() != o.state1().size())
          throw_data("optimizer state of another shape: the checkpoint was made with another configuration");
        o.set_steps(st.steps);
        o.state0() = st.s0;
        o.state1() = st.s1;
      }
      if (m_on_device[k]) m_gpu.upload_optimizers(k, set_of(k));
    }
  }
  std::vector<OptimizerState> optimizer_states() const override {
    std::vector<OptimizerState> out;
    for (int k = 0; k < kPhases; ++k) {
      if (m_on_device[k]) m_gpu.download_optimizers(k, set_of(k));
      for (const Optimizer<float>& o : m_opt[k]) out.push_back({o.steps(), o.state0(), o.state1()});
    }
    return out;
  }

  void begin_epoch(int epoch, const std::vector<int64_t>& order) override {
    m_epoch = epoch;
    m_gpu.set_epoch_order(order);
  }

  StepResult step(int64_t lo, int64_t n, const StepSpec& spec) override {
    if (spec.phase < 0 || spec.phase >= kPhases) throw_internal("CudaTrainingEngine::step: bad phase");
    if (!m_on_device[spec.phase]) {
      m_gpu.upload_optimizers(spec.phase, set_of(spec.phase));
      m_on_device[spec.phase] = true;
    }
    const GpuEngine::StepResult g = m_gpu.train_step(m_epoch, lo, n, spec.phase, spec.reg, spec.dropout, m_opts.seed);
    StepResult r;
    r.loss = g.loss;
    if (!g.non_finite.empty()) {  // name the first bad value as the CPU engine does
      r.bad = first_non_finite(params(), false, {}, {});
      if (!r.bad.any()) r.bad = NonFinite{NonFinite::Where::Other, -1, g.non_finite};
    }
    return r;
  }

  Metrics evaluate(const EvalSet& set, const std::vector<int>& topk) override {
    return evaluate_gpu(m_gpu, set, topk, m_gpu.stream());
  }
  TopKLists top_k(const std::vector<int32_t>& users, const std::vector<const Csr*>& exclude, int32_t k) override {
    if (k <= kTopKGpuMax) return top_k_gpu(m_gpu, users, exclude, k, m_gpu.stream());
    // beyond what the device merge keeps: the CPU engine's top-k on the same parameters
    const Params<float> p = params();
    CpuEngine<float> cpu(p.model, p.model == ModelKind::ConvNCF ? &m_opts.tower : nullptr, p.n_users, p.n_items, p.E,
                         m_opts.threads);
    const std::unique_ptr<Scorer> scorer = make_scorer(cpu, p);
    return convncf::top_k(*scorer, users, exclude, k);
  }

 private:
  // The engine's negatives are the device sampler's; its communicator ours. Ranks sum rows
  // deterministically (make_engine warns when several ranks override sparse_grad: fast).
  static GpuEngineOptions gpu_options(const EngineOptions& o, NcclComm* comm) {
    GpuEngineOptions g = o.cuda;
    g.negatives = o.negatives;
    g.comm = comm;
    if (comm) g.deterministic = true;
    return g;
  }
  OptimizerSet set_of(int phase) const { return {&m_opt[phase][0], &m_opt[phase][1], &m_opt[phase][2]}; }

  EngineOptions m_opts;
  std::unique_ptr<NcclComm> m_comm;  // several ranks (or CONVNCF_FORCE_NCCL); before m_gpu, which uses it
  GpuEngine m_gpu;
  Params<float> m_shape;  // model, E and sizes; the tables live on the device
  mutable Optimizer<float> m_opt[kPhases][3];  // host side: specs, and the state of phases not on the device
  bool m_on_device[kPhases] = {false, false};
  int m_epoch = 0;
};

}  // namespace

std::unique_ptr<Engine> make_cuda_engine(const EngineOptions& opts, const Split& split) {
  return std::make_unique<CudaTrainingEngine>(opts, split);
}

}  // namespace convncf
