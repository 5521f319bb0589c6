// sampling.cu: the training batch gathered on the device, and the deterministic reductions
// (include/convncf/sampling_gpu.hpp). Tests: tests/test_sampling_gpu.cu:
//   build/convncf_tests --gtest_filter='GatherBatch*:Reduce*'
// Kernels:
//   gather_batch_kernel1     one thread per batch slot (grid-stride): the positive from the
//                            epoch's order, the negative by the host loop's draw
//                            (rng_hash -> uniform_index -> nth_absent_item on the user's CSR
//                            row), padding slots set to row 0.
//   reduce_partials_kernel1  a fixed grid of kReduceBlocks blocks of kReduceThreads threads,
//                            grid-stride, each thread summing its elements in double in index
//                            order, then a fixed shared-memory tree per block -> partials[block].
//   reduce_final_kernel1     one block of kReduceBlocks threads sums the partials by the same
//                            fixed tree. Neither the grid nor the order depends on the device or
//                            the run, so the result is bit-identical from run to run.
//   count_non_finite_kernel1 grid-stride count per thread, one atomicAdd per thread that saw one.
//   norm_grad_kernel1        y += float(coef / sqrt(*sumsq) * x), as the CPU engine.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "convncf/common.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/errors.hpp"
#include "convncf/rng.hpp"
#include "convncf/sampling_gpu.hpp"

namespace convncf {
namespace {

constexpr int kGatherBlock = 256;
constexpr int kBlock = 256;
constexpr int64_t kMaxGrid = 65536;  // many waves on an H100/H200; larger inputs loop
constexpr int kReduceBlocks = 1024;  // fixed: the summation order must not depend on n
constexpr int kReduceThreads = 256;  // power of two (the tree halves it)

unsigned grid_for(int64_t work, int block) {
  return static_cast<unsigned>(std::min<int64_t>(ceil_div<int64_t>(work, block), kMaxGrid));
}

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
    // host/train.cpp's draw through sample_negative (host/dataset.cpp), step for step.
    const uint64_t bits =
        rng_hash(seed, kStreamNegative, (uint64_t(epoch) << 40) + uint64_t(lo + j));
    const int64_t r = uniform_index(bits, static_cast<uint32_t>(n_items - deg));
    user[j] = u;
    pos[j] = train_item[t];
    neg[j] = nth_absent_item(row_items + begin, deg, r);
  }
}

// The element transforms of the two sums.
struct SquareOf {
  __device__ double operator()(float v) const { return double(v) * double(v); }
};
struct ValueOf {
  __device__ double operator()(double v) const { return v; }
};

// Fixed tree over kReduceThreads values in shared memory; the result is in sh[0].
__device__ __forceinline__ void block_tree_sum(double* sh) {
  for (int s = kReduceThreads / 2; s > 0; s /= 2) {
    __syncthreads();
    if (static_cast<int>(threadIdx.x) < s) sh[threadIdx.x] += sh[threadIdx.x + s];
  }
  __syncthreads();
}

template <typename T, typename F>
CONVNCF_HOT_KERNEL void reduce_partials_kernel1(int64_t n, const T* __restrict__ x,  // (n,)
                                                double* __restrict__ partials,       // (blocks,)
                                                F f) {
  __shared__ double sh[kReduceThreads];
  double acc = 0.0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    acc += f(x[i]);
  sh[threadIdx.x] = acc;
  block_tree_sum(sh);
  if (threadIdx.x == 0) partials[blockIdx.x] = sh[0];
}

// One block of kReduceThreads threads: each sums kReduceBlocks / kReduceThreads partials in
// index order, then the fixed tree.
CONVNCF_HOT_KERNEL void reduce_final_kernel1(const double* __restrict__ partials,  // (blocks,)
                                             double* __restrict__ out) {           // (1,)
  __shared__ double sh[kReduceThreads];
  double acc = 0.0;
  for (int i = threadIdx.x; i < kReduceBlocks; i += kReduceThreads) acc += partials[i];
  sh[threadIdx.x] = acc;
  block_tree_sum(sh);
  if (threadIdx.x == 0) out[0] = sh[0];
}

template <typename T, typename F>
void deterministic_sum(const char* who, int64_t n, const T* x, double* partials, double* out, F f,
                       cudaStream_t stream) {
  if (n < 0) throw_internal(std::string(who) + ": n = " + std::to_string(n) + " < 0");
  if (!partials || !out) throw_internal(std::string(who) + ": null partials or out");
  if (n == 0) {
    CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(double), stream));  // all-zero bits: 0.0
    return;
  }
  if (!x) throw_internal(std::string(who) + ": null x");
  reduce_partials_kernel1<<<kReduceBlocks, kReduceThreads, 0, stream>>>(n, x, partials, f);
  CUDA_CHECK_LAUNCH();
  reduce_final_kernel1<<<1, kReduceThreads, 0, stream>>>(partials, out);
  CUDA_CHECK_LAUNCH();
}

__global__ void count_non_finite_kernel1(int64_t n, const float* __restrict__ x,  // (n,)
                                         int32_t* __restrict__ out) {             // (1,)
  int32_t count = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    count += (__float_as_uint(x[i]) & 0x7f800000u) == 0x7f800000u;  // exponent all ones
  if (count) atomicAdd(out, count);
}

__global__ void norm_grad_kernel1(int64_t n, double coef,
                                  const double* __restrict__ sumsq,  // (1,)
                                  const float* __restrict__ x,       // (n,)
                                  float* __restrict__ y) {           // (n,)
  const double s = *sumsq;
  if (!(s > 0)) return;  // the CPU engine: nothing added unless the norm is > 0
  const double c = coef / sqrt(s);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] += static_cast<float>(c * double(x[i]));
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

int64_t reduce_partials_size() { return kReduceBlocks; }

void sum_squares_gpu(int64_t n, const float* __restrict__ x, double* __restrict__ partials,
                     double* __restrict__ out, cudaStream_t stream) {
  deterministic_sum("sum_squares_gpu", n, x, partials, out, SquareOf{}, stream);
}

void sum_gpu(int64_t n, const double* __restrict__ x, double* __restrict__ partials,
             double* __restrict__ out, cudaStream_t stream) {
  deterministic_sum("sum_gpu", n, x, partials, out, ValueOf{}, stream);
}

void count_non_finite_gpu(int64_t n, const float* __restrict__ x, int32_t* __restrict__ out,
                          cudaStream_t stream) {
  if (n < 0) throw_internal("count_non_finite_gpu: n = " + std::to_string(n) + " < 0");
  if (n == 0) return;
  if (!x || !out) throw_internal("count_non_finite_gpu: null pointer argument");
  count_non_finite_kernel1<<<grid_for(n, kBlock), kBlock, 0, stream>>>(n, x, out);
  CUDA_CHECK_LAUNCH();
}

void norm_grad_gpu(int64_t n, double coef, const double* __restrict__ sumsq,
                   const float* __restrict__ x, float* __restrict__ y, cudaStream_t stream) {
  if (n < 0) throw_internal("norm_grad_gpu: n = " + std::to_string(n) + " < 0");
  if (n == 0) return;
  if (!sumsq || !x || !y) throw_internal("norm_grad_gpu: null pointer argument");
  norm_grad_kernel1<<<grid_for(n, kBlock), kBlock, 0, stream>>>(n, coef, sumsq, x, y);
  CUDA_CHECK_LAUNCH();
}

}  // namespace convncf
