// conv_bias_relu.hpp: the small kernels around a cuDNN convolution, and the CPU twins of the whole
// layer. All maps NCHW fp32; HW = So * So spatial positions per channel.
//   bias_relu_fwd   Y[p][c][s] = max(Z[p][c][s] + b[c], 0), in place (Z -> Y)
//   relu_bwd        dY[i] = Y[i] > 0 ? dY[i] : 0, in place
//   bias_grad       db[c] = sum over p and s of dZ[p][c][s], a fixed-order (deterministic) sum
// CPU twins with the same argument order: *_cpu. conv_fwd_cpu / conv_bwd_cpu are the plain
// definition of the layer (kernel = stride = k, no padding), the oracle of ConvLayerPlans.
// Kernels: kernels/conv_bias_relu.cu. CPU twins: kernels/conv_bias_relu_cpu.cpp. Tests:
// tests/test_conv_bias_relu.cpp (twins), tests/test_conv_bias_relu_gpu.cu.
// The per-element math and index math below (CONVNCF_HD) is shared by the kernels and the twins,
// so bias_relu_fwd and relu_bwd give the same bits on both sides.
#pragma once
#include <cstdint>

#include "convncf/common.hpp"

struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace convncf {

// Offset of x[p][c][i][j] in an (n, C, S, S) map.
inline constexpr int64_t nchw_offset(int64_t p, int C, int S, int c, int i, int j) {
  return ((p * C + c) * S + i) * static_cast<int64_t>(S) + j;
}

// Channel of flat element idx of an (n, C, HW) map.
CONVNCF_HD int conv_channel(int64_t idx, int C, int64_t HW) {
  return static_cast<int>((idx / HW) % C);
}
// Offset of the j-th element (j = p * HW + s) of channel c in an (n, C, HW) map: the order in which
// bias_grad walks one channel.
CONVNCF_HD int64_t channel_element_offset(int64_t j, int c, int C, int64_t HW) {
  const int64_t p = j / HW;
  return (p * C + c) * HW + (j - p * HW);
}
// ReLU(z + b): one add and one compare, the same on host and device. NaN maps to 0 on both sides.
CONVNCF_HD float bias_relu_value(float z, float b) {
  const float v = z + b;
  return v > 0.0f ? v : 0.0f;
}
// dZ = dY * [Y > 0], written as a select so that no multiply can change a bit.
CONVNCF_HD float relu_grad_value(float y, float dy) { return y > 0.0f ? dy : 0.0f; }

// Launchers: device pointers, asynchronous on `stream`. Throw Error(kExitSoftware) on negative
// sizes, C < 1 or a null pointer with work to do. An empty map launches nothing (bias_grad then
// zero-fills db with cudaMemsetAsync, the sum over nothing).
void bias_relu_fwd(int64_t n, int C, int64_t HW,
                   float* __restrict__ Y,        // (n, C, HW) in: Z, out: Y
                   const float* __restrict__ b,  // (C,)
                   cudaStream_t stream);
void relu_bwd(int64_t count, const float* __restrict__ Y,  // (count,)
              float* __restrict__ dY,                      // (count,) in place
              cudaStream_t stream);
void bias_grad(int64_t n, int C, int64_t HW, const float* __restrict__ dZ,  // (n, C, HW)
               float* __restrict__ db,                                     // (C,) overwritten
               cudaStream_t stream);

void bias_relu_fwd_cpu(int64_t n, int C, int64_t HW, float* Y, const float* b);
void relu_bwd_cpu(int64_t count, const float* Y, float* dY);
void bias_grad_cpu(int64_t n, int C, int64_t HW, const float* dZ, float* db);

// The launchers' argument checks (as said above), shared by each launcher, its twin (who =
// "<launcher>_cpu") and the emulated launcher; they throw Error(kExitSoftware) naming `who`.
void check_bias_relu_fwd_args(int64_t n, int C, int64_t HW, const float* Y, const float* b,
                              const char* who = "bias_relu_fwd");
void check_relu_bwd_args(int64_t count, const float* Y, const float* dY,
                         const char* who = "relu_bwd");
void check_bias_grad_args(int64_t n, int C, int64_t HW, const float* dZ, const float* db,
                          const char* who = "bias_grad");

// Y = ReLU(conv(X, W) + b) from the definition, in double accumulation. S = in_size, So =
// in_size / k (floor: a border that no k x k block covers is ignored, and gets dX = 0). Throws
// Error(kExitSoftware) on n < 0, cin, cout, k < 1 or in_size < k.
void conv_fwd_cpu(int64_t n, int cin, int cout, int k, int in_size,
                  const float* X,  // (n, cin, S, S)
                  const float* W,  // (cout, cin, k, k)
                  const float* b,  // (cout,)
                  float* Y);       // (n, cout, So, So)
// Backward from dY: dZ = dY * [Y > 0] written into dY; dW, db overwritten; dX overwritten if not null.
void conv_bwd_cpu(int64_t n, int cin, int cout, int k, int in_size, const float* X, const float* W,
                  const float* Y, float* dY, float* dW, float* db, float* dX);
// The same definitions in double, for finite-difference checks of the float oracle's math.
void conv_fwd_cpu(int64_t n, int cin, int cout, int k, int in_size, const double* X,
                  const double* W, const double* b, double* Y);
void conv_bwd_cpu(int64_t n, int cin, int cout, int k, int in_size, const double* X,
                  const double* W, const double* Y, double* dY, double* dW, double* db, double* dX);

}  // namespace convncf
