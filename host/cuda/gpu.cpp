// gpu.cpp: device discovery for `--device=auto`, the GPU tests' skip reason and the benchmarks'
// JSON lines. The CUDA runtime is linked statically; cuDNN dynamically (libcudnn.so.9, through
// convncf_core), so the loader has found it before main. Its version is read through dlopen of
// that same library, with the file the loader picked (dladdr), so that `convncf info` and the
// benchmarks' lines say which copy ran (tools/gpu_check.sh's libs step reports the same choice).
#include "convncf/gpu.hpp"

#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <cstdio>
#include <sstream>
#include <string>

#include "convncf/cuda_check.hpp"
#include "convncf/nccl.hpp"

namespace convncf {
namespace {

std::string cuda_error(cudaError_t e) {
  return std::string("'") + cudaGetErrorString(e) + "' (" + cudaGetErrorName(e) + ")";
}

// CUDA encodes versions as 1000 * major + 10 * minor.
std::string cuda_version_string(int v) {
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

// cuDNN 9 encodes its version as 10000 * major + 100 * minor + patch.
std::string cudnn_version_string(size_t v) {
  return std::to_string(v / 10000) + "." + std::to_string((v % 10000) / 100) + "." +
         std::to_string(v % 100);
}

std::string cudnn_runtime_version() {
  for (const char* lib : {"libcudnn.so.9", "libcudnn.so"}) {
    void* h = dlopen(lib, RTLD_LAZY | RTLD_LOCAL);
    if (!h) continue;
    std::string out;
    using GetVersion = size_t (*)();
    if (void* sym = dlsym(h, "cudnnGetVersion")) {
      Dl_info where{};
      const std::string file = dladdr(sym, &where) && where.dli_fname ? where.dli_fname : lib;
      out = cudnn_version_string(reinterpret_cast<GetVersion>(sym)()) + " (" + file + ")";
    }
    dlclose(h);
    if (!out.empty()) return out;
  }
  return "not found by the loader (libcudnn.so.9)";
}

}  // namespace

bool cuda_device_available(std::string* reason) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the error so that later calls do not report it again
    // Without a driver the runtime answers "CUDA driver version is insufficient for CUDA runtime
    // version", which reads like a driver fault: say what it means here.
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    if (!reason) return false;
    if (driver == 0)
      *reason = "no NVIDIA driver is installed (cudaGetDeviceCount returned " + cuda_error(e) + ")";
    else if (e == cudaErrorInsufficientDriver)
      *reason = "the NVIDIA driver supports CUDA " + cuda_version_string(driver) + ", older than the CUDA " +
                cuda_version_string(runtime) + " this convncf was built with (" + cuda_error(e) + ")";
    else if (e == cudaErrorNoDevice)
      *reason = "the NVIDIA driver (CUDA " + cuda_version_string(driver) + ") finds no GPU";
    else
      *reason = "cudaGetDeviceCount returned " + cuda_error(e);
    return false;
  }
  if (count == 0) {
    if (reason) *reason = "cudaGetDeviceCount found 0 devices";
    return false;
  }
  if (reason) reason->clear();
  return true;
}

CudaInfo cuda_info() {
  CudaInfo info;
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);  // 0 when no driver is installed
  cudaRuntimeGetVersion(&runtime);
  info.driver = driver > 0 ? cuda_version_string(driver) : std::string("none");
  info.runtime = cuda_version_string(runtime);
  info.cudnn = cudnn_runtime_version();
  const NcclInfo& nccl = nccl_info();
  if (nccl.found) {
    info.nccl = nccl.version + " (" + nccl.path + ")";
  } else {  // one line: "... Tried: A: not found; B: not found"
    info.nccl = "none: " + nccl.why;
    for (size_t at; (at = info.nccl.find("\n  ")) != std::string::npos;)
      info.nccl.replace(at, 3, info.nccl[at - 1] == ':' ? " " : "; ");
  }
  info.usable = cuda_device_available(&info.reason);
  if (!info.usable) return info;
  int count = 0;
  cudaGetDeviceCount(&count);
  for (int d = 0; d < count; ++d) {
    GpuDevice g;
    g.index = d;
    cudaDeviceProp p{};
    const cudaError_t e = cudaGetDeviceProperties(&p, d);
    if (e != cudaSuccess) {
      cudaGetLastError();
      g.error = "cudaGetDeviceProperties returned " + cuda_error(e);
      info.devices.push_back(g);
      continue;
    }
    int sm_clock_khz = 0, mem_clock_khz = 0;
    cudaDeviceGetAttribute(&sm_clock_khz, cudaDevAttrClockRate, d);
    cudaDeviceGetAttribute(&mem_clock_khz, cudaDevAttrMemoryClockRate, d);
    cudaGetLastError();
    g.name = p.name;
    g.cc_major = p.major;
    g.cc_minor = p.minor;
    g.sms = p.multiProcessorCount;
    g.memory_gib = static_cast<double>(p.totalGlobalMem) / (1 << 30);
    g.l2_mib = p.l2CacheSize >> 20;
    g.sm_clock_mhz = sm_clock_khz / 1000;
    g.memory_clock_mhz = mem_clock_khz / 1000;
    info.devices.push_back(g);
  }
  return info;
}

std::string cuda_device_summary() {
  const CudaInfo info = cuda_info();
  std::ostringstream s;
  s << "CUDA driver " << info.driver << ", runtime " << info.runtime << ", cuDNN " << info.cudnn << "\n";
  s << "NCCL (several ranks on GPUs): " << info.nccl << "\n";
  if (!info.usable) {
    s << info.reason << "\n";
    return s.str();
  }
  for (const GpuDevice& g : info.devices) {
    if (!g.error.empty()) {
      s << "device " << g.index << ": " << g.error << "\n";
      continue;
    }
    char mem[64];
    std::snprintf(mem, sizeof mem, "%.1f GiB", g.memory_gib);
    s << "device " << g.index << ": " << g.name << ", compute capability " << g.cc_major << "." << g.cc_minor << ", "
      << g.sms << " SMs, " << mem << ", L2 " << g.l2_mib << " MiB, SM clock " << g.sm_clock_mhz
      << " MHz, memory clock " << g.memory_clock_mhz << " MHz\n";
  }
  return s.str();
}

int use_rank_device(int local_rank) {
  int count = 0;
  CUDA_CHECK(cudaGetDeviceCount(&count));
  const int device = rank_device(local_rank, count);
  CUDA_CHECK(cudaSetDevice(device));
  return device;
}

}  // namespace convncf
