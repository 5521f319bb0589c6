// regularization.hpp: the regularizers' terms and gradients on the GPU, with the CPU twins.
//   rows_squared_reg  paper preset: reg[t] = l * (|p|^2 + |q+|^2 + |q-|^2) and 2 l * row added
//                     to each of the triple's three row gradients ((3, B_cap, E), pairs.hpp)
//   scale_add         y[i] += a * x[i] in float (the squared-norm regularizer's gradient, 2*l*w)
//   norm_grad_gpu     the whole-table norm's gradient (RecBole's norm regularization): y[i] +=
//                     float(coef / sqrt(*sumsq) * double(x[i])), *sumsq from reduce.hpp's
//                     sum_squares_gpu
// The per-element math is defined once, below, and run by the kernels and their CPU twins (*_cpu,
// same arguments, host pointers). Kernels: kernels/regularization.cu. CPU twins and argument
// checks: kernels/regularization_cpu.cpp. Tests: tests/test_regularization.cpp,
// tests/test_regularization_gpu.cu.
#pragma once
#include <cstdint>

#include "convncf/common.hpp"

struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace convncf {

// ---- Per-element math shared by the kernels and their CPU twins ----

// sum of v[e]^2 in e order in double (each square is exact, so FMA or not gives the same bits).
CONVNCF_HD double sum_squares_in_order(int E, const float* v) {
  double s = 0.0;
  for (int e = 0; e < E; ++e) s += static_cast<double>(v[e]) * static_cast<double>(v[e]);
  return s;
}

// Squared row regularization of one triple (CpuEngine::run's row_l2 terms): returns
// l * (|p|^2 + |q+|^2 + |q-|^2) and adds float(2 l) * row to each row gradient; with l <= 0 it
// does nothing and returns 0 (CpuEngine skips the term then).
CONVNCF_HD double rows_reg_triple(int E, double l, const float* p, const float* qp, const float* qn,
                                  float* dp, float* dqp, float* dqn) {  // each (E,)
  if (!(l > 0.0)) return 0.0;
  const double reg =
      l * (sum_squares_in_order(E, p) + sum_squares_in_order(E, qp) + sum_squares_in_order(E, qn));
  const float c = static_cast<float>(2.0 * l);
  for (int e = 0; e < E; ++e) {
    dp[e] += c * p[e];
    dqp[e] += c * qp[e];
    dqn[e] += c * qn[e];
  }
  return reg;
}

// rows_reg_triple with its weight, as a functor for triple_rows_slot (pairs.hpp).
struct RowsRegTriple {
  double l;
  CONVNCF_HD double operator()(int E, const float* p, const float* qp, const float* qn, float* dp,
                               float* dqp, float* dqn) const {
    return rows_reg_triple(E, l, p, qp, qn, dp, dqp, dqn);
  }
};

// Adds 2*l*row to rows (3, B_cap, E) and writes reg[t] = l*(|p|^2+|q+|^2+|q-|^2); padded triples
// get reg 0 and their rows are set to 0. l must be finite and >= 0 (0: rows unchanged, reg 0).
void rows_squared_reg(int64_t B_cap, int64_t n_valid, int E, double l,
                      const int32_t* __restrict__ user, const int32_t* __restrict__ pos,
                      const int32_t* __restrict__ neg, const float* __restrict__ P,
                      const float* __restrict__ Q,
                      float* __restrict__ rows,  // (3, B_cap, E) in place
                      double* __restrict__ reg,  // (B_cap,) overwritten
                      cudaStream_t stream);

void scale_add(int64_t n, float a, const float* __restrict__ x, float* __restrict__ y,
               cudaStream_t stream);

// The whole-table norm's gradient: y[i] += float(c * double(x[i])) with c = coef / sqrt(*sumsq)
// (*sumsq read on the device, from sum_squares_gpu; nothing added when it is 0), as the CPU
// engine adds reg1 * P / |P|.
void norm_grad_gpu(int64_t n, double coef, const double* __restrict__ sumsq,
                   const float* __restrict__ x, float* __restrict__ y, cudaStream_t stream);

// CPU twins (norm_grad_gpu's is the CPU engine's own loop).
void rows_squared_reg_cpu(int64_t B_cap, int64_t n_valid, int E, double l, const int32_t* user,
                          const int32_t* pos, const int32_t* neg, const float* P, const float* Q,
                          float* rows, double* reg);
void scale_add_cpu(int64_t n, float a, const float* x, float* y);

// The launchers' argument checks, shared by each launcher, the emulated launcher and, for
// rows_squared_reg, the twin (who = "rows_squared_reg_cpu"): sizes, a finite l >= 0, and no null
// pointer where there is work. Throw Error(kExitSoftware) naming `who`.
void check_rows_squared_reg_args(int64_t B_cap, int64_t n_valid, int E, double l,
                                 const int32_t* user, const int32_t* pos, const int32_t* neg,
                                 const float* P, const float* Q, const float* rows,
                                 const double* reg, const char* who = "rows_squared_reg");
// n >= 0, x and y not null when n > 0.
void check_scale_add_args(int64_t n, const float* x, const float* y);
// n >= 0, sumsq, x and y not null when n > 0.
void check_norm_grad_args(int64_t n, const double* sumsq, const float* x, const float* y);

}  // namespace convncf
