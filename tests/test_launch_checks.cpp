// test_launch_checks.cpp: the launchers' argument checks (check_<op>_args, kernels/*_cpu.cpp, on
// the helpers of launch_checks.hpp) through the CPU twins that call them: bad batches, sizes,
// dropout probabilities, coefficients and null pointers are refused. Always runs. The same checks
// through the launchers: tests/test_launch_checks_gpu.cu.
//   build/convncf_tests --gtest_filter='PairKernelsCpu.*'
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

#include "convncf/bpr.hpp"
#include "convncf/errors.hpp"
#include "convncf/head.hpp"
#include "convncf/outer_product.hpp"
#include "convncf/pairs.hpp"
#include "convncf/regularization.hpp"

using namespace convncf;

TEST(PairKernelsCpu, TwinsRejectBadArguments) {
  const int32_t id = 0;
  float x = 0.0f;
  double d = 0.0;
  EXPECT_THROW(make_pairs_cpu(2, 3, &id, &id, &id, nullptr, nullptr), Error);  // n_valid > B_cap
  EXPECT_THROW(make_pairs_cpu(-1, 0, &id, &id, &id, nullptr, nullptr), Error);
  EXPECT_THROW(head_fwd_cpu(1, 0, 1, &x, &x, &x, {}, &x, &x), Error);           // C = 0
  EXPECT_THROW(head_fwd_cpu(1, 1, 1, &x, &x, &x, {1.0, 0, 0}, &x, &x), Error);  // p = 1
  EXPECT_THROW(head_fwd_cpu(1, 1, 1, nullptr, &x, &x, {}, &x, &x), Error);
  EXPECT_THROW(outer_product_bwd_cpu(1, kPairBwdMaxE + 1, &id, &id, &x, &x, &x, &x, &x), Error);
  EXPECT_THROW(rows_squared_reg_cpu(1, 1, 1, -0.5, &id, &id, &id, &x, &x, &x, &d), Error);
  EXPECT_THROW(rows_squared_reg_cpu(1, 1, 1, NAN, &id, &id, &id, &x, &x, &x, &d), Error);
  EXPECT_THROW(mf_score_pairs_cpu(1, 0, &id, &id, &x, &x, &x), Error);
  EXPECT_NO_THROW(mf_bpr_fwd_bwd_cpu(0, 0, 4, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                     nullptr));  // an empty batch touches nothing
}
