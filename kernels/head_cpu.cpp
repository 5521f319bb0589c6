// head_cpu.cpp: CPU twins of kernels/head.cu (same arguments, host pointers) and the launchers'
// argument checks. Plain loops, one thread: they are the oracles of tests/test_head_gpu.cu, and
// run the same per-element functions (head.hpp) as the kernels' first variants. Checked
// themselves by tests/test_head.cpp:
//   build/convncf_tests --gtest_filter='HeadCpu.*'
#include <string>

#include "convncf/errors.hpp"
#include "convncf/head.hpp"
#include "convncf/launch_checks.hpp"

namespace convncf {
namespace {

// The sizes and the dropout probability of both head launchers.
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

}  // namespace

void check_head_fwd_args(int64_t n_pairs, int C, int HW, const float* Y, const float* w_out,
                         const float* b_out, const DropoutArgs& drop, const float* h,
                         const float* score, const char* who) {
  check_head(who, n_pairs, C, HW, drop);
  if (n_pairs == 0) return;
  detail::check_pointers(who, {Y, w_out, b_out, h, score});
}

void check_head_bwd_args(int64_t n_pairs, int C, int HW, const float* dscore, const float* w_out,
                         const float* h, const DropoutArgs& drop, const float* dY,
                         const float* dw_out, const float* db_out, const char* who) {
  check_head(who, n_pairs, C, HW, drop);
  detail::check_pointers(who, {dw_out, db_out});
  if (n_pairs > 0) detail::check_pointers(who, {dscore, w_out, h, dY});
}

void head_fwd_cpu(int64_t n_pairs, int C, int HW, const float* Y, const float* w_out,
                  const float* b_out, DropoutArgs drop, float* h, float* score) {
  check_head_fwd_args(n_pairs, C, HW, Y, w_out, b_out, drop, h, score, "head_fwd_cpu");
  if (n_pairs == 0) return;
  for (int64_t p = 0; p < n_pairs; ++p)
    score[p] = head_pair_fwd(C, HW, Y + p * C * HW, w_out, b_out[0], drop, p, h + p * C);
}

void head_bwd_cpu(int64_t n_pairs, int C, int HW, const float* dscore, const float* w_out,
                  const float* h, DropoutArgs drop, float* dY, float* dw_out, float* db_out) {
  check_head_bwd_args(n_pairs, C, HW, dscore, w_out, h, drop, dY, dw_out, db_out, "head_bwd_cpu");
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

}  // namespace convncf
