// outer_product_cpu.cpp: CPU twin of kernels/outer_product.cu (same arguments, same index math).
// Plain loops, one thread: it is the oracle of the GPU tests, not a fast path (the CPU engine
// never builds the E x E map; see REFERENCE.md, "Layer 1 sees a rank-1 input").
#include "convncf/outer_product.hpp"

#include <string>

#include "convncf/errors.hpp"

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

}  // namespace convncf
