// sparse_grad_cpu.cpp: CPU twin of kernels/sparse_grad.cu (RowGradCombiner). Entry order, one
// float addition per entry and element, as the CPU engine sums its per-triple row gradients:
// the deterministic GPU mode must give the same bits. Also the combiner's argument checks.
// Tests: tests/test_sparse_grad.cpp.
#include <algorithm>
#include <climits>
#include <string>

#include "convncf/errors.hpp"
#include "convncf/sparse_grad.hpp"

namespace convncf {

void check_row_grad_combiner_args(int64_t max_entries, int E) {
  if (max_entries < 0 || max_entries > INT_MAX || E < 1)
    throw_internal("RowGradCombiner: bad sizes max_entries=" + std::to_string(max_entries) +
                   " E=" + std::to_string(E) +
                   " (expected 0 <= max_entries <= " + std::to_string(INT_MAX) + ", E >= 1)");
}

void check_row_grad_combine_args(int64_t n, int64_t max_entries, const int32_t* ids,
                                 const float* rows, const float* table, const int32_t* unique_ids,
                                 const int32_t* n_unique) {
  if (n < 0 || n > max_entries)
    throw_internal("RowGradCombiner::combine: n=" + std::to_string(n) + " outside [0, " +
                   std::to_string(max_entries) + "] (max_entries of the constructor)");
  if (!n_unique) throw_internal("RowGradCombiner::combine: null n_unique");
  if (n > 0 && (!ids || !rows || !table || !unique_ids))
    throw_internal("RowGradCombiner::combine: null pointer argument");
}

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
