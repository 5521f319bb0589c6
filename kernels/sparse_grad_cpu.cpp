// sparse_grad_cpu.cpp: CPU twin of kernels/sparse_grad.cu (RowGradCombiner). Entry order, one
// float addition per entry and element, as the CPU engine sums its per-triple row gradients:
// the deterministic GPU mode must give the same bits. Tests: tests/test_sparse_grad.cpp.
#include <algorithm>
#include <string>

#include "convncf/errors.hpp"
#include "convncf/sparse_grad.hpp"

namespace convncf {

std::vector<int32_t> combine_rows_cpu(int64_t n, int E, const int32_t* ids, const float* rows,
                                      float* table) {
  if (n < 0 || E < 1)
    throw_internal("combine_rows_cpu: bad sizes n=" + std::to_string(n) +
                   " E=" + std::to_string(E) + " (expected n >= 0, E >= 1)");
  std::vector<int32_t> distinct(ids, ids + n);
  for (int64_t j = 0; j < n; ++j) {
    float* dst = table + sparse_row_offset(ids[j], E, 0);
    const float* src = rows + sparse_row_offset(j, E, 0);
    for (int e = 0; e < E; ++e) dst[e] += src[e];
  }
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  return distinct;
}

}  // namespace convncf
