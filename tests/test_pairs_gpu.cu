// test_pairs_gpu.cu: the pair-layout kernels (kernels/pairs.cu) against their CPU twins
// (kernels/pairs_cpu.cpp) on fresh seeded inputs: batches that are not multiples of the block
// size, padding (n_valid < B_cap) and all-padding (n_valid = 0), E = 1, 13, 64, sizes past the
// grid caps so that the grid-stride loops run a second round. Outputs are poisoned (every byte
// 0xFF: NaN for floats, -1 for ids) so an element a kernel never writes fails. Pure data
// movement: GPU and CPU must agree exactly (PairLayout.KernelsMatchCpu also covers
// regularization's scale_add, one multiply-add per element). Skips with the reason when no CUDA
// device is usable; the launchers' argument checks run everywhere.
//   build/convncf_tests --gtest_filter='MakePairs.*:GatherRowGrads.*:PairLayout.*'
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "convncf/cuda_check.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/errors.hpp"
#include "convncf/pairs.hpp"
#include "convncf/regularization.hpp"
#include "convncf/rng.hpp"
#include "gpu_test_util.hpp"
#include "kernel_test_util.hpp"

using convncf::DeviceBuffer;
using convncf::Rng;
using namespace convncf::test;

TEST(MakePairs, Kernel1MatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  uint64_t seed = 100;
  for (const BatchSize bs : {BatchSize{1, 1}, BatchSize{1, 0}, BatchSize{5, 3}, BatchSize{300, 300},
                             BatchSize{1000, 997}, BatchSize{1000, 0}, BatchSize{70000, 69999}}) {
    SCOPED_TRACE("B_cap=" + std::to_string(bs.B_cap) + " n_valid=" + std::to_string(bs.n_valid));
    Rng rng(seed++, convncf::kStreamSynthetic);
    const size_t B = static_cast<size_t>(bs.B_cap);
    // ids of padded triples are garbage on purpose: the kernel must not use them
    const std::vector<int32_t> u = ids(B, kUsers, rng), p = ids(B, kItems, rng),
                               n = ids(B, kItems, rng);
    std::vector<int32_t> ref_u(2 * B), ref_i(2 * B);
    convncf::make_pairs_cpu(bs.B_cap, bs.n_valid, u.data(), p.data(), n.data(), ref_u.data(),
                            ref_i.data());
    DeviceBuffer<int32_t> du(u), dp(p), dn(n), dpu(2 * B), dpi(2 * B);
    poison_all(dpu);
    poison_all(dpi);
    convncf::make_pairs(bs.B_cap, bs.n_valid, du.data(), dp.data(), dn.data(), dpu.data(),
                        dpi.data(), nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    check_ids(dpu.download(), ref_u, "pair_user");
    check_ids(dpi.download(), ref_i, "pair_item");
  }
}

TEST(GatherRowGrads, Kernel1MatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  struct Size {
    int64_t B_cap, n_valid;
    int E;
  };
  uint64_t seed = 600;
  // the last one has 3 * 100000 * 64 = 19.2 M elements, past the grid cap
  for (const Size s : {Size{1, 1, 1}, Size{1, 0, 13}, Size{5, 3, 13}, Size{300, 300, 64},
                       Size{1000, 997, 64}, Size{257, 0, 64}, Size{100000, 99990, 64}}) {
    SCOPED_TRACE("B_cap=" + std::to_string(s.B_cap) + " n_valid=" + std::to_string(s.n_valid) +
                 " E=" + std::to_string(s.E));
    Rng rng(seed++, convncf::kStreamSynthetic);
    const size_t n = 2 * static_cast<size_t>(s.B_cap) * static_cast<size_t>(s.E);
    const std::vector<float> dp = normals(n, 1, rng), dq = normals(n, 1, rng);
    std::vector<float> ref(3 * n / 2);
    convncf::gather_row_grads_cpu(s.B_cap, s.n_valid, s.E, dp.data(), dq.data(), ref.data());
    DeviceBuffer<float> ddp(dp), ddq(dq), drows(ref.size());
    convncf::test::poison(drows);
    convncf::gather_row_grads(s.B_cap, s.n_valid, s.E, ddp.data(), ddq.data(), drows.data(),
                              nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    check_close(drows.download(), ref, 0.0, 1e-6, "rows");
  }
}

namespace {

using namespace convncf;

TEST(PairLayout, KernelsMatchCpu) {
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

TEST(PairLayout, LaunchersRejectBadArguments) {
  EXPECT_THROW(interleave_rows(-1, 4, nullptr, nullptr, nullptr), Error);
  EXPECT_THROW(range_pairs(2, nullptr, 0, 4, 7, nullptr, nullptr, nullptr), Error);  // 8 pairs > cap 7
  EXPECT_THROW(scale_add(3, 1.0f, nullptr, nullptr, nullptr), Error);
  EXPECT_NO_THROW(scale_add(0, 1.0f, nullptr, nullptr, nullptr));  // nothing to do, no launch
}

}  // namespace
