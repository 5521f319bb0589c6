// engine_glue_cpu.cpp: CPU twins of kernels/engine_glue.cu (see engine_glue.hpp).
#include "convncf/engine_glue.hpp"

namespace convncf {

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

void scale_add_cpu(int64_t n, float a, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

}  // namespace convncf
