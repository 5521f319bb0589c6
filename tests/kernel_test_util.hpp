// kernel_test_util.hpp: seeded inputs for the kernels' tests, CPU (the twins) and GPU alike, and
// the batch shapes the per-pair kernels' GPU tests share. Plain C++ (gpu_test_util.hpp has what
// needs a device).
//   using convncf::test::normals;  // then normals(n, scale, rng) as before
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "convncf/rng.hpp"

namespace convncf {
namespace test {

// Small integers in [-k, k]: sums and products of a few of them are exact in float.
inline std::vector<float> small_ints(size_t n, int k, Rng& rng) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(static_cast<int>(rng.index(uint32_t(2 * k + 1))) - k);
  return v;
}

// n values scale * N(0, 1) in float.
inline std::vector<float> normals(size_t n, double scale, Rng& rng) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(scale * rng.normal());
  return v;
}

// n ids in [0, bound).
inline std::vector<int32_t> ids(size_t n, int32_t bound, Rng& rng) {
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = static_cast<int32_t>(rng.index(static_cast<uint32_t>(bound)));
  return v;
}

inline bool any_nonzero(const std::vector<float>& v) {
  return std::any_of(v.begin(), v.end(), [](float x) { return x != 0.0f; });
}

// The per-pair kernels' GPU tests (pairs, bpr, regularization, outer_product_bwd): tables of
// kUsers and kItems rows, batches of B_cap triples of which n_valid are real.
inline constexpr int32_t kUsers = 37, kItems = 53;

struct BatchSize {
  int64_t B_cap, n_valid;
};

struct RowCase {
  int64_t B_cap, n_valid;
  int E;
};
inline constexpr RowCase kRowCases[] = {{1, 1, 1},       {1, 0, 13},       {5, 5, 1},
                                        {300, 298, 64},  {1000, 1000, 13}, {257, 0, 64},
                                        {4096, 4000, 64}};

}  // namespace test
}  // namespace convncf
