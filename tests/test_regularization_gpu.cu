// test_regularization_gpu.cu: the regularization kernels (kernels/regularization.cu) against their
// CPU twins (kernels/regularization_cpu.cpp) or the CPU engine's formula: rows_squared_reg on
// batches with padding (the kernel must zero the padded rows), l = 0.01 and 0; norm_grad_gpu bit
// for bit (the same correctly rounded operations on both sides), a zero norm adding nothing.
// (scale_add's kernel test is PairLayout.KernelsMatchCpu in tests/test_pairs_gpu.cu.) Skips with
// the reason when no CUDA device is usable.
//   build/convncf_tests --gtest_filter='RowsSquaredReg.*:Reduce.NormGradMatchesCpu'
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "convncf/cuda_check.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/errors.hpp"
#include "convncf/reduce.hpp"
#include "convncf/regularization.hpp"
#include "convncf/rng.hpp"
#include "gpu_test_util.hpp"
#include "kernel_test_util.hpp"

using convncf::DeviceBuffer;
using convncf::Rng;
using namespace convncf::test;

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

// y += float(coef / sqrt(sumsq) * double(x)): the same operations on host and device, each
// correctly rounded (double sqrt and division are IEEE on the device), so the bits must match.
TEST(Reduce, NormGradMatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  convncf::Rng rng(85, convncf::kStreamSynthetic);
  DeviceBuffer<double> partials(size_t(convncf::reduce_partials_size())), sumsq(1);
  for (int64_t n : {1, 255, 257, 100000, 1024 * 256 * 70 + 3}) {
    std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
    for (float& v : x) v = float(rng.normal());
    for (float& v : y) v = float(rng.normal() * 0.1);
    DeviceBuffer<float> dx(x), dy(y);
    convncf::sum_squares_gpu(n, dx.data(), partials.data(), sumsq.data(), nullptr);
    const double s = sumsq.download()[0];
    const double coef = 0.1;
    convncf::norm_grad_gpu(n, coef, sumsq.data(), dx.data(), dy.data(), nullptr);
    const std::vector<float> got = dy.download();
    const double c = coef / std::sqrt(s);
    int64_t bad = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const float want = y[i] + static_cast<float>(c * double(x[i]));
      if (!(got[i] == want) && bad++ < 5)
        ADD_FAILURE() << "n=" << n << " y[" << i << "]: gpu " << got[i] << ", cpu " << want;
    }
    EXPECT_EQ(bad, 0);
  }
  // A zero norm adds nothing.
  std::vector<float> zeros(100, 0.0f), y(100, 0.5f);
  DeviceBuffer<float> dz(zeros), dy(y);
  convncf::sum_squares_gpu(100, dz.data(), partials.data(), sumsq.data(), nullptr);
  convncf::norm_grad_gpu(100, 0.1, sumsq.data(), dz.data(), dy.data(), nullptr);
  EXPECT_EQ(dy.download(), y);
}
