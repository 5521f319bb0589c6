// engine_glue.cu: the GPU engine's data-movement kernels (see engine_glue.hpp). Each is one
// thread per output element over a grid-stride loop, the plain port of its twin in
// kernels/engine_glue_cpu.cpp; tests/test_engine_glue_gpu.cu compares them exactly.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "convncf/common.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/engine_glue.hpp"
#include "convncf/errors.hpp"

namespace convncf {
namespace {

constexpr int kBlock = 256;
constexpr int64_t kMaxGrid = 65536;

int grid_for(int64_t n) { return static_cast<int>(std::min(ceil_div<int64_t>(n, kBlock), kMaxGrid)); }

__global__ void interleave_rows_kernel1(int64_t B_cap, int E, const float* __restrict__ rows,
                                        float* __restrict__ out) {
  const int64_t total = 2 * B_cap * E;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t pair = i / E, e = i - pair * E;
    const int64_t t = pair / 2, side = pair % 2;  // side 0: positive (rows[1]), 1: negative (rows[2])
    out[i] = rows[((1 + side) * B_cap + t) * E + e];
  }
}

__global__ void range_pairs_kernel1(int64_t nu, const int32_t* __restrict__ users, int32_t item_lo,
                                    int32_t n, int64_t cap, int32_t* __restrict__ pair_user,
                                    int32_t* __restrict__ pair_item) {
  const int64_t used = nu * n;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < cap;
       k += int64_t(gridDim.x) * blockDim.x) {
    if (k < used) {
      pair_user[k] = users[k / n];
      pair_item[k] = item_lo + static_cast<int32_t>(k % n);
    } else {
      pair_user[k] = 0;
      pair_item[k] = 0;
    }
  }
}

__global__ void scale_add_kernel1(int64_t n, float a, const float* __restrict__ x, float* __restrict__ y) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += a * x[i];
}

}  // namespace

void interleave_rows(int64_t B_cap, int E, const float* __restrict__ rows, float* __restrict__ out,
                     cudaStream_t stream) {
  if (B_cap < 0 || E <= 0 || (B_cap > 0 && (!rows || !out)))
    throw Error(kExitSoftware, "interleave_rows: bad arguments");
  if (B_cap == 0) return;
  interleave_rows_kernel1<<<grid_for(2 * B_cap * E), kBlock, 0, stream>>>(B_cap, E, rows, out);
  CUDA_CHECK_LAUNCH();
}

void range_pairs(int64_t nu, const int32_t* __restrict__ users, int32_t item_lo, int32_t n, int64_t cap,
                 int32_t* __restrict__ pair_user, int32_t* __restrict__ pair_item, cudaStream_t stream) {
  if (nu < 0 || n < 0 || item_lo < 0 || nu * n > cap || (cap > 0 && (!pair_user || !pair_item)) ||
      (nu * n > 0 && !users))
    throw Error(kExitSoftware, "range_pairs: bad arguments");
  if (cap == 0) return;
  range_pairs_kernel1<<<grid_for(cap), kBlock, 0, stream>>>(nu, users, item_lo, n, cap, pair_user, pair_item);
  CUDA_CHECK_LAUNCH();
}

void scale_add(int64_t n, float a, const float* __restrict__ x, float* __restrict__ y, cudaStream_t stream) {
  if (n < 0 || (n > 0 && (!x || !y))) throw Error(kExitSoftware, "scale_add: bad arguments");
  if (n == 0) return;
  scale_add_kernel1<<<grid_for(n), kBlock, 0, stream>>>(n, a, x, y);
  CUDA_CHECK_LAUNCH();
}

}  // namespace convncf
