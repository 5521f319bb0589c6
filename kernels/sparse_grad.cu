// sparse_grad.cu: RowGradCombiner (include/convncf/sparse_grad.hpp), the batch's embedding-row
// gradients added into the gradient table once per distinct row. CPU twin: combine_rows_cpu, and
// the argument checks: kernels/sparse_grad_cpu.cpp. Tests: tests/test_sparse_grad.cpp (the twin)
// and tests/test_sparse_grad_gpu.cu, which requires the deterministic mode to equal the twin bit
// for bit and the fast mode to be within rounding:
//   build/convncf_tests --gtest_filter='RowGradCombiner*'
// Modes and kernels:
//   deterministic  CUB: DeviceRadixSort::SortPairs of (id, entry index) (stable, so equal ids keep
//                  entry order), DeviceRunLengthEncode::Encode (distinct ids and their counts),
//                  DeviceScan::ExclusiveSum (where each id's run starts), then
//                  combine_sorted_rows_kernel1: one warp per distinct id, its lanes over the E
//                  columns; each lane starts from the table's value and adds the id's rows in
//                  entry order, one float addition each, the twin's exact sequence. The number of
//                  distinct ids stays on the device: the grid covers n (the most there can be) and
//                  warps past *n_unique do nothing.
//   fast           scatter_add_rows_kernel1: one atomicAdd per element (the order of the additions,
//                  so the last bits, vary run to run); the distinct ids from
//                  DeviceRadixSort::SortKeys and DeviceSelect::Unique.
// All of CUB's temporary storage is sized in the constructor for max_entries; combine() allocates
// nothing. Keys are sorted on all 32 bits: combine() is not told the table's size.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_run_length_encode.cuh>
#include <cub/device/device_scan.cuh>
#include <cub/device/device_select.cuh>
#include <string>

#include "convncf/common.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/errors.hpp"
#include "convncf/sparse_grad.hpp"

namespace convncf {
namespace {

constexpr int kWarp = 32;
constexpr int kCombineBlock = 256;  // 8 warps, one distinct id each
constexpr int kScatterBlock = 256;
constexpr int kIotaBlock = 256;
// Grid cap: many waves on an H100/H200; larger inputs loop (grid-stride).
constexpr int64_t kMaxGrid = 65536;

__global__ void iota_kernel(int64_t n, int32_t* __restrict__ out) {  // out: (n,)
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = static_cast<int32_t>(i);
}

CONVNCF_HOT_KERNEL void combine_sorted_rows_kernel1(
    int64_t max_unique, int E,
    const int32_t* __restrict__ n_unique,    // (1,) distinct ids, read here
    const int32_t* __restrict__ unique_ids,  // (max_unique,) ascending
    const int32_t* __restrict__ offsets,     // (max_unique,) start of each id's run in idx_sorted
    const int32_t* __restrict__ counts,      // (max_unique,) entries of each id
    const int32_t* __restrict__ idx_sorted,  // (n,) entry indices grouped by id, entry order
    const float* __restrict__ rows,          // (n, E)
    float* __restrict__ table) {             // (n_table, E)
  const int64_t nu = min(static_cast<int64_t>(*n_unique), max_unique);
  const int warps_per_block = blockDim.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  const int64_t warp_stride = static_cast<int64_t>(gridDim.x) * warps_per_block;
  for (int64_t w = static_cast<int64_t>(blockIdx.x) * warps_per_block + threadIdx.x / kWarp; w < nu;
       w += warp_stride) {
    const int32_t id = unique_ids[w];
    const int32_t begin = offsets[w];
    const int32_t end = begin + counts[w];
    for (int e = lane; e < E; e += kWarp) {
      const int64_t at = sparse_row_offset(id, E, e);
      float acc = table[at];
      for (int32_t k = begin; k < end; ++k) acc += rows[sparse_row_offset(idx_sorted[k], E, e)];
      table[at] = acc;
    }
  }
}

CONVNCF_HOT_KERNEL void scatter_add_rows_kernel1(int64_t n, int E,
                                                 const int32_t* __restrict__ ids,  // (n,)
                                                 const float* __restrict__ rows,   // (n, E)
                                                 float* __restrict__ table) {      // (n_table, E)
  const int64_t total = n * E;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int64_t j = i / E;
    const int e = static_cast<int>(i - j * E);
    atomicAdd(table + sparse_row_offset(ids[j], E, e), rows[i]);
  }
}

unsigned grid_for(int64_t work, int block) {
  return static_cast<unsigned>(std::min<int64_t>(ceil_div<int64_t>(work, block), kMaxGrid));
}

// CUB's temporary storage for every call of a mode at `n` items (the size queries only).
size_t cub_temp_bytes(int n, bool deterministic) {
  size_t most = 0, b = 0;
  if (deterministic) {
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
        nullptr, b, static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr),
        static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), n));
    most = std::max(most, b);
    CUDA_CHECK(cub::DeviceRunLengthEncode::Encode(
        nullptr, b, static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr),
        static_cast<int32_t*>(nullptr), static_cast<int32_t*>(nullptr), n));
    most = std::max(most, b);
    CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, b, static_cast<const int32_t*>(nullptr),
                                             static_cast<int32_t*>(nullptr), n));
    most = std::max(most, b);
  } else {
    CUDA_CHECK(cub::DeviceRadixSort::SortKeys(nullptr, b, static_cast<const int32_t*>(nullptr),
                                              static_cast<int32_t*>(nullptr), n));
    most = std::max(most, b);
    CUDA_CHECK(cub::DeviceSelect::Unique(nullptr, b, static_cast<const int32_t*>(nullptr),
                                         static_cast<int32_t*>(nullptr),
                                         static_cast<int32_t*>(nullptr), n));
    most = std::max(most, b);
  }
  return most;
}

}  // namespace

RowGradCombiner::RowGradCombiner(int64_t max_entries, int E, bool deterministic)
    : m_max(max_entries), m_E(E), m_deterministic(deterministic) {
  check_row_grad_combiner_args(max_entries, E);
  const size_t n = static_cast<size_t>(max_entries);
  m_keys_sorted = DeviceBuffer<int32_t>(n);
  if (deterministic) {
    m_idx = DeviceBuffer<int32_t>(n);
    m_idx_sorted = DeviceBuffer<int32_t>(n);
    m_counts = DeviceBuffer<int32_t>(n);
    m_offsets = DeviceBuffer<int32_t>(n);
    if (n > 0) {
      // The sort's values are the entry indices 0..n-1; SortPairs never writes its input, so
      // they are filled once here. Synchronized: combine() may run on any stream.
      iota_kernel<<<grid_for(max_entries, kIotaBlock), kIotaBlock>>>(max_entries, m_idx.data());
      CUDA_CHECK_LAUNCH();
      CUDA_CHECK(cudaStreamSynchronize(nullptr));
    }
  }
  m_temp_bytes = cub_temp_bytes(static_cast<int>(max_entries), deterministic);
  // Never a null pointer: CUB reads a null temporary as "only tell me the size".
  m_temp = DeviceBuffer<unsigned char>(std::max<size_t>(m_temp_bytes, 256));
}

void RowGradCombiner::combine(int64_t n, const int32_t* ids, const float* rows, float* table,
                              int32_t* unique_ids, int32_t* n_unique, cudaStream_t stream) {
  check_row_grad_combine_args(n, m_max, ids, rows, table, unique_ids, n_unique);
  if (n == 0) {  // nothing to add; the caller still reads *n_unique
    CUDA_CHECK(cudaMemsetAsync(n_unique, 0, sizeof(int32_t), stream));
    return;
  }
  const int ni = static_cast<int>(n);
  // CUB's storage need grows with n; this host-side query (no allocation, no sync) makes sure.
  if (cub_temp_bytes(ni, m_deterministic) > std::max<size_t>(m_temp_bytes, 256))
    throw_internal("RowGradCombiner::combine: CUB needs more temporary storage at n=" +
                   std::to_string(n) + " than at max_entries=" + std::to_string(m_max));
  size_t bytes = m_temp.size();
  void* temp = m_temp.data();
  if (m_deterministic) {
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, bytes, ids, m_keys_sorted.data(), m_idx.data(),
                                               m_idx_sorted.data(), ni, 0, int(sizeof(int32_t) * 8),
                                               stream));
    // Encode writes counts[0 .. *n_unique) only; zero the rest first so that the scan below
    // reads defined values (the kernel never uses the offsets past *n_unique).
    CUDA_CHECK(cudaMemsetAsync(m_counts.data(), 0, n * sizeof(int32_t), stream));
    bytes = m_temp.size();
    CUDA_CHECK(cub::DeviceRunLengthEncode::Encode(temp, bytes, m_keys_sorted.data(), unique_ids,
                                                  m_counts.data(), n_unique, ni, stream));
    bytes = m_temp.size();
    CUDA_CHECK(
        cub::DeviceScan::ExclusiveSum(temp, bytes, m_counts.data(), m_offsets.data(), ni, stream));
    combine_sorted_rows_kernel1<<<grid_for(n, kCombineBlock / kWarp), kCombineBlock, 0, stream>>>(
        n, m_E, n_unique, unique_ids, m_offsets.data(), m_counts.data(), m_idx_sorted.data(), rows,
        table);
    CUDA_CHECK_LAUNCH();
  } else {
    scatter_add_rows_kernel1<<<grid_for(n * m_E, kScatterBlock), kScatterBlock, 0, stream>>>(
        n, m_E, ids, rows, table);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cub::DeviceRadixSort::SortKeys(temp, bytes, ids, m_keys_sorted.data(), ni, 0,
                                              int(sizeof(int32_t) * 8), stream));
    bytes = m_temp.size();
    CUDA_CHECK(cub::DeviceSelect::Unique(temp, bytes, m_keys_sorted.data(), unique_ids, n_unique,
                                         ni, stream));
  }
}

}  // namespace convncf
