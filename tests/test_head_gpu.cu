// test_head_gpu.cu: the head kernels (kernels/head.cu) against their CPU twins
// (kernels/head_cpu.cpp) on fresh seeded inputs: C = 1, 7, 32, HW = 1, 3, 4, dropout off and on,
// pair counts that are not multiples of the block size, no pairs, and sizes past the grid caps
// so that the grid-stride loops run a second round. Outputs are poisoned (every byte 0xFF: NaN)
// so an element a kernel never writes fails.
// Tolerances: the kernels run the twins' per-element functions in the twins' order; what can differ
// is FMA contraction (the device fuses a*b+c, the host compiler may not), so sums get atol = 1e-6 *
// sum|terms| and scalars a few ulps. Skips with the reason when no CUDA device is usable.
//   build/convncf_tests --gtest_filter='HeadFwd.*:HeadBwd.*'
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
#include "convncf/head.hpp"
#include "convncf/rng.hpp"
#include "gpu_test_util.hpp"
#include "kernel_test_util.hpp"

using convncf::DeviceBuffer;
using convncf::DropoutArgs;
using convncf::Rng;
using namespace convncf::test;

namespace {

std::string dropout_name(const DropoutArgs& d) {
  return d.p > 0 ? " dropout " + std::to_string(d.p) : " no dropout";
}

struct HeadSize {
  int64_t n_pairs;
  int C, HW;
};
const HeadSize kHeads[] = {{1, 1, 1},     {2, 32, 4},  {6, 1, 4},    {602, 32, 1},
                           {1000, 32, 4}, {513, 7, 3}, {8192, 32, 1}};
const DropoutArgs kDropouts[] = {{0.0, 0, 0}, {0.2, 2020, 17}};

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
