// engine.cpp: the engine factory and what every engine shares (see engine.hpp).
#include "convncf/engine.hpp"

#include <cmath>

#include "convncf/dist.hpp"
#include "convncf/errors.hpp"
#include "convncf/fused_tower.hpp"
#include "convncf/gpu.hpp"

namespace convncf {

void check_device(const EngineOptions& opts) {
  if (opts.device != Device::Cuda) return;
  std::string reason;
  if (!cuda_device_available(&reason)) throw Error(kExitUnavailable, "device: cuda, but no usable GPU: " + reason);
}

// Whether make_engine would give the run a CUDA engine (it may still fall back to the CPU on auto).
static bool trains_on_gpu(const EngineOptions& opts, bool gpu) {
  return gpu && opts.model != ModelKind::Pop && (opts.device == Device::Cuda || !opts.negatives.dynamic);
}

std::unique_ptr<Engine> make_engine(const EngineOptions& options, const Split& split, EngineNotes* notes) {
  EngineNotes dropped;
  EngineNotes& n = notes ? *notes : dropped;
  EngineOptions opts = options;
  std::string reason;
  bool gpu = opts.device != Device::Cpu && cuda_device_available(&reason);
  if (opts.device == Device::Cuda && !gpu) throw Error(kExitUnavailable, "device: cuda, but no usable GPU: " + reason);
  const World& world = World::get();
  if (world.distributed()) {
    // The ranks' steps exchange with each other, so they must all take the same engine: device
    // auto takes the GPUs only when every rank has one (device cuda already failed on a rank
    // without one, which ends the job).
    const std::vector<std::vector<char>> all = world.allgather(std::vector<char>{char(gpu)});
    for (size_t r = 0; r < all.size(); ++r)
      if (gpu && !all[r][0]) {
        gpu = false;
        reason = "rank " + std::to_string(r) + " has no usable GPU, and the ranks must take the same engine";
      }
    if (trains_on_gpu(opts, gpu)) {
      const int device = use_rank_device(world.local_rank());
      n.info.push_back("rank " + std::to_string(world.rank()) + " trains on GPU " + std::to_string(device) +
                       " (local rank " + std::to_string(world.local_rank()) + ")");
      if (!opts.cuda.deterministic) {
        opts.cuda.deterministic = true;
        n.warnings.push_back("warning: sparse_grad: fast sums rows in an order that differs between runs, so the ranks' "
                             "updates would drift apart: with several ranks the rows are summed deterministically");
      }
    }
  }
  if (opts.device == Device::Cuda && opts.negatives.dynamic)
    throw_usage("dynamic negative sampling (train_neg_sample_args: dynamic: true) is done by the CPU engine only");
  const bool trains = opts.model != ModelKind::Pop;  // the popularity model only counts
  std::unique_ptr<Engine> engine;
  if (gpu && trains && !opts.negatives.dynamic) {  // dynamic negatives are scored by the CPU engine
    try {
      engine = make_cuda_engine(opts, split);
      if (opts.device == Device::Auto) n.info.push_back("device auto: using the CUDA engine");
      n.info.push_back(engine->describe());
      return engine;
    } catch (const Error& e) {  // e.g. cuDNN offers no plan for this tower, or out of memory
      // several ranks: no rank falls back alone (their steps exchange): the error ends the job
      if (opts.device == Device::Cuda || world.distributed()) throw;
      n.fallback = std::string("device auto: the CUDA engine could not start (") + e.what() + "); using the CPU engine";
      n.info.push_back(n.fallback);
    }
  } else if (opts.device == Device::Auto) {
    n.info.push_back(!gpu ? "device auto: no usable GPU found; using the CPU engine\n  why: " + reason
                     : opts.model == ModelKind::Pop
                         ? std::string("device auto: using the CPU engine (the popularity model does not train)")
                         : std::string("device auto: using the CPU engine (dynamic negative sampling runs on it only)"));
  }
  if (trains && (opts.cuda.lazy_adam || !opts.cuda.deterministic))
    n.warnings.push_back("warning: embedding_update and sparse_grad are CUDA engine options: the CPU engine updates "
                         "Adam densely and sums rows deterministically");
  if (trains && (opts.cuda.fused || opts.cuda.precision != Precision::FP32))
    n.warnings.push_back(std::string("warning: engine and precision are CUDA engine options: the CPU engine computes "
                                     "in FP32 and ignores them (engine: ") +
                         (opts.cuda.fused ? "fused" : "cudnn") + ", precision: " + precision_name(opts.cuda.precision) +
                         ")");
  return make_cpu_engine(opts, split);
}

NonFinite first_non_finite(const Params<float>& p, bool rows_only, const std::vector<int32_t>& users,
                           const std::vector<int32_t>& items) {
  NonFinite bad;
  for (size_t k = 0; k < p.net.size(); ++k)
    if (!std::isfinite(p.net[k])) {
      bad.where = NonFinite::Where::Network;
      bad.index = int64_t(k);
      return bad;
    }
  if (p.P.empty()) return bad;
  const size_t E = size_t(p.E);
  auto row_bad = [E](const std::vector<float>& t, int32_t r) {
    for (size_t j = 0; j < E; ++j)
      if (!std::isfinite(t[size_t(r) * E + j])) return true;
    return false;
  };
  auto scan = [&](const std::vector<float>& t, const std::vector<int32_t>& touched, int32_t n_rows,
                  NonFinite::Where where) {
    if (rows_only) {
      for (int32_t r : touched)
        if (row_bad(t, r)) return NonFinite{where, r, ""};
    } else {
      for (int32_t r = 0; r < n_rows; ++r)
        if (row_bad(t, r)) return NonFinite{where, r, ""};
    }
    return NonFinite{};
  };
  bad = scan(p.P, users, p.n_users, NonFinite::Where::User);
  if (!bad.any()) bad = scan(p.Q, items, p.n_items, NonFinite::Where::Item);
  return bad;
}

}  // namespace convncf
