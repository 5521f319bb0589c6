// test_conv_bias_relu_gpu.cu: the conv-layer kernels (kernels/conv_bias_relu.cu) against their CPU
// twins (kernels/conv_bias_relu_cpu.cpp). bias_relu_fwd and relu_bwd do one add/compare per
// element, so every element must match bit for bit; bias_grad sums in double on both sides (in
// different orders), so it must agree within a few float ulps, and two GPU runs must agree bit for
// bit. Outputs are poisoned with NaN first. Skips with the reason when no CUDA device is usable;
// the launcher argument checks run everywhere.
//   build/convncf_tests --gtest_filter='BiasReluFwd.*:ReluBwd.*:BiasGrad.*:ConvAux*'
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "convncf/conv_bias_relu.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/errors.hpp"
#include "convncf/rng.hpp"
#include "gpu_test_util.hpp"

namespace {

struct MapSize {
  int64_t n;
  int C;
  int64_t HW;
  std::string text() const {
    return "n=" + std::to_string(n) + " C=" + std::to_string(C) + " HW=" + std::to_string(HW);
  }
};

// Edge sizes: single elements, counts that are not multiples of the block (256), the ConvNCF
// layer maps (32 channels, 16x16 / 4x4 / 1x1), and one map past the elementwise grid cap
// (65536 blocks * 256 threads = 16.8M elements) so that the grid-stride loop runs a second round.
const MapSize kSizes[] = {{1, 1, 1},     {3, 5, 7},  {2, 32, 256}, {37, 32, 16},   {5, 3, 1},
                          {1000, 32, 1}, {17, 7, 9}, {1, 1, 257},  {4100, 32, 128}};

std::vector<float> random_floats(size_t n, uint64_t seed) {
  convncf::Rng rng(seed, convncf::kStreamSynthetic);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng.normal());
  return v;
}

// Bit-for-bit comparison; prints the first few differences.
void expect_bitwise_equal(const std::vector<float>& gpu, const std::vector<float>& ref,
                          const std::string& what) {
  ASSERT_EQ(gpu.size(), ref.size()) << what;
  size_t bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (std::memcmp(&gpu[i], &ref[i], sizeof(float)) == 0) continue;
    if (bad++ < 5) ADD_FAILURE() << what << ": [" << i << "] gpu " << gpu[i] << ", cpu " << ref[i];
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << ref.size() << " elements differ";
}

}  // namespace

TEST(BiasReluFwd, Kernel1MatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  uint64_t seed = 500;
  for (const MapSize& s : kSizes) {
    SCOPED_TRACE(s.text());
    const size_t count = static_cast<size_t>(s.n) * s.C * s.HW;
    std::vector<float> Z = random_floats(count, seed++);
    std::vector<float> b = random_floats(s.C, seed++);
    Z[0] = -b[0];  // z + b == 0 exactly
    std::vector<float> ref = Z;
    convncf::bias_relu_fwd_cpu(s.n, s.C, s.HW, ref.data(), b.data());
    ASSERT_TRUE(std::any_of(ref.begin(), ref.end(), [](float v) { return v != 0.0f; }));
    convncf::DeviceBuffer<float> dY(Z), db(b);
    convncf::bias_relu_fwd(s.n, s.C, s.HW, dY.data(), db.data(), nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    expect_bitwise_equal(dY.download(), ref, "Y");
  }
}

TEST(ReluBwd, Kernel1MatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  uint64_t seed = 600;
  for (const MapSize& s : kSizes) {
    SCOPED_TRACE(s.text());
    const size_t count = static_cast<size_t>(s.n) * s.C * s.HW;
    std::vector<float> Y = random_floats(count, seed++);
    for (size_t i = 0; i < count; i += 3) Y[i] = std::max(Y[i], 0.0f);  // ReLU outputs: many 0s
    const std::vector<float> dY = random_floats(count, seed++);
    std::vector<float> ref = dY;
    convncf::relu_bwd_cpu(static_cast<int64_t>(count), Y.data(), ref.data());
    if (count > 1) ASSERT_TRUE(std::any_of(ref.begin(), ref.end(), [](float v) { return v != 0; }));
    convncf::DeviceBuffer<float> d_Y(Y), d_dY(dY);
    convncf::relu_bwd(static_cast<int64_t>(count), d_Y.data(), d_dY.data(), nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    expect_bitwise_equal(d_dY.download(), ref, "dZ");
  }
}

TEST(BiasGrad, Kernel1MatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  // Also a channel count past the kernel's grid cap (65535 blocks), so blocks loop over channels.
  std::vector<MapSize> sizes(std::begin(kSizes), std::end(kSizes));
  sizes.push_back({2, 70000, 3});
  sizes.push_back({2048, 32, 1});
  uint64_t seed = 700;
  for (const MapSize& s : sizes) {
    SCOPED_TRACE(s.text());
    const size_t count = static_cast<size_t>(s.n) * s.C * s.HW;
    const std::vector<float> dZ = random_floats(count, seed++);
    std::vector<float> ref(s.C);
    convncf::bias_grad_cpu(s.n, s.C, s.HW, dZ.data(), ref.data());
    convncf::DeviceBuffer<float> d_dZ(dZ), d_db(s.C);
    convncf::test::poison(d_db);
    convncf::bias_grad(s.n, s.C, s.HW, d_dZ.data(), d_db.data(), nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    const std::vector<float> first = d_db.download();
    // Both sides sum in double and round once: at most an ulp or two apart.
    convncf::test::expect_close(first, ref, 1e-30, 4.0 * FLT_EPSILON, "db");
    // Deterministic: a second run on fresh poison gives the same bits.
    convncf::test::poison(d_db);
    convncf::bias_grad(s.n, s.C, s.HW, d_dZ.data(), d_db.data(), nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    expect_bitwise_equal(d_db.download(), first, "db, second run");
  }
}

// An empty batch: db is the sum over nothing, written even though no kernel runs.
TEST(BiasGrad, EmptyMapZeroFills) {
  CONVNCF_REQUIRE_GPU();
  for (const MapSize& s : {MapSize{0, 5, 16}, MapSize{3, 4, 0}}) {
    SCOPED_TRACE(s.text());
    convncf::DeviceBuffer<float> d_db(s.C);
    convncf::test::poison(d_db);
    convncf::bias_grad(s.n, s.C, s.HW, nullptr, d_db.data(), nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    for (float v : d_db.download()) EXPECT_EQ(v, 0.0f);
  }
}

// Bad arguments are refused before anything touches the GPU, and empty maps launch nothing, so
// this runs everywhere.
TEST(ConvAuxLaunchers, RejectBadArguments) {
  float x = 0.0f, y = 0.0f;  // distinct: the parameters are __restrict__
  EXPECT_THROW(convncf::bias_relu_fwd(-1, 1, 1, &x, &y, nullptr), convncf::Error);
  EXPECT_THROW(convncf::bias_relu_fwd(1, 0, 1, &x, &y, nullptr), convncf::Error);
  EXPECT_THROW(convncf::bias_relu_fwd(1, 1, -1, &x, &y, nullptr), convncf::Error);
  EXPECT_THROW(convncf::bias_relu_fwd(1, 1, 1, nullptr, &x, nullptr), convncf::Error);
  EXPECT_THROW(convncf::bias_relu_fwd(1, 1, 1, &x, nullptr, nullptr), convncf::Error);
  EXPECT_THROW(convncf::relu_bwd(-1, &x, &y, nullptr), convncf::Error);
  EXPECT_THROW(convncf::relu_bwd(1, nullptr, &x, nullptr), convncf::Error);
  EXPECT_THROW(convncf::bias_grad(-1, 1, 1, &x, &y, nullptr), convncf::Error);
  EXPECT_THROW(convncf::bias_grad(1, 0, 1, &x, &y, nullptr), convncf::Error);
  EXPECT_THROW(convncf::bias_grad(1, 1, 1, &x, nullptr, nullptr), convncf::Error);
  EXPECT_THROW(convncf::bias_grad(1, 1, 1, nullptr, &x, nullptr), convncf::Error);
  EXPECT_NO_THROW(convncf::bias_relu_fwd(0, 3, 5, nullptr, nullptr, nullptr));
  EXPECT_NO_THROW(convncf::bias_relu_fwd(4, 3, 0, nullptr, nullptr, nullptr));
  EXPECT_NO_THROW(convncf::relu_bwd(0, nullptr, nullptr, nullptr));
}
