// sparse_grad.hpp: embedding-row gradients of a batch combined per distinct row, on the GPU.
// A batch has n (row id, gradient row) entries in which ids repeat; the combiner adds the sum of
// each id's rows into a dense gradient table and lists the distinct ids.
//   deterministic  CUB radix sort of (id, entry index) pairs (stable), run-length encode, then one
//                  warp per distinct id sums its rows in entry order: the result depends only
//                  on the inputs, never on scheduling
//   fast           atomicAdd of every entry into the table (order varies run to run in the last
//                  bits); ids listed by a keys-only sort and unique
// CUB temporary storage is sized once, in the constructor, for max_entries (CUB's two-phase
// calls). CPU twin: combine_rows_cpu (entry order, like the CPU engine).
// Kernels: kernels/sparse_grad.cu. CPU twin and argument checks: kernels/sparse_grad_cpu.cpp.
// Tests: tests/test_sparse_grad.cpp, tests/test_sparse_grad_gpu.cu.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "convncf/common.hpp"
#include "convncf/device_buffer.hpp"

namespace convncf {

// Offset of element `col` of row `row` in a row-major (rows, E) array: the gradient table and the
// batch's (n, E) rows, on both sides.
CONVNCF_HD int64_t sparse_row_offset(int64_t row, int E, int col) { return row * E + col; }

class RowGradCombiner {
 public:
  RowGradCombiner(int64_t max_entries, int E, bool deterministic);
  bool deterministic() const { return m_deterministic; }

  // table[ids[j]] += rows[j] summed over j (rows of `table` not listed are untouched); writes the
  // distinct ids, ascending in deterministic mode, to unique_ids[0 .. *n_unique) (device scalar).
  // ids must be in [0, n_table). Asynchronous on `stream`; n may be 0.
  void combine(int64_t n,
               const int32_t* ids,   // (n,) device
               const float* rows,    // (n, E) device
               float* table,         // (n_table, E) device
               int32_t* unique_ids,  // (n,) device
               int32_t* n_unique,    // (1,) device
               cudaStream_t stream);

 private:
  int64_t m_max;
  int m_E;
  bool m_deterministic;
  DeviceBuffer<int32_t> m_keys_sorted, m_idx, m_idx_sorted, m_counts, m_offsets;
  DeviceBuffer<unsigned char> m_temp;
  size_t m_temp_bytes = 0;
};

// CPU twin: table[ids[j]] += rows[j] in entry order; returns the distinct ids ascending.
std::vector<int32_t> combine_rows_cpu(int64_t n, int E, const int32_t* ids, const float* rows,
                                      float* table);

// The argument checks of the constructor (0 <= max_entries <= INT_MAX, E >= 1) and of combine()
// (0 <= n <= max_entries, n_unique not null, the other arrays not null when n > 0), shared by
// the real class and the emulated one; they throw Error(kExitSoftware).
void check_row_grad_combiner_args(int64_t max_entries, int E);
void check_row_grad_combine_args(int64_t n, int64_t max_entries, const int32_t* ids,
                                 const float* rows, const float* table, const int32_t* unique_ids,
                                 const int32_t* n_unique);

}  // namespace convncf
