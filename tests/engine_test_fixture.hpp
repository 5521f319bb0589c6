// engine_test_fixture.hpp: what the CUDA-engine tests share, on a GPU (tests/test_gpu_engine.cpp)
// and on the emulated device (tests/emulated/test_emulated_engine.cpp): the small tower they
// train, a model on engine_compare's data, the engine options, and the check of a comparison.
#pragma once
#include <gtest/gtest.h>

#include <initializer_list>
#include <numeric>
#include <string>
#include <vector>

#include "convncf/config.hpp"
#include "convncf/dataset.hpp"
#include "convncf/dist.hpp"
#include "convncf/engine_compare.hpp"
#include "convncf/gpu_engine.hpp"
#include "convncf/model.hpp"
#include "convncf/nccl.hpp"
#include "convncf/optim.hpp"
#include "convncf/options.hpp"

namespace convncf {
namespace engine_test {

// A small tower (E 16: 16 -> 4 -> 1) keeps the cases fast; batch 256 leaves a partial last batch.
inline const std::vector<std::string> kSmall{"--embedding_size=16",    "--cnn_channels=[1,8,8]",
                                             "--cnn_kernels=[4,4]",    "--cnn_strides=[4,4]",
                                             "--train_batch_size=256", "--seed=5"};

inline std::vector<std::string> with(std::vector<std::string> a, std::initializer_list<const char*> more) {
  for (const char* m : more) a.push_back(m);
  return a;
}

// A configuration's initial model on small_synthetic_split().
struct Fixture {
  Config cfg;
  Split split;
  TowerSpec tower;
  bool conv = false;
  Params<float> prm;
};

inline Fixture make_setup(const std::vector<std::string>& args) {
  Fixture s;
  s.cfg = Config::from_args(args);
  s.split = small_synthetic_split();
  s.conv = s.cfg.model == ModelKind::ConvNCF;
  if (s.conv)
    s.tower = TowerSpec::make(s.cfg.embedding_size, s.cfg.cnn_channels, s.cfg.cnn_kernels, s.cfg.cnn_strides);
  s.prm = init_params(s.cfg, s.conv ? &s.tower : nullptr, s.split.n_users, s.split.n_items);
  return s;
}

// The fused engine's comparisons, shared by the GPU and the emulated engine tests: the recbole
// settings in each precision (tolerances by precision, engine_tolerance), the paper preset's
// warm-up and main phases in fp32.
struct EngineCase {
  std::string name;
  std::vector<std::string> args;
  EngineTolerance tol;
};
inline std::vector<EngineCase> fused_recbole_cases() {
  const std::vector<std::string> base = with(kSmall, {"--preset=recbole", "--model=ConvNCF", "--engine=fused"});
  return {{"recbole fused", base, engine_tolerance(Precision::FP32)},
          {"recbole fused tf32", with(base, {"--precision=tf32"}), engine_tolerance(Precision::TF32)},
          {"recbole fused bf16", with(base, {"--precision=bf16"}), engine_tolerance(Precision::BF16)}};
}
inline std::vector<EngineCase> fused_paper_cases() {
  const std::vector<std::string> base =
      with(kSmall, {"--preset=paper", "--model=ConvNCF", "--drop_last_batch=false", "--engine=fused"});
  return {{"paper warm-up fused", base, {1e-4, 1e-5, 1e-3}},
          {"paper main fused", with(base, {"--warmup_epochs=0"}), {1e-4, 1e-5, 1e-3}}};
}

inline GpuEngineOptions options_for(const Config& cfg) {
  GpuEngineOptions o = gpu_engine_options(cfg);
  o.eval_pairs = 300;
  return o;
}

// Three steps of batch 256 (dropout 0.2, Adam) from the fixture's model on a fresh GpuEngine, then
// `tail` positives more when tail > 0: P, Q and the network after them, end to end. Two calls
// give the same bits in deterministic mode (DeterministicModeIsBitReproducible, on a GPU and on
// the emulated device). With `comm` (nccl.hpp) every step is this rank's share of the step.
inline std::vector<float> params_after_three_steps(const Fixture& s, NcclComm* comm = nullptr, int64_t tail = 0) {
  OptimizerSpec os;
  os.lr = s.cfg.learning_rate;
  Optimizer<float> oP(os, int64_t(s.prm.P.size())), oQ(os, int64_t(s.prm.Q.size())),
      oN(os, int64_t(s.prm.net.size()));
  GpuEngineOptions o = options_for(s.cfg);
  o.comm = comm;
  GpuEngine gpu(s.cfg.model, &s.tower, s.split, s.cfg.embedding_size, o);
  gpu.upload_params(s.prm);
  gpu.upload_optimizers(0, {&oP, &oQ, &oN});
  std::vector<int64_t> order(s.split.train_user.size());
  std::iota(order.begin(), order.end(), 0);
  gpu.set_epoch_order(order);
  const RegSpec reg{s.cfg.reg_type, s.cfg.reg_weights, true};
  const int64_t n = 256 / o.negatives.sample_num;  // positives of a full step
  int64_t lo = 0;
  for (int64_t st = 1; lo + n <= int64_t(order.size()) && st <= 4; lo += n, ++st) {
    const int64_t k = st <= 3 ? n : tail;
    if (k == 0) break;
    const GpuEngine::StepResult r = gpu.train_step(1, lo, k, 0, reg, DropoutSpec{0.2, 5, uint64_t(st)}, 5);
    EXPECT_TRUE(r.non_finite.empty()) << r.non_finite;
    EXPECT_GT(r.loss.bpr, 0);
  }
  Params<float> p = s.prm;
  gpu.download_params(p);
  std::vector<float> all = p.P;
  all.insert(all.end(), p.Q.begin(), p.Q.end());
  all.insert(all.end(), p.net.begin(), p.net.end());
  EXPECT_FALSE(all == std::vector<float>(all.size(), 0.0f));
  return all;
}

// The data-parallel cases (gpu_engine.hpp's exchange): the cuDNN and fused towers, the paper
// preset's row regularization, MF-BPR with three popularity negatives per positive (shares of
// unequal length).
inline std::vector<std::vector<std::string>> data_parallel_cases() {
  return {with(kSmall, {"--preset=recbole", "--model=ConvNCF"}),
          with(kSmall, {"--preset=recbole", "--model=ConvNCF", "--engine=fused"}),
          with(kSmall, {"--preset=paper", "--model=ConvNCF", "--warmup_epochs=0"}),
          with(kSmall, {"--model=BPR", "--train_neg_sample_args={distribution: popularity, sample_num: 3, alpha: 0.75}"})};
}

// One rank through a communicator of one (CONVNCF_FORCE_NCCL's path, nccl.hpp): the shares, the
// all-reduce, the all-gather and the reassembly give the single device's bits, for every case.
inline void expect_one_rank_through_nccl_is_the_single_step() {
  for (const std::vector<std::string>& args : data_parallel_cases()) {
    SCOPED_TRACE(args.back());
    const Fixture s = make_setup(args);
    const std::vector<float> single = params_after_three_steps(s, nullptr, 37);
    NcclComm comm(World::get());
    ASSERT_EQ(comm.size(), 1);
    EXPECT_TRUE(params_after_three_steps(s, &comm, 37) == single) << "one rank through NCCL differs from one device";
  }
}

// A comparison ran several steps, ended on a partial batch, and agreed within its tolerances.
inline void expect_agreement(const EngineComparison& r) {
  EXPECT_GT(r.steps, 1);
  EXPECT_TRUE(r.partial_last_batch) << "the case should end on a partial batch";
  EXPECT_TRUE(r.ok) << r.detail << "worst loss error " << r.worst_loss_rel << " (relative), worst parameter error "
                    << r.worst_param << " tolerances";
}

}  // namespace engine_test
}  // namespace convncf
