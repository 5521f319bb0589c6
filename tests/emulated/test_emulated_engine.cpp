// test_emulated_engine.cpp: the CUDA engine's host side (host/cuda/gpu_engine.cpp, host/cuda/eval_gpu.cpp,
// host/engine_compare.cpp) on the emulated device of this folder: the same end-to-end checks as
// tests/test_gpu_engine.cpp, which skip without a GPU, run here everywhere. A failure is a bug in
// the engine's sizes, offsets, layouts, call order or update logic (or in a fake), never in a
// kernel: the kernels are the CPU twins here.
//   build/tests/emulated/convncf_emulated_tests      ctest --test-dir build -L emulated
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "convncf/config.hpp"
#include "convncf/cpu_engine.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/dataset.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/dist.hpp"
#include "convncf/engine_compare.hpp"
#include "convncf/errors.hpp"
#include "convncf/eval_gpu.hpp"
#include "convncf/evaluate.hpp"
#include "convncf/gpu.hpp"
#include "convncf/gpu_engine.hpp"
#include "convncf/model.hpp"
#include "convncf/nccl.hpp"
#include "convncf/optim.hpp"
#include "convncf/outer_product.hpp"
#include "../engine_test_fixture.hpp"
#include "emulated_device.hpp"

namespace {

using namespace convncf;
using namespace convncf::engine_test;

void run_case(const std::string& name, const std::vector<std::string>& args,
              const EngineTolerance& tol) {
  SCOPED_TRACE(name);
  const int64_t live = emul::live_allocations();
  const EngineComparison r = compare_engines(args, tol);
  expect_agreement(r);
  EXPECT_EQ(emul::live_allocations(), live) << "device allocations leaked";
  ::testing::Test::RecordProperty(name + " steps", r.steps);
  ::testing::Test::RecordProperty(name + " worst_loss_rel", std::to_string(r.worst_loss_rel));
  ::testing::Test::RecordProperty(name + " worst_param", std::to_string(r.worst_param));
}

TEST(Emulated, DeviceIsTheEmulator) {
  std::string reason;
  EXPECT_TRUE(cuda_device_available(&reason));
  EXPECT_NE(cuda_device_summary().find("emulated"), std::string::npos);
}

// The fakes' own checks fire: otherwise a passing comparison would say little about sizes.
TEST(Emulated, LaunchersRejectHostPointersAndShortBuffers) {
  const int E = 4;
  DeviceBuffer<int32_t> ids(std::vector<int32_t>{0, 1});
  DeviceBuffer<float> P(std::vector<float>(2 * E, 1.0f)), out_short(2 * E * E - 1), out(2 * E * E);
  EXPECT_NO_THROW(
      outer_product_fwd(2, E, ids.data(), ids.data(), P.data(), P.data(), out.data(), nullptr, 2));
  EXPECT_THROW(outer_product_fwd(2, E, ids.data(), ids.data(), P.data(), P.data(), out_short.data(),
                                 nullptr, 2),
               Error);
  std::vector<float> host(2 * E * E);
  EXPECT_THROW(
      outer_product_fwd(2, E, ids.data(), ids.data(), P.data(), P.data(), host.data(), nullptr, 2),
      Error);
  DeviceBuffer<int32_t> bad_ids(std::vector<int32_t>{0, 2});  // row 2 of a 2-row table
  EXPECT_THROW(outer_product_fwd(2, E, bad_ids.data(), ids.data(), P.data(), P.data(), out.data(),
                                 nullptr, 2),
               Error);
  std::vector<float> back(4);
  EXPECT_THROW(CUDA_CHECK(cudaMemcpy(back.data(), P.data() + 2 * E - 2, 4 * sizeof(float),
                                     cudaMemcpyDeviceToHost)),
               Error);
}

TEST(Emulated, RecBolePresetStepsMatchCpuEngine) {
  run_case("recbole", with(kSmall, {"--preset=recbole", "--model=ConvNCF"}), {1e-4, 1e-5, 2e-3});
}

TEST(Emulated, PaperPresetWarmupStepsMatchCpuEngine) {
  run_case("paper warm-up",
           with(kSmall, {"--preset=paper", "--model=ConvNCF", "--drop_last_batch=false"}),
           {1e-4, 1e-5, 1e-3});
}

TEST(Emulated, PaperPresetMainStepsMatchCpuEngine) {
  run_case("paper main",
           with(kSmall, {"--preset=paper", "--model=ConvNCF", "--warmup_epochs=0",
                         "--drop_last_batch=false"}),
           {1e-4, 1e-5, 1e-3});
}

// engine: fused, its launchers running the fused twins.
TEST(Emulated, FusedStepsMatchCpuEngine) {
  for (const EngineCase& c : fused_recbole_cases()) run_case(c.name, c.args, c.tol);
  for (const EngineCase& c : fused_paper_cases()) run_case(c.name, c.args, c.tol);
}

TEST(Emulated, BprStepsMatchCpuEngine) {
  run_case("bpr adam", with(kSmall, {"--model=BPR"}), {1e-5, 1e-5, 1e-3});
  run_case("bpr sgd", with(kSmall, {"--model=BPR", "--learner=sgd", "--learning_rate=0.05"}),
           {1e-5, 1e-6, 1e-4});
}

// train_neg_sample_args: several negatives per positive (RecBole's layout) and popularity draws
// on the device sampler's launcher (its twin here) give the CPU engine's triples.
TEST(Emulated, NegativeSamplingStepsMatchCpuEngine) {
  run_case("bpr popularity x3",
           with(kSmall, {"--model=BPR", "--train_neg_sample_args={distribution: popularity, sample_num: 3, alpha: 0.75}"}),
           {1e-5, 1e-5, 1e-3});
  run_case("recbole uniform x2",
           with(kSmall, {"--preset=recbole", "--model=ConvNCF", "--train_neg_sample_args={sample_num: 2}"}),
           {1e-4, 1e-5, 2e-3});
  // dynamic negatives are the CPU engine's alone: the CUDA engine refuses them by name
  Fixture s = make_setup(with(kSmall, {"--model=BPR"}));
  GpuEngineOptions o = options_for(s.cfg);
  o.negatives.dynamic = true;
  o.negatives.candidate_num = 2;
  try {
    GpuEngine gpu(s.cfg.model, nullptr, s.split, s.cfg.embedding_size, o);
    ADD_FAILURE() << "the CUDA engine accepted dynamic negative sampling";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitUsage);
    EXPECT_NE(std::string(e.what()).find("dynamic"), std::string::npos) << e.what();
  }
}

// The fast (atomics) combiner: on the emulator the same arithmetic, so it must agree as closely.
TEST(Emulated, FastSparseGradStepsMatchCpuEngine) {
  run_case("recbole fast",
           with(kSmall, {"--preset=recbole", "--model=ConvNCF", "--sparse_grad=fast"}),
           {1e-4, 1e-5, 2e-3});
}

// Lazy Adam (optim_rows_gpu with Adam) has no CPU counterpart in compare_engines; here it must run
// through the engine's checks, train (finite, loss changing) and keep the untouched rows' state.
TEST(Emulated, LazyAdamStepsRunAndMoveOnlyBatchRows) {
  Fixture s = make_setup(with(kSmall, {"--model=BPR", "--embedding_update=lazy"}));
  GpuEngineOptions o = options_for(s.cfg);
  ASSERT_TRUE(o.lazy_adam);
  o.verbose = true;
  OptimizerSpec os;
  os.lr = s.cfg.learning_rate;
  Optimizer<float> oP(os, int64_t(s.prm.P.size())), oQ(os, int64_t(s.prm.Q.size())), oN(os, 0);
  GpuEngine gpu(s.cfg.model, nullptr, s.split, s.cfg.embedding_size, o);
  EXPECT_NE(gpu.describe().find("emulated"), std::string::npos) << gpu.describe();
  gpu.upload_params(s.prm);
  gpu.upload_optimizers(0, {&oP, &oQ, &oN});
  std::vector<int64_t> order(s.split.train_user.size());
  std::iota(order.begin(), order.end(), 0);
  gpu.set_epoch_order(order);
  const RegSpec reg{s.cfg.reg_type, s.cfg.reg_weights, true};
  const int64_t n = 40;  // the first 40 positives: few users, so most user rows stay untouched
  const GpuEngine::StepResult r = gpu.train_step(1, 0, n, 0, reg, DropoutSpec{}, 5);
  EXPECT_TRUE(r.non_finite.empty()) << r.non_finite;
  EXPECT_GT(r.loss.bpr, 0);
  Params<float> p = s.prm;
  gpu.download_params(p);
  gpu.download_optimizers(0, {&oP, &oQ, &oN});
  EXPECT_EQ(oP.steps(), 1);
  std::vector<bool> in_batch(size_t(s.split.n_users), false);
  for (int64_t j = 0; j < n; ++j) in_batch[size_t(s.split.train_user[size_t(j)])] = true;
  const int E = s.cfg.embedding_size;
  int moved = 0;
  for (int32_t u = 0; u < s.split.n_users; ++u) {
    bool row_moved = false, state_set = false;
    for (int e = 0; e < E; ++e) {
      const size_t i = size_t(u) * E + size_t(e);
      row_moved |= p.P[i] != s.prm.P[i];
      state_set |= oP.state0()[i] != 0.0f;
    }
    if (!in_batch[size_t(u)]) {
      EXPECT_FALSE(row_moved) << "user " << u << " is not in the batch";
      EXPECT_FALSE(state_set) << "user " << u << " is not in the batch";
    }
    moved += row_moved;
  }
  EXPECT_GT(moved, 0);
}

TEST(Emulated, DeterministicModeIsBitReproducible) {
  const Fixture s = make_setup(with(kSmall, {"--preset=recbole", "--model=ConvNCF"}));
  const std::vector<float> first = params_after_three_steps(s);
  EXPECT_TRUE(params_after_three_steps(s) == first) << "two deterministic runs differ";
}

// The data-parallel step (gpu_engine.hpp) with the emulated NCCL (fake_nccl.cpp). One rank through
// the exchange is the single GPU's step, bit for bit.
TEST(EmulatedNccl, OneRankThroughNcclIsTheSingleGpuStep) { expect_one_rank_through_nccl_is_the_single_step(); }

// Two and three ranks (threads here, each its own engine): every rank ends with the same bits, and
// with the single GPU's model: MF-BPR bit for bit (its rows are the same values summed in the same
// order), ConvNCF within rounding (the network's gradient is summed per share, then over ranks).
// The last step of 2 positives leaves the third rank an empty share.
TEST(EmulatedNccl, RanksTrainTheSingleGpuStep) {
  for (const std::vector<std::string>& args : data_parallel_cases()) {
    const Fixture s = make_setup(args);
    const std::vector<float> single = params_after_three_steps(s, nullptr, 2);
    for (const int ranks : {2, 3}) {
      SCOPED_TRACE(args.back() + ", " + std::to_string(ranks) + " ranks");
      emul::Team team(ranks);
      std::vector<std::vector<float>> got(static_cast<size_t>(ranks));
      std::vector<std::string> errors(static_cast<size_t>(ranks));
      std::vector<std::thread> threads;
      for (int r = 0; r < ranks; ++r)
        threads.emplace_back([&, r] {
          emul::join_team(&team, r);
          try {
            NcclComm comm(World::get());
            got[size_t(r)] = params_after_three_steps(s, &comm, 2);
          } catch (const std::exception& e) {
            errors[size_t(r)] = e.what();
          }
          emul::join_team(nullptr, 0);
        });
      for (std::thread& t : threads) t.join();
      for (int r = 0; r < ranks; ++r) ASSERT_EQ(errors[size_t(r)], "") << "rank " << r;
      for (int r = 1; r < ranks; ++r) EXPECT_TRUE(got[size_t(r)] == got[0]) << "rank " << r << " differs from rank 0";
      ASSERT_EQ(got[0].size(), single.size());
      if (s.cfg.model == ModelKind::BPR) {
        EXPECT_TRUE(got[0] == single) << "MF-BPR on several ranks differs from one GPU";
        continue;
      }
      double worst = 0;
      for (size_t i = 0; i < single.size(); ++i)
        worst = std::max(worst, double(std::fabs(got[0][i] - single[i])) / (1.0 + std::fabs(single[i])));
      EXPECT_LT(worst, 1e-5) << "the ranks' model is not the single GPU's";
      EXPECT_FALSE(got[0] == params_after_three_steps(s, nullptr, 0)) << "the last step changed nothing";
    }
  }
}

TEST(Emulated, ScoreRangeMatchesCpuEngine) {
  for (const char* model : {"--model=ConvNCF", "--engine=fused", "--model=BPR"}) {
    SCOPED_TRACE(model);
    Fixture s = make_setup(with(kSmall, {model}));
    CpuEngine<float> cpu(s.cfg.model, s.conv ? &s.tower : nullptr, s.split.n_users, s.split.n_items,
                         s.cfg.embedding_size, 1);
    GpuEngine gpu(s.cfg.model, s.conv ? &s.tower : nullptr, s.split, s.cfg.embedding_size,
                  options_for(s.cfg));
    gpu.upload_params(s.prm);
    cpu.prepare_scoring(s.prm);
    PairWork<float> w = cpu.make_work();
    const std::vector<int32_t> users{3, 4};
    DeviceBuffer<int32_t> du(users);
    DeviceBuffer<float> out(120);
    gpu.score_range(du.data(), 2, 10, 60, out.data(), gpu.stream());
    CUDA_CHECK(cudaStreamSynchronize(gpu.stream()));
    std::vector<int32_t> items(60);
    std::iota(items.begin(), items.end(), 10);
    std::vector<float> want(120);
    for (int j = 0; j < 2; ++j)
      cpu.score_items(s.prm, users[size_t(j)], items.data(), 60, want.data() + 60 * j, w);
    const std::vector<float> got = out.download();
    double worst = 0;
    for (size_t i = 0; i < want.size(); ++i)
      worst =
          std::max(worst, std::fabs(double(got[i]) - want[i]) / (1e-5 + 1e-4 * std::fabs(want[i])));
    EXPECT_LE(worst, 1.0) << "worst score error in tolerance units";
    EXPECT_FALSE(want == std::vector<float>(want.size(), 0.0f));
  }
}

// evaluate_gpu(engine) against evaluate() with the CPU engine's scorer on the same parameters.
TEST(Emulated, EvaluateGpuMatchesEvaluate) {
  for (const char* model : {"--model=ConvNCF", "--engine=fused", "--model=BPR"}) {
    Fixture s = make_setup(with(kSmall, {model}));
    CpuEngine<float> cpu(s.cfg.model, s.conv ? &s.tower : nullptr, s.split.n_users, s.split.n_items,
                         s.cfg.embedding_size, 1);
    std::unique_ptr<Scorer> scorer = make_scorer(cpu, s.prm);
    GpuEngine gpu(s.cfg.model, s.conv ? &s.tower : nullptr, s.split, s.cfg.embedding_size,
                  options_for(s.cfg));
    gpu.upload_params(s.prm);
    const std::vector<int> topk{1, 5, 10, 20};
    for (const char* mode : {"full", "uni99"}) {
      for (bool test : {false, true}) {
        SCOPED_TRACE(std::string(model) + " " + mode + (test ? " test" : " valid"));
        const EvalSet set = make_eval_set(s.split, test, mode, 7, 1, nullptr);
        ASSERT_GT(set.size(), 0);
        const Metrics want = evaluate(*scorer, set, topk);
        const Metrics got = evaluate_gpu(gpu, set, topk, gpu.stream());
        ASSERT_EQ(got.size(), want.size());
        bool any_nonzero = false;
        for (size_t i = 0; i < want.size(); ++i) {
          EXPECT_EQ(got[i].first, want[i].first);
          EXPECT_NEAR(got[i].second, want[i].second, 1e-9) << want[i].first;
          any_nonzero |= want[i].second != 0;
        }
        EXPECT_TRUE(any_nonzero);
      }
    }
  }
}

TEST(Emulated, TopKGpuMatchesTopK) {
  for (const char* model : {"--model=ConvNCF", "--engine=fused", "--model=BPR"}) {
    SCOPED_TRACE(model);
    Fixture s = make_setup(with(kSmall, {model}));
    CpuEngine<float> cpu(s.cfg.model, s.conv ? &s.tower : nullptr, s.split.n_users, s.split.n_items,
                         s.cfg.embedding_size, 1);
    std::unique_ptr<Scorer> scorer = make_scorer(cpu, s.prm);
    GpuEngine gpu(s.cfg.model, s.conv ? &s.tower : nullptr, s.split, s.cfg.embedding_size,
                  options_for(s.cfg));
    gpu.upload_params(s.prm);
    std::vector<int32_t> users(size_t(s.split.n_users));
    std::iota(users.begin(), users.end(), 0);
    const std::vector<const Csr*> exclude{&s.split.train};
    for (int32_t k :
         {1, 10, 95}) {  // 95: more than the 90 items, fewer than those left after exclusion
      SCOPED_TRACE(k);
      const auto want = top_k(*scorer, users, exclude, k);
      const auto got = top_k_gpu(gpu, users, exclude, k, gpu.stream());
      ASSERT_EQ(got.size(), want.size());
      for (size_t u = 0; u < want.size(); ++u) {
        ASSERT_EQ(got[u].size(), want[u].size()) << "user " << u;
        for (size_t j = 0; j < want[u].size(); ++j) {
          EXPECT_EQ(got[u][j].first, want[u][j].first) << "user " << u << " rank " << j;
          EXPECT_NEAR(got[u][j].second, want[u][j].second,
                      1e-5 + 1e-4 * std::fabs(want[u][j].second));
        }
      }
    }
  }
}

}  // namespace
