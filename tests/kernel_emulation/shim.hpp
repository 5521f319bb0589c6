// shim.hpp: a host emulation of the small part of CUDA that kernels/fused_tower.cu uses, so that
// its kernels and launchers run on the CPU (tests/kernel_emulation; the emulated source is
// generated from the real .cu at build time by generate_emulated.cmake).
//
// What is emulated:
//   - each CUDA thread of a block is a ucontext fiber with its own stack; blocks run one after
//     another; threadIdx, blockIdx, blockDim and gridDim are the fiber's / launch's values;
//   - __syncthreads() ends the thread's current phase: the scheduler runs every live thread of
//     the block up to its next barrier (or its exit), in ascending, descending or a seeded random
//     order of threadIdx.x (emu::order), then checks that every live thread waits at the same
//     barrier (same source line) and has passed the same number of barriers, and that no thread
//     has exited while others wait at a barrier; violations are reported as launch errors;
//   - warps: 32 consecutive threads of the block. A warp-collective call (wmma.hpp: the WMMA
//     API, __syncwarp) stops the thread until every lane of its warp has reached it; the warp
//     must agree on the call (line, arguments, fragments), else "lanes diverge" is reported; the
//     call then runs once for the warp. Warps' calls of one round run in the phase order of the
//     warps;
//   - dynamic shared memory is one buffer per block filled with NaN (each half a bf16 NaN too)
//     at the block's start, with a NaN guard zone after it that must be intact at the block's
//     end (writes past the launch's size are reported). `extern __shared__ __align__(N) T a[];`
//     becomes emu::shared_memory<T>(N): alignment within it counts only as far as N declares, so
//     a float4 view (emu::float4_view, from reinterpret_cast<float4*>) needs N >= 16 and an offset
//     that is a multiple of 16 bytes, a WMMA pointer N >= 32 and 32 bytes;
//   - the launch checks of the runtime that matter here: the dynamic shared memory of a launch or
//     of an occupancy query above 48 KiB must have been allowed with cudaFuncSetAttribute for
//     that kernel; block size 1..1024, grid size >= 1;
//   - float4 / make_float4, cudaGetDevice, cudaDeviceGetAttribute (emu::sms SMs, 227 KiB of
//     opt-in shared memory), cudaOccupancyMaxActiveBlocksPerMultiprocessor (emu::per_sm).
// What is not emulated:
//   - shuffles, votes, warp-synchronous code other than the WMMA calls and __syncwarp(), y/z
//     dimensions;
//   - any memory model beyond barrier ordering: every write is visible at once to every thread,
//     there are no caches, no weak ordering and no atomics;
//   - real races between concurrent threads: within a phase the threads run one at a time, each
//     from one barrier (or warp call) to the next. A race shows up only when one of the phase
//     orders tried (ascending, descending, random permutations) makes a reader run before or
//     after a writer of the same phase; races inside one thread's phase at sub-phase granularity
//     cannot occur;
//   - blocks running concurrently (a kernel that communicates between blocks is not checked);
//   - streams and asynchrony: a launch runs to completion before it returns;
//   - device numerics: the emulated kernels are compiled by the host compiler (the target uses
//     -ffp-contract=off, as the CPU twins, so the comparison is bit for bit); FMA contraction,
//     rounding intrinsics and fast-math of nvcc are not reproduced, and mma_sync sums in the
//     twins' order, not the tensor cores' (the GPU tests' tolerances cover the difference).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "wmma.hpp"

#define __global__
#define __device__
#define __host__
#define __forceinline__

struct float4 {
  float x, y, z, w;
};
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }

struct CUstream_st;
using cudaStream_t = CUstream_st*;
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16, cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };

namespace emu {

struct Dim3 {
  unsigned x, y, z;
};
extern Dim3 thread_idx, block_idx, block_dim, grid_dim;
extern float* smem;  // the running block's dynamic shared memory

enum Order { kAscending = 0, kDescending = 1, kRandom = 2 };
extern Order order;        // the order in which each phase runs the block's threads
extern unsigned seed;      // of kRandom's permutations
extern int sms, per_sm;    // what the device queries answer
constexpr size_t kMaxDynamicSmemDefault = 48 * 1024;
constexpr int kOptinSmemBytes = 227 * 1024;

// The errors found since the last take_errors() (barrier divergence, shared memory overrun,
// launches above the allowed shared memory, bad launch sizes), one line each.
std::vector<std::string> take_errors();
void report(const std::string& error);

// __syncthreads() at source line `line` of `file`.
void sync(const char* file, int line);

// Allowed dynamic shared memory per kernel (cudaFuncSetAttribute), keyed by the kernel's address.
void set_smem_limit(std::uintptr_t kernel, size_t bytes);
size_t smem_limit(std::uintptr_t kernel);

void run_grid(std::uintptr_t kernel, long long grid, long long block, size_t smem_bytes,
              const std::function<void()>& body);

// Device memory the test allocated (256-byte aligned, as cudaMalloc's): where a WMMA pointer that
// is not in shared memory must point.
void register_device_buffer(const void* p, size_t bytes);
void clear_device_buffers();

// extern __shared__ __align__(align) T name[]: the block's dynamic shared memory.
void declare_shared(size_t align);
template <typename T>
T* shared_memory(size_t align) {
  declare_shared(align);
  return reinterpret_cast<T*>(smem);
}

// reinterpret_cast<float4*>(p): reports a view that is not 16-byte aligned (in shared memory: as
// far as the declaration guarantees).
void check_float4_view(const void* p, const char* file, int line);
inline float4* float4_view(float* p, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  check_float4_view(p, file, line);
  return reinterpret_cast<float4*>(p);
}
inline const float4* float4_view_const(const float* p, const char* file = __builtin_FILE(),
                                       int line = __builtin_LINE()) {
  check_float4_view(p, file, line);
  return reinterpret_cast<const float4*>(p);
}

template <typename K>
std::uintptr_t kernel_key(K kernel) {
  return reinterpret_cast<std::uintptr_t>(kernel);
}

// kernel<<<grid, block, smem, stream>>>(args...) becomes emu::launch(kernel, emu::LaunchConfig(grid,
// block, smem, stream), args...). The arguments are copied, as a launch copies them.
struct LaunchConfig {
  LaunchConfig(long long g, long long b, size_t s = 0, cudaStream_t st = nullptr)
      : grid(g), block(b), smem_bytes(s), stream(st) {}
  long long grid, block;
  size_t smem_bytes;
  cudaStream_t stream;
};

template <typename K, typename... A>
void launch(K kernel, const LaunchConfig& c, A... args) {
  auto tup = std::make_tuple(args...);
  run_grid(kernel_key(kernel), c.grid, c.block, c.smem_bytes, [&]() { std::apply(kernel, tup); });
}

}  // namespace emu

#define threadIdx emu::thread_idx
#define blockIdx emu::block_idx
#define blockDim emu::block_dim
#define gridDim emu::grid_dim
#define __syncthreads() emu::sync(__FILE__, __LINE__)

inline cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
  *v = a == cudaDevAttrMultiProcessorCount ? emu::sms : emu::kOptinSmemBytes;
  return cudaSuccess;
}
template <typename K>
cudaError_t cudaFuncSetAttribute(K kernel, cudaFuncAttribute a, int v) {
  if (a != cudaFuncAttributeMaxDynamicSharedMemorySize || v < 0 || v > emu::kOptinSmemBytes)
    return cudaErrorInvalidValue;
  emu::set_smem_limit(emu::kernel_key(kernel), size_t(v));
  return cudaSuccess;
}
template <typename K>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* n, K kernel, int, size_t smem) {
  if (smem > emu::smem_limit(emu::kernel_key(kernel)))
    emu::report("occupancy query with " + std::to_string(smem) + " B of shared memory above the kernel's limit");
  *n = emu::per_sm;
  return cudaSuccess;
}

#define CUDA_CHECK(x)                                                          \
  do {                                                                         \
    if ((x) != cudaSuccess) emu::report(std::string("CUDA call failed: ") + #x); \
  } while (0)
#define CUDA_CHECK_LAUNCH() \
  do {                      \
  } while (0)
