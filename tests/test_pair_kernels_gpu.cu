// test_pair_kernels_gpu.cu: every per-pair kernel (kernels/pair_kernels.cu) against its CPU twin
// (kernels/pair_kernels_cpu.cpp) on fresh seeded inputs: batches that are not multiples of the block
// size, padding (n_valid < B_cap) and all-padding (n_valid = 0), E = 1, 13, 64 (and 100, 130,
// 4096 for the tiled outer-product backward), C = 1, 7, 32, HW = 1, 3, 4, dropout off and on,
// sizes past the grid caps so that the grid-stride loops run a second round. Outputs are poisoned
// (every byte 0xFF: NaN for floats, -1 for ids) so an element a kernel never writes fails.
// Tolerances: the kernels run the twins' per-element functions in the twins' order; what can
// differ is FMA contraction (the device fuses a*b+c, the host compiler may not) and the device's
// expf/log1pf (2 ulp), so sums get atol = 1e-6 * sum|terms| and scalars a few ulps.
// Skips with the reason when no CUDA device is usable.
//   build/convncf_tests --gtest_filter='*.Kernel1*:PairKernels.*'   (all kernels' first variants)
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "convncf/cuda_check.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/errors.hpp"
#include "convncf/outer_product.hpp"
#include "convncf/bpr.hpp"
#include "convncf/head.hpp"
#include "convncf/pairs.hpp"
#include "convncf/regularization.hpp"
#include "convncf/rng.hpp"
#include "gpu_test_util.hpp"

using convncf::DeviceBuffer;
using convncf::DropoutArgs;
using convncf::Rng;

namespace {

// Every byte 0xFF: NaN for float and double, -1 for int32.
template <typename T>
void poison_all(const DeviceBuffer<T>& b) {
  if (b.size()) CUDA_CHECK(cudaMemset(b.data(), 0xFF, b.size() * sizeof(T)));
}

// expect_close, except that an all-zero reference is allowed (pure padding, empty sums): then
// every element must be exactly zero (a NaN left by the poison is not).
template <typename T>
void check_close(const std::vector<T>& got, const std::vector<T>& ref, double atol, double rtol,
                 const std::string& what) {
  if (std::all_of(ref.begin(), ref.end(), [](T x) { return x == T(0); })) {
    ASSERT_EQ(got.size(), ref.size()) << what;
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < got.size(); ++i)
      if (!(got[i] == T(0)) && bad++ == 0) first = i;
    EXPECT_EQ(bad, 0u) << what << ": reference all zero, " << bad << " elements differ, first ["
                       << first << "] = " << (got.empty() ? 0.0 : double(got[first]));
    return;
  }
  convncf::test::expect_close(got, ref, atol, rtol, what);
}

void check_ids(const std::vector<int32_t>& got, const std::vector<int32_t>& ref,
               const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  std::ostringstream s;
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != ref[i] && bad++ < 5) s << "\n  [" << i << "] gpu " << got[i] << " ref " << ref[i];
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size() << " differ" << s.str();
}

std::vector<float> normals(size_t n, double scale, Rng& rng) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(scale * rng.normal());
  return v;
}

std::vector<int32_t> ids(size_t n, int32_t bound, Rng& rng) {
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = static_cast<int32_t>(rng.index(static_cast<uint32_t>(bound)));
  return v;
}

std::string dropout_name(const DropoutArgs& d) {
  return d.p > 0 ? " dropout " + std::to_string(d.p) : " no dropout";
}

struct BatchSize {
  int64_t B_cap, n_valid;
};
// Not multiples of the block size (256), padding, all padding, one triple, and past the grid cap
// of 65536 blocks * 256 threads only where it matters (see the Large* tests).
const BatchSize kBatches[] = {{1, 1},      {1, 0},   {5, 3},      {300, 300},
                              {1000, 997}, {257, 0}, {4096, 4000}};

struct HeadSize {
  int64_t n_pairs;
  int C, HW;
};
const HeadSize kHeads[] = {{1, 1, 1},     {2, 32, 4},  {6, 1, 4},    {602, 32, 1},
                           {1000, 32, 4}, {513, 7, 3}, {8192, 32, 1}};
const DropoutArgs kDropouts[] = {{0.0, 0, 0}, {0.2, 2020, 17}};

constexpr int32_t kUsers = 37, kItems = 53;

}  // namespace

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

namespace {

void run_head_fwd(const HeadSize& hs, const DropoutArgs& drop, uint64_t seed) {
  SCOPED_TRACE("n_pairs=" + std::to_string(hs.n_pairs) + " C=" + std::to_string(hs.C) +
               " HW=" + std::to_string(hs.HW) + dropout_name(drop));
  Rng rng(seed, convncf::kStreamSynthetic);
  const size_t np = static_cast<size_t>(hs.n_pairs), C = static_cast<size_t>(hs.C);
  const std::vector<float> Y = normals(np * C * static_cast<size_t>(hs.HW), 1, rng);
  const std::vector<float> w = normals(C, 0.5, rng), b = normals(1, 0.5, rng);
  std::vector<float> ref_h(np * C), ref_s(np);
  convncf::head_fwd_cpu(hs.n_pairs, hs.C, hs.HW, Y.data(), w.data(), b.data(), drop, ref_h.data(),
                        ref_s.data());
  double scale = 0;  // largest sum of |terms| of a score
  for (size_t p = 0; p < np; ++p) {
    double s = std::fabs(b[0]);
    for (size_t c = 0; c < C; ++c) s += std::fabs(double(w[c]) * ref_h[p * C + c]);
    scale = std::max(scale, s);
  }
  DeviceBuffer<float> dY(Y), dw(w), db(b), dh(np * C), ds(np);
  convncf::test::poison(dh);
  convncf::test::poison(ds);
  convncf::head_fwd(hs.n_pairs, hs.C, hs.HW, dY.data(), dw.data(), db.data(), drop, dh.data(),
                    ds.data(), nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  // h: the same additions in the same order, then one multiply: a few ulps at most
  check_close(dh.download(), ref_h, 0.0, 1e-6, "h");
  check_close(ds.download(), ref_s, 1e-6 * scale, 1e-5, "score");
}

void run_head_bwd(const HeadSize& hs, const DropoutArgs& drop, uint64_t seed) {
  SCOPED_TRACE("n_pairs=" + std::to_string(hs.n_pairs) + " C=" + std::to_string(hs.C) +
               " HW=" + std::to_string(hs.HW) + dropout_name(drop));
  Rng rng(seed, convncf::kStreamSynthetic);
  const size_t np = static_cast<size_t>(hs.n_pairs), C = static_cast<size_t>(hs.C);
  const size_t nY = np * C * static_cast<size_t>(hs.HW);
  const std::vector<float> dscore = normals(np, 0.3, rng), h = normals(np * C, 1, rng);
  const std::vector<float> w = normals(C, 0.5, rng);
  std::vector<float> ref_dY(nY), ref_dw(C), ref_db(1);
  convncf::head_bwd_cpu(hs.n_pairs, hs.C, hs.HW, dscore.data(), w.data(), h.data(), drop,
                        ref_dY.data(), ref_dw.data(), ref_db.data());
  double scale_w = 0, scale_b = 0;  // sums of |terms| of dw_out and db_out
  for (size_t p = 0; p < np; ++p) {
    scale_b += std::fabs(dscore[p]);
    for (size_t c = 0; c < C; ++c)
      scale_w = std::max(scale_w, std::fabs(double(dscore[p]) * h[p * C + c]));
  }
  scale_w *= static_cast<double>(np);
  DeviceBuffer<float> dds(dscore), dh(h), dw(w), ddY(nY), ddw(C), ddb(1);
  convncf::test::poison(ddY);
  convncf::test::poison(ddw);
  convncf::test::poison(ddb);
  convncf::head_bwd(hs.n_pairs, hs.C, hs.HW, dds.data(), dw.data(), dh.data(), drop, ddY.data(),
                    ddw.data(), ddb.data(), nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  check_close(ddY.download(), ref_dY, 0.0, 1e-6, "dY");
  // fixed-order double sums, rounded once to float: the twin's sequential sum in double agrees to
  // the last float bit but for rare rounding ties
  check_close(ddw.download(), ref_dw, 1e-7 * scale_w, 1e-6, "dw_out");
  check_close(ddb.download(), ref_db, 1e-7 * scale_b, 1e-6, "db_out");
}

}  // namespace

TEST(HeadFwd, Kernel1MatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  uint64_t seed = 200;
  for (const HeadSize& hs : kHeads)
    for (const DropoutArgs& d : kDropouts) run_head_fwd(hs, d, seed++);
}

TEST(HeadBwd, Kernel1MatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  uint64_t seed = 300;
  for (const HeadSize& hs : kHeads)
    for (const DropoutArgs& d : kDropouts) run_head_bwd(hs, d, seed++);
}

// No pairs: nothing to write in dY, but dw_out and db_out are overwritten with zero sums.
TEST(HeadBwd, Kernel1EmptyBatchWritesZeroSums) {
  CONVNCF_REQUIRE_GPU();
  const std::vector<float> w{1.0f, -2.0f, 3.0f};
  DeviceBuffer<float> dw(w), ddw(3), ddb(1);
  convncf::test::poison(ddw);
  convncf::test::poison(ddb);
  convncf::head_bwd(0, 3, 4, nullptr, dw.data(), nullptr, {}, nullptr, ddw.data(), ddb.data(),
                    nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  check_close(ddw.download(), std::vector<float>(3, 0.0f), 0, 0, "dw_out");
  check_close(ddb.download(), std::vector<float>(1, 0.0f), 0, 0, "db_out");
}

// 140000 pairs x 32 channels x 4 positions = 17.9 M elements of dY, more than the 65536 x 256
// threads of the capped grid; and one thread per pair past 65536 * 256 pairs in head_fwd would
// need 17 M pairs, so the forward takes the same large batch with HW = 1 there.
TEST(HeadBwd, Kernel1LargeBatchGridStride) {
  CONVNCF_REQUIRE_GPU();
  run_head_bwd({140000, 32, 4}, {0.2, 5, 6}, 350);
}
TEST(HeadFwd, Kernel1LargeBatchGridStride) {
  CONVNCF_REQUIRE_GPU();
  run_head_fwd({(int64_t{1} << 24) + 1000, 1, 1}, {0.2, 5, 6}, 250);
}

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

namespace {

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

struct RowCase {
  int64_t B_cap, n_valid;
  int E;
};
const RowCase kRowCases[] = {{1, 1, 1},        {1, 0, 13},   {5, 5, 1},       {300, 298, 64},
                             {1000, 1000, 13}, {257, 0, 64}, {4096, 4000, 64}};

}  // namespace

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

TEST(RowsSquaredReg, Kernel1MatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  uint64_t seed = 800;
  for (const RowCase& s : kRowCases)
    for (const double l : {0.01, 0.0}) {
      SCOPED_TRACE("B_cap=" + std::to_string(s.B_cap) + " n_valid=" + std::to_string(s.n_valid) +
                   " E=" + std::to_string(s.E) + " l=" + std::to_string(l));
      Rng rng(seed++, convncf::kStreamSynthetic);
      const size_t B = static_cast<size_t>(s.B_cap), e = static_cast<size_t>(s.E);
      const std::vector<int32_t> u = ids(B, kUsers, rng), p = ids(B, kItems, rng),
                                 n = ids(B, kItems, rng);
      const std::vector<float> P = normals(static_cast<size_t>(kUsers) * e, 1, rng);
      const std::vector<float> Q = normals(static_cast<size_t>(kItems) * e, 1, rng);
      // rows in: earlier gradients, nonzero on padding too (the kernel must zero those)
      const std::vector<float> rows_in = normals(3 * B * e, 1, rng);
      std::vector<float> ref_rows = rows_in;
      std::vector<double> ref_reg(B);
      convncf::rows_squared_reg_cpu(s.B_cap, s.n_valid, s.E, l, u.data(), p.data(), n.data(),
                                    P.data(), Q.data(), ref_rows.data(), ref_reg.data());
      DeviceBuffer<int32_t> du(u), dp(p), dn(n);
      DeviceBuffer<float> dP(P), dQ(Q), drows(rows_in);
      DeviceBuffer<double> dreg(B);
      poison_all(dreg);
      convncf::rows_squared_reg(s.B_cap, s.n_valid, s.E, l, du.data(), dp.data(), dn.data(),
                                dP.data(), dQ.data(), drows.data(), dreg.data(), nullptr);
      CUDA_CHECK(cudaDeviceSynchronize());
      check_close(drows.download(), ref_rows, 1e-7, 1e-6, "rows");
      // squares of floats are exact in double, and the sums run in the same order
      check_close(dreg.download(), ref_reg, 0.0, 1e-12, "reg");
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

// Bad arguments are refused before anything touches the GPU, and empty work launches nothing, so
// this runs everywhere.
TEST(PairKernels, LaunchersRejectBadArgumentsAndSkipEmptyWork) {
  // distinct objects: the pointer parameters are __restrict__
  const int32_t i0 = 0, i1 = 0, i2 = 0;
  float f[7] = {};
  double d = 0.0;
  using convncf::Error;
  EXPECT_THROW(convncf::make_pairs(2, 3, &i0, &i1, &i2, nullptr, nullptr, nullptr), Error);
  EXPECT_THROW(convncf::make_pairs(-1, 0, &i0, &i1, &i2, nullptr, nullptr, nullptr), Error);
  EXPECT_THROW(convncf::make_pairs(1, 1, nullptr, &i0, &i1, nullptr, nullptr, nullptr), Error);
  EXPECT_THROW(convncf::head_fwd(1, 0, 1, &f[0], &f[1], &f[2], {}, &f[3], &f[4], nullptr), Error);
  EXPECT_THROW(convncf::head_fwd(1, 1, 0, &f[0], &f[1], &f[2], {}, &f[3], &f[4], nullptr), Error);
  EXPECT_THROW(convncf::head_fwd(1, 1, 1, &f[0], &f[1], &f[2], {1.0, 0, 0}, &f[3], &f[4], nullptr),
               Error);
  EXPECT_THROW(convncf::head_fwd(1, 1, 1, &f[0], &f[1], &f[2], {-0.1, 0, 0}, &f[3], &f[4], nullptr),
               Error);
  EXPECT_THROW(convncf::head_bwd(-1, 1, 1, &f[0], &f[1], &f[2], {}, &f[3], &f[4], &f[5], nullptr),
               Error);
  EXPECT_THROW(convncf::head_bwd(1, 1, 1, &f[0], &f[1], &f[2], {}, &f[3], nullptr, &f[4], nullptr),
               Error);
  EXPECT_THROW(convncf::bpr_loss_grad(3, 4, &f[0], &d, &f[1], nullptr), Error);
  EXPECT_THROW(
      convncf::outer_product_bwd(1, 0, &i0, &i1, &f[0], &f[1], &f[2], &f[3], &f[4], nullptr),
      Error);
  EXPECT_THROW(convncf::outer_product_bwd(1, convncf::kPairBwdMaxE + 1, &i0, &i1, &f[0], &f[1],
                                          &f[2], &f[3], &f[4], nullptr),
               Error);
  EXPECT_THROW(convncf::gather_row_grads(1, 1, 0, &f[0], &f[1], &f[2], nullptr), Error);
  EXPECT_THROW(convncf::mf_bpr_fwd_bwd(1, 1, 4, &i0, &i1, &i2, &f[0], nullptr, &d, &f[1], nullptr),
               Error);
  EXPECT_THROW(
      convncf::rows_squared_reg(1, 1, 4, -1.0, &i0, &i1, &i2, &f[0], &f[1], &f[2], &d, nullptr),
      Error);
  EXPECT_THROW(
      convncf::rows_squared_reg(1, 1, 4, INFINITY, &i0, &i1, &i2, &f[0], &f[1], &f[2], &d, nullptr),
      Error);
  EXPECT_THROW(convncf::mf_score_pairs(-1, 4, &i0, &i1, &f[0], &f[1], &f[2], nullptr), Error);
  // empty work: no launch, no pointer needed
  EXPECT_NO_THROW(convncf::make_pairs(0, 0, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr));
  EXPECT_NO_THROW(
      convncf::head_fwd(0, 32, 1, nullptr, nullptr, nullptr, {}, nullptr, nullptr, nullptr));
  EXPECT_NO_THROW(convncf::bpr_loss_grad(0, 0, nullptr, nullptr, nullptr, nullptr));
  EXPECT_NO_THROW(convncf::outer_product_bwd(0, 64, nullptr, nullptr, nullptr, nullptr, nullptr,
                                             nullptr, nullptr, nullptr));
  EXPECT_NO_THROW(convncf::gather_row_grads(0, 0, 64, nullptr, nullptr, nullptr, nullptr));
  EXPECT_NO_THROW(convncf::mf_bpr_fwd_bwd(0, 0, 64, nullptr, nullptr, nullptr, nullptr, nullptr,
                                          nullptr, nullptr, nullptr));
  EXPECT_NO_THROW(convncf::rows_squared_reg(0, 0, 64, 0.01, nullptr, nullptr, nullptr, nullptr,
                                            nullptr, nullptr, nullptr, nullptr));
  EXPECT_NO_THROW(
      convncf::mf_score_pairs(0, 64, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr));
}
