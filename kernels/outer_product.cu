// outer_product.cu: forward of the interaction map, out[b][0][a][c] = P[user[b]][a] *
// Q[item[b]][c]. CPU twin: kernels/outer_product_cpu.cpp. Tests: tests/test_outer_product_gpu.cu,
// which compares every element of each variant with the twin exactly (one multiply, so the bits
// must match):
//   build/convncf_tests --gtest_filter='OuterProductFwd.Kernel*'
// Variants:
//   1. outer_product_fwd_kernel1: the plain port of the twin. One thread per output element; the
//      flat index is split into (b, a, c) by outer_product_coord, and each thread reads its two
//      factors from global memory (the reads of a warp hit the same two rows, so L1 serves them).
//   2. outer_product_fwd_kernel2: one block per (user, item) pair, grid-stride over pairs. The two
//      rows are staged once in shared memory; when E % 4 == 0 and `out` is 16-byte aligned, each
//      thread writes a float4 (four columns of one row of the map), so the kernel is a pure
//      streaming write of B*E*E floats; otherwise it writes scalars.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "convncf/common.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/errors.hpp"
#include "convncf/outer_product.hpp"

namespace convncf {
namespace {

constexpr int kBlock1 = 256;
constexpr int kBlock2 = 256;
// Grid cap of variant 2: enough blocks to fill an H100/H200 many times over; larger batches loop.
constexpr int64_t kMaxGrid2 = 65536;

__global__ void outer_product_fwd_kernel1(int64_t B, int E,
                                          const int32_t* __restrict__ user,  // (B,)
                                          const int32_t* __restrict__ item,  // (B,)
                                          const float* __restrict__ P,       // (n_users, E)
                                          const float* __restrict__ Q,       // (n_items, E)
                                          float* __restrict__ out) {         // (B, 1, E, E)
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= B * E * E) return;
  const OuterProductCoord k = outer_product_coord(idx, E);
  out[idx] = outer_product_value(P, Q, user[k.b], item[k.b], E, k.a, k.c);
}

// Dynamic shared memory: 2*E floats, p row then q row.
CONVNCF_HOT_KERNEL void outer_product_fwd_kernel2(int64_t B, int E,
                                          const int32_t* __restrict__ user,  // (B,)
                                          const int32_t* __restrict__ item,  // (B,)
                                          const float* __restrict__ P,       // (n_users, E)
                                          const float* __restrict__ Q,       // (n_items, E)
                                          float* __restrict__ out,           // (B, 1, E, E)
                                          bool vec4) {
  extern __shared__ float smem[];
  float* p = smem;      // (E,)
  float* q = smem + E;  // (E,)
  const int e2 = E * E;
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    const int32_t u = user[b];
    const int32_t i = item[b];
    for (int t = threadIdx.x; t < E; t += blockDim.x) {
      p[t] = P[embedding_offset(u, E, t)];
      q[t] = Q[embedding_offset(i, E, t)];
    }
    __syncthreads();
    float* o = out + outer_product_index(b, E, 0, 0);
    if (vec4) {
      const int e4 = E / 4;
      for (int t = threadIdx.x; t < e2 / 4; t += blockDim.x) {
        const int a = t / e4;
        const int c = (t - a * e4) * 4;
        const float pa = p[a];
        // Same single multiply per element as outer_product_value.
        const float4 v = make_float4(pa * q[c], pa * q[c + 1], pa * q[c + 2], pa * q[c + 3]);
        *reinterpret_cast<float4*>(o + static_cast<int64_t>(a) * E + c) = v;
      }
    } else {
      for (int t = threadIdx.x; t < e2; t += blockDim.x) {
        const int a = t / E;
        const int c = t - a * E;
        o[t] = p[a] * q[c];
      }
    }
    // The next pair overwrites p and q: every thread must be done reading them.
    __syncthreads();
  }
}

}  // namespace

void outer_product_fwd(int64_t B, int E, const int32_t* __restrict__ user,
                       const int32_t* __restrict__ item, const float* __restrict__ P,
                       const float* __restrict__ Q, float* __restrict__ out, cudaStream_t stream,
                       int variant) {
  check_outer_product_fwd_args(B, E, user, item, P, Q, out, variant);
  if (B == 0) return;
  const int64_t n = B * E * E;
  if (variant == 1) {
    const int64_t grid = ceil_div<int64_t>(n, kBlock1);
    if (grid > 0x7fffffff)
      throw_internal("outer_product_fwd: B*E*E = " + std::to_string(n) +
                     " is too large for variant 1");
    outer_product_fwd_kernel1<<<static_cast<unsigned>(grid), kBlock1, 0, stream>>>(B, E, user, item,
                                                                                   P, Q, out);
  } else {
    const bool vec4 = E % 4 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0;
    const int64_t grid = std::min<int64_t>(B, kMaxGrid2);
    const size_t smem = 2 * static_cast<size_t>(E) * sizeof(float);
    outer_product_fwd_kernel2<<<static_cast<unsigned>(grid), kBlock2, smem, stream>>>(
        B, E, user, item, P, Q, out, vec4);
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace convncf
