// conv_bias_relu.cu: the small kernels around a cuDNN convolution (host/cuda/cudnn_conv.cpp): the
// bias and ReLU after it, their backward. All maps NCHW fp32, (n, C, HW). CPU twins:
// kernels/conv_bias_relu_cpu.cpp, sharing the per-element and index math of
// include/convncf/conv_bias_relu.hpp. Tests: tests/test_conv_bias_relu.cpp (the twins) and
// tests/test_conv_bias_relu_gpu.cu (bias_relu_fwd and relu_bwd bit-exact, bias_grad within a few
// ulps of the twin and bit-identical across runs):
//   build/convncf_tests --gtest_filter='BiasReluFwd.*:ReluBwd.*:BiasGrad.*'
// Variants (one each so far, the plain ports of the twins):
//   bias_relu_fwd_kernel1  one thread per element, grid-stride: Y = max(Z + b[c], 0) in place
//   relu_bwd_kernel1       one thread per element, grid-stride: dY = Y > 0 ? dY : 0 in place
//   bias_grad_kernel1      one block per channel (grid-stride over channels). Thread t sums, in
//                          double, the elements t, t + 256, t + 512, ... of its channel (in the
//                          order p * HW + s); then a fixed shared-memory tree adds the 256 partial
//                          sums. The order depends only on the sizes, never on scheduling, so the
//                          result is deterministic. Reads are coalesced along s; when HW is small
//                          (the last layers) they stride by C * HW, which is fine at these sizes.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "convncf/common.hpp"
#include "convncf/conv_bias_relu.hpp"
#include "convncf/cuda_check.hpp"

namespace convncf {
namespace {

constexpr int kBlockElementwise = 256;
// Grid cap of the elementwise kernels: plenty of blocks for an H100/H200; larger maps loop.
constexpr int64_t kMaxGridElementwise = 65536;
// bias_grad: the block size is part of the summation order, so it is fixed at compile time.
constexpr int kBlockGrad = 256;
constexpr int64_t kMaxGridGrad = 65535;
static_assert((kBlockGrad & (kBlockGrad - 1)) == 0, "the tree needs a power-of-two block");

CONVNCF_HOT_KERNEL void bias_relu_fwd_kernel1(int64_t count, int C, int64_t HW,
                                              float* __restrict__ Y,          // (n, C, HW)
                                              const float* __restrict__ b) {  // (C,)
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < count;
       idx += stride) {
    Y[idx] = bias_relu_value(Y[idx], b[conv_channel(idx, C, HW)]);
  }
}

CONVNCF_HOT_KERNEL void relu_bwd_kernel1(int64_t count,
                                         const float* __restrict__ Y,  // (count,)
                                         float* __restrict__ dY) {     // (count,) in place
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < count;
       idx += stride) {
    dY[idx] = relu_grad_value(Y[idx], dY[idx]);
  }
}

// Launched with exactly kBlockGrad threads per block.
CONVNCF_HOT_KERNEL void bias_grad_kernel1(int64_t n, int C, int64_t HW,
                                          const float* __restrict__ dZ,  // (n, C, HW)
                                          float* __restrict__ db) {      // (C,)
  __shared__ double partial[kBlockGrad];
  const int t = static_cast<int>(threadIdx.x);
  const int64_t per_channel = n * HW;
  for (int c = static_cast<int>(blockIdx.x); c < C; c += static_cast<int>(gridDim.x)) {
    double acc = 0.0;
    for (int64_t j = t; j < per_channel; j += kBlockGrad)
      acc += static_cast<double>(dZ[channel_element_offset(j, c, C, HW)]);
    partial[t] = acc;
    __syncthreads();
    for (int half = kBlockGrad / 2; half > 0; half /= 2) {
      if (t < half) partial[t] += partial[t + half];
      __syncthreads();
    }
    if (t == 0) db[c] = static_cast<float>(partial[0]);
    // partial[] is rewritten for the next channel: everyone must be past the read above.
    __syncthreads();
  }
}

unsigned elementwise_grid(int64_t count) {
  return static_cast<unsigned>(
      std::min<int64_t>(ceil_div<int64_t>(count, kBlockElementwise), kMaxGridElementwise));
}

}  // namespace

void bias_relu_fwd(int64_t n, int C, int64_t HW, float* __restrict__ Y, const float* __restrict__ b,
                   cudaStream_t stream) {
  check_bias_relu_fwd_args(n, C, HW, Y, b);
  const int64_t count = n * C * HW;
  if (count == 0) return;
  bias_relu_fwd_kernel1<<<elementwise_grid(count), kBlockElementwise, 0, stream>>>(count, C, HW, Y,
                                                                                   b);
  CUDA_CHECK_LAUNCH();
}

void relu_bwd(int64_t count, const float* __restrict__ Y, float* __restrict__ dY,
              cudaStream_t stream) {
  check_relu_bwd_args(count, Y, dY);
  if (count == 0) return;
  relu_bwd_kernel1<<<elementwise_grid(count), kBlockElementwise, 0, stream>>>(count, Y, dY);
  CUDA_CHECK_LAUNCH();
}

void bias_grad(int64_t n, int C, int64_t HW, const float* __restrict__ dZ, float* __restrict__ db,
               cudaStream_t stream) {
  check_bias_grad_args(n, C, HW, dZ, db);
  if (n * HW == 0) {  // the sum over no elements
    CUDA_CHECK(cudaMemsetAsync(db, 0, static_cast<size_t>(C) * sizeof(float), stream));
    return;
  }
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(C, kMaxGridGrad));
  bias_grad_kernel1<<<grid, kBlockGrad, 0, stream>>>(n, C, HW, dZ, db);
  CUDA_CHECK_LAUNCH();
}

}  // namespace convncf
