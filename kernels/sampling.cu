// sampling.cu: the training batch gathered on the device (include/convncf/sampling.hpp): the
// positives of the epoch's order and their negatives, uniform or by popularity, N per positive in
// RecBole's layout. CPU twin: gather_batch_cpu (kernels/sampling_cpu.cpp, with
// check_gather_batch_args). Tests: tests/test_sampling_gpu.cu, the batch against the twin exactly:
//   build/convncf_tests --gtest_filter='GatherBatch*:NthAbsent*'
// Kernels:
//   gather_batch_kernel1     one thread per batch slot (grid-stride): slot s = k·n + j takes the
//                            j-th positive of the batch and its k-th negative by the twin's draw
//                            (negative_bits -> draw_negative on the user's CSR row: nth_absent_item
//                            or, with the popularity tables, nth_absent_weighted), padding slots
//                            set to row 0.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "convncf/common.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/grid_stride.hpp"
#include "convncf/rng.hpp"
#include "convncf/sampling.hpp"

namespace convncf {
namespace {

constexpr int kGatherBlock = 256;
using grid_stride::grid_for;

CONVNCF_HOT_KERNEL void gather_batch_kernel1(int64_t B_cap, int64_t n, int32_t n_neg, int64_t lo, int epoch,
                                             uint64_t seed,
                                             const int64_t* __restrict__ order,        // (T,)
                                             const int32_t* __restrict__ train_user,   // (T_all,)
                                             const int32_t* __restrict__ train_item,   // (T_all,)
                                             const int64_t* __restrict__ row_offsets,  // (U+1,)
                                             const int32_t* __restrict__ row_items,    // (nnz,)
                                             int32_t n_items,
                                             const uint64_t* __restrict__ cdf,         // (n_items+1,) or null
                                             const uint64_t* __restrict__ row_cum,     // (nnz,) or null
                                             int32_t* __restrict__ user,   // (B_cap,)
                                             int32_t* __restrict__ pos,    // (B_cap,)
                                             int32_t* __restrict__ neg) {  // (B_cap,)
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t triples = n * n_neg;
  for (int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; s < B_cap;
       s += stride) {
    if (s >= triples) {
      user[s] = 0;
      pos[s] = 0;
      neg[s] = 0;
      continue;
    }
    const int64_t k = s / n, j = s - k * n;
    const int64_t t = order[lo + j];
    const int32_t u = train_user[t];
    const int64_t begin = row_offsets[u];
    const int64_t deg = row_offsets[u + 1] - begin;
    user[s] = u;
    pos[s] = train_item[t];
    // gather_batch_cpu's draw, step for step (kernels/sampling_cpu.cpp)
    neg[s] = draw_negative(negative_bits(seed, epoch, lo + j, k), row_items + begin, deg, n_items, cdf,
                           cdf ? row_cum + begin : nullptr);
  }
}

}  // namespace

void gather_batch_gpu(int64_t B_cap, int64_t n, int32_t n_neg, int64_t lo, int epoch, uint64_t seed,
                      const int64_t* __restrict__ order, const int32_t* __restrict__ train_user,
                      const int32_t* __restrict__ train_item,
                      const int64_t* __restrict__ row_offsets,
                      const int32_t* __restrict__ row_items, int32_t n_items,
                      const uint64_t* __restrict__ cdf, const uint64_t* __restrict__ row_cum,
                      int32_t* __restrict__ user, int32_t* __restrict__ pos,
                      int32_t* __restrict__ neg, cudaStream_t stream) {
  check_gather_batch_args(B_cap, n, n_neg, lo, order, train_user, train_item, row_offsets, n_items, cdf, row_cum,
                          user, pos, neg);
  if (B_cap == 0) return;
  gather_batch_kernel1<<<grid_for(B_cap, kGatherBlock), kGatherBlock, 0, stream>>>(
      B_cap, n, n_neg, lo, epoch, seed, order, train_user, train_item, row_offsets, row_items, n_items,
      cdf, row_cum, user, pos, neg);
  CUDA_CHECK_LAUNCH();
}

}  // namespace convncf
