// engine_compare.hpp: the CUDA engine against the CPU reference engine, end to end. Both start
// from the same parameters and optimizer state and train one epoch of the same batches (the GPU
// samples its negatives on the device with the host's generator; the last batch is partial); the
// losses are compared after every step, the parameters and optimizer state at the end.
// Used by tests/test_gpu_engine.cpp and by `convncf gpu-selftest`, so a machine without
// GoogleTest can run the same check. Needs a usable GPU (the GpuEngine constructor throws).
#pragma once
#include <string>
#include <vector>

#include "convncf/dataset.hpp"
#include "convncf/fused_tower.hpp"

namespace convncf {

struct EngineTolerance {
  double loss_rtol = 1e-4;    // per step, on the BPR and regularization sums
  double param_atol = 1e-5;   // parameters and optimizer state: |gpu - cpu| <= atol + rtol |cpu|
  double param_rtol = 1e-3;
};

struct EngineComparison {
  bool ok = true;
  int steps = 0;
  double worst_loss_rel = 0;   // largest |gpu - cpu| / |cpu| of a loss
  double worst_param = 0;      // largest |gpu - cpu| / (atol + rtol |cpu|) over parameters and state
  bool partial_last_batch = false;  // the epoch ended on a smaller batch (padding exercised)
  std::string detail;          // the first failures, one per line
};

// The tolerance for an engine whose products are in `precision` (fused_tower.hpp): FP32 {1e-4,
// 1e-5, 2e-3}; tf32 and bf16 round the products of conv layers 2..L: per-step losses within 1e-3
// (tf32) or 3e-3 (bf16), parameters and optimizer state within 0.1 + 50%: ReLU flips and Adam make
// the trajectories part, so only gross errors show there (engine_compare.cpp says why).
EngineTolerance engine_tolerance(Precision precision);

// The data of the comparison: a small synthetic catalogue (70 users, 90 items, about 1,500
// interactions, seed 11) split 8:1:1 per user at random.
Split small_synthetic_split();

// `args`: Config::from_args arguments (model, preset, tower, batch size, ...), on the data of
// small_synthetic_split(). Phase: the
// warm-up optimizer when the configuration has warm-up epochs (epoch 1), else the main one.
EngineComparison compare_engines(const std::vector<std::string>& args, const EngineTolerance& tol);

}  // namespace convncf
