// device_buffer.hpp: DeviceBuffer<T>, one move-only device allocation of n elements with copies to
// and from std::vector (tiny-cuda-nn's GPUMemory, CUTLASS's DeviceAllocation). The destructor
// only logs a failed free; everything else throws through CUDA_CHECK.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "convncf/cuda_check.hpp"

namespace convncf {

namespace detail {
// A cudaMalloc that did not fit: the size asked for and the device's free and total memory (the
// engine's setup allocates everything once, so this names what the configuration needs).
[[noreturn]] inline void throw_device_out_of_memory(size_t n, size_t element_bytes) {
  cudaGetLastError();
  size_t free_bytes = 0, total_bytes = 0;
  const bool known = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
  cudaGetLastError();
  char b[256];
  std::snprintf(b, sizeof b, "out of GPU memory: a device buffer of %.3g GB (%zu elements of %zu bytes) did not fit",
                double(n) * double(element_bytes) / 1e9, n, element_bytes);
  std::string m = b;
  if (known) {
    std::snprintf(b, sizeof b, "; the GPU has %.3g GB free of %.3g GB", double(free_bytes) / 1e9, double(total_bytes) / 1e9);
    m += b;
  }
  throw Error(kExitSoftware, m + " (a smaller train_batch_size, eval_batch_size or embedding_size needs less)");
}
}  // namespace detail

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) : m_size(n) {
    if (n == 0) return;
    const cudaError_t e = cudaMalloc(reinterpret_cast<void**>(&m_ptr), n * sizeof(T));
    if (e == cudaErrorMemoryAllocation) detail::throw_device_out_of_memory(n, sizeof(T));
    if (e != cudaSuccess)
      detail::throw_gpu_error("CUDA", "cudaMalloc(&m_ptr, n * sizeof(T))", __FILE__, __LINE__, detail::cuda_error_message(e));
  }
  explicit DeviceBuffer(const std::vector<T>& v) : DeviceBuffer(v.size()) { upload(v); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : m_ptr(std::exchange(o.m_ptr, nullptr)), m_size(std::exchange(o.m_size, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(m_ptr, o.m_ptr);
    std::swap(m_size, o.m_size);
    return *this;
  }
  ~DeviceBuffer() {
    if (m_ptr) CUDA_CHECK_NOTHROW(cudaFree(m_ptr));
  }
  T* data() const { return m_ptr; }
  size_t size() const { return m_size; }
  // A blocking cudaMemcpy on the legacy default stream: from pageable memory it may return before
  // the data reach the device, and a cudaStreamNonBlocking stream does not wait for it. Callers
  // that launch on such a stream synchronize the device first (see GpuEngine's uploads_done).
  void upload(const std::vector<T>& v) {
    if (!v.empty())
      CUDA_CHECK(cudaMemcpy(m_ptr, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  // n elements starting at `from` (a pointer into this buffer), copied to the host.
  std::vector<T> download(const T* from, size_t n) const {
    std::vector<T> v(n);
    if (n) CUDA_CHECK(cudaMemcpy(v.data(), from, n * sizeof(T), cudaMemcpyDeviceToHost));
    return v;
  }
  std::vector<T> download() const { return download(m_ptr, m_size); }

 private:
  T* m_ptr = nullptr;
  size_t m_size = 0;
};

// Pinned (page-locked) host memory of n elements, for asynchronous copies back from the device.
template <typename T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t n) : m_size(n) {
    if (n > 0) CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&m_ptr), n * sizeof(T)));
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  PinnedBuffer(PinnedBuffer&& o) noexcept
      : m_ptr(std::exchange(o.m_ptr, nullptr)), m_size(std::exchange(o.m_size, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
    std::swap(m_ptr, o.m_ptr);
    std::swap(m_size, o.m_size);
    return *this;
  }
  ~PinnedBuffer() {
    if (m_ptr) CUDA_CHECK_NOTHROW(cudaFreeHost(m_ptr));
  }
  T* data() const { return m_ptr; }
  size_t size() const { return m_size; }

 private:
  T* m_ptr = nullptr;
  size_t m_size = 0;
};

// A non-blocking stream, synchronized and destroyed with its owner.
class CudaStream {
 public:
  CudaStream() { CUDA_CHECK(cudaStreamCreateWithFlags(&m_stream, cudaStreamNonBlocking)); }
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  ~CudaStream() {
    if (!m_stream) return;
    CUDA_CHECK_NOTHROW(cudaStreamSynchronize(m_stream));
    CUDA_CHECK_NOTHROW(cudaStreamDestroy(m_stream));
  }
  cudaStream_t get() const { return m_stream; }

 private:
  cudaStream_t m_stream = nullptr;
};

// An event without timing, for ordering one stream after another.
class CudaEvent {
 public:
  CudaEvent() { CUDA_CHECK(cudaEventCreateWithFlags(&m_event, cudaEventDisableTiming)); }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  ~CudaEvent() {
    if (m_event) CUDA_CHECK_NOTHROW(cudaEventDestroy(m_event));
  }
  cudaEvent_t get() const { return m_event; }

 private:
  cudaEvent_t m_event = nullptr;
};

}  // namespace convncf
