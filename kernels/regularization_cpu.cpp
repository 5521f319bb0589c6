// regularization_cpu.cpp: CPU twins of kernels/regularization.cu (same arguments, host pointers)
// and the launchers' argument checks. Plain loops, one thread: they are the oracles of
// tests/test_regularization_gpu.cu, and rows_squared_reg_cpu runs the same per-element function
// (rows_reg_triple, regularization.hpp) as the kernel. Checked themselves by
// tests/test_regularization.cpp:
//   build/convncf_tests --gtest_filter='RowsSquaredRegCpu.*:PairLayout.CpuTwinsByHand'
#include <cmath>
#include <string>

#include "convncf/errors.hpp"
#include "convncf/launch_checks.hpp"
#include "convncf/outer_product.hpp"
#include "convncf/pairs.hpp"
#include "convncf/regularization.hpp"

namespace convncf {
namespace {

// rows_squared_reg's coefficient.
void check_reg_coef(const char* fn, double l) {
  if (!(l >= 0.0) || !std::isfinite(l))
    throw_internal(std::string(fn) + ": bad coefficient " + std::to_string(l) +
                   " (expected a finite l >= 0)");
}

}  // namespace

void check_rows_squared_reg_args(int64_t B_cap, int64_t n_valid, int E, double l,
                                 const int32_t* user, const int32_t* pos, const int32_t* neg,
                                 const float* P, const float* Q, const float* rows,
                                 const double* reg, const char* who) {
  detail::check_batch(who, B_cap, n_valid);
  detail::check_E(who, E, kRowKernelMaxE);
  check_reg_coef(who, l);
  if (B_cap == 0) return;
  detail::check_pointers(who, {rows, reg});
  if (n_valid > 0) detail::check_pointers(who, {user, pos, neg, P, Q});
}

void check_scale_add_args(int64_t n, const float* x, const float* y) {
  if (n < 0 || (n > 0 && (!x || !y))) throw Error(kExitSoftware, "scale_add: bad arguments");
}

void check_norm_grad_args(int64_t n, const double* sumsq, const float* x, const float* y) {
  if (n < 0) throw_internal("norm_grad_gpu: n = " + std::to_string(n) + " < 0");
  if (n > 0 && (!sumsq || !x || !y)) throw_internal("norm_grad_gpu: null pointer argument");
}

void rows_squared_reg_cpu(int64_t B_cap, int64_t n_valid, int E, double l, const int32_t* user,
                          const int32_t* pos, const int32_t* neg, const float* P, const float* Q,
                          float* rows, double* reg) {
  check_rows_squared_reg_args(B_cap, n_valid, E, l, user, pos, neg, P, Q, rows, reg,
                              "rows_squared_reg_cpu");
  for (int64_t t = 0; t < B_cap; ++t) {
    // padding gets zero rows here too (the step zeroes them already, so it holds regardless)
    reg[t] = triple_rows_slot(t, B_cap, n_valid, E, user, pos, neg, P, Q, rows, RowsRegTriple{l});
  }
}

void scale_add_cpu(int64_t n, float a, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

}  // namespace convncf
