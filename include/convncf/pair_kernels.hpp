// pair_kernels.hpp: the per-pair kernels of the GPU training step around the conv stack.
//
// Pairs are interleaved: pair 2t is (user[t], pos[t]), pair 2t+1 is (user[t], neg[t]). A batch
// buffer holds B_cap triples (2*B_cap pairs); only the first n_valid triples are real. Padded
// pairs point at row 0, get score gradient 0 and add nothing to any loss or gradient, so the conv
// plans can be built once for 2*B_cap pairs.
//
//   make_pairs        pair_user, pair_item from (user, pos, neg); padding -> row 0
//   head_fwd          h[p][c] = sum_s Y[p][c][s]; h'[p][c] = h[p][c] * mask(p, c);
//                     score[p] = b_out + sum_c w_out[c] * h'[p][c]
//   bpr_loss_grad     per triple x = score[2t] - score[2t+1]; loss[t] = softplus(-x);
//                     dscore[2t] = g, dscore[2t+1] = -g with g = d softplus(-x)/dx; 0 on padding
//   head_bwd          dY[p][c][s] = dscore[p] * w_out[c] * mask(p, c) (the same for every s; the
//                     conv layer's backward applies the ReLU mask); dw_out[c] = sum_p dscore[p] *
//                     h'[p][c], db_out = sum_p dscore[p] (fixed-order sums, overwritten)
//   outer_product_bwd per pair, from its gradient map G = dL/dM (E x E): dp = G q, dq = G^T p
//   gather_row_grads  rows[0][t] = dp[2t] + dp[2t+1] (the user's two pairs), rows[1][t] = dq[2t],
//                     rows[2][t] = dq[2t+1], for the sparse combiner
//   mf_bpr_fwd_bwd    MF-BPR: scores p.q, loss per triple and the three row gradients at once
//   rows_squared_reg  paper preset: reg[t] = l * (|p|^2 + |q+|^2 + |q-|^2) and 2 l * row added
//                     to each of the triple's three row gradients
// Row-gradient buffers are (3, B_cap, E): [0] user rows, [1] positive item rows, [2] negative item
// rows, i.e. the order of CpuEngine's per-triple rows, so the combiner's keys are user, pos, neg.
//
// The per-element math (stable softplus and its derivative, the dropout mask) is defined once,
// below, and used by the CPU engine too. CPU twins: *_cpu, same arguments, host pointers.
// Kernels: kernels/pair_kernels.cu. Tests: tests/test_pair_kernels.cpp, tests/test_pair_kernels_gpu.cu.
#pragma once
#include <cmath>
#include <cstdint>
#include <initializer_list>

#include "convncf/common.hpp"
#include "convncf/rng.hpp"

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

// Inverted dropout: the scale of channel `channel` of pair (triple, side) at global step `step`,
// 0 or 1/(1-p); 1 when p <= 0. Pure function of its arguments (CpuEngine's dropout_scale).
CONVNCF_HD double dropout_mask(double p, uint64_t seed, uint64_t step, int64_t triple, int side,
                               int channel) {
  if (p <= 0.0) return 1.0;
  const uint64_t pair = static_cast<uint64_t>(triple) * 2u + static_cast<uint64_t>(side);
  const uint64_t bits =
      rng_hash(rng_hash(seed, kStreamDropout, step), pair, static_cast<uint64_t>(channel));
  return uniform01(bits) < p ? 0.0 : 1.0 / (1.0 - p);
}

struct DropoutArgs {
  double p = 0.0;  // 0: no dropout (evaluation)
  uint64_t seed = 0;
  uint64_t step = 0;
};

// ---- Index and per-element math shared by the kernels and their CPU twins ----
// Each kernel's first variant runs these per thread, so the CPU tests exercise the arithmetic
// (and its order) that the GPU runs; only FMA contraction and the device's exp/log1p can differ.

// The user and item rows pair 2*triple + side reads; row 0 for a padded triple (>= n_valid), whose
// ids are never read.
struct PairIds {
  int32_t user;
  int32_t item;
};
CONVNCF_HD PairIds pair_ids(int64_t triple, int side, int64_t n_valid, const int32_t* user,
                            const int32_t* pos, const int32_t* neg) {
  if (triple >= n_valid) return {0, 0};
  return {user[triple], side == 0 ? pos[triple] : neg[triple]};
}

// Offset of rows[which][t][0] in a (3, B_cap, E) row-gradient buffer (which: 0 user, 1 pos, 2 neg).
CONVNCF_HD int64_t row_grad_offset(int which, int64_t B_cap, int64_t t, int E) {
  return (static_cast<int64_t>(which) * B_cap + t) * E;
}

// The dropout scale of channel c of pair `pair` as the float CpuEngine multiplies by (T(mask)).
CONVNCF_HD float pair_mask(const DropoutArgs& d, int64_t pair, int c) {
  return static_cast<float>(
      dropout_mask(d.p, d.seed, d.step, pair / 2, static_cast<int>(pair % 2), c));
}

// The head of one pair, in CpuEngine::forward_from_A's order: h[c] = sum_s Y[c][s] in s order,
// times the mask when dropout is on; score = b_out + sum_c w_out[c] * h[c] in c order.
CONVNCF_HD float head_pair_fwd(int C, int HW,
                               const float* Y,      // (C, HW) this pair's last feature map
                               const float* w_out,  // (C,)
                               float b_out, const DropoutArgs& drop, int64_t pair,
                               float* h) {          // (C,) h' written
  float s = b_out;
  for (int c = 0; c < C; ++c) {
    float acc = 0.0f;
    for (int k = 0; k < HW; ++k) acc += Y[static_cast<int64_t>(c) * HW + k];
    if (drop.p > 0.0) acc = acc * pair_mask(drop, pair, c);
    h[c] = acc;
    s += w_out[c] * acc;
  }
  return s;
}

// dL/dY[p][c][s] for every s: CpuEngine::backward_pair's dh[c] = dscore * w_out[c] * mask.
CONVNCF_HD float head_dY(float dscore, float w, const DropoutArgs& drop, int64_t pair, int c) {
  return drop.p > 0.0 ? dscore * w * pair_mask(drop, pair, c) : dscore * w;
}

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

// sum of v[e]^2 in e order in double (each square is exact, so FMA or not gives the same bits).
CONVNCF_HD double sum_squares_in_order(int E, const float* v) {
  double s = 0.0;
  for (int e = 0; e < E; ++e) s += static_cast<double>(v[e]) * static_cast<double>(v[e]);
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

// rows[which][t][e] of gather_row_grads; 0 for a padded triple.
CONVNCF_HD float gathered_row_grad(int which, int64_t t, int e, int64_t n_valid, int E,
                                   const float* dp,    // (2*B_cap, E)
                                   const float* dq) {  // (2*B_cap, E)
  if (t >= n_valid) return 0.0f;
  const int64_t pos_off = 2 * t * E + e, neg_off = (2 * t + 1) * E + e;
  if (which == 0) return dp[pos_off] + dp[neg_off];
  return which == 1 ? dq[pos_off] : dq[neg_off];
}

// Largest E outer_product_bwd accepts (its kernel keeps E running sums in shared memory).
inline constexpr int kPairBwdMaxE = 4096;

namespace detail {
// Argument checks shared by each launcher and its CPU twin; they throw Error(kExitSoftware)
// naming the function and the bad value. Defined in kernels/pair_kernels_cpu.cpp.
void check_batch(const char* fn, int64_t B_cap, int64_t n_valid);
void check_E(const char* fn, int E, int max_E);
void check_head(const char* fn, int64_t n_pairs, int C, int HW, const DropoutArgs& drop);
void check_reg_coef(const char* fn, double l);
void check_pointers(const char* fn, std::initializer_list<const void*> ptrs);
}  // namespace detail

void make_pairs(int64_t B_cap, int64_t n_valid,
                const int32_t* __restrict__ user,  // (B_cap,)
                const int32_t* __restrict__ pos,   // (B_cap,)
                const int32_t* __restrict__ neg,   // (B_cap,)
                int32_t* __restrict__ pair_user,   // (2*B_cap,)
                int32_t* __restrict__ pair_item,   // (2*B_cap,)
                cudaStream_t stream);

// Dropout (drop.p > 0, training only) masks pair p as (triple, side) = (p / 2, p % 2).
void head_fwd(int64_t n_pairs, int C, int HW,
              const float* __restrict__ Y,      // (n_pairs, C, HW) last conv layer's output
              const float* __restrict__ w_out,  // (C,)
              const float* __restrict__ b_out,  // (1,)
              DropoutArgs drop,
              float* __restrict__ h,            // (n_pairs, C) h' after the mask, kept for head_bwd
              float* __restrict__ score,        // (n_pairs,)
              cudaStream_t stream);

void bpr_loss_grad(int64_t B_cap, int64_t n_valid,
                   const float* __restrict__ score,  // (2*B_cap,)
                   double* __restrict__ loss,        // (B_cap,) 0 on padding
                   float* __restrict__ dscore,       // (2*B_cap,) 0 on padding
                   cudaStream_t stream);

void head_bwd(int64_t n_pairs, int C, int HW,
              const float* __restrict__ dscore,  // (n_pairs,)
              const float* __restrict__ w_out,   // (C,)
              const float* __restrict__ h,       // (n_pairs, C) from head_fwd
              DropoutArgs drop,                  // the same as head_fwd's
              float* __restrict__ dY,            // (n_pairs, C, HW) overwritten
              float* __restrict__ dw_out,        // (C,) overwritten
              float* __restrict__ db_out,        // (1,) overwritten
              cudaStream_t stream);

void outer_product_bwd(int64_t n_pairs, int E,
                       const int32_t* __restrict__ pair_user,  // (n_pairs,)
                       const int32_t* __restrict__ pair_item,  // (n_pairs,)
                       const float* __restrict__ P,            // (n_users, E)
                       const float* __restrict__ Q,            // (n_items, E)
                       const float* __restrict__ G,            // (n_pairs, 1, E, E)
                       float* __restrict__ dp,                 // (n_pairs, E) overwritten
                       float* __restrict__ dq,                 // (n_pairs, E) overwritten
                       cudaStream_t stream);

// rows (3, B_cap, E): rows[0][t] = dp[2t] + dp[2t+1], rows[1][t] = dq[2t], rows[2][t] = dq[2t+1];
// padded triples (t >= n_valid) get zeros.
void gather_row_grads(int64_t B_cap, int64_t n_valid, int E,
                      const float* __restrict__ dp,  // (2*B_cap, E)
                      const float* __restrict__ dq,  // (2*B_cap, E)
                      float* __restrict__ rows,      // (3, B_cap, E) overwritten
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

// Adds 2*l*row to rows (3, B_cap, E) and writes reg[t] = l*(|p|^2+|q+|^2+|q-|^2); padded triples
// get reg 0 and their rows are set to 0. l must be finite and >= 0 (0: rows unchanged, reg 0).
void rows_squared_reg(int64_t B_cap, int64_t n_valid, int E, double l,
                      const int32_t* __restrict__ user, const int32_t* __restrict__ pos,
                      const int32_t* __restrict__ neg, const float* __restrict__ P,
                      const float* __restrict__ Q,
                      float* __restrict__ rows,  // (3, B_cap, E) in place
                      double* __restrict__ reg,  // (B_cap,) overwritten
                      cudaStream_t stream);

// MF scores of n pairs: score[k] = P[user[k]] . Q[item[k]] (evaluation).
void mf_score_pairs(int64_t n, int E, const int32_t* __restrict__ user,
                    const int32_t* __restrict__ item, const float* __restrict__ P,
                    const float* __restrict__ Q, float* __restrict__ score, cudaStream_t stream);

// CPU twins.
void make_pairs_cpu(int64_t B_cap, int64_t n_valid, const int32_t* user, const int32_t* pos,
                    const int32_t* neg, int32_t* pair_user, int32_t* pair_item);
void head_fwd_cpu(int64_t n_pairs, int C, int HW, const float* Y, const float* w_out,
                  const float* b_out, DropoutArgs drop, float* h, float* score);
void bpr_loss_grad_cpu(int64_t B_cap, int64_t n_valid, const float* score, double* loss,
                       float* dscore);
void head_bwd_cpu(int64_t n_pairs, int C, int HW, const float* dscore, const float* w_out,
                  const float* h, DropoutArgs drop, float* dY, float* dw_out, float* db_out);
void outer_product_bwd_cpu(int64_t n_pairs, int E, const int32_t* pair_user,
                           const int32_t* pair_item, const float* P, const float* Q,
                           const float* G, float* dp, float* dq);
void gather_row_grads_cpu(int64_t B_cap, int64_t n_valid, int E, const float* dp, const float* dq,
                          float* rows);
void mf_bpr_fwd_bwd_cpu(int64_t B_cap, int64_t n_valid, int E, const int32_t* user,
                        const int32_t* pos, const int32_t* neg, const float* P, const float* Q,
                        double* loss, float* rows);
void rows_squared_reg_cpu(int64_t B_cap, int64_t n_valid, int E, double l, const int32_t* user,
                          const int32_t* pos, const int32_t* neg, const float* P, const float* Q,
                          float* rows, double* reg);
void mf_score_pairs_cpu(int64_t n, int E, const int32_t* user, const int32_t* item,
                        const float* P, const float* Q, float* score);

}  // namespace convncf
