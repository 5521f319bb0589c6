// test_launch_checks_gpu.cu: the launchers' argument checks (check_<op>_args, kernels/*_cpu.cpp)
// through the real launchers of the per-pair kernels: bad arguments are refused before anything
// touches the GPU, and empty work launches nothing, so this runs everywhere (no device needed).
// The same checks through the CPU twins: tests/test_launch_checks.cpp.
//   build/convncf_tests --gtest_filter='PairKernels.*'
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

#include "convncf/bpr.hpp"
#include "convncf/errors.hpp"
#include "convncf/head.hpp"
#include "convncf/outer_product.hpp"
#include "convncf/pairs.hpp"
#include "convncf/regularization.hpp"

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
