// test_reduce_gpu.cu: the deterministic reductions (kernels/reduce.cu): the sums must be within
// 1e-12 of a long-double reference and bit-identical from run to run (the partials poisoned in
// between); the non-finite count adds to its output and ignores finite extremes. The launchers'
// argument checks run everywhere; the rest skips without a CUDA device.
//   build/convncf_tests --gtest_filter='Reduce*'
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "convncf/cuda_check.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/errors.hpp"
#include "convncf/reduce.hpp"
#include "convncf/regularization.hpp"
#include "convncf/rng.hpp"
#include "gpu_test_util.hpp"

namespace {

using convncf::DeviceBuffer;

// Long-double reference sums (64-bit mantissa on x86), far more exact than what is checked.
template <typename T, typename F>
long double ref_sum(const std::vector<T>& x, F f) {
  long double acc = 0;
  for (T v : x) acc += f(static_cast<long double>(v));
  return acc;
}

const int64_t kReduceSizes[] = {1, 7, 255, 256, 257, 1000, 1024 * 256 - 1, 1024 * 256 + 1, 3000017};

}  // namespace

TEST(Reduce, SumSquaresMatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  convncf::Rng rng(81, convncf::kStreamSynthetic);
  DeviceBuffer<double> partials(size_t(convncf::reduce_partials_size())), out(1);
  for (int64_t n : kReduceSizes) {
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = float(rng.normal() * 3.0);
    const long double ref = ref_sum(x, [](long double v) { return v * v; });
    ASSERT_GT(ref, 0);
    DeviceBuffer<float> dx(x);
    convncf::sum_squares_gpu(n, dx.data(), partials.data(), out.data(), nullptr);
    const double got = out.download()[0];
    EXPECT_LE(std::fabs(got - double(ref)), 1e-12 * double(ref)) << "n=" << n << " gpu " << got;
  }
  CUDA_CHECK(cudaMemset(out.data(), 0xFF, sizeof(double)));
  convncf::sum_squares_gpu(0, nullptr, partials.data(), out.data(), nullptr);
  EXPECT_EQ(out.download()[0], 0.0);
}

// Signed terms: the error is measured against the sum of |x| (the sum itself may cancel).
TEST(Reduce, SumMatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  convncf::Rng rng(82, convncf::kStreamSynthetic);
  DeviceBuffer<double> partials(size_t(convncf::reduce_partials_size())), out(1);
  for (int64_t n : kReduceSizes) {
    std::vector<double> x(static_cast<size_t>(n));
    for (double& v : x) v = rng.normal() + 0.1;
    const long double ref = ref_sum(x, [](long double v) { return v; });
    const long double abs_ref = ref_sum(x, [](long double v) { return v < 0 ? -v : v; });
    DeviceBuffer<double> dx(x);
    convncf::sum_gpu(n, dx.data(), partials.data(), out.data(), nullptr);
    const double got = out.download()[0];
    EXPECT_LE(std::fabs(got - double(ref)), 1e-12 * double(abs_ref)) << "n=" << n << " gpu " << got;
  }
  CUDA_CHECK(cudaMemset(out.data(), 0xFF, sizeof(double)));
  convncf::sum_gpu(0, nullptr, partials.data(), out.data(), nullptr);
  EXPECT_EQ(out.download()[0], 0.0);
}

// The same input twice, the partials buffer poisoned in between: the same bits.
TEST(Reduce, RunToRunBitIdentical) {
  CONVNCF_REQUIRE_GPU();
  convncf::Rng rng(83, convncf::kStreamSynthetic);
  const int64_t n = 3000017;
  std::vector<float> xf(static_cast<size_t>(n));
  std::vector<double> xd(static_cast<size_t>(n));
  for (size_t i = 0; i < xf.size(); ++i) {
    xf[i] = float(rng.normal());
    xd[i] = rng.normal() * 1e3;
  }
  DeviceBuffer<float> dxf(xf);
  DeviceBuffer<double> dxd(xd), partials(size_t(convncf::reduce_partials_size())), out(1);
  double first[2] = {0, 0};
  for (int run = 0; run < 3; ++run) {
    CUDA_CHECK(cudaMemset(partials.data(), run == 0 ? 0 : 0xFF, partials.size() * sizeof(double)));
    convncf::sum_squares_gpu(n, dxf.data(), partials.data(), out.data(), nullptr);
    const double a = out.download()[0];
    convncf::sum_gpu(n, dxd.data(), partials.data(), out.data(), nullptr);
    const double b = out.download()[0];
    if (run == 0) {
      first[0] = a;
      first[1] = b;
      continue;
    }
    EXPECT_EQ(std::memcmp(&a, &first[0], sizeof a), 0)
        << "run " << run << ": " << a << " vs " << first[0];
    EXPECT_EQ(std::memcmp(&b, &first[1], sizeof b), 0)
        << "run " << run << ": " << b << " vs " << first[1];
  }
}

TEST(Reduce, CountNonFiniteAddsToOut) {
  CONVNCF_REQUIRE_GPU();
  convncf::Rng rng(84, convncf::kStreamSynthetic);
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t n : {1, 255, 257, 100000, 1024 * 256 * 70 + 3}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = float(rng.normal());
    // Finite extremes that must not count.
    x[0] = std::numeric_limits<float>::max();
    if (n > 1) x[1] = std::numeric_limits<float>::denorm_min();
    if (n > 2) x[2] = -std::numeric_limits<float>::max();
    int32_t want = 0;
    const float bad[3] = {std::nanf(""), inf, -inf};
    for (int k = 0; k < 40 && n > 3; ++k) {
      const size_t at = 3 + rng.index(uint32_t(n - 3));
      if (std::isfinite(x[at])) ++want;
      x[at] = bad[k % 3];
    }
    DeviceBuffer<float> dx(x);
    DeviceBuffer<int32_t> out(std::vector<int32_t>{5});
    convncf::count_non_finite_gpu(n, dx.data(), out.data(), nullptr);
    EXPECT_EQ(out.download()[0], 5 + want) << "n=" << n;
    convncf::count_non_finite_gpu(0, nullptr, out.data(), nullptr);
    EXPECT_EQ(out.download()[0], 5 + want) << "n=0 must add nothing";
  }
}

TEST(Reduce, LaunchersRejectBadArguments) {
  double d[3] = {0, 0, 0};  // distinct arrays: the parameters are __restrict__
  float f[2] = {0, 0};
  int32_t k = 0;
  EXPECT_THROW(convncf::sum_squares_gpu(-1, &f[0], &d[0], &d[1], nullptr), convncf::Error);
  EXPECT_THROW(convncf::sum_gpu(-1, &d[0], &d[1], &d[2], nullptr), convncf::Error);
  EXPECT_THROW(convncf::sum_squares_gpu(1, &f[0], nullptr, &d[0], nullptr), convncf::Error);
  EXPECT_THROW(convncf::count_non_finite_gpu(-1, &f[0], &k, nullptr), convncf::Error);
  EXPECT_THROW(convncf::norm_grad_gpu(-1, 1.0, &d[0], &f[0], &f[1], nullptr), convncf::Error);
  EXPECT_NO_THROW(convncf::count_non_finite_gpu(0, nullptr, nullptr, nullptr));
  EXPECT_NO_THROW(convncf::norm_grad_gpu(0, 1.0, nullptr, nullptr, nullptr, nullptr));
  EXPECT_EQ(convncf::reduce_partials_size(), 1024);
}
