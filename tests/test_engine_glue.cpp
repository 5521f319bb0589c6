// test_engine_glue.cpp: the GPU engine's glue kernels (kernels/engine_glue.cu) against their CPU
// twins (kernels/engine_glue_cpu.cpp), and the twins against hand-worked cases. Pure data movement
// and one multiply-add per element, so GPU and CPU must agree exactly.
//   build/convncf_tests --gtest_filter='EngineGlue*'
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "convncf/pairs.hpp"
#include "convncf/regularization.hpp"
#include "convncf/rng.hpp"
#include "gpu_test_util.hpp"

namespace {

using namespace convncf;

TEST(EngineGlue, CpuTwinsByHand) {
  // rows (3, B=2, E=2): user rows, then positive, then negative item rows
  const std::vector<float> rows{0, 1, 2, 3, /*pos*/ 10, 11, 12, 13, /*neg*/ 20, 21, 22, 23};
  std::vector<float> out(8);
  interleave_rows_cpu(2, 2, rows.data(), out.data());
  EXPECT_EQ(out, (std::vector<float>{10, 11, 20, 21, 12, 13, 22, 23}));
  const std::vector<int32_t> users{7, 9};
  std::vector<int32_t> pu(8, -1), pi(8, -1);
  range_pairs_cpu(2, users.data(), 5, 3, 8, pu.data(), pi.data());
  EXPECT_EQ(pu, (std::vector<int32_t>{7, 7, 7, 9, 9, 9, 0, 0}));
  EXPECT_EQ(pi, (std::vector<int32_t>{5, 6, 7, 5, 6, 7, 0, 0}));
  std::vector<float> y{1, 2};
  scale_add_cpu(2, 0.5f, std::vector<float>{4, 8}.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{3, 6}));
}

TEST(EngineGlue, KernelsMatchCpu) {
  CONVNCF_REQUIRE_GPU();
  Rng rng(3, kStreamSynthetic);
  for (int64_t B : {1, 7, 300, 1025}) {
    for (int E : {1, 13, 64}) {
      SCOPED_TRACE("B=" + std::to_string(B) + " E=" + std::to_string(E));
      std::vector<float> rows(size_t(3 * B) * E), want(size_t(2 * B) * E);
      for (float& v : rows) v = float(rng.normal());
      interleave_rows_cpu(B, E, rows.data(), want.data());
      DeviceBuffer<float> drows(rows), dout(want.size());
      test::poison(dout);
      interleave_rows(B, E, drows.data(), dout.data(), nullptr);
      EXPECT_TRUE(dout.download() == want);

      std::vector<float> x(size_t(B) * E), y(x.size());
      for (float& v : x) v = float(rng.normal());
      for (float& v : y) v = float(rng.normal());
      DeviceBuffer<float> dx(x), dy(y);
      scale_add(int64_t(x.size()), 0.37f, dx.data(), dy.data(), nullptr);
      scale_add_cpu(int64_t(x.size()), 0.37f, x.data(), y.data());
      test::expect_close(dy.download(), y, 0, 1e-7, "scale_add");  // fma may round once less
    }
  }
  for (int64_t nu : {0, 1, 5}) {
    for (int32_t n : {1, 17, 256}) {
      const int64_t cap = nu * n + 13;
      std::vector<int32_t> users(size_t(std::max<int64_t>(nu, 1)));
      for (int32_t& u : users) u = int32_t(rng.index(1000));
      std::vector<int32_t> pu(static_cast<size_t>(cap)), pi(static_cast<size_t>(cap));
      range_pairs_cpu(nu, users.data(), 42, n, cap, pu.data(), pi.data());
      DeviceBuffer<int32_t> du(users), dpu(static_cast<size_t>(cap)), dpi(static_cast<size_t>(cap));
      CUDA_CHECK(cudaMemset(dpu.data(), 0xFF, size_t(cap) * 4));
      CUDA_CHECK(cudaMemset(dpi.data(), 0xFF, size_t(cap) * 4));
      range_pairs(nu, du.data(), 42, n, cap, dpu.data(), dpi.data(), nullptr);
      EXPECT_TRUE(dpu.download() == pu) << "nu=" << nu << " n=" << n;
      EXPECT_TRUE(dpi.download() == pi) << "nu=" << nu << " n=" << n;
    }
  }
}

TEST(EngineGlue, LaunchersRejectBadArguments) {
  EXPECT_THROW(interleave_rows(-1, 4, nullptr, nullptr, nullptr), Error);
  EXPECT_THROW(range_pairs(2, nullptr, 0, 4, 7, nullptr, nullptr, nullptr), Error);  // 8 pairs > cap 7
  EXPECT_THROW(scale_add(3, 1.0f, nullptr, nullptr, nullptr), Error);
  EXPECT_NO_THROW(scale_add(0, 1.0f, nullptr, nullptr, nullptr));  // nothing to do, no launch
}

}  // namespace
