// schedule.cpp: the training schedule and the epoch loop (see schedule.hpp).
#include "convncf/schedule.hpp"

#include <algorithm>
#include <utility>

#include "convncf/rng.hpp"

namespace convncf {

Schedule::Schedule(const ScheduleOptions& o, const Split& split)
    : m_opts(o), m_positives_per_batch(positives_per_batch(o.batch_size, o.negatives.sample_num)) {
  const PopularityTable pop = negative_table(split, o.negatives);
  const PopularityTable* p = pop.cdf.empty() ? nullptr : &pop;
  std::vector<uint8_t> ok(size_t(split.n_users));
  for (int32_t u = 0; u < split.n_users; ++u) ok[size_t(u)] = has_negative(split.train, split.n_items, u, p);
  m_usable.reserve(split.train_user.size());
  for (size_t t = 0; t < split.train_user.size(); ++t) {
    if (ok[size_t(split.train_user[t])]) m_usable.push_back(int64_t(t));
    else ++m_skipped;
  }
}

int64_t Schedule::batches() const {
  const int64_t T = positives(), B = m_positives_per_batch;
  return m_opts.drop_last ? T / B : (T + B - 1) / B;
}

int64_t Schedule::batch_n(int64_t b) const { return std::min(m_positives_per_batch, positives() - batch_lo(b)); }

std::vector<int64_t> Schedule::order(int epoch) const {
  std::vector<int64_t> order = m_usable;
  const int64_t T = positives();
  Rng shuffle(m_opts.seed, kStreamShuffle + (uint64_t(epoch) << 8));
  for (int64_t i = T - 1; i > 0; --i) std::swap(order[size_t(i)], order[shuffle.index(uint32_t(i + 1))]);
  return order;
}

StepSpec Schedule::step_spec(int epoch, uint64_t global_step) const {
  StepSpec s;
  const bool w = warm(epoch);
  s.phase = w ? 1 : 0;
  s.reg = m_opts.reg;
  s.reg.enabled = !w;
  s.dropout = DropoutSpec{m_opts.dropout, m_opts.seed, global_step};
  return s;
}

void run_epoch(Engine& engine, const Schedule& schedule, int epoch, uint64_t& global_step, const StepObserver& on_step) {
  engine.begin_epoch(epoch, schedule.order(epoch));
  const int64_t batches = schedule.batches();
  for (int64_t b = 0; b < batches; ++b) {
    const int64_t n = schedule.batch_n(b);
    ++global_step;
    const StepResult r = engine.step(schedule.batch_lo(b), n, schedule.step_spec(epoch, global_step));
    if (on_step) on_step(b, n, r);
  }
}

}  // namespace convncf
