// test_outer_product.cpp: the CPU twin of the outer product (kernels/outer_product_cpu.cpp) and the
// index math it shares with the kernels. Always runs; no GPU needed.
//   build/convncf_tests --gtest_filter='OuterProduct*Cpu*'
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "convncf/outer_product.hpp"
#include "convncf/rng.hpp"

using namespace convncf;

namespace {

template <typename T>
struct Case {
  int64_t B;
  int E;
  int32_t n_users, n_items;
  std::vector<int32_t> user, item;
  std::vector<T> P, Q;
};

template <typename T>
Case<T> make_case(int64_t B, int E, int32_t n_users, int32_t n_items, uint64_t seed) {
  Rng rng(seed, kStreamSynthetic);
  Case<T> c{B, E, n_users, n_items, {}, {}, {}, {}};
  for (int64_t b = 0; b < B; ++b) {
    c.user.push_back(static_cast<int32_t>(rng.index(n_users)));
    c.item.push_back(static_cast<int32_t>(rng.index(n_items)));
  }
  for (int64_t k = 0; k < int64_t{n_users} * E; ++k) c.P.push_back(static_cast<T>(rng.normal()));
  for (int64_t k = 0; k < int64_t{n_items} * E; ++k) c.Q.push_back(static_cast<T>(rng.normal()));
  return c;
}

struct Size {
  int64_t B;
  int E;
};
// Odd E, B = 1, E = 1, the model's E = 64, and a batch with repeated ids.
const Size kSizes[] = {{1, 1}, {1, 64}, {3, 7}, {5, 4}, {17, 13}, {64, 64}, {200, 5}, {2, 100}};

// The direct formula, written out without the shared helpers. For float the product is formed in
// double (exact: 24 + 24 significant bits fit in 53) and rounded once, which is what a correctly
// rounded float multiply gives, so the twin must match it bit for bit.
template <typename T>
T direct(const Case<T>& c, int64_t b, int a, int col) {
  const double p = c.P[static_cast<size_t>(c.user[b]) * c.E + a];
  const double q = c.Q[static_cast<size_t>(c.item[b]) * c.E + col];
  return static_cast<T>(p * q);
}

template <typename T>
void check_twin() {
  uint64_t seed = 1234;
  for (const Size& s : kSizes) {
    SCOPED_TRACE("B=" + std::to_string(s.B) + " E=" + std::to_string(s.E));
    const Case<T> c = make_case<T>(s.B, s.E, 11, 7, seed++);
    std::vector<T> out(static_cast<size_t>(s.B) * s.E * s.E, T(-12345));
    outer_product_fwd_cpu<T>(s.B, s.E, c.user.data(), c.item.data(), c.P.data(), c.Q.data(),
                             out.data());
    bool any_nonzero = false;
    int64_t mismatches = 0;
    size_t k = 0;  // out is walked in NCHW order: b, then row a, then column
    for (int64_t b = 0; b < s.B; ++b) {
      for (int a = 0; a < s.E; ++a) {
        for (int col = 0; col < s.E; ++col, ++k) {
          const T want = direct(c, b, a, col);
          if (out[k] != want && mismatches++ < 5) {
            ADD_FAILURE() << "out[" << b << "][0][" << a << "][" << col << "] = " << out[k]
                          << ", expected " << want;
          }
          any_nonzero = any_nonzero || out[k] != T(0);
        }
      }
    }
    EXPECT_EQ(mismatches, 0);
    EXPECT_TRUE(any_nonzero) << "reference output is all zero: the test would pass on nothing";
  }
}

}  // namespace

TEST(OuterProductFwd, CpuTwinFloatMatchesFormula) { check_twin<float>(); }
TEST(OuterProductFwd, CpuTwinDoubleMatchesFormula) { check_twin<double>(); }

// The index helpers the kernels use: coord is the inverse of index, and index is NCHW order.
TEST(OuterProductFwd, CpuIndexMathRoundTrips) {
  for (int E : {1, 3, 4, 7, 64, 100}) {
    int64_t expected = 0;
    for (int64_t b = 0; b < 3; ++b) {
      for (int a = 0; a < E; ++a) {
        for (int c = 0; c < E; ++c, ++expected) {
          const int64_t idx = outer_product_index(b, E, a, c);
          ASSERT_EQ(idx, expected) << "E=" << E << " b=" << b << " a=" << a << " c=" << c;
          const OuterProductCoord k = outer_product_coord(idx, E);
          ASSERT_EQ(k.b, b);
          ASSERT_EQ(k.a, a);
          ASSERT_EQ(k.c, c);
        }
      }
    }
  }
  // 64-bit offsets: a batch whose map is past 2^31 elements, and a large embedding table.
  const int64_t big_b = (int64_t{1} << 31) / (64 * 64) + 5;
  const OuterProductCoord k = outer_product_coord(outer_product_index(big_b, 64, 63, 62), 64);
  EXPECT_EQ(k.b, big_b);
  EXPECT_EQ(k.a, 63);
  EXPECT_EQ(k.c, 62);
  EXPECT_EQ(embedding_offset(40000000, 64, 3), int64_t{40000000} * 64 + 3);
}
