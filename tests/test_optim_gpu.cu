// test_optim_gpu.cu: the GPU updaters (kernels/optim.cu) against Optimizer<float> (host/optim.cpp),
// several steps of each learner on random parameters and gradients, dense and on a device list of
// rows. Both sides run optim.hpp's per-element functions; they may differ where the device fuses
// a multiply-add into one rounding, so the tolerance is a few float ulps. CPU-only checks (the
// bias corrections, argument checks) always run; the rest skips without a CUDA device.
//   build/convncf_tests --gtest_filter='OptimGpu*:AdamCorrections*'
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "convncf/cuda_check.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/errors.hpp"
#include "convncf/optim.hpp"
#include "convncf/optim_gpu.hpp"
#include "convncf/rng.hpp"
#include "gpu_test_util.hpp"

namespace {

using convncf::DeviceBuffer;
using convncf::Learner;
using convncf::OptimizerSpec;

constexpr int kSteps = 5;
// A few float ulps around magnitudes of order 1 (parameters are N(0, 1)).
constexpr double kAtol = 1e-6, kRtol = 1e-6;

// The learners as the presets use them, with and without weight decay.
std::vector<std::pair<std::string, OptimizerSpec>> specs() {
  std::vector<std::pair<std::string, OptimizerSpec>> out;
  OptimizerSpec s;
  s.learner = Learner::SGD;
  s.lr = 0.05;
  out.push_back({"sgd", s});
  s.weight_decay = 0.01;
  out.push_back({"sgd wd", s});
  s = OptimizerSpec{};
  s.learner = Learner::Adagrad;  // PyTorch: accumulator 0, eps 1e-10
  s.lr = 0.05;
  out.push_back({"adagrad torch", s});
  s.adagrad_initial_accumulator = 0.1;  // TensorFlow 1: accumulator 0.1, no eps
  s.adagrad_eps = 0.0;
  out.push_back({"adagrad tf", s});
  s.weight_decay = 0.02;
  out.push_back({"adagrad tf wd", s});
  s = OptimizerSpec{};
  s.learner = Learner::Adam;
  s.lr = 0.01;
  out.push_back({"adam", s});
  s.weight_decay = 0.05;
  out.push_back({"adam wd", s});
  return out;
}

std::vector<float> normal(convncf::Rng& rng, size_t n, double scale) {
  std::vector<float> v(n);
  for (float& x : v) x = float(scale * rng.normal());
  return v;
}

float* or_null(DeviceBuffer<float>& b) { return b.size() ? b.data() : nullptr; }

void check_dense(const std::string& name, const OptimizerSpec& spec, int64_t n, uint64_t seed) {
  SCOPED_TRACE(name + " n=" + std::to_string(n));
  convncf::Rng rng(seed, convncf::kStreamSynthetic);
  std::vector<float> p = normal(rng, size_t(n), 1.0);
  convncf::Optimizer<float> opt(spec, n);
  DeviceBuffer<float> d_p(p), d_g(static_cast<size_t>(n)), d_s0(opt.state0()), d_s1(opt.state1());
  for (int64_t step = 1; step <= kSteps; ++step) {
    // Mostly small gradients, some exactly zero (a zero changes neither SGD nor Adagrad).
    std::vector<float> g = normal(rng, size_t(n), 0.3);
    for (size_t i = 0; i < g.size(); i += 7) g[i] = 0.0f;
    d_g.upload(g);
    opt.step(p.data(), g.data(), n);
    convncf::optim_dense_gpu(spec, step, n, d_p.data(), d_g.data(), or_null(d_s0), or_null(d_s1),
                             nullptr);
  }
  CUDA_CHECK(cudaDeviceSynchronize());
  convncf::test::expect_close(d_p.download(), p, kAtol, kRtol, name + ": p");
  if (!opt.state0().empty())
    convncf::test::expect_close(d_s0.download(), opt.state0(), kAtol, kRtol, name + ": state0");
  if (!opt.state1().empty())
    convncf::test::expect_close(d_s1.download(), opt.state1(), kAtol, kRtol, name + ": state1");
}

// A (n_table, E) table; each step updates a fresh random set of distinct rows in random order,
// listed in a device array of max_rows entries of which only the first *n_rows count (the rest
// name other rows, which must stay untouched).
void check_rows(const std::string& name, const OptimizerSpec& spec, int32_t n_table, int E,
                uint64_t seed) {
  SCOPED_TRACE(name + " n_table=" + std::to_string(n_table) + " E=" + std::to_string(E));
  convncf::Rng rng(seed, convncf::kStreamSynthetic);
  const int64_t n = int64_t(n_table) * E;
  std::vector<float> p = normal(rng, size_t(n), 1.0);
  convncf::Optimizer<float> opt(spec, n);
  DeviceBuffer<float> d_p(p), d_g(static_cast<size_t>(n)), d_s0(opt.state0()), d_s1(opt.state1());
  const int64_t max_rows = n_table;
  DeviceBuffer<int32_t> d_rows(static_cast<size_t>(max_rows)), d_count(1);
  for (int64_t step = 1; step <= kSteps; ++step) {
    std::vector<int32_t> perm(static_cast<size_t>(n_table));
    for (int32_t i = 0; i < n_table; ++i) perm[size_t(i)] = i;
    for (int32_t i = n_table - 1; i > 0; --i)
      std::swap(perm[size_t(i)], perm[rng.index(uint32_t(i + 1))]);
    // step 2 lists no row at all; the others a random share, or every row.
    const int32_t count = step == 2   ? 0
                          : step == 5 ? n_table
                                      : int32_t(rng.index(uint32_t(n_table)) + 1);
    const std::vector<int32_t> listed(perm.begin(), perm.begin() + count);
    // Gradients everywhere, also on unlisted rows: they must not be applied there.
    std::vector<float> g = normal(rng, size_t(n), 0.3);
    d_g.upload(g);
    d_rows.upload(perm);
    d_count.upload({count});
    opt.step_rows(p.data(), g.data(), listed, E);
    convncf::optim_rows_gpu(spec, step, d_rows.data(), d_count.data(), max_rows, E, d_p.data(),
                            d_g.data(), or_null(d_s0), or_null(d_s1), nullptr);
  }
  CUDA_CHECK(cudaDeviceSynchronize());
  convncf::test::expect_close(d_p.download(), p, kAtol, kRtol, name + ": p");
  if (!opt.state0().empty())
    convncf::test::expect_close(d_s0.download(), opt.state0(), kAtol, kRtol, name + ": state0");
  if (!opt.state1().empty())
    convncf::test::expect_close(d_s1.download(), opt.state1(), kAtol, kRtol, name + ": state1");
}

}  // namespace

TEST(AdamCorrections, EqualOneMinusBetaToTheStep) {
  OptimizerSpec s;
  s.beta1 = 0.9;
  s.beta2 = 0.999;
  const convncf::AdamCorrections c1 = convncf::adam_corrections(s, 1);
  EXPECT_NEAR(c1.bc1, 0.1, 1e-15);
  EXPECT_NEAR(c1.bc2, 0.001, 1e-15);
  const convncf::AdamCorrections c2 = convncf::adam_corrections(s, 2);
  EXPECT_NEAR(c2.bc1, 0.19, 1e-15);
  EXPECT_NEAR(c2.bc2, 0.001999, 1e-15);
}

TEST(OptimGpu, DenseMatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  uint64_t seed = 900;
  for (const auto& [name, spec] : specs())
    for (int64_t n : {1, 255, 257, 10000, 300001}) check_dense(name, spec, n, seed++);
}

TEST(OptimGpu, RowsMatchCpuStepRows) {
  CONVNCF_REQUIRE_GPU();
  uint64_t seed = 1000;
  for (const auto& [name, spec] : specs()) {
    check_rows(name, spec, 1, 1, seed++);
    check_rows(name, spec, 3, 5, seed++);
    check_rows(name, spec, 97, 64, seed++);
    check_rows(name, spec, 1500, 33, seed++);
  }
}

// Refused before any device call, so this runs everywhere; empty work launches nothing.
TEST(OptimGpu, LaunchersRejectBadArguments) {
  OptimizerSpec adam;
  adam.learner = Learner::Adam;
  OptimizerSpec adagrad;
  adagrad.learner = Learner::Adagrad;
  float x[4] = {0, 0, 0, 0};  // distinct arrays: the parameters are __restrict__
  const int32_t k[2] = {0, 0};
  EXPECT_THROW(convncf::optim_dense_gpu(adam, 0, 1, &x[0], &x[1], &x[2], &x[3], nullptr),
               convncf::Error);
  EXPECT_THROW(convncf::optim_dense_gpu(adam, 1, 1, &x[0], &x[1], &x[2], nullptr, nullptr),
               convncf::Error);
  EXPECT_THROW(convncf::optim_dense_gpu(adagrad, 1, 1, &x[0], &x[1], nullptr, nullptr, nullptr),
               convncf::Error);
  EXPECT_THROW(convncf::optim_dense_gpu(adam, 1, -1, &x[0], &x[1], &x[2], &x[3], nullptr),
               convncf::Error);
  EXPECT_THROW(
      convncf::optim_rows_gpu(adam, 1, &k[0], &k[1], -1, 4, &x[0], &x[1], &x[2], &x[3], nullptr),
      convncf::Error);
  EXPECT_THROW(
      convncf::optim_rows_gpu(adam, 1, &k[0], &k[1], 1, 0, &x[0], &x[1], &x[2], &x[3], nullptr),
      convncf::Error);
  EXPECT_THROW(
      convncf::optim_rows_gpu(adam, 1, &k[0], &k[1], 1, 4, &x[0], &x[1], &x[2], nullptr, nullptr),
      convncf::Error);
  EXPECT_NO_THROW(convncf::optim_dense_gpu(adam, 1, 0, nullptr, nullptr, &x[0], &x[1], nullptr));
  EXPECT_NO_THROW(convncf::optim_rows_gpu(adam, 1, nullptr, nullptr, 0, 4, nullptr, nullptr, &x[0],
                                          &x[1], nullptr));
}
