// common.hpp: small pieces shared by host and device code.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define CONVNCF_HD __host__ __device__ __forceinline__
#else
#define CONVNCF_HD inline
#endif

// Marks a kernel on a hot path: tests/test_kernel_resources.cpp fails when ptxas reports a
// register spill in any kernel declared `CONVNCF_HOT_KERNEL void name(...)`.
#define CONVNCF_HOT_KERNEL __global__

namespace convncf {

template <typename T>
CONVNCF_HD constexpr T ceil_div(T a, T b) { return (a + b - 1) / b; }

}  // namespace convncf
