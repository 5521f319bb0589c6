// regularization.cu: the regularizers' terms and gradients (include/convncf/regularization.hpp):
// the paper preset's squared row terms, the squared weight norm's gradient and the whole-table
// norm's gradient. CPU twins and argument checks: kernels/regularization_cpu.cpp. Tests:
// tests/test_regularization.cpp (the twin by hand) and tests/test_regularization_gpu.cu (each
// kernel against its twin or the CPU engine's formula):
//   build/convncf_tests --gtest_filter='RowsSquaredReg*:Reduce.NormGrad*:PairLayout.*'
// Variants (only 1 so far, each the plain port of its twin):
//   rows_squared_reg_kernel1: one thread per triple, running the shared rows_reg_triple of
//     regularization.hpp, so the arithmetic order is the twin's.
//   scale_add_kernel1: one thread per element.
//   norm_grad_kernel1: one thread per element, y += float(coef / sqrt(*sumsq) * x), as the CPU
//     engine.
// All grids are capped (grid-stride loops), so no size overflows gridDim.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "convncf/common.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/grid_stride.hpp"
#include "convncf/outer_product.hpp"
#include "convncf/pairs.hpp"
#include "convncf/regularization.hpp"

namespace convncf {
namespace {

using grid_stride::grid_for;
using grid_stride::kBlock;

CONVNCF_HOT_KERNEL void rows_squared_reg_kernel1(int64_t B_cap, int64_t n_valid, int E, double l,
                                                 const int32_t* __restrict__ user,  // (B_cap,)
                                                 const int32_t* __restrict__ pos,   // (B_cap,)
                                                 const int32_t* __restrict__ neg,   // (B_cap,)
                                                 const float* __restrict__ P,       // (n_users, E)
                                                 const float* __restrict__ Q,       // (n_items, E)
                                                 float* __restrict__ rows,          // (3, B_cap, E)
                                                 double* __restrict__ reg) {        // (B_cap,)
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < B_cap;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    reg[t] = triple_rows_slot(t, B_cap, n_valid, E, user, pos, neg, P, Q, rows, RowsRegTriple{l});
  }
}

__global__ void scale_add_kernel1(int64_t n, float a, const float* __restrict__ x, float* __restrict__ y) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += a * x[i];
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

void rows_squared_reg(int64_t B_cap, int64_t n_valid, int E, double l,
                      const int32_t* __restrict__ user, const int32_t* __restrict__ pos,
                      const int32_t* __restrict__ neg, const float* __restrict__ P,
                      const float* __restrict__ Q, float* __restrict__ rows,
                      double* __restrict__ reg, cudaStream_t stream) {
  check_rows_squared_reg_args(B_cap, n_valid, E, l, user, pos, neg, P, Q, rows, reg);
  if (B_cap == 0) return;
  rows_squared_reg_kernel1<<<grid_for(B_cap, kBlock), kBlock, 0, stream>>>(
      B_cap, n_valid, E, l, user, pos, neg, P, Q, rows, reg);
  CUDA_CHECK_LAUNCH();
}

void scale_add(int64_t n, float a, const float* __restrict__ x, float* __restrict__ y, cudaStream_t stream) {
  check_scale_add_args(n, x, y);
  if (n == 0) return;
  scale_add_kernel1<<<grid_for(n, kBlock), kBlock, 0, stream>>>(n, a, x, y);
  CUDA_CHECK_LAUNCH();
}

void norm_grad_gpu(int64_t n, double coef, const double* __restrict__ sumsq,
                   const float* __restrict__ x, float* __restrict__ y, cudaStream_t stream) {
  check_norm_grad_args(n, sumsq, x, y);
  if (n == 0) return;
  norm_grad_kernel1<<<grid_for(n, kBlock), kBlock, 0, stream>>>(n, coef, sumsq, x, y);
  CUDA_CHECK_LAUNCH();
}

}  // namespace convncf
