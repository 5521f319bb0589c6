// engine.hpp: the one interface through which training, evaluation, the engine comparison and the
// benchmarks drive an engine, and the factory that picks one from the options.
//
// Implementations (tiny-cuda-nn's one interface, many networks: DifferentiableObject with
// fully_fused_mlp and cutlass_mlp behind it, is the model):
//   CPU     host/engine/cpu_training_engine.cpp: the reference engine (cpu_engine.hpp) with the
//           host optimizers and the host sampler; also the popularity model, which only scores
//   CUDA    host/cuda/cuda_training_engine.cpp: the GPU engine (gpu_engine.hpp) with the device
//           sampler and updaters; its tower is a strategy, cuDNN layer by layer or the fused
//           kernels (engine: cudnn | fused)
// The caller never asks which one it drives. A training run is, per epoch:
//   begin_epoch(epoch, order)    the epoch's order of training positives (schedule.hpp)
//   step(lo, n, spec)            positives lo .. lo+n of that order and their negatives, n · N
//                                triples (sampling.hpp: drawn by the engine, a pure function of
//                                seed, epoch and position), loss, gradients,
//                                the phase's optimizer update, the finite check
// with params() / optimizer_states() read out for validation and checkpoints, and
// set_params() / set_optimizer_states() to start from a checkpoint or pretrained embeddings.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "convncf/checkpoint.hpp"
#include "convncf/cpu_engine.hpp"
#include "convncf/dataset.hpp"
#include "convncf/evaluate.hpp"
#include "convncf/kinds.hpp"
#include "convncf/model.hpp"
#include "convncf/optim.hpp"
#include "convncf/sampling.hpp"

namespace convncf {

// The optimizers of one training phase: embeddings (P and Q) and network.
struct PhaseOptimizers {
  OptimizerSpec embeddings, network;
};
// Phases: 0 the main one, 1 the warm-up (the paper's first epoch of Adagrad).
inline constexpr int kPhases = 2;

class NcclComm;  // nccl.hpp

// The CUDA engine's own choices (config keys train_batch_size, eval_batch_size, sparse_grad,
// embedding_update, verbose, engine, precision).
struct GpuEngineOptions {
  int64_t batch_cap = 2048;      // triples per step (the last batch of an epoch may be smaller)
  int64_t eval_pairs = 4096;     // pairs per evaluation forward
  bool deterministic = true;     // sparse_grad: deterministic | fast
  bool lazy_adam = false;        // embedding_update: lazy
  bool verbose = false;
  bool fused = false;                     // engine: fused (fused_tower.hpp) instead of cuDNN
  Precision precision = Precision::FP32;  // fused engine: products of layers 2..L
  NegativeSpec negatives;                 // the device sampler's (dynamic is refused)
  NcclComm* comm = nullptr;               // data parallel (several ranks, or CONVNCF_FORCE_NCCL): the
                                          // engine's; each step trains this rank's share and exchanges
};

struct EngineOptions {
  ModelKind model = ModelKind::ConvNCF;
  TowerSpec tower;             // ConvNCF only
  int E = 64;
  Device device = Device::Auto;
  int threads = 0;             // CPU engine: OpenMP threads, 0 OpenMP's default
  uint64_t seed = 2020;        // the training negatives' draws
  NegativeSpec negatives;      // how many per positive and from which distribution (sampling.hpp)
  PhaseOptimizers phases[kPhases];
  GpuEngineOptions cuda;
  bool training = true;        // false: scoring only (no batch buffers, deterministic cuDNN plans)
};

// Where a step's update went wrong: the first non-finite value after it.
struct NonFinite {
  enum class Where { None, Network, User, Item, Other } where = Where::None;
  int64_t index = -1;   // network element, or user / item row
  std::string detail;   // Other: what the engine knows ("user embeddings (3 values)")
  bool any() const { return where != Where::None; }
};

// What a step needs besides its triples.
struct StepSpec {
  int phase = 0;          // whose optimizers step (0 main, 1 warm-up)
  RegSpec reg;
  DropoutSpec dropout;    // dropout.step is the global step (the masks' counter)
};

struct StepResult {
  LossParts loss;         // sums over the batch; when not finite, nothing was updated
  NonFinite bad;          // after the update
};

using TopKLists = std::vector<std::vector<std::pair<int32_t, float>>>;

class Engine {
 public:
  virtual ~Engine() = default;

  // "CPU" or "CUDA"; describe(): one line (more with verbose), for the log.
  virtual const char* name() const = 0;
  virtual std::string describe() const = 0;

  // State in and out. Optimizer states: kPhases * 3 entries, phase-major, each phase's P, Q and
  // network (checkpoint.hpp's order); a state of another shape is refused (kExitData).
  virtual void set_params(const Params<float>& p) = 0;
  virtual Params<float> params() const = 0;
  virtual void set_optimizer_states(const std::vector<OptimizerState>& s) = 0;
  virtual std::vector<OptimizerState> optimizer_states() const = 0;

  // Training. `order` indexes split.train_user / train_item; a step takes order[lo .. lo+n) and
  // trains on their n · negatives.sample_num triples.
  virtual void begin_epoch(int epoch, const std::vector<int64_t>& order) = 0;
  virtual StepResult step(int64_t lo, int64_t n, const StepSpec& spec) = 0;

  // Scoring with the current parameters (no dropout).
  virtual Metrics evaluate(const EvalSet& set, const std::vector<int>& topk) = 0;
  virtual TopKLists top_k(const std::vector<int32_t>& users, const std::vector<const Csr*>& exclude,
                          int32_t k) = 0;
};

// What make_engine has to say: lines for the log (which engine auto picked and why, the engine's
// description) and warnings (options the chosen engine ignores).
struct EngineNotes {
  std::vector<std::string> info, warnings;
  std::string fallback;  // set when auto fell back to the CPU engine because the CUDA one failed to start
};

// The engine the options ask for, on `split`'s training data (kept by reference: it must outlive
// the engine). Pop always gets the CPU engine (it does not train). device cpu: the CPU engine;
// cuda: the CUDA engine, Error(kExitUnavailable) when no GPU is usable; auto: the CUDA engine when
// a GPU is usable and the engine starts, else the CPU engine.
std::unique_ptr<Engine> make_engine(const EngineOptions& opts, const Split& split, EngineNotes* notes = nullptr);

// device: cuda without a usable GPU is Error(kExitUnavailable): checked before anything is loaded.
void check_device(const EngineOptions& opts);

// The two implementations, for make_engine and the engine comparison.
std::unique_ptr<Engine> make_cpu_engine(const EngineOptions& opts, const Split& split);
std::unique_ptr<Engine> make_cuda_engine(const EngineOptions& opts, const Split& split);  // throws where no GPU

// The first non-finite value of `p`: the network, then the user rows, then the item rows (only
// the listed rows when `rows_only`).
NonFinite first_non_finite(const Params<float>& p, bool rows_only, const std::vector<int32_t>& users,
                           const std::vector<int32_t>& items);

}  // namespace convncf
