// test_outer_product.cpp: the CPU twins of the outer product and its backward
// (kernels/outer_product_cpu.cpp) and the index math they share with the kernels. The backward is
// linear in each input, so on small-integer inputs (exact in float) central differences are exact
// and must match bit for bit. Always runs; no GPU needed.
//   build/convncf_tests --gtest_filter='OuterProduct*Cpu*'
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "convncf/outer_product.hpp"
#include "convncf/rng.hpp"
#include "kernel_test_util.hpp"

using namespace convncf;
using namespace convncf::test;

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

// dp = G q and dq = G^T p are the gradients of L = sum_{a,c} G[a][c] p[a] q[c], which is linear in
// each of p and q: on small integers a central difference with step 1 is exact.
TEST(OuterProductBwdCpu, MatchesExactFiniteDifferences) {
  uint64_t seed = 30;
  for (const int E : {1, 3, 13, 64}) {
    SCOPED_TRACE("E=" + std::to_string(E));
    Rng rng(seed++, kStreamSynthetic);
    const int64_t n_pairs = 3;
    const int32_t n_users = 2, n_items = 3;
    std::vector<float> P = small_ints(size_t(n_users * E), 3, rng);
    std::vector<float> Q = small_ints(size_t(n_items * E), 3, rng);
    const std::vector<float> G = small_ints(size_t(n_pairs * E * E), 3, rng);
    const std::vector<int32_t> pu{1, 0, 1}, pi{2, 2, 0};
    std::vector<float> dp(size_t(n_pairs * E), NAN), dq(size_t(n_pairs * E), NAN);
    outer_product_bwd_cpu(n_pairs, E, pu.data(), pi.data(), P.data(), Q.data(), G.data(), dp.data(),
                          dq.data());
    for (int64_t b = 0; b < n_pairs; ++b) {
      auto L = [&] {
        double acc = 0;
        for (int a = 0; a < E; ++a)
          for (int c = 0; c < E; ++c)
            acc += double(G[size_t(outer_product_index(b, E, a, c))]) * P[size_t(pu[b] * E + a)] *
                   Q[size_t(pi[b] * E + c)];
        return acc;
      };
      auto fd = [&](std::vector<float>& v, size_t i) {
        const float x0 = v[i];
        v[i] = x0 + 1;
        const double lp = L();
        v[i] = x0 - 1;
        const double lm = L();
        v[i] = x0;
        return (lp - lm) / 2;
      };
      for (int e = 0; e < E; ++e) {
        EXPECT_EQ(double(dp[size_t(b * E + e)]), fd(P, size_t(pu[b] * E + e))) << b << " dp " << e;
        EXPECT_EQ(double(dq[size_t(b * E + e)]), fd(Q, size_t(pi[b] * E + e))) << b << " dq " << e;
      }
    }
    EXPECT_TRUE(any_nonzero(dp) && any_nonzero(dq));
  }
}

// Random floats, E not a multiple of anything: close to the sums in double.
TEST(OuterProductBwdCpu, CloseToDoubleSums) {
  const int E = 77;
  Rng rng(40, kStreamSynthetic);
  const std::vector<float> P = normals(size_t(E), 1, rng), Q = normals(size_t(2 * E), 1, rng);
  const std::vector<float> G = normals(size_t(2 * E * E), 1, rng);
  const std::vector<int32_t> pu{0, 0}, pi{1, 0};
  std::vector<float> dp(static_cast<size_t>(2 * E)), dq(static_cast<size_t>(2 * E));
  outer_product_bwd_cpu(2, E, pu.data(), pi.data(), P.data(), Q.data(), G.data(), dp.data(),
                        dq.data());
  for (int b = 0; b < 2; ++b)
    for (int e = 0; e < E; ++e) {
      double sp = 0, sq = 0, mp = 0, mq = 0;
      for (int k = 0; k < E; ++k) {
        const double gp =
            double(G[size_t(outer_product_index(b, E, e, k))]) * Q[size_t(pi[b] * E + k)];
        const double gq = double(G[size_t(outer_product_index(b, E, k, e))]) * P[size_t(k)];
        sp += gp, sq += gq, mp += std::abs(gp), mq += std::abs(gq);
      }
      EXPECT_NEAR(dp[size_t(b * E + e)], sp, 1e-5 * mp);
      EXPECT_NEAR(dq[size_t(b * E + e)], sq, 1e-5 * mq);
    }
}
