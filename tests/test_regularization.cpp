// test_regularization.cpp: the CPU twin of rows_squared_reg (kernels/regularization_cpu.cpp), the
// oracle of tests/test_regularization_gpu.cu, checked by hand (scale_add_cpu is checked with the
// pair-layout twins, PairLayout.CpuTwinsByHand in tests/test_pairs.cpp). Always runs.
//   build/convncf_tests --gtest_filter='RowsSquaredRegCpu.*'
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "convncf/regularization.hpp"

using namespace convncf;

TEST(RowsSquaredRegCpu, ByHand) {
  // ||p||^2 = 5, ||q+||^2 = 9, ||q-||^2 = 16 (CpuEngine's hand-worked case), l = 0.25.
  const std::vector<float> P{1, 2}, Q{0, 3, 4, 0};
  const std::vector<int32_t> u{0, 0}, p{0, 0}, n{1, 1};
  std::vector<float> rows(12, 1.0f);
  std::vector<double> reg(2, -1.0);
  rows_squared_reg_cpu(2, 1, 2, 0.25, u.data(), p.data(), n.data(), P.data(), Q.data(), rows.data(),
                       reg.data());
  EXPECT_EQ(reg[0], 0.25 * (5 + 9 + 16));
  EXPECT_EQ(reg[1], 0.0);
  const std::vector<float> want{1.5f, 2.0f, 0, 0, 1.0f, 2.5f, 0, 0, 3.0f, 1.0f, 0, 0};
  EXPECT_EQ(rows, want);
  // l = 0 changes nothing and adds no loss
  std::vector<float> before = rows;
  rows_squared_reg_cpu(2, 1, 2, 0.0, u.data(), p.data(), n.data(), P.data(), Q.data(), rows.data(),
                       reg.data());
  EXPECT_EQ(rows, before);
  EXPECT_EQ(reg[0], 0.0);
}
