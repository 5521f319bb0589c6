// pairs_cpu.cpp: CPU twins of kernels/pairs.cu (same arguments, host pointers) and the launchers'
// argument checks. Plain loops, one thread: they are the oracles of tests/test_pairs_gpu.cu, and
// make_pairs_cpu and gather_row_grads_cpu run the same index functions (pairs.hpp) as the
// kernels. Checked themselves by tests/test_pairs.cpp:
//   build/convncf_tests --gtest_filter='MakePairsCpu.*:GatherRowGradsCpu.*:PairLayout.*'


#include "convncf/errors.hpp"
#include "convncf/launch_checks.hpp"
#include "convncf/pairs.hpp"

namespace convncf {

void check_make_pairs_args(int64_t B_cap, int64_t n_valid, const int32_t* user,
                           const int32_t* pos, const int32_t* neg, const int32_t* pair_user,
                           const int32_t* pair_item, const char* who) {
  detail::check_batch(who, B_cap, n_valid);
  if (B_cap == 0) return;
  detail::check_pointers(who, {pair_user, pair_item});
  if (n_valid > 0) detail::check_pointers(who, {user, pos, neg});
}

void check_gather_row_grads_args(int64_t B_cap, int64_t n_valid, int E, const float* dp,
                                 const float* dq, const float* rows, const char* who) {
  detail::check_batch(who, B_cap, n_valid);
  detail::check_E(who, E, kRowKernelMaxE);
  if (B_cap == 0) return;
  detail::check_pointers(who, {rows});
  if (n_valid > 0) detail::check_pointers(who, {dp, dq});
}

void check_interleave_rows_args(int64_t B_cap, int E, const float* rows, const float* out) {
  if (B_cap < 0 || E <= 0 || (B_cap > 0 && (!rows || !out)))
    throw Error(kExitSoftware, "interleave_rows: bad arguments");
}

void check_range_pairs_args(int64_t nu, const int32_t* users, int32_t item_lo, int32_t n,
                            int64_t cap, const int32_t* pair_user, const int32_t* pair_item) {
  if (nu < 0 || n < 0 || item_lo < 0 || nu * n > cap || (cap > 0 && (!pair_user || !pair_item)) ||
      (nu * n > 0 && !users))
    throw Error(kExitSoftware, "range_pairs: bad arguments");
}

void make_pairs_cpu(int64_t B_cap, int64_t n_valid, const int32_t* user, const int32_t* pos,
                    const int32_t* neg, int32_t* pair_user, int32_t* pair_item) {
  check_make_pairs_args(B_cap, n_valid, user, pos, neg, pair_user, pair_item, "make_pairs_cpu");
  for (int64_t t = 0; t < B_cap; ++t)
    for (int side = 0; side < 2; ++side) {
      const PairIds ids = pair_ids(t, side, n_valid, user, pos, neg);
      pair_user[2 * t + side] = ids.user;
      pair_item[2 * t + side] = ids.item;
    }
}

void gather_row_grads_cpu(int64_t B_cap, int64_t n_valid, int E, const float* dp, const float* dq,
                          float* rows) {
  check_gather_row_grads_args(B_cap, n_valid, E, dp, dq, rows, "gather_row_grads_cpu");
  for (int which = 0; which < 3; ++which)
    for (int64_t t = 0; t < B_cap; ++t)
      for (int e = 0; e < E; ++e)
        rows[row_grad_offset(which, B_cap, t, E) + e] =
            gathered_row_grad(which, t, e, n_valid, E, dp, dq);
}

void interleave_rows_cpu(int64_t B_cap, int E, const float* rows, float* out) {
  for (int64_t t = 0; t < B_cap; ++t)
    for (int side = 0; side < 2; ++side)
      for (int e = 0; e < E; ++e) out[((2 * t + side) * E) + e] = rows[((1 + side) * B_cap + t) * E + e];
}

void range_pairs_cpu(int64_t nu, const int32_t* users, int32_t item_lo, int32_t n, int64_t cap,
                     int32_t* pair_user, int32_t* pair_item) {
  for (int64_t k = 0; k < cap; ++k) {
    const bool used = k < nu * n;
    pair_user[k] = used ? users[k / n] : 0;
    pair_item[k] = used ? item_lo + static_cast<int32_t>(k % n) : 0;
  }
}

}  // namespace convncf
