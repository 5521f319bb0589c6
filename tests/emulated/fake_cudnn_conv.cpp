// fake_cudnn_conv.cpp: CudnnContext and ConvLayerPlans (cudnn_conv.hpp) on the emulated device:
// forward and backward are the layer's CPU definition, conv_fwd_cpu / conv_bwd_cpu
// (conv_bias_relu.hpp), behind the real class's checks (shape, null and misaligned pointers, the handle's stream) and
// extent checks of every tensor against its device allocation. No workspace is needed
// (workspace_bytes() is 0); describe() says "emulated". The handle is a small struct of ours that
// remembers the stream, as cudnnSetStream does.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "convncf/conv_bias_relu.hpp"
#include "convncf/cudnn_conv.hpp"
#include "convncf/errors.hpp"
#include "emulated_device.hpp"

// cudnn.h is not included anywhere in this executable, so the opaque handle type is ours to define.
struct cudnnContext {
  cudaStream_t stream = nullptr;
};

namespace convncf {
namespace {


void check_pointer(const void* p, size_t alignment, const char* name, const std::string& ctx) {
  if (!p) throw_internal(ctx + ": " + name + " is null");
  if (reinterpret_cast<uintptr_t>(p) % alignment != 0)
    throw_internal(ctx + ": " + name + " is not " + std::to_string(alignment) +
                   "-byte aligned (the alignment its cuDNN tensor was declared with)");
}

}  // namespace

CudnnContext::CudnnContext(cudaStream_t stream) {
  emul::check_stream(stream, "CudnnContext");
  m_handle = new cudnnContext{stream};
}

CudnnContext::~CudnnContext() { delete m_handle; }

struct ConvLayerPlans::Impl {
  ConvShape shape;
  ConvOptions options;
  cudnnHandle_t handle = nullptr;
  std::string shape_str;

  void check_stream(cudaStream_t stream, const std::string& c) const {
    if (handle->stream != stream)
      throw_internal(c + ": the stream argument is not the cuDNN handle's stream (CudnnContext)");
  }
  int64_t in_elems() const { return shape.n * shape.cin * int64_t(shape.in_size) * shape.in_size; }
  int64_t out_elems() const {
    return shape.n * shape.cout * int64_t(shape.out_size()) * shape.out_size();
  }
  int64_t w_elems() const { return int64_t(shape.cout) * shape.cin * shape.k * shape.k; }
};

ConvLayerPlans::ConvLayerPlans(cudnnHandle_t handle, const ConvShape& shape,
                               const ConvOptions& options)
    : m_impl(std::make_unique<Impl>()) {
  Impl& m = *m_impl;
  m.shape = shape;
  m.options = options;
  m.handle = handle;
  m.shape_str = conv_shape_text(shape);
  check_conv_shape(shape, handle);
}

ConvLayerPlans::~ConvLayerPlans() = default;
ConvLayerPlans::ConvLayerPlans(ConvLayerPlans&&) noexcept = default;
ConvLayerPlans& ConvLayerPlans::operator=(ConvLayerPlans&&) noexcept = default;

const ConvShape& ConvLayerPlans::shape() const { return m_impl->shape; }
size_t ConvLayerPlans::workspace_bytes() const { return 0; }
std::string ConvLayerPlans::describe() const { return m_impl->shape_str + ": emulated"; }

void ConvLayerPlans::forward(const float* X, const float* W, const float* b, float* Y,
                             void* workspace, cudaStream_t stream) const {
  (void)workspace;  // workspace_bytes() is 0: any pointer, null included, will do
  const Impl& m = *m_impl;
  const std::string c = m.shape_str + ", forward";
  check_pointer(X, kConvActivationAlignment, "X", c);
  check_pointer(W, kConvParamAlignment, "W", c);
  check_pointer(b, kConvParamAlignment, "b", c);
  check_pointer(Y, kConvActivationAlignment, "Y", c);
  m.check_stream(stream, c);
  emul::check_elems(X, m.in_elems(), c.c_str(), "X");
  emul::check_elems(W, m.w_elems(), c.c_str(), "W");
  emul::check_elems(b, m.shape.cout, c.c_str(), "b");
  emul::check_elems(Y, m.out_elems(), c.c_str(), "Y");
  conv_fwd_cpu(m.shape.n, m.shape.cin, m.shape.cout, m.shape.k, m.shape.in_size, X, W, b, Y);
}

void ConvLayerPlans::backward(const float* X, const float* W, const float* Y, float* dY, float* dW,
                              float* db, float* dX, void* workspace, cudaStream_t stream) const {
  (void)workspace;
  const Impl& m = *m_impl;
  const std::string c = m.shape_str + ", backward";
  check_pointer(X, kConvActivationAlignment, "X", c);
  check_pointer(W, kConvParamAlignment, "W", c);
  check_pointer(Y, kConvActivationAlignment, "Y", c);
  check_pointer(dY, kConvActivationAlignment, "dY", c);
  check_pointer(dW, kConvParamAlignment, "dW", c);
  check_pointer(db, kConvParamAlignment, "db", c);
  if (dX) check_pointer(dX, kConvActivationAlignment, "dX", c);
  m.check_stream(stream, c);
  emul::check_elems(X, m.in_elems(), c.c_str(), "X");
  emul::check_elems(W, m.w_elems(), c.c_str(), "W");
  emul::check_elems(Y, m.out_elems(), c.c_str(), "Y");
  emul::check_elems(dY, m.out_elems(), c.c_str(), "dY");
  emul::check_elems(dW, m.w_elems(), c.c_str(), "dW");
  emul::check_elems(db, m.shape.cout, c.c_str(), "db");
  if (dX) emul::check_elems(dX, m.in_elems(), c.c_str(), "dX");
  conv_bwd_cpu(m.shape.n, m.shape.cin, m.shape.cout, m.shape.k, m.shape.in_size, X, W, Y, dY, dW,
               db, dX);
}

std::string cudnn_version() { return "emulated"; }

}  // namespace convncf
