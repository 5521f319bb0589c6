// outer_product_cpu.cpp: CPU twins of kernels/outer_product.cu (same arguments, same index math)
// and the launchers' argument checks. Plain loops, one thread: they are the oracles of the GPU
// tests, not a fast path (the CPU engine never builds the E x E map; see REFERENCE.md, "Layer 1
// sees a rank-1 input"). Tests: tests/test_outer_product.cpp.
#include "convncf/outer_product.hpp"

#include <string>

#include "convncf/errors.hpp"
#include "convncf/launch_checks.hpp"

namespace convncf {

void check_outer_product_fwd_args(int64_t B, int E, const int32_t* user, const int32_t* item,
                                  const float* P, const float* Q, const float* out, int variant) {
  if (B < 0 || E < 1 || E > kOuterProductMaxE)
    throw_internal("outer_product_fwd: bad sizes B=" + std::to_string(B) + " E=" + std::to_string(E) +
                   " (expected B >= 0, 1 <= E <= " + std::to_string(kOuterProductMaxE) + ")");
  if (variant != 1 && variant != 2)
    throw_internal("outer_product_fwd: unknown variant " + std::to_string(variant) + " (expected 1 or 2)");
  if (B > 0 && (!user || !item || !P || !Q || !out)) throw_internal("outer_product_fwd: null pointer argument");
}

template <typename T>
void outer_product_fwd_cpu(int64_t B, int E, const int32_t* user, const int32_t* item, const T* P,
                           const T* Q, T* out) {
  for (int64_t b = 0; b < B; ++b) {
    for (int a = 0; a < E; ++a) {
      for (int c = 0; c < E; ++c) {
        out[outer_product_index(b, E, a, c)] = outer_product_value(P, Q, user[b], item[b], E, a, c);
      }
    }
  }
}

template void outer_product_fwd_cpu<float>(int64_t, int, const int32_t*, const int32_t*,
                                           const float*, const float*, float*);
template void outer_product_fwd_cpu<double>(int64_t, int, const int32_t*, const int32_t*,
                                            const double*, const double*, double*);

void check_outer_product_bwd_args(int64_t n_pairs, int E, const int32_t* pair_user,
                                  const int32_t* pair_item, const float* P, const float* Q,
                                  const float* G, const float* dp, const float* dq,
                                  const char* who) {
  if (n_pairs < 0)
    throw_internal(std::string(who) + ": n_pairs = " + std::to_string(n_pairs) + " < 0");
  detail::check_E(who, E, kPairBwdMaxE);
  if (n_pairs == 0) return;
  detail::check_pointers(who, {pair_user, pair_item, P, Q, G, dp, dq});
}

void outer_product_bwd_cpu(int64_t n_pairs, int E, const int32_t* pair_user,
                           const int32_t* pair_item, const float* P, const float* Q, const float* G,
                           float* dp, float* dq) {
  check_outer_product_bwd_args(n_pairs, E, pair_user, pair_item, P, Q, G, dp, dq,
                               "outer_product_bwd_cpu");
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

}  // namespace convncf
