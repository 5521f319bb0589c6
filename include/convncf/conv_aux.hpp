// conv_aux.hpp: the small kernels around a cuDNN convolution, and the CPU twins of the whole
// layer. All maps NCHW fp32; HW = So * So spatial positions per channel.
//   bias_relu_fwd   Y[p][c][s] = max(Z[p][c][s] + b[c], 0), in place (Z -> Y)
//   relu_bwd        dY[i] = Y[i] > 0 ? dY[i] : 0, in place
//   bias_grad       db[c] = sum over p and s of dZ[p][c][s], a fixed-order (deterministic) sum
// CPU twins with the same argument order: *_cpu. conv_fwd_cpu / conv_bwd_cpu are the plain
// definition of the layer (kernel = stride = k, no padding), the oracle of ConvLayerPlans.
// Kernels: kernels/conv_aux.cu. Tests: tests/test_conv_aux.cpp (twins), tests/test_conv_aux_gpu.cu.
#pragma once
#include <cstdint>

struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace convncf {

// Offset of x[p][c][i][j] in an (n, C, S, S) map.
inline constexpr int64_t nchw_offset(int64_t p, int C, int S, int c, int i, int j) {
  return ((p * C + c) * S + i) * static_cast<int64_t>(S) + j;
}

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

// Y = ReLU(conv(X, W) + b) from the definition, in double accumulation.
void conv_fwd_cpu(int64_t n, int cin, int cout, int k, int in_size,
                  const float* X,  // (n, cin, S, S)
                  const float* W,  // (cout, cin, k, k)
                  const float* b,  // (cout,)
                  float* Y);       // (n, cout, So, So)
// Backward from dY: dZ = dY * [Y > 0] written into dY; dW, db overwritten; dX overwritten if not null.
void conv_bwd_cpu(int64_t n, int cin, int cout, int k, int in_size, const float* X, const float* W,
                  const float* Y, float* dY, float* dW, float* db, float* dX);

}  // namespace convncf
