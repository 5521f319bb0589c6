// gpu_test_util.hpp: what every GPU test needs: skip with the reason when no device is usable,
// poison device outputs, and compare a GPU result with its CPU twin within a tolerance, printing
// the largest errors and where they are (llm.c's validate_result).
//   CONVNCF_REQUIRE_GPU();                         // first line of a GPU test
//   convncf::test::poison(buf);                     // NaN-fill a DeviceBuffer<float>
//   convncf::test::expect_close(gpu, ref, 1e-6, 1e-5, "dW layer 2");
//   convncf::test::check_close(gpu, ref, ...);      // the same, or exact zeros for a zero ref
//   convncf::test::poison_all(buf), check_ids(gpu, ref, "pair_user")  // any type; int32 ids
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "convncf/cuda_check.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/gpu.hpp"

// Skips the calling test, naming why the device is not usable. A macro because GTEST_SKIP()
// returns from the function it is expanded in.
#define CONVNCF_REQUIRE_GPU()                                       \
  do {                                                              \
    std::string convncf_reason_;                                    \
    if (!::convncf::cuda_device_available(&convncf_reason_))        \
      GTEST_SKIP() << "no usable CUDA device: " << convncf_reason_; \
  } while (0)

namespace convncf {
namespace test {

// Fills a float buffer with NaN (every byte 0xFF), so an element a kernel never writes fails
// the comparison.
inline void poison(const DeviceBuffer<float>& b) {
  if (b.size()) CUDA_CHECK(cudaMemset(b.data(), 0xFF, b.size() * sizeof(float)));
}

// |gpu - ref| <= atol + rtol * |ref| for every element, NaN never close. On failure, reports the
// count of bad elements and the 5 largest errors with their flat indices. Also fails when `ref`
// is all zeros, so a test cannot pass on nothing (CUTLASS).
template <typename A, typename B>
void expect_close(const std::vector<A>& gpu, const std::vector<B>& ref, double atol, double rtol,
                  const std::string& what) {
  ASSERT_EQ(gpu.size(), ref.size()) << what << ": sizes differ";
  bool any_nonzero = false;
  std::vector<std::pair<double, size_t>> bad;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double r = static_cast<double>(ref[i]), g = static_cast<double>(gpu[i]);
    if (r != 0) any_nonzero = true;
    const double err = std::fabs(g - r);
    if (!(err <= atol + rtol * std::fabs(r))) bad.push_back({std::isnan(err) ? INFINITY : err, i});
  }
  EXPECT_TRUE(ref.empty() || any_nonzero) << what << ": the reference is all zeros";
  if (bad.empty()) return;
  std::sort(bad.begin(), bad.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
  std::ostringstream s;
  s << what << ": " << bad.size() << " of " << ref.size() << " elements off (atol " << atol
    << ", rtol " << rtol << "); largest:";
  for (size_t k = 0; k < std::min<size_t>(5, bad.size()); ++k)
    s << "\n  [" << bad[k].second << "] gpu " << static_cast<double>(gpu[bad[k].second]) << " ref "
      << static_cast<double>(ref[bad[k].second]);
  ADD_FAILURE() << s.str();
}

// Every byte 0xFF: NaN for float and double, -1 for int32.
template <typename T>
void poison_all(const DeviceBuffer<T>& b) {
  if (b.size()) CUDA_CHECK(cudaMemset(b.data(), 0xFF, b.size() * sizeof(T)));
}

// expect_close, except that an all-zero reference is allowed (pure padding, empty sums): then
// every element must be exactly zero (a NaN left by the poison is not).
template <typename T>
void check_close(const std::vector<T>& got, const std::vector<T>& ref, double atol, double rtol,
                 const std::string& what) {
  if (std::all_of(ref.begin(), ref.end(), [](T x) { return x == T(0); })) {
    ASSERT_EQ(got.size(), ref.size()) << what;
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < got.size(); ++i)
      if (!(got[i] == T(0)) && bad++ == 0) first = i;
    EXPECT_EQ(bad, 0u) << what << ": reference all zero, " << bad << " elements differ, first ["
                       << first << "] = " << (got.empty() ? 0.0 : double(got[first]));
    return;
  }
  expect_close(got, ref, atol, rtol, what);
}

// Ids equal element for element; on failure the count and the first 5 differences.
inline void check_ids(const std::vector<int32_t>& got, const std::vector<int32_t>& ref,
                      const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  std::ostringstream s;
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != ref[i] && bad++ < 5) s << "\n  [" << i << "] gpu " << got[i] << " ref " << ref[i];
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size() << " differ" << s.str();
}

}  // namespace test
}  // namespace convncf
