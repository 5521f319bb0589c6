// cuda_check.hpp: the error macros for CUDA runtime, cuBLAS and cuDNN calls.
//   CUDA_CHECK(cudaMalloc(&p, n));   CUBLAS_CHECK(cublasSgemm(...)); CUDNN_CHECK(cudnnCreate(&h));
//   kernel<<<grid, block, smem, stream>>>(...); CUDA_CHECK_LAUNCH();
// A failed call throws convncf::Error(kExitSoftware) whose text names the call, file:line and the
// library's own message, e.g.
//   "CUDA error: cudaMalloc(&p, bytes) at host/device_buffer.cpp:42: out of memory
//   (cudaErrorMemoryAllocation)"
// Destructors must not throw: they use CUDA_CHECK_NOTHROW, which prints the same line to stderr.
//
// Only the CUDA runtime API header is included here. CUBLAS_CHECK and CUDNN_CHECK name the
// library's symbols only where they are expanded, so they need no include from this header: the
// file that calls cuBLAS or cuDNN has included cublas_v2.h or cudnn.h already, in any order, and a
// target that never uses them does not need their headers or libraries.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdio>
#include <string>

#include "convncf/errors.hpp"

namespace convncf {
namespace detail {

inline std::string gpu_error_text(const char* lib, const char* call, const char* file, int line,
                                  const std::string& message) {
  return std::string(lib) + " error: " + call + " at " + file + ":" + std::to_string(line) + ": " +
         message;
}

[[noreturn]] inline void throw_gpu_error(const char* lib, const char* call, const char* file,
                                         int line, const std::string& message) {
  throw Error(kExitSoftware, gpu_error_text(lib, call, file, line, message));
}

inline std::string cuda_error_message(cudaError_t e) {
  return std::string(cudaGetErrorString(e)) + " (" + cudaGetErrorName(e) + ")";
}

inline std::string status_message(const char* text, int code) {
  return std::string(text ? text : "unknown status") + " (status " + std::to_string(code) + ")";
}

}  // namespace detail
}  // namespace convncf

// The do/while(0) makes each macro one statement; the local names end in '_' so that they do not
// shadow the caller's (-Wshadow).
#define CUDA_CHECK(call)                                                                       \
  do {                                                                                         \
    const cudaError_t convncf_err_ = (call);                                                   \
    if (convncf_err_ != cudaSuccess)                                                           \
      ::convncf::detail::throw_gpu_error("CUDA", #call, __FILE__, __LINE__,                    \
                                         ::convncf::detail::cuda_error_message(convncf_err_)); \
  } while (0)

// For destructors and other places that must not throw: log the failure and go on.
#define CUDA_CHECK_NOTHROW(call)                                                                 \
  do {                                                                                           \
    const cudaError_t convncf_err_ = (call);                                                     \
    if (convncf_err_ != cudaSuccess)                                                             \
      std::fprintf(                                                                              \
          stderr, "%s\n",                                                                        \
          ::convncf::detail::gpu_error_text("CUDA", #call, __FILE__, __LINE__,                   \
                                            ::convncf::detail::cuda_error_message(convncf_err_)) \
              .c_str());                                                                         \
  } while (0)

// Right after a kernel launch: a bad configuration (grid, block, shared memory) shows up here, at
// the launch that caused it, instead of at some later unrelated call. Errors raised while the
// kernel runs surface at the next synchronizing call; define CONVNCF_SYNC_LAUNCHES to synchronize
// after every launch when hunting one down.
#if defined(CONVNCF_SYNC_LAUNCHES)
#define CUDA_CHECK_LAUNCH()              \
  do {                                   \
    CUDA_CHECK(cudaGetLastError());      \
    CUDA_CHECK(cudaDeviceSynchronize()); \
  } while (0)
#else
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
#endif

// Needs cublas_v2.h (cublasGetStatusString) where it is expanded, and libcublas at link time.
#define CUBLAS_CHECK(call)                                                      \
  do {                                                                          \
    const cublasStatus_t convncf_st_ = (call);                                  \
    if (convncf_st_ != CUBLAS_STATUS_SUCCESS)                                   \
      ::convncf::detail::throw_gpu_error(                                       \
          "cuBLAS", #call, __FILE__, __LINE__,                                  \
          ::convncf::detail::status_message(cublasGetStatusString(convncf_st_), \
                                            static_cast<int>(convncf_st_)));    \
  } while (0)

// Needs cudnn.h (cudnnGetErrorString) where it is expanded, and libcudnn at link time.
#define CUDNN_CHECK(call)                                                     \
  do {                                                                        \
    const cudnnStatus_t convncf_st_ = (call);                                 \
    if (convncf_st_ != CUDNN_STATUS_SUCCESS)                                  \
      ::convncf::detail::throw_gpu_error(                                     \
          "cuDNN", #call, __FILE__, __LINE__,                                 \
          ::convncf::detail::status_message(cudnnGetErrorString(convncf_st_), \
                                            static_cast<int>(convncf_st_)));  \
  } while (0)
