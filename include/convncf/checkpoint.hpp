// checkpoint.hpp: the state of a training run at the end of an epoch (checkpoint.bin in the run
// folder), enough to continue it bit for bit.
//
// Little-endian binary, documented in README.md:
//   magic "CNCFCKPT" (8 bytes), u32 version (1),
//   str config (the run's config.yaml), u64 data fingerprint,
//   i32 epoch (completed), u64 global step, i32 best epoch, f64 best value,
//   i32 validations without gain, u8 stopped early,
//   str latest model, str best model (each a whole model.bin image, model_io.hpp),
//   u32 optimizer count, per optimizer: i64 steps, u64 n0, f32[n0], u64 n1, f32[n1],
//   u64 FNV-1a hash of every byte before it.   (str = u64 length + bytes)
// Every random draw is a pure function of (seed, stream, counter) (rng.hpp): the epoch and the
// global step are the generators' whole state, and an epoch boundary is the sampler's position.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "convncf/model_io.hpp"

namespace convncf {

struct OptimizerState {
  int64_t steps = 0;
  std::vector<float> s0, s1;
};

struct Checkpoint {
  std::string config_yaml;
  uint64_t data_fingerprint = 0;
  int32_t epoch = 0;
  uint64_t global_step = 0;
  int32_t best_epoch = 0;
  double best_value = 0;
  int32_t evals_without_gain = 0;
  bool stopped = false;
  ModelFile latest, best;
  std::vector<OptimizerState> optimizers;  // main P, Q, net, then warm-up P, Q, net
};

// Atomic (write_file_atomic): a kill at any moment leaves the previous checkpoint loadable.
void save_checkpoint(const std::string& path, const Checkpoint& c);
// Error(kExitNoInput) when missing; Error(kExitData) when corrupt, truncated or of another version.
Checkpoint load_checkpoint(const std::string& path);
// The same from a checkpoint file's bytes (a rank's copy of rank 0's file, dist.hpp); `path` names it in errors.
Checkpoint checkpoint_from_bytes(const std::string& bytes, const std::string& path);

}  // namespace convncf
