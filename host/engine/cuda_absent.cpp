// cuda_absent.cpp: what stands in for host/cuda/ in a build without CUDA (CONVNCF_CUDA=OFF): no
// device is ever usable, and asking for one is the documented "unavailable" error (exit 69).
#include <string>

#include "convncf/engine.hpp"
#include "convncf/errors.hpp"
#include "convncf/gpu.hpp"

namespace convncf {

namespace {
const char* kNoCuda = "this convncf was built without CUDA (CONVNCF_CUDA=OFF): only the CPU engine is available";
}  // namespace

bool cuda_device_available(std::string* reason) {
  if (reason) *reason = kNoCuda;
  return false;
}

std::string cuda_device_summary() { return std::string("GPU: none (") + kNoCuda + ")"; }

CudaInfo cuda_info() {
  CudaInfo info;
  info.reason = kNoCuda;
  return info;
}

int use_rank_device(int) { throw Error(kExitUnavailable, kNoCuda); }

bool gpu_selftest(std::string*) { throw Error(kExitUnavailable, kNoCuda); }

std::unique_ptr<Engine> make_cuda_engine(const EngineOptions&, const Split&) { throw Error(kExitUnavailable, kNoCuda); }

}  // namespace convncf
