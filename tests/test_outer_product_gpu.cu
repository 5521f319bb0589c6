// test_outer_product_gpu.cu: each outer-product kernel variant (kernels/outer_product.cu) against
// its CPU twin (kernels/outer_product_cpu.cpp). Forward: one multiply per element on both sides,
// so every element must match bit for bit. Backward: E = 1 .. 4096 (partial tiles in both
// directions, the largest E), past the grid cap; the same sums in the same order, so only FMA
// contraction differs (atol = 1e-6 * sum|terms|). Outputs are poisoned with NaN first, so an
// element the kernel never wrote fails too. Skips with the reason when no CUDA device is usable.
//   build/convncf_tests --gtest_filter='OuterProductFwd.Kernel*:OuterProductBwd.*'
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "convncf/cuda_check.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/errors.hpp"
#include "convncf/gpu.hpp"
#include "convncf/outer_product.hpp"
#include "convncf/rng.hpp"
#include "gpu_test_util.hpp"
#include "kernel_test_util.hpp"

namespace {

struct Size {
  int64_t B;
  int E;
};
// Edge sizes: B = 1, E = 1, odd E and E % 4 != 0 (variant 2's scalar path), B*E*E not a multiple
// of the block size (256), the model's E = 64, and B = 70000 > variant 2's grid cap (65536) so
// that its grid-stride loop runs a second round.
const Size kSizes[] = {{1, 1},   {1, 64},   {3, 7},     {5, 4},   {17, 13},
                       {64, 64}, {257, 64}, {100, 100}, {2, 128}, {70000, 3}};

std::string where(int64_t idx, int E) {
  const convncf::OuterProductCoord k = convncf::outer_product_coord(idx, E);
  std::ostringstream s;
  s << "out[" << k.b << "][0][" << k.a << "][" << k.c << "]";
  return s.str();
}

// Runs one variant at one size on fresh seeded inputs. out_offset shifts the output by that many
// floats from the allocation's start (1 makes it misaligned for float4 stores).
void check_variant(int variant, Size s, uint64_t seed, int64_t out_offset = 0) {
  SCOPED_TRACE("variant " + std::to_string(variant) + " B=" + std::to_string(s.B) +
               " E=" + std::to_string(s.E) + " out_offset=" + std::to_string(out_offset));
  const int32_t n_users = 37, n_items = 29;
  convncf::Rng rng(seed, convncf::kStreamSynthetic);
  std::vector<int32_t> user(s.B), item(s.B);
  for (int64_t b = 0; b < s.B; ++b) {
    user[b] = static_cast<int32_t>(rng.index(n_users));
    item[b] = static_cast<int32_t>(rng.index(n_items));
  }
  std::vector<float> P(static_cast<size_t>(n_users) * s.E), Q(static_cast<size_t>(n_items) * s.E);
  for (float& x : P) x = static_cast<float>(rng.normal());
  for (float& x : Q) x = static_cast<float>(rng.normal());

  const size_t n = static_cast<size_t>(s.B) * s.E * s.E;
  std::vector<float> ref(n);
  convncf::outer_product_fwd_cpu<float>(s.B, s.E, user.data(), item.data(), P.data(), Q.data(),
                                        ref.data());
  ASSERT_TRUE(std::any_of(ref.begin(), ref.end(), [](float x) { return x != 0.0f; }))
      << "reference output is all zero: the test would pass on nothing";

  convncf::DeviceBuffer<int32_t> d_user(s.B), d_item(s.B);
  convncf::DeviceBuffer<float> d_P(P.size()), d_Q(Q.size()), d_out(n + out_offset);
  d_user.upload(user);
  d_item.upload(item);
  d_P.upload(P);
  d_Q.upload(Q);
  // All bytes 0xFF: every float is a NaN, which equals nothing, so an unwritten element fails.
  CUDA_CHECK(cudaMemset(d_out.data(), 0xFF, (n + out_offset) * sizeof(float)));
  float* out = d_out.data() + out_offset;
  convncf::outer_product_fwd(s.B, s.E, d_user.data(), d_item.data(), d_P.data(), d_Q.data(), out,
                             nullptr, variant);
  CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<float> got = d_out.download(out, n);

  // Exact comparison; on failure print the largest errors and where they are.
  std::vector<std::pair<double, int64_t>> bad;
  for (size_t k = 0; k < n; ++k) {
    if (got[k] == ref[k]) continue;
    const double err = std::isnan(got[k]) ? std::numeric_limits<double>::infinity()
                                          : std::fabs(double(got[k]) - double(ref[k]));
    bad.emplace_back(err, static_cast<int64_t>(k));
  }
  if (!bad.empty()) {
    const size_t show = std::min<size_t>(bad.size(), 8);
    std::partial_sort(bad.begin(), bad.begin() + show, bad.end(),
                      [](const auto& x, const auto& y) { return x.first > y.first; });
    std::ostringstream msg;
    msg << bad.size() << " of " << n << " elements differ (NaN = never written); largest:\n";
    for (size_t j = 0; j < show; ++j) {
      const int64_t k = bad[j].second;
      msg << "  " << where(k, s.E) << ": gpu " << got[k] << ", cpu " << ref[k] << ", |diff| "
          << bad[j].first << "\n";
    }
    ADD_FAILURE() << msg.str();
  }
}

#define SKIP_WITHOUT_GPU()                                                            \
  do {                                                                                \
    std::string skip_reason_;                                                         \
    if (!convncf::cuda_device_available(&skip_reason_))                               \
      GTEST_SKIP() << "no usable CUDA device: " << skip_reason_;                      \
  } while (0)

}  // namespace

TEST(OuterProductFwd, Kernel1MatchesCpu) {
  SKIP_WITHOUT_GPU();
  uint64_t seed = 100;
  for (const Size& s : kSizes) check_variant(1, s, seed++);
}

TEST(OuterProductFwd, Kernel2MatchesCpu) {
  SKIP_WITHOUT_GPU();
  uint64_t seed = 200;
  for (const Size& s : kSizes) check_variant(2, s, seed++);
}

// Variant 2 with an output that is not 16-byte aligned must fall back to scalar stores.
TEST(OuterProductFwd, Kernel2MisalignedOutputMatchesCpu) {
  SKIP_WITHOUT_GPU();
  check_variant(2, {9, 64}, 300, 1);
  check_variant(2, {4, 8}, 301, 3);
}

// Bad arguments are refused before anything touches the GPU, so this runs everywhere.
TEST(OuterProductFwd, LauncherRejectsBadArguments) {
  const int32_t id = 0;
  float x = 0.0f;
  auto call = [&](int64_t B, int E, int variant, float* out) {
    convncf::outer_product_fwd(B, E, &id, &id, &x, &x, out, nullptr, variant);
  };
  EXPECT_THROW(call(-1, 4, 1, &x), convncf::Error);
  EXPECT_THROW(call(1, 0, 1, &x), convncf::Error);
  EXPECT_THROW(call(1, convncf::kOuterProductMaxE + 1, 2, &x), convncf::Error);
  EXPECT_THROW(call(1, 4, 3, &x), convncf::Error);
  EXPECT_THROW(call(1, 4, 1, nullptr), convncf::Error);
  EXPECT_NO_THROW(call(0, 4, 2, nullptr));  // an empty batch launches nothing
}

namespace {

using convncf::DeviceBuffer;
using convncf::Rng;
using namespace convncf::test;

void run_outer_product_bwd(int64_t n_pairs, int E, uint64_t seed) {
  SCOPED_TRACE("n_pairs=" + std::to_string(n_pairs) + " E=" + std::to_string(E));
  Rng rng(seed, convncf::kStreamSynthetic);
  const size_t np = static_cast<size_t>(n_pairs), e = static_cast<size_t>(E);
  const std::vector<int32_t> pu = ids(np, kUsers, rng), pi = ids(np, kItems, rng);
  const std::vector<float> P = normals(static_cast<size_t>(kUsers) * e, 1, rng);
  const std::vector<float> Q = normals(static_cast<size_t>(kItems) * e, 1, rng);
  const std::vector<float> G = normals(np * e * e, 1, rng);
  std::vector<float> ref_dp(np * e), ref_dq(np * e);
  convncf::outer_product_bwd_cpu(n_pairs, E, pu.data(), pi.data(), P.data(), Q.data(), G.data(),
                                 ref_dp.data(), ref_dq.data());
  // largest sum of |terms| of a dp or dq element
  double scale = 0;
  std::vector<double> col(e);
  for (size_t b = 0; b < np; ++b) {
    const float* p = P.data() + static_cast<size_t>(pu[b]) * e;
    const float* q = Q.data() + static_cast<size_t>(pi[b]) * e;
    std::fill(col.begin(), col.end(), 0.0);
    for (size_t a = 0; a < e; ++a) {
      const float* g = G.data() + (b * e + a) * e;
      double row = 0;
      for (size_t c = 0; c < e; ++c) {
        row += std::fabs(double(g[c]) * q[c]);
        col[c] += std::fabs(double(g[c]) * p[a]);
      }
      scale = std::max(scale, row);
    }
    for (const double v : col) scale = std::max(scale, v);
  }
  DeviceBuffer<int32_t> dpu(pu), dpi(pi);
  DeviceBuffer<float> dP(P), dQ(Q), dG(G), ddp(np * e), ddq(np * e);
  convncf::test::poison(ddp);
  convncf::test::poison(ddq);
  convncf::outer_product_bwd(n_pairs, E, dpu.data(), dpi.data(), dP.data(), dQ.data(), dG.data(),
                             ddp.data(), ddq.data(), nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  check_close(ddp.download(), ref_dp, 1e-6 * scale, 1e-5, "dp");
  check_close(ddq.download(), ref_dq, 1e-6 * scale, 1e-5, "dq");
}

}  // namespace

// E = 64 is one tile; 100 and 130 leave partial tiles in both directions; 4096 is the largest E
// (16 KB of running sums in shared memory); 70000 pairs pass the 65536-block grid cap.
TEST(OuterProductBwd, Kernel1MatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  struct Size {
    int64_t n_pairs;
    int E;
  };
  uint64_t seed = 500;
  for (const Size s : {Size{1, 1}, Size{3, 13}, Size{64, 64}, Size{257, 64}, Size{5, 100},
                       Size{3, 130}, Size{2, 4096}, Size{70000, 3}})
    run_outer_product_bwd(s.n_pairs, s.E, seed++);
}
