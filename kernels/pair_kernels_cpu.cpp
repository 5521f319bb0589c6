// pair_kernels_cpu.cpp: CPU twins of kernels/pair_kernels.cu (same arguments, host pointers) and
// the argument checks the launchers share. Plain loops, one thread: they are the oracles of
// tests/test_pair_kernels_gpu.cu, and run the same per-element functions (pair_kernels.hpp) as the
// kernels' first variants. Checked themselves by tests/test_pair_kernels.cpp:
//   build/convncf_tests --gtest_filter='PairCpu*'
#include <cmath>
#include <string>

#include "convncf/errors.hpp"
#include "convncf/outer_product.hpp"
#include "convncf/pair_kernels.hpp"

namespace convncf {
namespace detail {

void check_batch(const char* fn, int64_t B_cap, int64_t n_valid) {
  // 2^40 triples keeps every (3, B_cap, E) offset far inside int64 for E <= 2^20.
  if (B_cap < 0 || B_cap > (int64_t{1} << 40) || n_valid < 0 || n_valid > B_cap)
    throw_internal(std::string(fn) + ": bad batch B_cap=" + std::to_string(B_cap) + " n_valid=" +
                   std::to_string(n_valid) + " (expected 0 <= n_valid <= B_cap <= 2^40)");
}

void check_E(const char* fn, int E, int max_E) {
  if (E < 1 || E > max_E)
    throw_internal(std::string(fn) + ": bad embedding size E=" + std::to_string(E) +
                   " (expected 1 <= E <= " + std::to_string(max_E) + ")");
}

void check_head(const char* fn, int64_t n_pairs, int C, int HW, const DropoutArgs& drop) {
  // The limits keep n_pairs * C * HW, the flat index of dY, far inside int64.
  if (n_pairs < 0 || n_pairs > (int64_t{1} << 41) || C < 1 || C > (1 << 16) || HW < 1 ||
      HW > (1 << 20) || n_pairs * (int64_t{C} * HW) > (int64_t{1} << 50))
    throw_internal(std::string(fn) + ": bad sizes n_pairs=" + std::to_string(n_pairs) +
                   " C=" + std::to_string(C) + " HW=" + std::to_string(HW) +
                   " (expected 0 <= n_pairs <= 2^41, 1 <= C <= 65536, 1 <= HW <= 2^20, "
                   "n_pairs*C*HW <= 2^50)");
  if (!(drop.p >= 0.0 && drop.p < 1.0))
    throw_internal(std::string(fn) + ": bad dropout probability " + std::to_string(drop.p) +
                   " (expected 0 <= p < 1)");
}

void check_reg_coef(const char* fn, double l) {
  if (!(l >= 0.0) || !std::isfinite(l))
    throw_internal(std::string(fn) + ": bad coefficient " + std::to_string(l) +
                   " (expected a finite l >= 0)");
}

void check_pointers(const char* fn, std::initializer_list<const void*> ptrs) {
  int k = 0;
  for (const void* p : ptrs) {
    if (!p)
      throw_internal(std::string(fn) + ": pointer argument " + std::to_string(k) + " is null");
    ++k;
  }
}

}  // namespace detail

namespace {
constexpr int kMaxE = 1 << 20;  // any E for the row kernels; outer_product_bwd: kPairBwdMaxE
}

void make_pairs_cpu(int64_t B_cap, int64_t n_valid, const int32_t* user, const int32_t* pos,
                    const int32_t* neg, int32_t* pair_user, int32_t* pair_item) {
  detail::check_batch("make_pairs_cpu", B_cap, n_valid);
  if (B_cap == 0) return;
  detail::check_pointers("make_pairs_cpu", {pair_user, pair_item});
  if (n_valid > 0) detail::check_pointers("make_pairs_cpu", {user, pos, neg});
  for (int64_t t = 0; t < B_cap; ++t)
    for (int side = 0; side < 2; ++side) {
      const PairIds ids = pair_ids(t, side, n_valid, user, pos, neg);
      pair_user[2 * t + side] = ids.user;
      pair_item[2 * t + side] = ids.item;
    }
}

void head_fwd_cpu(int64_t n_pairs, int C, int HW, const float* Y, const float* w_out,
                  const float* b_out, DropoutArgs drop, float* h, float* score) {
  detail::check_head("head_fwd_cpu", n_pairs, C, HW, drop);
  if (n_pairs == 0) return;
  detail::check_pointers("head_fwd_cpu", {Y, w_out, b_out, h, score});
  for (int64_t p = 0; p < n_pairs; ++p)
    score[p] = head_pair_fwd(C, HW, Y + p * C * HW, w_out, b_out[0], drop, p, h + p * C);
}

void bpr_loss_grad_cpu(int64_t B_cap, int64_t n_valid, const float* score, double* loss,
                       float* dscore) {
  detail::check_batch("bpr_loss_grad_cpu", B_cap, n_valid);
  if (B_cap == 0) return;
  detail::check_pointers("bpr_loss_grad_cpu", {loss, dscore});
  if (n_valid > 0) detail::check_pointers("bpr_loss_grad_cpu", {score});
  for (int64_t t = 0; t < B_cap; ++t) {
    double l = 0.0;
    float g = 0.0f;
    if (t < n_valid) g = bpr_triple(score[2 * t], score[2 * t + 1], &l);
    loss[t] = l;
    dscore[2 * t] = g;
    dscore[2 * t + 1] = t < n_valid ? -g : 0.0f;
  }
}

void head_bwd_cpu(int64_t n_pairs, int C, int HW, const float* dscore, const float* w_out,
                  const float* h, DropoutArgs drop, float* dY, float* dw_out, float* db_out) {
  detail::check_head("head_bwd_cpu", n_pairs, C, HW, drop);
  detail::check_pointers("head_bwd_cpu", {dw_out, db_out});
  if (n_pairs > 0) detail::check_pointers("head_bwd_cpu", {dscore, w_out, h, dY});
  for (int64_t p = 0; p < n_pairs; ++p)
    for (int c = 0; c < C; ++c) {
      const float v = head_dY(dscore[p], w_out[c], drop, p, c);
      for (int s = 0; s < HW; ++s) dY[(p * C + c) * HW + s] = v;
    }
  // Sums over pairs in pair order, in double (each product of two floats is exact in double).
  for (int c = 0; c < C; ++c) {
    double acc = 0.0;
    for (int64_t p = 0; p < n_pairs; ++p)
      acc += static_cast<double>(dscore[p]) * static_cast<double>(h[p * C + c]);
    dw_out[c] = static_cast<float>(acc);
  }
  double acc = 0.0;
  for (int64_t p = 0; p < n_pairs; ++p) acc += static_cast<double>(dscore[p]);
  db_out[0] = static_cast<float>(acc);
}

void outer_product_bwd_cpu(int64_t n_pairs, int E, const int32_t* pair_user,
                           const int32_t* pair_item, const float* P, const float* Q, const float* G,
                           float* dp, float* dq) {
  if (n_pairs < 0) throw_internal("outer_product_bwd_cpu: n_pairs < 0");
  detail::check_E("outer_product_bwd_cpu", E, kPairBwdMaxE);
  if (n_pairs == 0) return;
  detail::check_pointers("outer_product_bwd_cpu", {pair_user, pair_item, P, Q, G, dp, dq});
  for (int64_t b = 0; b < n_pairs; ++b) {
    const float* p = P + embedding_offset(pair_user[b], E, 0);
    const float* q = Q + embedding_offset(pair_item[b], E, 0);
    float* dpb = dp + b * E;
    float* dqb = dq + b * E;
    for (int c = 0; c < E; ++c) dqb[c] = 0.0f;
    // Row by row: dp[a] sums over c ascending; each dq[c] gets its terms in a ascending.
    for (int a = 0; a < E; ++a) {
      const float* g = G + outer_product_index(b, E, a, 0);
      float acc = 0.0f;
      for (int c = 0; c < E; ++c) acc += g[c] * q[c];
      dpb[a] = acc;
      const float pa = p[a];
      for (int c = 0; c < E; ++c) dqb[c] += g[c] * pa;
    }
  }
}

void gather_row_grads_cpu(int64_t B_cap, int64_t n_valid, int E, const float* dp, const float* dq,
                          float* rows) {
  detail::check_batch("gather_row_grads_cpu", B_cap, n_valid);
  detail::check_E("gather_row_grads_cpu", E, kMaxE);
  if (B_cap == 0) return;
  detail::check_pointers("gather_row_grads_cpu", {rows});
  if (n_valid > 0) detail::check_pointers("gather_row_grads_cpu", {dp, dq});
  for (int which = 0; which < 3; ++which)
    for (int64_t t = 0; t < B_cap; ++t)
      for (int e = 0; e < E; ++e)
        rows[row_grad_offset(which, B_cap, t, E) + e] =
            gathered_row_grad(which, t, e, n_valid, E, dp, dq);
}

void mf_bpr_fwd_bwd_cpu(int64_t B_cap, int64_t n_valid, int E, const int32_t* user,
                        const int32_t* pos, const int32_t* neg, const float* P, const float* Q,
                        double* loss, float* rows) {
  detail::check_batch("mf_bpr_fwd_bwd_cpu", B_cap, n_valid);
  detail::check_E("mf_bpr_fwd_bwd_cpu", E, kMaxE);
  if (B_cap == 0) return;
  detail::check_pointers("mf_bpr_fwd_bwd_cpu", {loss, rows});
  if (n_valid > 0) detail::check_pointers("mf_bpr_fwd_bwd_cpu", {user, pos, neg, P, Q});
  for (int64_t t = 0; t < B_cap; ++t) {
    float* dp = rows + row_grad_offset(0, B_cap, t, E);
    float* dqp = rows + row_grad_offset(1, B_cap, t, E);
    float* dqn = rows + row_grad_offset(2, B_cap, t, E);
    if (t >= n_valid) {
      loss[t] = 0.0;
      for (int e = 0; e < E; ++e) dp[e] = dqp[e] = dqn[e] = 0.0f;
      continue;
    }
    loss[t] =
        mf_bpr_triple(E, P + embedding_offset(user[t], E, 0), Q + embedding_offset(pos[t], E, 0),
                      Q + embedding_offset(neg[t], E, 0), dp, dqp, dqn);
  }
}

void rows_squared_reg_cpu(int64_t B_cap, int64_t n_valid, int E, double l, const int32_t* user,
                          const int32_t* pos, const int32_t* neg, const float* P, const float* Q,
                          float* rows, double* reg) {
  detail::check_batch("rows_squared_reg_cpu", B_cap, n_valid);
  detail::check_E("rows_squared_reg_cpu", E, kMaxE);
  detail::check_reg_coef("rows_squared_reg_cpu", l);
  if (B_cap == 0) return;
  detail::check_pointers("rows_squared_reg_cpu", {rows, reg});
  if (n_valid > 0) detail::check_pointers("rows_squared_reg_cpu", {user, pos, neg, P, Q});
  for (int64_t t = 0; t < B_cap; ++t) {
    float* dp = rows + row_grad_offset(0, B_cap, t, E);
    float* dqp = rows + row_grad_offset(1, B_cap, t, E);
    float* dqn = rows + row_grad_offset(2, B_cap, t, E);
    if (t >= n_valid) {  // padding keeps its zero rows (written here too, so it holds regardless)
      reg[t] = 0.0;
      for (int e = 0; e < E; ++e) dp[e] = dqp[e] = dqn[e] = 0.0f;
      continue;
    }
    reg[t] = rows_reg_triple(E, l, P + embedding_offset(user[t], E, 0),
                             Q + embedding_offset(pos[t], E, 0), Q + embedding_offset(neg[t], E, 0),
                             dp, dqp, dqn);
  }
}

void mf_score_pairs_cpu(int64_t n, int E, const int32_t* user, const int32_t* item, const float* P,
                        const float* Q, float* score) {
  if (n < 0) throw_internal("mf_score_pairs_cpu: n < 0");
  detail::check_E("mf_score_pairs_cpu", E, kMaxE);
  if (n == 0) return;
  detail::check_pointers("mf_score_pairs_cpu", {user, item, P, Q, score});
  for (int64_t k = 0; k < n; ++k)
    score[k] =
        dot_in_order(E, P + embedding_offset(user[k], E, 0), Q + embedding_offset(item[k], E, 0));
}

}  // namespace convncf
