// cudnn_conv.hpp: one ConvNCF conv layer on the GPU through cuDNN's graph (backend) API.
// Layer: kernel = stride = k, no padding, fp32, activations NCHW, filter in PyTorch's layout
// (cout, cin, k, k), i.e. exactly the flat network array's layout (model.hpp): the engine points
// cuDNN at the parameter arena, no repacking.
//   forward   Y = ReLU(conv(X, W) + b): one fused graph (conv -> add bias -> ReLU) when cuDNN's
//             heuristics give a plan for it, else a conv-only graph and bias_relu_fwd
//             (conv_bias_relu.hpp)
//   backward  dZ = dY * [Y > 0] (in place, relu_bwd), db = sum of dZ over pairs and space
//             (bias_grad), dW from the backward-filter graph, dX from the backward-data graph
//             (for layer 1, dX is the gradient of the interaction map, G)
// Plans are built once, for a fixed batch n, by heuristics (mode A, then the fallback list),
// filtered by ConvOptions: deterministic drops engines with the NONDETERMINISTIC numerical note,
// ConvMath::Fp32 drops those that down-convert inputs or run on tensor cores (TF32) and those with
// reduced-precision reductions.
// Alignment: the tensors are declared to cuDNN with a byte alignment (CUDNN_ATTR_TENSOR_BYTE_
// ALIGNMENT, a promise about every pointer later passed for them): X, Y, dY and dX must be
// kConvActivationAlignment (16) byte aligned, e.g. arena sub-buffers whose offsets are multiples
// of 4 floats; W, dW, b (views into the flat parameter arrays, whose offsets the tower layout
// fixes) need only float alignment. forward/backward throw Error(kExitSoftware) when a pointer
// breaks this.
// CPU twin: conv_fwd_cpu / conv_bwd_cpu in conv_bias_relu.hpp. Tests: tests/test_cudnn_conv_gpu.cu.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

struct CUstream_st;
using cudaStream_t = CUstream_st*;
struct cudnnContext;
using cudnnHandle_t = cudnnContext*;

namespace convncf {

struct ConvShape {
  int64_t n = 0;  // batch: pairs
  int cin = 0, cout = 0, k = 0, in_size = 0;
  int out_size() const { return in_size / k; }
};

inline constexpr size_t kConvActivationAlignment = 16;  // bytes: X, Y, dY, dX
inline constexpr size_t kConvParamAlignment = 4;        // bytes: W, dW, b

enum class ConvMath { Fp32, AllowTf32 };
struct ConvOptions {
  bool deterministic = true;
  ConvMath math = ConvMath::Fp32;
  // false skips the fused forward graph (conv -> bias -> ReLU) and always runs the conv-only graph
  // plus bias_relu_fwd; the tests use it to check both forward paths on any GPU.
  bool allow_fused = true;
};

// A cuDNN handle bound to a stream. Move-only; the destructor only logs.
class CudnnContext {
 public:
  explicit CudnnContext(cudaStream_t stream);
  ~CudnnContext();
  CudnnContext(const CudnnContext&) = delete;
  CudnnContext& operator=(const CudnnContext&) = delete;
  cudnnHandle_t handle() const { return m_handle; }

 private:
  cudnnHandle_t m_handle = nullptr;
};

class ConvLayerPlans {
 public:
  // Throws Error(kExitSoftware) naming the layer shape and direction when no engine works.
  ConvLayerPlans(cudnnHandle_t handle, const ConvShape& shape, const ConvOptions& options);
  ~ConvLayerPlans();
  ConvLayerPlans(ConvLayerPlans&&) noexcept;
  ConvLayerPlans& operator=(ConvLayerPlans&&) noexcept;

  const ConvShape& shape() const;
  size_t workspace_bytes() const;  // the largest of the plans; the caller owns the workspace
  std::string describe() const;    // one line: the engine of each direction, fused or not

  // Y = ReLU(conv(X, W) + b). Asynchronous on `stream` (the handle's stream).
  void forward(const float* X,   // (n, cin, S, S)
               const float* W,   // (cout, cin, k, k)
               const float* b,   // (cout,)
               float* Y,         // (n, cout, So, So)
               void* workspace, cudaStream_t stream) const;

  // dY: gradient w.r.t. Y; turned into dZ = dY * [Y > 0] in place. Overwrites dW and db; dX is
  // overwritten when not null (the gradient w.r.t. X, not masked by any ReLU of the layer below).
  void backward(const float* X,  // (n, cin, S, S)
                const float* W,  // (cout, cin, k, k)
                const float* Y,  // (n, cout, So, So)
                float* dY,       // (n, cout, So, So) in: dL/dY, out: dZ
                float* dW,       // (cout, cin, k, k)
                float* db,       // (cout,)
                float* dX,       // (n, cin, S, S) or nullptr
                void* workspace, cudaStream_t stream) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

// "conv layer n=.. cin=.. cout=.. k=.. in_size=.. (S x S -> So x So)", for messages.
std::string conv_shape_text(const ConvShape& shape);
// Throws Error(kExitSoftware) naming the shape unless n, cin, cout, k >= 1, in_size >= k and the
// handle is not null (the checks of the ConvLayerPlans constructor, defined in
// kernels/conv_bias_relu_cpu.cpp so that every implementation of the layer runs them).
void check_conv_shape(const ConvShape& shape, cudnnHandle_t handle);

// "9.19.0" from cudnnGetVersion().
std::string cudnn_version();

}  // namespace convncf
