// pairs.hpp: the pair layout of a GPU training step and the kernels that build it and take it
// apart again.
//
// Pairs are interleaved: pair 2t is (user[t], pos[t]), pair 2t+1 is (user[t], neg[t]). A batch
// buffer holds B_cap triples (2*B_cap pairs); only the first n_valid triples are real. Padded
// pairs point at row 0, get score gradient 0 and add nothing to any loss or gradient, so the conv
// plans can be built once for 2*B_cap pairs. Row-gradient buffers are (3, B_cap, E): [0] user
// rows, [1] positive item rows, [2] negative item rows, i.e. the order of CpuEngine's per-triple
// rows, so the combiner's keys are user, pos, neg.
//   make_pairs        pair_user, pair_item from (user, pos, neg); padding -> row 0
//   gather_row_grads  rows[0][t] = dp[2t] + dp[2t+1] (the user's two pairs), rows[1][t] = dq[2t],
//                     rows[2][t] = dq[2t+1], for the sparse combiner
//   interleave_rows   out[2t] = rows[1][t], out[2t+1] = rows[2][t]: the item-row gradients of a
//                     batch in the CPU engine's order (positive, then negative, per triple), the
//                     order the pair arrays already have, so the combiner sums them as the CPU does
//   range_pairs       the pairs (users[j], item_lo + c), j < nu, c < n, row-major; pairs past nu*n
//                     up to cap are (0, 0) (padding for a fixed-size forward)
//
// The index math is defined once, below, and run by the kernels and their CPU twins (*_cpu, same
// arguments, host pointers). Kernels: kernels/pairs.cu. CPU twins and argument checks:
// kernels/pairs_cpu.cpp. Tests: tests/test_pairs.cpp, tests/test_pairs_gpu.cu.
#pragma once
#include <cstdint>

#include "convncf/common.hpp"
#include "convncf/outer_product.hpp"  // embedding_offset

struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace convncf {

// ---- Index math shared by the kernels and their CPU twins ----

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

// Batch slot t of a per-triple row kernel (mf_bpr_fwd_bwd, rows_squared_reg): for a real triple
// (t < n_valid) returns f(E, p, q+, q-, dp, dq+, dq-) on the triple's embedding rows of P and Q
// (row-major, E wide) and its three gradient rows in `rows` (3, B_cap, E); a padded slot gets
// zero rows and returns 0. f is a functor with a CONVNCF_HD operator(), so that the kernel's
// grid-stride loop and the CPU twin's loop run the same slot code.
template <typename F>
CONVNCF_HD double triple_rows_slot(int64_t t, int64_t B_cap, int64_t n_valid, int E, const int32_t* user,
                                   const int32_t* pos, const int32_t* neg, const float* P, const float* Q,
                                   float* rows, const F& f) {
  float* dp = rows + row_grad_offset(0, B_cap, t, E);
  float* dqp = rows + row_grad_offset(1, B_cap, t, E);
  float* dqn = rows + row_grad_offset(2, B_cap, t, E);
  if (t >= n_valid) {
    for (int e = 0; e < E; ++e) dp[e] = dqp[e] = dqn[e] = 0.0f;
    return 0.0;
  }
  return f(E, P + embedding_offset(user[t], E, 0), Q + embedding_offset(pos[t], E, 0),
           Q + embedding_offset(neg[t], E, 0), dp, dqp, dqn);
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

void make_pairs(int64_t B_cap, int64_t n_valid,
                const int32_t* __restrict__ user,  // (B_cap,)
                const int32_t* __restrict__ pos,   // (B_cap,)
                const int32_t* __restrict__ neg,   // (B_cap,)
                int32_t* __restrict__ pair_user,   // (2*B_cap,)
                int32_t* __restrict__ pair_item,   // (2*B_cap,)
                cudaStream_t stream);

// rows (3, B_cap, E): rows[0][t] = dp[2t] + dp[2t+1], rows[1][t] = dq[2t], rows[2][t] = dq[2t+1];
// padded triples (t >= n_valid) get zeros.
void gather_row_grads(int64_t B_cap, int64_t n_valid, int E,
                      const float* __restrict__ dp,  // (2*B_cap, E)
                      const float* __restrict__ dq,  // (2*B_cap, E)
                      float* __restrict__ rows,      // (3, B_cap, E) overwritten
                      cudaStream_t stream);

void interleave_rows(int64_t B_cap, int E, const float* __restrict__ rows,  // (3, B_cap, E)
                     float* __restrict__ out,                               // (2*B_cap, E)
                     cudaStream_t stream);
void range_pairs(int64_t nu, const int32_t* __restrict__ users,  // (nu,) device
                 int32_t item_lo, int32_t n, int64_t cap,
                 int32_t* __restrict__ pair_user,  // (cap,)
                 int32_t* __restrict__ pair_item,  // (cap,)
                 cudaStream_t stream);

// CPU twins.
void make_pairs_cpu(int64_t B_cap, int64_t n_valid, const int32_t* user, const int32_t* pos,
                    const int32_t* neg, int32_t* pair_user, int32_t* pair_item);
void gather_row_grads_cpu(int64_t B_cap, int64_t n_valid, int E, const float* dp, const float* dq,
                          float* rows);
void interleave_rows_cpu(int64_t B_cap, int E, const float* rows, float* out);
void range_pairs_cpu(int64_t nu, const int32_t* users, int32_t item_lo, int32_t n, int64_t cap,
                     int32_t* pair_user, int32_t* pair_item);

// The launchers' argument checks, shared by each launcher, the emulated launcher and, for
// make_pairs and gather_row_grads, the twin (who = "<launcher>_cpu"): sizes, and no null pointer
// where there is work. Throw Error(kExitSoftware) naming `who`.
void check_make_pairs_args(int64_t B_cap, int64_t n_valid, const int32_t* user,
                           const int32_t* pos, const int32_t* neg, const int32_t* pair_user,
                           const int32_t* pair_item, const char* who = "make_pairs");
void check_gather_row_grads_args(int64_t B_cap, int64_t n_valid, int E, const float* dp,
                                 const float* dq, const float* rows,
                                 const char* who = "gather_row_grads");
// B_cap >= 0, E >= 1, rows and out not null when B_cap > 0.
void check_interleave_rows_args(int64_t B_cap, int E, const float* rows, const float* out);
// nu, n, item_lo >= 0, nu * n <= cap, the outputs not null when cap > 0, users when nu * n > 0.
void check_range_pairs_args(int64_t nu, const int32_t* users, int32_t item_lo, int32_t n,
                            int64_t cap, const int32_t* pair_user, const int32_t* pair_item);

}  // namespace convncf
