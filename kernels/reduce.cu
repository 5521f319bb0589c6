// reduce.cu: the deterministic reductions of the GPU engine (include/convncf/reduce.hpp): sums of
// squares and sums in double in a fixed order, and the count of non-finite values. Argument
// checks: kernels/reduce_cpu.cpp (no CPU twin: the emulated device replays the fixed grid and
// tree, tests/emulated/fake_kernels.cpp). Tests: tests/test_reduce_gpu.cu (within 1e-12 of a
// long-double reference, bit-identical from run to run):
//   build/convncf_tests --gtest_filter='Reduce*'
// Kernels:
//   reduce_partials_kernel1  a fixed grid of kReduceBlocks blocks of kReduceThreads threads,
//                            grid-stride, each thread summing its elements in double in index
//                            order, then a fixed shared-memory tree per block -> partials[block].
//   reduce_final_kernel1     one block of kReduceThreads threads sums the partials by the same
//                            fixed tree. Neither the grid nor the order depends on the device or
//                            the run, so the result is bit-identical from run to run.
//   count_non_finite_kernel1 grid-stride count per thread, one atomicAdd per thread that saw one.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "convncf/common.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/grid_stride.hpp"
#include "convncf/reduce.hpp"

namespace convncf {
namespace {

using grid_stride::grid_for;
using grid_stride::kBlock;

static_assert((kReduceThreads & (kReduceThreads - 1)) == 0, "the tree halves kReduceThreads");

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
  check_deterministic_sum_args(n, x, partials, out, who);
  if (n == 0) {
    CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(double), stream));  // all-zero bits: 0.0
    return;
  }
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

}  // namespace

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
  check_count_non_finite_args(n, x, out);
  if (n == 0) return;
  count_non_finite_kernel1<<<grid_for(n, kBlock), kBlock, 0, stream>>>(n, x, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace convncf
