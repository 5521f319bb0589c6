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

// The shares of schedule(static) without a chunk size, as libgomp cuts n iterations for `parts`
// threads: contiguous, the first n % parts shares one longer. The engine cuts its batches this way
// itself (ranks x threads virtual threads), so one process and several ranks agree by construction.
CONVNCF_HD int64_t static_share_begin(int64_t n, int64_t parts, int64_t v) {
  const int64_t q = n / parts, rem = n % parts;
  return v < rem ? v * (q + 1) : v * q + rem;
}
CONVNCF_HD int64_t static_share_end(int64_t n, int64_t parts, int64_t v) {
  return static_share_begin(n, parts, v) + (v < n % parts ? n / parts + 1 : n / parts);
}
// Local triple `local` of a rank's share of a step (sampling.hpp's StepShare: share_n positives
// from share_lo of the step's step_n, N triples each, laid out k·n + j): the step's triple.
CONVNCF_HD int64_t share_triple_in_step(int64_t local, int64_t share_n, int64_t share_lo, int64_t step_n) {
  return (local / share_n) * step_n + share_lo + local % share_n;
}

}  // namespace convncf
