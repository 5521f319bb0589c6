// sampling.cu: the training batch gathered on the device (include/convncf/sampling.hpp). Its CPU
// twin is the CPU engine's sampler (host/engine/cpu_training_engine.cpp, through sample_negative
// in host/data/dataset.cpp, which also holds check_gather_batch_args). Tests:
// tests/test_sampling_gpu.cu, the batch against the host sampler exactly:
//   build/convncf_tests --gtest_filter='GatherBatch*:NthAbsentItemHd*'
// Kernels:
//   gather_batch_kernel1     one thread per batch slot (grid-stride): the positive from the
//                            epoch's order, the negative by the host loop's draw
//                            (rng_hash -> uniform_index -> nth_absent_item on the user's CSR
//                            row), padding slots set to row 0.
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

CONVNCF_HOT_KERNEL void gather_batch_kernel1(int64_t B_cap, int64_t n, int64_t lo, int epoch,
                                             uint64_t seed,
                                             const int64_t* __restrict__ order,        // (T,)
                                             const int32_t* __restrict__ train_user,   // (T_all,)
                                             const int32_t* __restrict__ train_item,   // (T_all,)
                                             const int64_t* __restrict__ row_offsets,  // (U+1,)
                                             const int32_t* __restrict__ row_items,    // (nnz,)
                                             int32_t n_items,
                                             int32_t* __restrict__ user,   // (B_cap,)
                                             int32_t* __restrict__ pos,    // (B_cap,)
                                             int32_t* __restrict__ neg) {  // (B_cap,)
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < B_cap;
       j += stride) {
    if (j >= n) {
      user[j] = 0;
      pos[j] = 0;
      neg[j] = 0;
      continue;
    }
    const int64_t t = order[lo + j];
    const int32_t u = train_user[t];
    const int64_t begin = row_offsets[u];
    const int64_t deg = row_offsets[u + 1] - begin;
    // the CPU engine's draw (host/engine/cpu_training_engine.cpp) through sample_negative (host/data/dataset.cpp), step for step.
    const uint64_t bits =
        rng_hash(seed, kStreamNegative, (uint64_t(epoch) << 40) + uint64_t(lo + j));
    const int64_t r = uniform_index(bits, static_cast<uint32_t>(n_items - deg));
    user[j] = u;
    pos[j] = train_item[t];
    neg[j] = nth_absent_item(row_items + begin, deg, r);
  }
}

}  // namespace

void gather_batch_gpu(int64_t B_cap, int64_t n, int64_t lo, int epoch, uint64_t seed,
                      const int64_t* __restrict__ order, const int32_t* __restrict__ train_user,
                      const int32_t* __restrict__ train_item,
                      const int64_t* __restrict__ row_offsets,
                      const int32_t* __restrict__ row_items, int32_t n_items,
                      int32_t* __restrict__ user, int32_t* __restrict__ pos,
                      int32_t* __restrict__ neg, cudaStream_t stream) {
  check_gather_batch_args(B_cap, n, lo, order, train_user, train_item, row_offsets, n_items, user, pos, neg);
  if (B_cap == 0) return;
  gather_batch_kernel1<<<grid_for(B_cap, kGatherBlock), kGatherBlock, 0, stream>>>(
      B_cap, n, lo, epoch, seed, order, train_user, train_item, row_offsets, row_items, n_items,
      user, pos, neg);
  CUDA_CHECK_LAUNCH();
}

}  // namespace convncf
