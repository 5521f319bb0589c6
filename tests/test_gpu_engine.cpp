// test_gpu_engine.cpp: the CUDA engine against the CPU reference engine, end to end. Both engines
// start from the same parameters and optimizer state and see the same batches (the GPU samples
// its negatives on the device with the host's generator); after every step the losses must
// agree, and after the last step (an epoch's partial batch included) the parameters and the
// optimizer state. Also: deterministic sparse gradients give bit-identical runs, and the
// engine's evaluation scores equal the CPU engine's. Skips without a GPU.
//   build/convncf_tests --gtest_filter='GpuEngine.*'
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "convncf/config.hpp"
#include "convncf/cpu_engine.hpp"
#include "convncf/dataset.hpp"
#include "convncf/dist.hpp"
#include "convncf/engine_compare.hpp"
#include "convncf/gpu_engine.hpp"
#include "convncf/model.hpp"
#include "convncf/nccl.hpp"
#include "convncf/optim.hpp"
#include "convncf/rng.hpp"
#include "engine_test_fixture.hpp"
#include "gpu_test_util.hpp"

namespace {

using namespace convncf;
using namespace convncf::engine_test;

void run_case(const std::string& name, const std::vector<std::string>& args, const EngineTolerance& tol) {
  SCOPED_TRACE(name);
  const EngineComparison r = compare_engines(args, tol);
  expect_agreement(r);
}

TEST(GpuEngine, ComparisonDataEndsOnPartialBatch) {  // runs everywhere: the GPU cases rely on it
  const int64_t T = int64_t(small_synthetic_split().train_user.size());
  EXPECT_GT(T, 3 * 256);
  EXPECT_NE(T % 256, 0) << T;
}

TEST(GpuEngine, RecBolePresetStepsMatchCpuEngine) {
  CONVNCF_REQUIRE_GPU();
  // Adam, dropout 0.2, whole-table norms: every row moves every step.
  run_case("recbole", with(kSmall, {"--preset=recbole", "--model=ConvNCF"}), {1e-4, 1e-5, 2e-3});
}

TEST(GpuEngine, PaperPresetWarmupStepsMatchCpuEngine) {
  CONVNCF_REQUIRE_GPU();
  // Epoch 1 of the paper preset: the warm-up Adagrad on the loss without regularization.
  run_case("paper warm-up", with(kSmall, {"--preset=paper", "--model=ConvNCF", "--drop_last_batch=false"}),
           {1e-4, 1e-5, 1e-3});
}

TEST(GpuEngine, PaperPresetMainStepsMatchCpuEngine) {
  CONVNCF_REQUIRE_GPU();
  // The paper's main phase: Adagrad with squared row and network norms (rows-only updates).
  run_case("paper main", with(kSmall, {"--preset=paper", "--model=ConvNCF", "--warmup_epochs=0", "--drop_last_batch=false"}),
           {1e-4, 1e-5, 1e-3});
}

// engine: fused. FP32 as closely as cuDNN; tf32 and bf16 round the products of layers 2..L, so
// the losses and parameters move by about their rounding (the same bounds as Emulated.Fused*).
TEST(GpuEngine, FusedRecBolePresetStepsMatchCpuEngine) {
  CONVNCF_REQUIRE_GPU();
  for (const EngineCase& c : fused_recbole_cases()) run_case(c.name, c.args, c.tol);
}

TEST(GpuEngine, FusedPaperPresetStepsMatchCpuEngine) {
  CONVNCF_REQUIRE_GPU();
  for (const EngineCase& c : fused_paper_cases()) run_case(c.name, c.args, c.tol);
}

TEST(GpuEngine, BprStepsMatchCpuEngine) {
  CONVNCF_REQUIRE_GPU();
  run_case("bpr adam", with(kSmall, {"--model=BPR"}), {1e-5, 1e-5, 1e-3});
  run_case("bpr sgd", with(kSmall, {"--model=BPR", "--learner=sgd", "--learning_rate=0.05"}), {1e-5, 1e-6, 1e-4});
}

TEST(GpuEngine, DeterministicModeIsBitReproducible) {
  CONVNCF_REQUIRE_GPU();
  const Fixture s = make_setup(with(kSmall, {"--preset=recbole", "--model=ConvNCF"}));
  const std::vector<float> first = params_after_three_steps(s);
  EXPECT_TRUE(params_after_three_steps(s) == first) << "two deterministic runs differ";
}

// The data-parallel step through a real NCCL communicator of one rank (CONVNCF_FORCE_NCCL's path,
// nccl.hpp): the share, the all-reduce, the all-gather and the reassembly give the single GPU's
// bits. Several ranks run on the emulated device (tests/emulated, EmulatedNccl.*).
TEST(GpuEngine, OneRankThroughNcclIsTheSingleGpuStep) {
  CONVNCF_REQUIRE_GPU();
  expect_one_rank_through_nccl_is_the_single_step();
}

TEST(GpuEngine, EvaluationScoresMatchCpuEngine) {
  CONVNCF_REQUIRE_GPU();
  for (const char* model : {"--model=ConvNCF", "--model=BPR"}) {
    SCOPED_TRACE(model);
    Fixture s = make_setup(with(kSmall, {model}));
    CpuEngine<float> cpu(s.cfg.model, s.conv ? &s.tower : nullptr, s.split.n_users, s.split.n_items,
                         s.cfg.embedding_size, 1);
    GpuEngine gpu(s.cfg.model, s.conv ? &s.tower : nullptr, s.split, s.cfg.embedding_size, options_for(s.cfg));
    gpu.upload_params(s.prm);
    cpu.prepare_scoring(s.prm);
    PairWork<float> w = cpu.make_work();
    // users 3 and 4 against items 10 .. 10+60 (120 pairs, eval_pairs is 300)
    const std::vector<int32_t> users{3, 4};
    DeviceBuffer<int32_t> du(users);
    DeviceBuffer<float> out(120);
    test::poison(out);
    // The upload of du (pageable cudaMemcpy) and the poison (cudaMemset) run on the legacy
    // stream, which the engine's non-blocking stream does not wait for: finish them first.
    CUDA_CHECK(cudaDeviceSynchronize());
    gpu.score_range(du.data(), 2, 10, 60, out.data(), gpu.stream());
    CUDA_CHECK(cudaStreamSynchronize(gpu.stream()));
    std::vector<int32_t> items(60);
    std::iota(items.begin(), items.end(), 10);
    std::vector<float> want(120);
    for (int j = 0; j < 2; ++j) cpu.score_items(s.prm, users[size_t(j)], items.data(), 60, want.data() + 60 * j, w);
    test::expect_close(out.download(), want, 1e-5, 1e-4, "score_range");
  }
}

}  // namespace
