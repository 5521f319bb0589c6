// test_bpr_gpu.cu: the BPR kernels (kernels/bpr.cu) against their CPU twins (kernels/bpr_cpu.cpp)
// on fresh seeded inputs: batches that are not multiples of the block size, padding (n_valid <
// B_cap) and all-padding (n_valid = 0), extreme margins, E = 1, 13, 64, sizes past the grid caps
// so that the grid-stride loops run a second round. Outputs are poisoned (every byte 0xFF: NaN)
// so an element a kernel never writes fails.
// Tolerances: the kernels run the twins' per-element functions in the twins' order; what can
// differ is FMA contraction (the device fuses a*b+c, the host compiler may not) and the
// device's expf/log1pf (2 ulp), so sums get atol = 1e-6 * sum|terms| and scalars a few ulps.
// Skips with the reason when no CUDA device is usable.
//   build/convncf_tests --gtest_filter='BprLossGrad.*:MfBprFwdBwd.*:MfScorePairs.*'
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "convncf/bpr.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/errors.hpp"
#include "convncf/rng.hpp"
#include "gpu_test_util.hpp"
#include "kernel_test_util.hpp"

using convncf::DeviceBuffer;
using convncf::Rng;
using namespace convncf::test;

namespace {

// Not multiples of the block size (256), padding, all padding, one triple, and past the grid cap
// of 65536 blocks * 256 threads only where it matters (see the Large* tests of the head).
const BatchSize kBatches[] = {{1, 1},      {1, 0},   {5, 3},      {300, 300},
                              {1000, 997}, {257, 0}, {4096, 4000}};

}  // namespace

TEST(BprLossGrad, Kernel1MatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  uint64_t seed = 400;
  for (const BatchSize& bs : kBatches) {
    SCOPED_TRACE("B_cap=" + std::to_string(bs.B_cap) + " n_valid=" + std::to_string(bs.n_valid));
    Rng rng(seed++, convncf::kStreamSynthetic);
    const size_t B = static_cast<size_t>(bs.B_cap);
    std::vector<float> score = normals(2 * B, 3, rng);
    // a few extreme margins, where a naive log(1 + exp(-x)) overflows
    const float extreme[] = {90.0f, -90.0f, 1e4f, -1e4f};
    for (size_t k = 0; k < 4 && 2 * k < score.size(); ++k) score[2 * k] = extreme[k];
    std::vector<double> ref_loss(B);
    std::vector<float> ref_ds(2 * B);
    convncf::bpr_loss_grad_cpu(bs.B_cap, bs.n_valid, score.data(), ref_loss.data(), ref_ds.data());
    DeviceBuffer<float> dscore(score), dds(2 * B);
    DeviceBuffer<double> dloss(B);
    poison_all(dloss);
    convncf::test::poison(dds);
    convncf::bpr_loss_grad(bs.B_cap, bs.n_valid, dscore.data(), dloss.data(), dds.data(), nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    check_close(dloss.download(), ref_loss, 1e-7, 1e-5, "loss");
    check_close(dds.download(), ref_ds, 1e-7, 1e-5, "dscore");
  }
}

TEST(MfBprFwdBwd, Kernel1MatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  uint64_t seed = 700;
  for (const RowCase& s : kRowCases) {
    SCOPED_TRACE("B_cap=" + std::to_string(s.B_cap) + " n_valid=" + std::to_string(s.n_valid) +
                 " E=" + std::to_string(s.E));
    Rng rng(seed++, convncf::kStreamSynthetic);
    const size_t B = static_cast<size_t>(s.B_cap), e = static_cast<size_t>(s.E);
    const std::vector<int32_t> u = ids(B, kUsers, rng), p = ids(B, kItems, rng),
                               n = ids(B, kItems, rng);
    const std::vector<float> P = normals(static_cast<size_t>(kUsers) * e, 0.5, rng);
    const std::vector<float> Q = normals(static_cast<size_t>(kItems) * e, 0.5, rng);
    std::vector<double> ref_loss(B);
    std::vector<float> ref_rows(3 * B * e);
    convncf::mf_bpr_fwd_bwd_cpu(s.B_cap, s.n_valid, s.E, u.data(), p.data(), n.data(), P.data(),
                                Q.data(), ref_loss.data(), ref_rows.data());
    DeviceBuffer<int32_t> du(u), dp(p), dn(n);
    DeviceBuffer<float> dP(P), dQ(Q), drows(ref_rows.size());
    DeviceBuffer<double> dloss(B);
    poison_all(dloss);
    convncf::test::poison(drows);
    convncf::mf_bpr_fwd_bwd(s.B_cap, s.n_valid, s.E, du.data(), dp.data(), dn.data(), dP.data(),
                            dQ.data(), dloss.data(), drows.data(), nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    // the scores may differ by FMA rounding (about E ulps of sum |p q|), which moves g by at most
    // a quarter of that
    check_close(dloss.download(), ref_loss, 4e-5, 1e-5, "loss");
    check_close(drows.download(), ref_rows, 2e-5, 1e-4, "rows");
  }
}

TEST(MfScorePairs, Kernel1MatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  struct Size {
    int64_t n;
    int E;
  };
  uint64_t seed = 900;
  for (const Size s : {Size{1, 1}, Size{13, 13}, Size{1000, 64}, Size{70001, 13},
                       Size{(int64_t{1} << 24) + 3, 1}}) {
    SCOPED_TRACE("n=" + std::to_string(s.n) + " E=" + std::to_string(s.E));
    Rng rng(seed++, convncf::kStreamSynthetic);
    const size_t n = static_cast<size_t>(s.n), e = static_cast<size_t>(s.E);
    const std::vector<int32_t> u = ids(n, kUsers, rng), it = ids(n, kItems, rng);
    const std::vector<float> P = normals(static_cast<size_t>(kUsers) * e, 1, rng);
    const std::vector<float> Q = normals(static_cast<size_t>(kItems) * e, 1, rng);
    std::vector<float> ref(n);
    convncf::mf_score_pairs_cpu(s.n, s.E, u.data(), it.data(), P.data(), Q.data(), ref.data());
    double scale = 0;  // largest sum of |p_e q_e| over user/item rows
    for (int32_t a = 0; a < kUsers; ++a)
      for (int32_t b = 0; b < kItems; ++b) {
        double t = 0;
        for (size_t k = 0; k < e; ++k)
          t += std::fabs(double(P[static_cast<size_t>(a) * e + k]) *
                         Q[static_cast<size_t>(b) * e + k]);
        scale = std::max(scale, t);
      }
    DeviceBuffer<int32_t> du(u), di(it);
    DeviceBuffer<float> dP(P), dQ(Q), ds(n);
    convncf::test::poison(ds);
    convncf::mf_score_pairs(s.n, s.E, du.data(), di.data(), dP.data(), dQ.data(), ds.data(),
                            nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    check_close(ds.download(), ref, 1e-6 * scale, 1e-5, "score");
  }
}
