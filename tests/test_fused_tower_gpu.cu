// test_fused_tower_gpu.cu: the fused tower's kernels (kernels/fused_tower.cu) against their CPU
// twins (kernels/fused_tower_cpu.cpp) on the towers of fused_test_util.hpp, in every precision, at
// the engine's block count and at a small one (several pairs per block, a user's two pairs split
// across blocks), every variant (2: four outputs per thread on the tiled layers; 3, tf32 and
// bf16: the tensor cores; 4: the tensor cores, pairs in groups, layer 1 in chunks), outputs
// poisoned first. The twins run the kernels' element functions
// in the kernels' order; what differs is FMA contraction, in variants 3 and 4 the tensor cores' own
// summation inside a tile product, and in tf32/bf16 an operand that lands on the other side of a
// rounding boundary after such a difference, hence the tolerances by precision.
// Skips with the reason when no CUDA device is usable.
//   build/convncf_tests --gtest_filter='FusedTowerGpu.*'
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "convncf/cuda_check.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/fused_tower.hpp"
#include "fused_test_util.hpp"
#include "gpu_test_util.hpp"

using namespace convncf;
using namespace convncf::fused_test;

namespace {

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

// |gpu - ref| <= tol * max|ref| (+ a floor for an all-zero reference).
void check(const std::vector<float>& gpu, const std::vector<float>& ref, double tol, const std::string& what) {
  test::expect_close(gpu, ref, tol * std::max(max_abs(ref), 1e-30), 0.0, what);
}

double tol_of(Precision p) { return p == Precision::FP32 ? 2e-5 : p == Precision::TF32 ? 2e-3 : 2e-2; }

// Every kernel of both variants against the twins on the towers of fused_test_util.hpp whose
// width is (presets) or is not (the rest) 64.
void kernels_match_twins(bool presets) {
  // A non-blocking stream, as the engine's; the uploads (pageable cudaMemcpy) and the poisoning
  // (cudaMemset) run on the legacy stream, which such a stream does not wait for, so each is
  // followed by a device synchronization before the kernels read or write those buffers.
  cudaStream_t stream = nullptr;
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  for (const Case& c : cases()) {
    if ((c.E == 64) != presets) continue;
    const TowerSpec tower = TowerSpec::make(c.E, c.channels, c.kernels, c.kernels);
    const bool big = c.E == 64;
    const int32_t n_users = 37, n_items = 53;
    const Params<float> prm = make_params(tower, n_users, n_items, 5);
    const Batch b = make_batch(big ? 100 : 700, n_users, n_items, 9);
    const int64_t n = int64_t(b.user.size());
    const DeviceBuffer<float> P(prm.P), Q(prm.Q), net(prm.net), dscore(b.dscore);
    const DeviceBuffer<int32_t> user(b.user), item(b.item);
    CUDA_CHECK(cudaDeviceSynchronize());
    for (const Precision prec : {Precision::FP32, Precision::TF32, Precision::BF16}) {
      const FusedTower ft = make_fused_tower(tower, prec, fused_max_smem_bytes());
      std::vector<float> packed(size_t(ft.packed_size()));
      fused_pack_cpu(ft, prm.net.data(), packed.data());
      DeviceBuffer<float> d_packed(packed.size());
      test::poison(d_packed);
      CUDA_CHECK(cudaDeviceSynchronize());
      fused_pack(ft, net.data(), d_packed.data(), stream);
      CUDA_CHECK(cudaStreamSynchronize(stream));
      ASSERT_EQ(d_packed.download(), packed) << c.name << ": pack";
      for (const int n_blocks : {fused_tower_grid(ft, true), 7}) {
        for (const double p_drop : {0.0, 0.3}) {
          if (prec != Precision::FP32 && p_drop == 0.0) continue;  // the twins run on one core
          const std::string tag = std::string(c.name) + " " + precision_name(prec) + " blocks " +
                                   std::to_string(n_blocks) + " dropout " + std::to_string(p_drop);
          const DropoutArgs drop{p_drop, 3, 8};
          const TwinOutputs want12 = run_twins(ft, prm, b, packed.data(), n_blocks, drop, 1);
          TwinOutputs want3, want4;
          if (ft.tc.ok) want3 = run_twins(ft, prm, b, packed.data(), n_blocks, drop, 3);
          if (ft.tc4.ok) want4 = run_twins(ft, prm, b, packed.data(), n_blocks, drop, 4);
          EXPECT_EQ(ft.tc.ok, prec != Precision::FP32 && ft.L > 1) << tag;
          EXPECT_EQ(ft.tc4.ok, prec != Precision::FP32 && ft.L > 1) << tag;
          for (const int variant : {1, 2, 3, 4}) {
            if (variant == 3 && !ft.tc.ok) continue;
            if (variant == 4 && !ft.tc4.ok) continue;
            const TwinOutputs& want = variant == 4 ? want4 : variant == 3 ? want3 : want12;
            const std::string what = tag + " variant " + std::to_string(variant);
            SCOPED_TRACE(what);

            DeviceBuffer<float> d_score(want.score.size()), d_dp(want.dp.size()), d_dq(want.dq.size()),
                d_partial(want.partial.size()), d_dnet(want.dnet.size());
            for (const DeviceBuffer<float>* x : {&d_score, &d_dp, &d_dq, &d_partial, &d_dnet}) test::poison(*x);
            CUDA_CHECK(cudaDeviceSynchronize());
            fused_tower_fwd(ft, n, fused_tower_grid(ft, false), user.data(), item.data(), P.data(), Q.data(),
                            d_packed.data(), drop, d_score.data(), stream, variant);
            fused_tower_bwd(ft, n, n_blocks, user.data(), item.data(), P.data(), Q.data(), d_packed.data(), drop,
                            dscore.data(), d_dp.data(), d_dq.data(), d_partial.data(), stream, variant);
            fused_reduce_grads(ft, n_blocks, d_partial.data(), d_dnet.data(), stream);
            CUDA_CHECK(cudaStreamSynchronize(stream));
            const double tol = tol_of(prec);
            check(d_score.download(), want.score, tol, what + " score");
            check(d_dp.download(), want.dp, tol * 10, what + " dp");
            check(d_dq.download(), want.dq, tol * 10, what + " dq");
            check(d_dnet.download(), want.dnet, tol, what + " dnet");
            // deterministic: a second backward gives the same bits
            const std::vector<float> first = d_dnet.download();
            fused_tower_bwd(ft, n, n_blocks, user.data(), item.data(), P.data(), Q.data(), d_packed.data(), drop,
                            dscore.data(), d_dp.data(), d_dq.data(), d_partial.data(), stream, variant);
            fused_reduce_grads(ft, n_blocks, d_partial.data(), d_dnet.data(), stream);
            CUDA_CHECK(cudaStreamSynchronize(stream));
            EXPECT_EQ(d_dnet.download(), first) << "not bit-reproducible";
          }
        }
      }
    }
  }
  CUDA_CHECK(cudaStreamDestroy(stream));
}

}  // namespace

// The sanitizer runs of tools/gpu_check.sh take the small towers only (the presets' twins and
// launches are slow under memcheck and racecheck).
TEST(FusedTowerGpu, SmallTowersMatchTwins) {
  CONVNCF_REQUIRE_GPU();
  kernels_match_twins(false);
}

TEST(FusedTowerGpu, PresetTowersMatchTwins) {
  CONVNCF_REQUIRE_GPU();
  kernels_match_twins(true);
}

// No pairs: nothing is read, every block's slice is zeroed, the reduction gives zeros.
TEST(FusedTowerGpu, EmptyBatchZeroFills) {
  CONVNCF_REQUIRE_GPU();
  const TowerSpec tower = TowerSpec::make(8, {1, 3, 5}, {4, 2}, {4, 2});
  const FusedTower ft = make_fused_tower(tower, Precision::FP32, fused_max_smem_bytes());
  const int n_blocks = 5;
  DeviceBuffer<float> partial(size_t(n_blocks * ft.n_params)), dnet(size_t(ft.n_params));
  test::poison(partial);
  test::poison(dnet);
  fused_tower_bwd(ft, 0, n_blocks, nullptr, nullptr, nullptr, nullptr, nullptr, {}, nullptr, nullptr, nullptr,
                  partial.data(), nullptr, 2);
  fused_reduce_grads(ft, n_blocks, partial.data(), dnet.data(), nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_EQ(partial.download(), std::vector<float>(partial.size(), 0.0f));
  EXPECT_EQ(dnet.download(), std::vector<float>(dnet.size(), 0.0f));
  // variant 3 (its register tiles written once per block)
  const FusedTower tc = make_fused_tower(tower, Precision::BF16, fused_max_smem_bytes());
  ASSERT_TRUE(tc.tc.ok);
  test::poison(partial);
  test::poison(dnet);
  CUDA_CHECK(cudaDeviceSynchronize());
  fused_tower_bwd(tc, 0, n_blocks, nullptr, nullptr, nullptr, nullptr, nullptr, {}, nullptr, nullptr, nullptr,
                  partial.data(), nullptr, 3);
  fused_reduce_grads(tc, n_blocks, partial.data(), dnet.data(), nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_EQ(partial.download(), std::vector<float>(partial.size(), 0.0f));
  EXPECT_EQ(dnet.download(), std::vector<float>(dnet.size(), 0.0f));
  // variant 4 (pairs in groups)
  ASSERT_TRUE(tc.tc4.ok);
  test::poison(partial);
  test::poison(dnet);
  CUDA_CHECK(cudaDeviceSynchronize());
  fused_tower_bwd(tc, 0, n_blocks, nullptr, nullptr, nullptr, nullptr, nullptr, {}, nullptr, nullptr, nullptr,
                  partial.data(), nullptr, 4);
  fused_reduce_grads(tc, n_blocks, partial.data(), dnet.data(), nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_EQ(partial.download(), std::vector<float>(partial.size(), 0.0f));
  EXPECT_EQ(dnet.download(), std::vector<float>(dnet.size(), 0.0f));
}

// Variant 4 in the layouts the presets do not take (fused_test_util.hpp's small towers, forced):
// no stacking with layer 1 in chunks (on a two-layer tower: layer 2, the last, in chunks), stacking
// from layer 2 (the group's whole first maps), from layer 3 with layer 1 in several chunks (the last
// one partial); the kernels against the twins at several block counts, tolerance by precision.
TEST(FusedTowerGpu, GroupedLayoutsMatchTwins) {
  CONVNCF_REQUIRE_GPU();
  for (const Case& c : cases()) {
    if (c.E == 64 || c.channels.size() < 3) continue;
    const TowerSpec tower = TowerSpec::make(c.E, c.channels, c.kernels, c.kernels);
    const int32_t n_users = 37, n_items = 53;
    const Params<float> prm = make_params(tower, n_users, n_items, 5);
    const Batch b = make_batch(300, n_users, n_items, 9);
    const int64_t n = int64_t(b.user.size());
    const DeviceBuffer<float> P(prm.P), Q(prm.Q), dscore(b.dscore);
    const DeviceBuffer<int32_t> user(b.user), item(b.item);
    for (const Precision prec : {Precision::TF32, Precision::BF16}) {
      const int L = int(tower.layers.size());
      std::vector<FusedTc4Choice> choices = {{L, 1}, {1, 0}};
      if (L > 2 && tower.layers[1].out_size % 4 == 0) choices.push_back({2, 3});
      for (const FusedTc4Choice& choice : choices) {
        const FusedTower ft = make_fused_tower(tower, prec, fused_max_smem_bytes(), choice);
        ASSERT_TRUE(ft.tc4.ok);
        std::vector<float> packed(size_t(ft.packed_size()));
        fused_pack_cpu(ft, prm.net.data(), packed.data());
        const DeviceBuffer<float> d_packed(packed);
        for (const int n_blocks : {7, int(n) + 3}) {
          const std::string what = std::string(c.name) + " " + precision_name(prec) + " stack0 " +
                                   std::to_string(ft.tc4.stack0) + " chunks " + std::to_string(ft.tc4.chunks) +
                                   " blocks " + std::to_string(n_blocks);
          SCOPED_TRACE(what);
          const DropoutArgs drop{0.3, 3, 8};
          const TwinOutputs want = run_twins(ft, prm, b, packed.data(), n_blocks, drop, 4);
          DeviceBuffer<float> d_score(want.score.size()), d_dp(want.dp.size()), d_dq(want.dq.size()),
              d_partial(want.partial.size()), d_dnet(want.dnet.size());
          for (const DeviceBuffer<float>* x : {&d_score, &d_dp, &d_dq, &d_partial, &d_dnet}) test::poison(*x);
          CUDA_CHECK(cudaDeviceSynchronize());
          fused_tower_fwd(ft, n, n_blocks, user.data(), item.data(), P.data(), Q.data(), d_packed.data(), drop,
                          d_score.data(), nullptr, 4);
          fused_tower_bwd(ft, n, n_blocks, user.data(), item.data(), P.data(), Q.data(), d_packed.data(), drop,
                          dscore.data(), d_dp.data(), d_dq.data(), d_partial.data(), nullptr, 4);
          fused_reduce_grads(ft, n_blocks, d_partial.data(), d_dnet.data(), nullptr);
          CUDA_CHECK(cudaDeviceSynchronize());
          const double tol = tol_of(prec);
          check(d_score.download(), want.score, tol, what + " score");
          check(d_dp.download(), want.dp, tol * 10, what + " dp");
          check(d_dq.download(), want.dq, tol * 10, what + " dq");
          check(d_dnet.download(), want.dnet, tol, what + " dnet");
        }
      }
    }
  }
}
