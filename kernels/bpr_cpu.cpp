// bpr_cpu.cpp: CPU twins of kernels/bpr.cu (same arguments, host pointers) and the launchers'
// argument checks. Plain loops, one thread: they are the oracles of tests/test_bpr_gpu.cu, and run
// the same per-element functions (bpr.hpp) as the kernels' first variants. Checked themselves by
// tests/test_bpr.cpp:
//   build/convncf_tests --gtest_filter='BprLossGradCpu.*:MfBprCpu.*:MfScorePairsCpu.*'
#include <string>

#include "convncf/bpr.hpp"
#include "convncf/errors.hpp"
#include "convncf/launch_checks.hpp"
#include "convncf/outer_product.hpp"
#include "convncf/pairs.hpp"

namespace convncf {

void check_bpr_loss_grad_args(int64_t B_cap, int64_t n_valid, const float* score,
                              const double* loss, const float* dscore, const char* who) {
  detail::check_batch(who, B_cap, n_valid);
  if (B_cap == 0) return;
  detail::check_pointers(who, {loss, dscore});
  if (n_valid > 0) detail::check_pointers(who, {score});
}

void check_mf_bpr_fwd_bwd_args(int64_t B_cap, int64_t n_valid, int E, const int32_t* user,
                               const int32_t* pos, const int32_t* neg, const float* P,
                               const float* Q, const double* loss, const float* rows,
                               const char* who) {
  detail::check_batch(who, B_cap, n_valid);
  detail::check_E(who, E, kRowKernelMaxE);
  if (B_cap == 0) return;
  detail::check_pointers(who, {loss, rows});
  if (n_valid > 0) detail::check_pointers(who, {user, pos, neg, P, Q});
}

void check_mf_score_pairs_args(int64_t n, int E, const int32_t* user, const int32_t* item,
                               const float* P, const float* Q, const float* score,
                               const char* who) {
  if (n < 0) throw_internal(std::string(who) + ": n = " + std::to_string(n) + " < 0");
  detail::check_E(who, E, kRowKernelMaxE);
  if (n == 0) return;
  detail::check_pointers(who, {user, item, P, Q, score});
}

void bpr_loss_grad_cpu(int64_t B_cap, int64_t n_valid, const float* score, double* loss,
                       float* dscore) {
  check_bpr_loss_grad_args(B_cap, n_valid, score, loss, dscore, "bpr_loss_grad_cpu");
  for (int64_t t = 0; t < B_cap; ++t) {
    double l = 0.0;
    float g = 0.0f;
    if (t < n_valid) g = bpr_triple(score[2 * t], score[2 * t + 1], &l);
    loss[t] = l;
    dscore[2 * t] = g;
    dscore[2 * t + 1] = t < n_valid ? -g : 0.0f;
  }
}

void mf_bpr_fwd_bwd_cpu(int64_t B_cap, int64_t n_valid, int E, const int32_t* user,
                        const int32_t* pos, const int32_t* neg, const float* P, const float* Q,
                        double* loss, float* rows) {
  check_mf_bpr_fwd_bwd_args(B_cap, n_valid, E, user, pos, neg, P, Q, loss, rows,
                            "mf_bpr_fwd_bwd_cpu");
  for (int64_t t = 0; t < B_cap; ++t) {
    loss[t] = triple_rows_slot(t, B_cap, n_valid, E, user, pos, neg, P, Q, rows, MfBprTriple{});
  }
}

void mf_score_pairs_cpu(int64_t n, int E, const int32_t* user, const int32_t* item, const float* P,
                        const float* Q, float* score) {
  check_mf_score_pairs_args(n, E, user, item, P, Q, score, "mf_score_pairs_cpu");
  for (int64_t k = 0; k < n; ++k)
    score[k] =
        dot_in_order(E, P + embedding_offset(user[k], E, 0), Q + embedding_offset(item[k], E, 0));
}

}  // namespace convncf
