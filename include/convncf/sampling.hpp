// sampling.hpp: a training batch assembled on the device. The epoch's shuffled order of training
// positives is uploaded once per epoch; each batch gathers its (user, pos) and draws each negative
// uniformly from the items the user has not interacted with in training, from the user's sorted CSR
// row: the r-th absent item for r = uniform_index(bits, n_items - degree), with bits =
// rng_hash(seed, kStreamNegative, (epoch << 40) + index in the epoch), exactly the CPU loop's draw
// (host/engine/cpu_training_engine.cpp, dataset.hpp sample_negative), so both engines see the same triples.
// nth_absent_item (dataset.hpp) is the same __host__ __device__ function on both sides.
// Kernel: kernels/sampling.cu. CPU twin: the CPU engine's sampler (host/engine/cpu_training_engine.cpp, sample_negative); the
// launcher's argument checks: check_gather_batch_args (host/data/dataset.cpp).
// Tests: tests/test_sampling_gpu.cu.
#pragma once
#include <cstdint>

#include "convncf/common.hpp"
#include "convncf/dataset.hpp"

struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace convncf {

// Triples lo .. lo+n of the epoch: t = order[lo + j]; user[j] = train_user[t],
// pos[j] = train_item[t], neg[j] drawn as above with index lo + j. Entries j >= n up to B_cap
// are set to row 0 (padding).
void gather_batch_gpu(int64_t B_cap, int64_t n, int64_t lo, int epoch, uint64_t seed,
                      const int64_t* __restrict__ order,        // (T,) indices into train_*
                      const int32_t* __restrict__ train_user,   // (T_all,)
                      const int32_t* __restrict__ train_item,   // (T_all,)
                      const int64_t* __restrict__ row_offsets,  // (n_users+1,) training CSR
                      const int32_t* __restrict__ row_items,    // (nnz,) sorted per row
                      int32_t n_items,
                      int32_t* __restrict__ user,  // (B_cap,)
                      int32_t* __restrict__ pos,   // (B_cap,)
                      int32_t* __restrict__ neg,   // (B_cap,)
                      cudaStream_t stream);

// gather_batch_gpu's argument checks, shared with every implementation of it
// (host/data/dataset.cpp): throws Error(kExitSoftware) unless 0 <= n <= B_cap, lo >= 0,
// n_items >= 1, the outputs are not null when B_cap > 0 and the inputs are not null when n > 0.
void check_gather_batch_args(int64_t B_cap, int64_t n, int64_t lo, const int64_t* order,
                             const int32_t* train_user, const int32_t* train_item,
                             const int64_t* row_offsets, int32_t n_items, const int32_t* user,
                             const int32_t* pos, const int32_t* neg);

}  // namespace convncf
