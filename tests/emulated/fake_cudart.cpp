// fake_cudart.cpp: the CUDA runtime of the emulated device. extern "C" definitions, with the
// installed cuda_runtime_api.h's signatures, of every runtime call the host sources make
// (the linker names any that is missing). Device memory is host memory from aligned_alloc,
// recorded in a registry (emulated_device.hpp) and filled with 0xFF bytes (NaN floats, -1 ints)
// as cudaMalloc leaves garbage, so a kernel reading what nobody wrote shows up. Every copy and
// memset runs at once (all streams are one in-order queue on the host); streams and events are
// dummy handles that are checked for being live. A copy checks its direction: the device side
// must lie inside one allocation, the host side must not be device memory.
// Also convncf::cuda_device_available / cuda_device_summary / use_rank_device (gpu.hpp;
// host/cuda/gpu.cpp is not built).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "convncf/errors.hpp"
#include "convncf/gpu.hpp"
#include "emulated_device.hpp"

namespace convncf {
namespace emul {
namespace {

struct Registry {
  std::mutex mu;
  std::map<uintptr_t, size_t> device;  // base -> bytes asked for
  std::set<uintptr_t> pinned;
  std::set<uintptr_t> streams, events;
  size_t device_bytes = 0;
};
Registry& reg() {
  static Registry* r = new Registry;  // never destroyed: destructors of statics may still free
  return *r;
}

// The block holding p (lock held), or end().
std::map<uintptr_t, size_t>::const_iterator find_block(const Registry& r, uintptr_t p) {
  auto it = r.device.upper_bound(p);
  if (it == r.device.begin()) return r.device.end();
  --it;
  // p may be one past the end only for an empty range; the caller checks the extent.
  if (p > it->first + it->second) return r.device.end();
  return it;
}

}  // namespace

bool is_device(const void* p) {
  Registry& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  return find_block(r, reinterpret_cast<uintptr_t>(p)) != r.device.end();
}

void check_device(const void* p, size_t bytes, const char* who, const char* what, bool allow_null) {
  if (!p) {
    if (allow_null) return;
    throw_internal(std::string("emulated device: ") + who + ": " + what + " is null");
  }
  Registry& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  const auto it = find_block(r, a);
  if (it == r.device.end())
    throw_internal(std::string("emulated device: ") + who + ": " + what +
                   " is not device memory (a host pointer or a freed block)");
  const size_t off = a - it->first;
  if (off + bytes > it->second || (bytes > 0 && off >= it->second))
    throw_internal(std::string("emulated device: ") + who + ": " + what + " needs " +
                   std::to_string(bytes) + " bytes at offset " + std::to_string(off) +
                   " of a device allocation of " + std::to_string(it->second) + " bytes");
}

void check_table_rows(const float* table, int E, const int32_t* ids, int64_t n, const char* who,
                      const char* what) {
  if (n <= 0) return;
  check_elems(ids, n, who, "row ids");
  int64_t top = -1;
  for (int64_t j = 0; j < n; ++j) {
    if (ids[j] < 0)
      throw_internal(std::string("emulated device: ") + who + ": " + what + " row id " +
                     std::to_string(ids[j]) + " at entry " + std::to_string(j) + " is negative");
    top = std::max<int64_t>(top, ids[j]);
  }
  check_elems(table, (top + 1) * E, who, what);
}

void check_stream(cudaStream_t s, const char* who) {
  if (!s) return;
  Registry& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  if (!r.streams.count(reinterpret_cast<uintptr_t>(s)))
    throw_internal(std::string("emulated device: ") + who + ": not a live stream");
}

int64_t live_allocations() {
  Registry& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  return int64_t(r.device.size());
}

}  // namespace emul
}  // namespace convncf

namespace {

using convncf::emul::reg;
constexpr size_t kTotalBytes = size_t(16) << 30;  // what cudaMemGetInfo reports

bool live_stream(cudaStream_t s) {
  if (!s) return true;
  auto& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.streams.count(reinterpret_cast<uintptr_t>(s)) != 0;
}
bool live_event(cudaEvent_t e) {
  auto& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  return e && r.events.count(reinterpret_cast<uintptr_t>(e)) != 0;
}

// Direction check of a copy: the host side may be anything but device memory.
bool copy_ok(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  if (count == 0) return true;
  if (!dst || !src) return false;
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind == cudaMemcpyDefault) return true;
  if (kind == cudaMemcpyHostToHost)
    return !convncf::emul::is_device(dst) && !convncf::emul::is_device(src);
  // Throws with the details when a device side is out of bounds.
  if (dst_dev)
    convncf::emul::check_device(dst, count, "cudaMemcpy", "destination");
  else if (convncf::emul::is_device(dst))
    return false;
  if (src_dev)
    convncf::emul::check_device(src, count, "cudaMemcpy", "source");
  else if (convncf::emul::is_device(src))
    return false;
  return true;
}

}  // namespace

static size_t round_up(size_t n) { return (n + 255) / 256 * 256; }

extern "C" {

cudaError_t CUDARTAPI cudaMalloc(void** devPtr, size_t size) {
  if (!devPtr) return cudaErrorInvalidValue;
  const size_t rounded = std::max<size_t>(round_up(size), 256);
  void* p = std::aligned_alloc(256, rounded);  // cudaMalloc's alignment
  if (!p) return cudaErrorMemoryAllocation;
  std::memset(p, 0xFF, rounded);
  auto& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  r.device[reinterpret_cast<uintptr_t>(p)] = size;
  r.device_bytes += size;
  *devPtr = p;
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaFree(void* devPtr) {
  if (!devPtr) return cudaSuccess;
  auto& r = reg();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    const auto it = r.device.find(reinterpret_cast<uintptr_t>(devPtr));
    if (it == r.device.end()) return cudaErrorInvalidValue;  // not a block's base
    r.device_bytes -= it->second;
    r.device.erase(it);
  }
  std::free(devPtr);
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaMallocHost(void** ptr, size_t size) {
  if (!ptr) return cudaErrorInvalidValue;
  void* p = std::aligned_alloc(256, std::max<size_t>(round_up(size), 256));
  if (!p) return cudaErrorMemoryAllocation;
  auto& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  r.pinned.insert(reinterpret_cast<uintptr_t>(p));
  *ptr = p;
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaFreeHost(void* ptr) {
  if (!ptr) return cudaSuccess;
  auto& r = reg();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    if (!r.pinned.erase(reinterpret_cast<uintptr_t>(ptr))) return cudaErrorInvalidValue;
  }
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaMemcpy(void* dst, const void* src, size_t count,
                                 enum cudaMemcpyKind kind) {
  if (!copy_ok(dst, src, count, kind)) return cudaErrorInvalidValue;
  if (count) std::memmove(dst, src, count);
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaMemcpyAsync(void* dst, const void* src, size_t count,
                                      enum cudaMemcpyKind kind, cudaStream_t stream) {
  if (!live_stream(stream)) return cudaErrorInvalidResourceHandle;
  return cudaMemcpy(dst, src, count, kind);
}

cudaError_t CUDARTAPI cudaMemset(void* devPtr, int value, size_t count) {
  if (count == 0) return cudaSuccess;
  convncf::emul::check_device(devPtr, count, "cudaMemset", "destination");
  std::memset(devPtr, value, count);
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaMemsetAsync(void* devPtr, int value, size_t count, cudaStream_t stream) {
  if (!live_stream(stream)) return cudaErrorInvalidResourceHandle;
  return cudaMemset(devPtr, value, count);
}

cudaError_t CUDARTAPI cudaStreamCreateWithFlags(cudaStream_t* pStream, unsigned int) {
  if (!pStream) return cudaErrorInvalidValue;
  char* h = new char;  // a unique address; CUstream_st itself is opaque
  auto& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  r.streams.insert(reinterpret_cast<uintptr_t>(h));
  *pStream = reinterpret_cast<cudaStream_t>(h);
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaStreamCreate(cudaStream_t* pStream) {
  return cudaStreamCreateWithFlags(pStream, cudaStreamDefault);
}

cudaError_t CUDARTAPI cudaStreamDestroy(cudaStream_t stream) {
  if (!stream) return cudaErrorInvalidResourceHandle;
  auto& r = reg();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    if (!r.streams.erase(reinterpret_cast<uintptr_t>(stream)))
      return cudaErrorInvalidResourceHandle;
  }
  delete reinterpret_cast<char*>(stream);
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaStreamSynchronize(cudaStream_t stream) {
  return live_stream(stream) ? cudaSuccess : cudaErrorInvalidResourceHandle;
}

cudaError_t CUDARTAPI cudaDeviceSynchronize(void) { return cudaSuccess; }

cudaError_t CUDARTAPI cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
  if (!event) return cudaErrorInvalidValue;
  char* h = new char;
  auto& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  r.events.insert(reinterpret_cast<uintptr_t>(h));
  *event = reinterpret_cast<cudaEvent_t>(h);
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaEventCreate(cudaEvent_t* event) {
  return cudaEventCreateWithFlags(event, cudaEventDefault);
}

cudaError_t CUDARTAPI cudaEventDestroy(cudaEvent_t event) {
  if (!event) return cudaErrorInvalidResourceHandle;
  auto& r = reg();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    if (!r.events.erase(reinterpret_cast<uintptr_t>(event))) return cudaErrorInvalidResourceHandle;
  }
  delete reinterpret_cast<char*>(event);
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  return live_event(event) && live_stream(stream) ? cudaSuccess : cudaErrorInvalidResourceHandle;
}

cudaError_t CUDARTAPI cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int) {
  return live_event(event) && live_stream(stream) ? cudaSuccess : cudaErrorInvalidResourceHandle;
}

cudaError_t CUDARTAPI cudaGetLastError(void) { return cudaSuccess; }
cudaError_t CUDARTAPI cudaPeekAtLastError(void) { return cudaSuccess; }

const char* CUDARTAPI cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument (emulated device)";
    case cudaErrorMemoryAllocation:
      return "out of memory (emulated device)";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle (emulated device)";
    default:
      return "unknown error (emulated device)";
  }
}

const char* CUDARTAPI cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidResourceHandle:
      return "cudaErrorInvalidResourceHandle";
    default:
      return "cudaErrorUnknown";
  }
}

cudaError_t CUDARTAPI cudaGetDeviceCount(int* count) {
  if (!count) return cudaErrorInvalidValue;
  *count = 1;
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaGetDevice(int* device) {
  if (!device) return cudaErrorInvalidValue;
  *device = 0;
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : cudaErrorInvalidDevice;
}

cudaError_t CUDARTAPI cudaGetDeviceProperties(struct cudaDeviceProp* prop, int device) {
  if (!prop || device != 0) return cudaErrorInvalidValue;
  *prop = cudaDeviceProp{};
  std::strncpy(prop->name, "emulated", sizeof(prop->name) - 1);
  prop->totalGlobalMem = kTotalBytes;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->sharedMemPerBlock = 48 << 10;
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaMemGetInfo(size_t* free, size_t* total) {
  if (!free || !total) return cudaErrorInvalidValue;
  auto& r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  *total = kTotalBytes;
  *free = kTotalBytes - std::min(r.device_bytes, kTotalBytes);
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaRuntimeGetVersion(int* runtimeVersion) {
  if (!runtimeVersion) return cudaErrorInvalidValue;
  *runtimeVersion = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaDriverGetVersion(int* driverVersion) {
  if (!driverVersion) return cudaErrorInvalidValue;
  *driverVersion = CUDART_VERSION;
  return cudaSuccess;
}

}  // extern "C"

namespace convncf {

bool cuda_device_available(std::string* reason) {
  if (reason) reason->clear();
  return true;
}

std::string cuda_device_summary() {
  return "emulated device (tests/emulated: host fakes of cudart, kernels and cuDNN)";
}

int use_rank_device(int) { return 0; }  // one emulated device: every rank's

CudaInfo cuda_info() {
  CudaInfo info;
  info.usable = true;
  info.nccl = "emulated";
  GpuDevice d;
  d.name = "emulated device";
  info.devices.push_back(d);
  return info;
}

}  // namespace convncf
