// cpu_training_engine.cpp: the CPU reference engine behind the Engine interface (engine.hpp):
// CpuEngine<float> (cpu_engine.hpp) computes a batch's loss and gradients, the host optimizers
// (optim.hpp) update, and the sampler's CPU twin (gather_batch_cpu, sampling.hpp) draws the
// negatives; dynamic negatives are scored here with the current parameters, without dropout. Also
// the popularity model, which only scores. Deterministic for a seed and a thread count
// (cpu_engine.hpp says why).
#include <omp.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "convncf/engine.hpp"
#include "convncf/errors.hpp"
#include "convncf/rng.hpp"
#include "convncf/sampling.hpp"

namespace convncf {
namespace {

class CpuTrainingEngine final : public Engine {
 public:
  CpuTrainingEngine(const EngineOptions& o, const Split& split)
      : m_split(split),
        m_seed(o.seed),
        m_neg(o.negatives),
        m_pop(o.model == ModelKind::Pop ? PopularityTable{} : negative_table(split, o.negatives)),
        m_tower(o.tower),
        m_cpu(o.model, o.model == ModelKind::ConvNCF ? &m_tower : nullptr, split.n_users, split.n_items, o.E, o.threads) {
    m_prm.model = o.model;
    m_prm.E = o.E;
    m_prm.n_users = split.n_users;
    m_prm.n_items = split.n_items;
    const int64_t nP = int64_t(split.n_users) * o.E, nQ = int64_t(split.n_items) * o.E;
    const int64_t nN = o.model == ModelKind::ConvNCF ? m_tower.n_params : 0;
    for (int k = 0; k < kPhases; ++k) {
      const PhaseOptimizers& ph = o.phases[k];
      m_opt[k][0] = Optimizer<float>(ph.embeddings, nP);
      m_opt[k][1] = Optimizer<float>(ph.embeddings, nQ);
      m_opt[k][2] = Optimizer<float>(ph.network, nN);
      // Row-sparse updates equal dense ones when a zero gradient moves nothing (optim.hpp).
      m_rows_ok[k] = ph.embeddings.learner != Learner::Adam && ph.embeddings.weight_decay == 0;
    }
  }

  const char* name() const override { return "CPU"; }
  std::string describe() const override {
    return "CPU engine: " + std::to_string(m_cpu.threads()) + " threads";
  }

  void set_params(const Params<float>& p) override {
    const size_t E = size_t(m_prm.E);
    if (p.model != m_prm.model || p.E != m_prm.E || p.n_users != m_prm.n_users || p.n_items != m_prm.n_items ||
        p.P.size() != size_t(p.n_users) * E || p.Q.size() != size_t(p.n_items) * E ||
        (p.model == ModelKind::ConvNCF && p.net.size() != size_t(m_tower.n_params)))
      throw_internal("CpuTrainingEngine::set_params: parameters of another shape");
    m_prm = p;
  }
  Params<float> params() const override { return m_prm; }

  void set_optimizer_states(const std::vector<OptimizerState>& s) override {
    if (s.size() != size_t(kPhases) * 3)
      throw_data("expected " + std::to_string(kPhases * 3) + " optimizer states, found " + std::to_string(s.size()));
    size_t at = 0;
    for (auto& phase : m_opt)
      for (Optimizer<float>& o : phase) {
        const OptimizerState& st = s[at++];
        if (st.s0.size() != o.state0().size() || st.s1.size() != o.state1().size())
          throw_data("optimizer state of another shape: the checkpoint was made with another configuration");
        o.set_steps(st.steps);
        o.state0() = st.s0;
        o.state1() = st.s1;
      }
  }
  std::vector<OptimizerState> optimizer_states() const override {
    std::vector<OptimizerState> out;
    for (const auto& phase : m_opt)
      for (const Optimizer<float>& o : phase)
        out.push_back({o.steps(), o.state0(), o.state1()});
    return out;
  }

  void begin_epoch(int epoch, const std::vector<int64_t>& order) override {
    m_epoch = epoch;
    m_order = order;
  }

  StepResult step(int64_t lo, int64_t n, const StepSpec& spec) override {
    if (m_prm.model == ModelKind::Pop) throw_internal("CpuTrainingEngine::step: the popularity model does not train");
    if (n <= 0 || lo < 0 || lo + n > int64_t(m_order.size()) || spec.phase < 0 || spec.phase >= kPhases)
      throw_internal("CpuTrainingEngine::step: bad batch");
    const int32_t N = m_neg.sample_num;
    const int64_t nt = n * N;
    m_user.resize(size_t(nt));
    m_pos.resize(size_t(nt));
    m_neg_items.resize(size_t(nt));
    const uint64_t* cdf = m_pop.cdf.empty() ? nullptr : m_pop.cdf.data();
    const uint64_t* row_cum = cdf ? m_pop.row_cum.data() : nullptr;
    gather_batch_cpu(nt, n, N, lo, m_epoch, m_seed, m_order.data(), m_split.train_user.data(),
                     m_split.train_item.data(), m_split.train.offsets.data(), m_split.train.items.data(),
                     m_split.n_items, cdf, row_cum, m_user.data(), m_pos.data(), m_neg_items.data());
    if (m_neg.dynamic) pick_dynamic(lo, n, cdf, row_cum);
    StepResult r;
    r.loss = m_cpu.compute(m_prm, {m_user.data(), m_pos.data(), m_neg_items.data(), nt}, spec.reg, spec.dropout);
    if (!std::isfinite(r.loss.bpr) || !std::isfinite(r.loss.reg)) return r;  // nothing updated
    Optimizer<float>* o = m_opt[spec.phase];
    const Gradients<float>& g = m_cpu.grads();
    const bool rows_only = m_rows_ok[spec.phase] && !m_cpu.all_rows();
    if (rows_only) {
      o[0].step_rows(m_prm.P.data(), g.P.data(), m_cpu.touched_users(), m_prm.E);
      o[1].step_rows(m_prm.Q.data(), g.Q.data(), m_cpu.touched_items(), m_prm.E);
    } else {
      o[0].step(m_prm.P.data(), g.P.data(), int64_t(m_prm.P.size()));
      o[1].step(m_prm.Q.data(), g.Q.data(), int64_t(m_prm.Q.size()));
    }
    if (!m_prm.net.empty()) o[2].step(m_prm.net.data(), g.net.data(), int64_t(m_prm.net.size()));
    r.bad = first_non_finite(m_prm, rows_only, m_cpu.touched_users(), m_cpu.touched_items());
    return r;
  }

  Metrics evaluate(const EvalSet& set, const std::vector<int>& topk) override {
    const std::unique_ptr<Scorer> scorer = make_scorer(m_cpu, m_prm);
    return convncf::evaluate(*scorer, set, topk);
  }
  TopKLists top_k(const std::vector<int32_t>& users, const std::vector<const Csr*>& exclude, int32_t k) override {
    const std::unique_ptr<Scorer> scorer = make_scorer(m_cpu, m_prm);
    return convncf::top_k(*scorer, users, exclude, k);
  }

 private:
  // RecBole's dynamic negative sampling: each triple's negative becomes the best-scoring of its
  // candidates under the current parameters (scored as evaluation scores: no dropout).
  void pick_dynamic(int64_t lo, int64_t n, const uint64_t* cdf, const uint64_t* row_cum) {
    const int32_t N = m_neg.sample_num, C = m_neg.candidate_num;
    const int64_t nt = n * N;
    m_cand.resize(size_t(nt * C));
    m_cand_scores.resize(size_t(nt * C));
    draw_candidates_cpu(n, N, C, lo, m_epoch, m_seed, m_user.data(), m_split.train.offsets.data(),
                        m_split.train.items.data(), m_split.n_items, cdf, row_cum, m_cand.data());
    const std::unique_ptr<Scorer> scorer = make_scorer(m_cpu, m_prm);
#pragma omp parallel for num_threads(scorer->threads()) schedule(static)
    for (int64_t s = 0; s < nt; ++s)
      scorer->score_items(m_user[size_t(s)], m_cand.data() + s * C, C, m_cand_scores.data() + s * C,
                          omp_get_thread_num());
    for (int64_t s = 0; s < nt; ++s)
      m_neg_items[size_t(s)] = m_cand[size_t(s * C + best_candidate(m_cand_scores.data() + s * C, C))];
  }

  const Split& m_split;
  uint64_t m_seed;
  NegativeSpec m_neg;
  PopularityTable m_pop;  // popularity negatives' tables; empty for uniform
  TowerSpec m_tower;
  CpuEngine<float> m_cpu;
  Params<float> m_prm;
  Optimizer<float> m_opt[kPhases][3];  // per phase: P, Q, network
  bool m_rows_ok[kPhases] = {false, false};
  int m_epoch = 0;
  std::vector<int64_t> m_order;
  std::vector<int32_t> m_user, m_pos, m_neg_items;  // the batch's triples
  std::vector<int32_t> m_cand;                      // dynamic: (triples, candidate_num)
  std::vector<float> m_cand_scores;
};

}  // namespace

std::unique_ptr<Engine> make_cpu_engine(const EngineOptions& opts, const Split& split) {
  return std::make_unique<CpuTrainingEngine>(opts, split);
}

}  // namespace convncf
