// conv_bias_relu_cpu.cpp: CPU twins of kernels/conv_bias_relu.cu (same arguments, same per-element
// math from conv_bias_relu.hpp) and the plain definition of one ConvNCF conv layer (kernel = stride
// = k, no padding), the oracle of ConvLayerPlans (host/cuda/cudnn_conv.cpp), with the layer's shape
// checks. Plain loops, one thread, double accumulation: correctness, not speed. Tests:
// tests/test_conv_bias_relu.cpp.
#include <sstream>
#include <string>

#include "convncf/conv_bias_relu.hpp"
#include "convncf/cudnn_conv.hpp"
#include "convncf/errors.hpp"

namespace convncf {
namespace {

void check_map(const char* what, int64_t n, int C, int64_t HW) {
  if (n < 0 || C < 1 || HW < 0)
    throw_internal(std::string(what) + ": bad sizes n=" + std::to_string(n) +
                   " C=" + std::to_string(C) + " HW=" + std::to_string(HW) +
                   " (expected n >= 0, C >= 1, HW >= 0)");
}

void check_layer(const char* what, int64_t n, int cin, int cout, int k, int in_size) {
  if (n < 0 || cin < 1 || cout < 1 || k < 1 || in_size < k)
    throw_internal(std::string(what) + ": bad layer shape n=" + std::to_string(n) +
                   " cin=" + std::to_string(cin) + " cout=" + std::to_string(cout) +
                   " k=" + std::to_string(k) + " in_size=" + std::to_string(in_size) +
                   " (expected n >= 0, cin, cout, k >= 1, in_size >= k)");
}

// Offset of W[co][ci][r][s] in a (cout, cin, k, k) filter.
inline int64_t filter_offset(int cin, int k, int co, int ci, int r, int s) {
  return ((static_cast<int64_t>(co) * cin + ci) * k + r) * k + s;
}

template <typename T>
void conv_fwd_impl(int64_t n, int cin, int cout, int k, int in_size, const T* X, const T* W,
                   const T* b, T* Y) {
  check_layer("conv_fwd_cpu", n, cin, cout, k, in_size);
  const int S = in_size, So = in_size / k;
  for (int64_t p = 0; p < n; ++p) {
    for (int co = 0; co < cout; ++co) {
      for (int oi = 0; oi < So; ++oi) {
        for (int oj = 0; oj < So; ++oj) {
          double acc = static_cast<double>(b[co]);
          for (int ci = 0; ci < cin; ++ci) {
            for (int r = 0; r < k; ++r) {
              for (int s = 0; s < k; ++s) {
                acc += static_cast<double>(X[nchw_offset(p, cin, S, ci, oi * k + r, oj * k + s)]) *
                       static_cast<double>(W[filter_offset(cin, k, co, ci, r, s)]);
              }
            }
          }
          const T z = static_cast<T>(acc);
          Y[nchw_offset(p, cout, So, co, oi, oj)] = z > T(0) ? z : T(0);
        }
      }
    }
  }
}

template <typename T>
void conv_bwd_impl(int64_t n, int cin, int cout, int k, int in_size, const T* X, const T* W,
                   const T* Y, T* dY, T* dW, T* db, T* dX) {
  check_layer("conv_bwd_cpu", n, cin, cout, k, in_size);
  const int S = in_size, So = in_size / k;
  const int64_t HW = static_cast<int64_t>(So) * So;
  // dZ = dY * [Y > 0], in place (the same select as relu_bwd).
  const int64_t count = n * cout * HW;
  for (int64_t i = 0; i < count; ++i) dY[i] = Y[i] > T(0) ? dY[i] : T(0);
  const T* dZ = dY;
  // db[co] = sum over pairs and positions of dZ.
  for (int co = 0; co < cout; ++co) {
    double acc = 0.0;
    for (int64_t p = 0; p < n; ++p)
      for (int64_t s = 0; s < HW; ++s) acc += static_cast<double>(dZ[(p * cout + co) * HW + s]);
    db[co] = static_cast<T>(acc);
  }
  // dW[co][ci][r][s] = sum over p, oi, oj of dZ[p][co][oi][oj] * X[p][ci][oi*k + r][oj*k + s].
  for (int co = 0; co < cout; ++co) {
    for (int ci = 0; ci < cin; ++ci) {
      for (int r = 0; r < k; ++r) {
        for (int s = 0; s < k; ++s) {
          double acc = 0.0;
          for (int64_t p = 0; p < n; ++p)
            for (int oi = 0; oi < So; ++oi)
              for (int oj = 0; oj < So; ++oj)
                acc += static_cast<double>(dZ[nchw_offset(p, cout, So, co, oi, oj)]) *
                       static_cast<double>(X[nchw_offset(p, cin, S, ci, oi * k + r, oj * k + s)]);
          dW[filter_offset(cin, k, co, ci, r, s)] = static_cast<T>(acc);
        }
      }
    }
  }
  if (!dX) return;
  // dX[p][ci][i][j] = sum over co of dZ[p][co][i/k][j/k] * W[co][ci][i%k][j%k]; positions outside
  // every block (i or j >= So * k) do not reach the output, so their gradient is 0.
  for (int64_t p = 0; p < n; ++p) {
    for (int ci = 0; ci < cin; ++ci) {
      for (int i = 0; i < S; ++i) {
        for (int j = 0; j < S; ++j) {
          double acc = 0.0;
          const int oi = i / k, oj = j / k;
          if (oi < So && oj < So) {
            for (int co = 0; co < cout; ++co)
              acc += static_cast<double>(dZ[nchw_offset(p, cout, So, co, oi, oj)]) *
                     static_cast<double>(W[filter_offset(cin, k, co, ci, i % k, j % k)]);
          }
          dX[nchw_offset(p, cin, S, ci, i, j)] = static_cast<T>(acc);
        }
      }
    }
  }
}

}  // namespace

void check_bias_relu_fwd_args(int64_t n, int C, int64_t HW, const float* Y, const float* b,
                              const char* who) {
  check_map(who, n, C, HW);
  if (n * C * HW > 0 && (!Y || !b)) throw_internal(std::string(who) + ": null pointer argument");
}

void check_relu_bwd_args(int64_t count, const float* Y, const float* dY, const char* who) {
  if (count < 0) throw_internal(std::string(who) + ": negative count " + std::to_string(count));
  if (count > 0 && (!Y || !dY)) throw_internal(std::string(who) + ": null pointer argument");
}

void check_bias_grad_args(int64_t n, int C, int64_t HW, const float* dZ, const float* db,
                          const char* who) {
  check_map(who, n, C, HW);
  if (!db) throw_internal(std::string(who) + ": null pointer argument db");
  if (n * HW > 0 && !dZ) throw_internal(std::string(who) + ": null pointer argument dZ");
}

void bias_relu_fwd_cpu(int64_t n, int C, int64_t HW, float* Y, const float* b) {
  check_bias_relu_fwd_args(n, C, HW, Y, b, "bias_relu_fwd_cpu");
  for (int64_t p = 0; p < n; ++p)
    for (int c = 0; c < C; ++c)
      for (int64_t s = 0; s < HW; ++s) {
        const int64_t idx = (p * C + c) * HW + s;
        Y[idx] = bias_relu_value(Y[idx], b[conv_channel(idx, C, HW)]);
      }
}

void relu_bwd_cpu(int64_t count, const float* Y, float* dY) {
  check_relu_bwd_args(count, Y, dY, "relu_bwd_cpu");
  for (int64_t i = 0; i < count; ++i) dY[i] = relu_grad_value(Y[i], dY[i]);
}

void bias_grad_cpu(int64_t n, int C, int64_t HW, const float* dZ, float* db) {
  check_bias_grad_args(n, C, HW, dZ, db, "bias_grad_cpu");
  const int64_t per_channel = n * HW;
  for (int c = 0; c < C; ++c) {
    double acc = 0.0;
    for (int64_t j = 0; j < per_channel; ++j)
      acc += static_cast<double>(dZ[channel_element_offset(j, c, C, HW)]);
    db[c] = static_cast<float>(acc);
  }
}

void conv_fwd_cpu(int64_t n, int cin, int cout, int k, int in_size, const float* X, const float* W,
                  const float* b, float* Y) {
  conv_fwd_impl(n, cin, cout, k, in_size, X, W, b, Y);
}
void conv_fwd_cpu(int64_t n, int cin, int cout, int k, int in_size, const double* X,
                  const double* W, const double* b, double* Y) {
  conv_fwd_impl(n, cin, cout, k, in_size, X, W, b, Y);
}

void conv_bwd_cpu(int64_t n, int cin, int cout, int k, int in_size, const float* X, const float* W,
                  const float* Y, float* dY, float* dW, float* db, float* dX) {
  conv_bwd_impl(n, cin, cout, k, in_size, X, W, Y, dY, dW, db, dX);
}
void conv_bwd_cpu(int64_t n, int cin, int cout, int k, int in_size, const double* X,
                  const double* W, const double* Y, double* dY, double* dW, double* db,
                  double* dX) {
  conv_bwd_impl(n, cin, cout, k, in_size, X, W, Y, dY, dW, db, dX);
}

std::string conv_shape_text(const ConvShape& s) {
  std::ostringstream o;
  o << "conv layer n=" << s.n << " cin=" << s.cin << " cout=" << s.cout << " k=" << s.k
    << " in_size=" << s.in_size;
  if (s.k >= 1)  // out_size() divides by k; a bad shape is named before it is refused
    o << " (" << s.in_size << "x" << s.in_size << " -> " << s.out_size() << "x" << s.out_size()
      << ")";
  return o.str();
}

void check_conv_shape(const ConvShape& shape, cudnnHandle_t handle) {
  if (shape.n < 1 || shape.cin < 1 || shape.cout < 1 || shape.k < 1 || shape.in_size < shape.k)
    throw_internal("ConvLayerPlans: bad " + conv_shape_text(shape) +
                   " (expected n, cin, cout, k >= 1 and in_size >= k)");
  if (!handle) throw_internal("ConvLayerPlans: null cuDNN handle for " + conv_shape_text(shape));
}

}  // namespace convncf
