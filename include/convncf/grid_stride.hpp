// grid_stride.hpp: the launch shape of the grid-stride kernels in kernels/head.cu, bpr.cu,
// pairs.cu, regularization.cu, reduce.cu and sampling.cu: blocks of kBlock threads, and at most
// kMaxGrid blocks (enough to fill an H200 many times; larger sizes loop), so no size overflows
// gridDim. Plain C++.
#pragma once
#include <algorithm>
#include <cstdint>

#include "convncf/common.hpp"

namespace convncf {
namespace grid_stride {

inline constexpr int kBlock = 256;
inline constexpr int64_t kMaxGrid = 65536;

// Blocks for n work items, one per thread: ceil(n / block), capped at kMaxGrid.
inline unsigned grid_for(int64_t n, int block) {
  return static_cast<unsigned>(std::min<int64_t>(ceil_div<int64_t>(n, block), kMaxGrid));
}

}  // namespace grid_stride
}  // namespace convncf
