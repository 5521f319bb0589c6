// schedule.hpp: what a training run does in which order, the same for every engine and for the
// engine comparison: the training positives that can be used (their user has an item left to
// draw as a negative), each epoch's shuffled order of them, the batches, and each step's phase
// (the warm-up epochs' Adagrad without regularization, then the main optimizer), regularization
// and dropout masks (keyed by the global step). run_epoch drives an engine through one epoch.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "convncf/cpu_engine.hpp"
#include "convncf/dataset.hpp"
#include "convncf/engine.hpp"
#include "convncf/sampling.hpp"

namespace convncf {

struct ScheduleOptions {
  int64_t batch_size = 2048;
  bool drop_last = false;     // the last partial batch of an epoch is dropped (the paper's code)
  int warmup_epochs = 0;      // epochs 1 .. warmup_epochs are phase 1 without regularization
  uint64_t seed = 2020;       // the shuffles and the dropout masks
  double dropout = 0.0;
  RegSpec reg;
  NegativeSpec negatives;     // sample_num sets the positives per batch; popularity which are usable
};

class Schedule {
 public:
  Schedule(const ScheduleOptions& o, const Split& split);
  int64_t positives() const { return int64_t(m_usable.size()); }
  // positives of users with no item to draw (every item, or under popularity every item of
  // positive weight, among their training items)
  int64_t skipped() const { return m_skipped; }
  int64_t batches() const;                       // steps per epoch
  // Positives per batch: RecBole's max(batch_size / sample_num, 1); a step has that many times
  // sample_num triples.
  int64_t batch_size() const { return m_positives_per_batch; }
  int negatives() const { return m_opts.negatives.sample_num; }
  bool warm(int epoch) const { return epoch <= m_opts.warmup_epochs; }
  // The epoch's order: the usable positives shuffled by Rng(seed, kStreamShuffle + (epoch << 8)).
  std::vector<int64_t> order(int epoch) const;
  // Batch b of an epoch: [lo, lo + n) of its order.
  int64_t batch_lo(int64_t b) const { return b * m_positives_per_batch; }
  int64_t batch_n(int64_t b) const;
  StepSpec step_spec(int epoch, uint64_t global_step) const;

 private:
  ScheduleOptions m_opts;
  std::vector<int64_t> m_usable;
  int64_t m_skipped = 0;
  int64_t m_positives_per_batch = 1;
};

// After each step of run_epoch: the batch (0-based), its size and the engine's result. It may
// throw to stop the epoch.
using StepObserver = std::function<void(int64_t batch, int64_t n, const StepResult& r)>;

// One epoch on `engine`: begin_epoch with the schedule's order, then every batch in turn, the
// global step advanced before each (its dropout masks use the new value). The observer's n is
// the batch's positives.
void run_epoch(Engine& engine, const Schedule& schedule, int epoch, uint64_t& global_step, const StepObserver& on_step);

}  // namespace convncf
