// bpr.hpp: the BPR loss of a batch on the GPU, with its CPU twins.
//   bpr_loss_grad   per triple x = score[2t] - score[2t+1]; loss[t] = softplus(-x);
//                   dscore[2t] = g, dscore[2t+1] = -g with g = d softplus(-x)/dx; 0 on padding
//   mf_bpr_fwd_bwd  MF-BPR: scores p.q, loss per triple and the three row gradients at once
//   mf_score_pairs  MF scores of (user, item) pairs, score[k] = P[user[k]] . Q[item[k]]
// Scores come in pairs as pairs.hpp lays them out (pair 2t positive, 2t+1 negative); row
// gradients are (3, B_cap, E) buffers (pairs.hpp's row_grad_offset).
//
// The per-element math (stable softplus and its derivative, one triple's term) is defined once,
// below, and used by the CPU engine too. CPU twins: *_cpu, same arguments, host pointers.
// Kernels: kernels/bpr.cu. CPU twins and argument checks: kernels/bpr_cpu.cpp.
// Tests: tests/test_bpr.cpp, tests/test_bpr_gpu.cu.
#pragma once
#include <cmath>
#include <cstdint>

#include "convncf/common.hpp"

struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace convncf {

// softplus(-x) = max(-x, 0) + log1p(exp(-|x|)): never overflows.
template <typename T>
CONVNCF_HD T softplus_neg(T x) {
  using std::exp;
  using std::fabs;
  using std::log1p;
  return (x < T(0) ? -x : T(0)) + log1p(exp(-fabs(x)));
}
// d/dx softplus(-x) = -sigmoid(-x), without overflow.
template <typename T>
CONVNCF_HD T softplus_neg_grad(T x) {
  using std::exp;
  if (x >= T(0)) {
    const T e = exp(-x);
    return -e / (T(1) + e);
  }
  return -T(1) / (T(1) + exp(x));
}

// ---- Per-element math shared by the kernels and their CPU twins ----
// Each kernel's first variant runs these per thread, so the CPU tests exercise the arithmetic
// (and its order) that the GPU runs; only FMA contraction and the device's exp/log1p can differ.

// BPR term of one triple from its two scores: writes softplus(-x) as a double (CpuEngine's
// double(bpr_loss(x)) with x in float) and returns g = d softplus(-x)/dx.
CONVNCF_HD float bpr_triple(float s_pos, float s_neg, double* loss) {
  const float x = s_pos - s_neg;
  *loss = static_cast<double>(softplus_neg(x));
  return softplus_neg_grad(x);
}

// a . b summed in e order in float.
CONVNCF_HD float dot_in_order(int E, const float* a, const float* b) {
  float s = 0.0f;
  for (int e = 0; e < E; ++e) s += a[e] * b[e];
  return s;
}

// MF-BPR for one triple (CpuEngine's BPR branch): returns the loss, writes the three row gradients.
CONVNCF_HD double mf_bpr_triple(int E, const float* p, const float* qp, const float* qn,
                                float* dp, float* dqp, float* dqn) {  // each (E,)
  double loss = 0.0;
  const float g = bpr_triple(dot_in_order(E, p, qp), dot_in_order(E, p, qn), &loss);
  for (int e = 0; e < E; ++e) {
    dp[e] = g * (qp[e] - qn[e]);
    dqp[e] = g * p[e];
    dqn[e] = -g * p[e];
  }
  return loss;
}

// mf_bpr_triple as a functor, for triple_rows_slot (pairs.hpp).
struct MfBprTriple {
  CONVNCF_HD double operator()(int E, const float* p, const float* qp, const float* qn, float* dp,
                               float* dqp, float* dqn) const {
    return mf_bpr_triple(E, p, qp, qn, dp, dqp, dqn);
  }
};

void bpr_loss_grad(int64_t B_cap, int64_t n_valid,
                   const float* __restrict__ score,  // (2*B_cap,)
                   double* __restrict__ loss,        // (B_cap,) 0 on padding
                   float* __restrict__ dscore,       // (2*B_cap,) 0 on padding
                   cudaStream_t stream);

void mf_bpr_fwd_bwd(int64_t B_cap, int64_t n_valid, int E,
                    const int32_t* __restrict__ user,  // (B_cap,)
                    const int32_t* __restrict__ pos,   // (B_cap,)
                    const int32_t* __restrict__ neg,   // (B_cap,)
                    const float* __restrict__ P,       // (n_users, E)
                    const float* __restrict__ Q,       // (n_items, E)
                    double* __restrict__ loss,         // (B_cap,) 0 on padding
                    float* __restrict__ rows,          // (3, B_cap, E) overwritten, 0 on padding
                    cudaStream_t stream);

// MF scores of n pairs: score[k] = P[user[k]] . Q[item[k]] (evaluation).
void mf_score_pairs(int64_t n, int E, const int32_t* __restrict__ user,
                    const int32_t* __restrict__ item, const float* __restrict__ P,
                    const float* __restrict__ Q, float* __restrict__ score, cudaStream_t stream);

// CPU twins.
void bpr_loss_grad_cpu(int64_t B_cap, int64_t n_valid, const float* score, double* loss,
                       float* dscore);
void mf_bpr_fwd_bwd_cpu(int64_t B_cap, int64_t n_valid, int E, const int32_t* user,
                        const int32_t* pos, const int32_t* neg, const float* P, const float* Q,
                        double* loss, float* rows);
void mf_score_pairs_cpu(int64_t n, int E, const int32_t* user, const int32_t* item,
                        const float* P, const float* Q, float* score);

// The launchers' argument checks, shared by each launcher, its twin (who = "<launcher>_cpu") and
// the emulated launcher: the batch (0 <= n_valid <= B_cap), 1 <= E <= kRowKernelMaxE, and no null
// pointer where there is work (the inputs only when n_valid > 0). Throw Error(kExitSoftware)
// naming `who`.
void check_bpr_loss_grad_args(int64_t B_cap, int64_t n_valid, const float* score,
                              const double* loss, const float* dscore,
                              const char* who = "bpr_loss_grad");
void check_mf_bpr_fwd_bwd_args(int64_t B_cap, int64_t n_valid, int E, const int32_t* user,
                               const int32_t* pos, const int32_t* neg, const float* P,
                               const float* Q, const double* loss, const float* rows,
                               const char* who = "mf_bpr_fwd_bwd");
void check_mf_score_pairs_args(int64_t n, int E, const int32_t* user, const int32_t* item,
                               const float* P, const float* Q, const float* score,
                               const char* who = "mf_score_pairs");

}  // namespace convncf
