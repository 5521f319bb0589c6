// test_conv_bias_relu.cpp: the CPU twins of the conv-layer kernels and the conv-layer oracle
// (kernels/conv_bias_relu_cpu.cpp), checked against written-out definitions, hand-worked cases and
// double-precision finite differences. Always runs; no GPU needed.
//   build/convncf_tests --gtest_filter='ConvAuxCpu.*:ConvFwdCpu.*:ConvBwdCpu.*'
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "convncf/conv_bias_relu.hpp"
#include "convncf/errors.hpp"
#include "convncf/rng.hpp"

using namespace convncf;

namespace {

template <typename T>
std::vector<T> uniform(size_t n, double lo, double hi, Rng& rng) {
  std::vector<T> v(n);
  for (T& x : v) x = static_cast<T>(lo + (hi - lo) * rng.uniform());
  return v;
}

struct Shape {
  int64_t n;
  int cin, cout, k, in_size;
  int so() const { return in_size / k; }
  size_t x_size() const { return static_cast<size_t>(n) * cin * in_size * in_size; }
  size_t w_size() const { return static_cast<size_t>(cout) * cin * k * k; }
  size_t y_size() const { return static_cast<size_t>(n) * cout * so() * so(); }
  std::string text() const {
    return "n=" + std::to_string(n) + " cin=" + std::to_string(cin) +
           " cout=" + std::to_string(cout) + " k=" + std::to_string(k) +
           " in_size=" + std::to_string(in_size);
  }
};

}  // namespace

// ---- the elementwise twins against their definitions ---------------------------------------

TEST(ConvAuxCpu, IndexMathIsNchw) {
  // conv_channel / channel_element_offset against plain loops over (p, c, s).
  for (const auto& [n, C, HW] : {std::array<int64_t, 3>{1, 1, 1}, {3, 5, 7}, {2, 32, 256}}) {
    int64_t idx = 0;
    for (int64_t p = 0; p < n; ++p)
      for (int c = 0; c < C; ++c)
        for (int64_t s = 0; s < HW; ++s, ++idx) {
          ASSERT_EQ(conv_channel(idx, static_cast<int>(C), HW), c);
          ASSERT_EQ(channel_element_offset(p * HW + s, c, static_cast<int>(C), HW), idx);
        }
  }
  EXPECT_EQ(nchw_offset(2, 3, 4, 1, 2, 3), ((2 * 3 + 1) * 4 + 2) * 4 + 3);
}

TEST(ConvAuxCpu, BiasReluFwdMatchesDefinition) {
  Rng rng(11, kStreamSynthetic);
  const int64_t n = 3, HW = 7;
  const int C = 5;
  std::vector<float> Z = uniform<float>(n * C * HW, -1, 1, rng);
  const std::vector<float> b = uniform<float>(C, -0.5, 0.5, rng);
  Z[4] = -b[0];  // z + b == 0 exactly: ReLU gives 0
  std::vector<float> Y = Z;
  bias_relu_fwd_cpu(n, C, HW, Y.data(), b.data());
  int positive = 0;
  for (int64_t p = 0; p < n; ++p)
    for (int c = 0; c < C; ++c)
      for (int64_t s = 0; s < HW; ++s) {
        const size_t i = static_cast<size_t>((p * C + c) * HW + s);
        const float v = Z[i] + b[c];
        ASSERT_EQ(Y[i], v > 0.0f ? v : 0.0f) << "p=" << p << " c=" << c << " s=" << s;
        positive += Y[i] > 0.0f;
      }
  EXPECT_EQ(Y[4], 0.0f);
  EXPECT_GT(positive, 0);
  EXPECT_LT(positive, n * C * HW);
}

TEST(ConvAuxCpu, ReluBwdMatchesDefinition) {
  const std::vector<float> Y = {0.0f, 1.5f, -2.0f, 3.0f, 0.0f, 1e-30f};
  std::vector<float> dY = {7.0f, -8.0f, 9.0f, 10.0f, -11.0f, 12.0f};
  relu_bwd_cpu(static_cast<int64_t>(Y.size()), Y.data(), dY.data());
  const std::vector<float> want = {0.0f, -8.0f, 0.0f, 10.0f, 0.0f, 12.0f};
  EXPECT_EQ(dY, want);
  relu_bwd_cpu(0, nullptr, nullptr);  // nothing to do
}

TEST(ConvAuxCpu, BiasGradHandWorked) {
  // n = 2, C = 2, HW = 3: db[c] = sum over both pairs of channel c's three values.
  const std::vector<float> dZ = {1,          2,   3,  /*c1*/ 10, 20, 30, /*p1 c0*/ -4, 0.5f, 0.25f,
                                 /*c1*/ 100, 200, 300};
  std::vector<float> db(2, -1.0f);
  bias_grad_cpu(2, 2, 3, dZ.data(), db.data());
  EXPECT_EQ(db[0], 2.75f);
  EXPECT_EQ(db[1], 660.0f);
  // No elements: the sum over nothing.
  bias_grad_cpu(0, 2, 3, nullptr, db.data());
  EXPECT_EQ(db[0], 0.0f);
  EXPECT_EQ(db[1], 0.0f);
}

TEST(ConvAuxCpu, TwinsRejectBadSizes) {
  float x = 0.0f;
  EXPECT_THROW(bias_relu_fwd_cpu(-1, 1, 1, &x, &x), Error);
  EXPECT_THROW(bias_relu_fwd_cpu(1, 0, 1, &x, &x), Error);
  EXPECT_THROW(relu_bwd_cpu(-1, &x, &x), Error);
  EXPECT_THROW(bias_grad_cpu(1, 1, -1, &x, &x), Error);
  EXPECT_THROW(conv_fwd_cpu(1, 1, 1, 3, 2, &x, &x, &x, &x), Error);  // in_size < k
  EXPECT_THROW(conv_fwd_cpu(1, 0, 1, 1, 1, &x, &x, &x, &x), Error);
  EXPECT_THROW(conv_bwd_cpu(-1, 1, 1, 1, 1, &x, &x, &x, &x, &x, &x, nullptr), Error);
}

// ---- the layer oracle: a case worked by hand ---------------------------------------------------

// n = 1, cin = 1, cout = 2, k = 2, in_size = 4, X[i][j] = 4i + j + 1 (1..16).
//   channel 0: W = [[1,1],[1,1]], b = -20: block sums 14, 22, 46, 54 -> Z = -6, 2, 26, 34
//   channel 1: W = [[0,0],[0,2]], b = 0.5: 2 * bottom-right + 0.5 = 12.5, 16.5, 28.5, 32.5
// Backward with dY = 1 everywhere: dZ channel 0 = [0, 1, 1, 1] (block (0,0) is cut by the ReLU),
// channel 1 = [1, 1, 1, 1]; db = [3, 4];
//   dW[0][r][s] = X at (r, s) of blocks (0,1), (1,0), (1,1): [[3+9+11, 4+10+12], [7+13+15,
//   8+14+16]] dW[1][r][s] = X at (r, s) of all four blocks: [[1+3+9+11, 2+4+10+12], [5+7+13+15,
//   6+8+14+16]] dX = sum over channels of dZ * W: block (0,0) only W1, the other blocks W0 + W1.
struct HandCase {
  std::vector<float> X, W, b;
  HandCase() : W{1, 1, 1, 1, 0, 0, 0, 2}, b{-20.0f, 0.5f} {
    for (int v = 1; v <= 16; ++v) X.push_back(static_cast<float>(v));
  }
};

TEST(ConvFwdCpu, HandWorkedCase) {
  const HandCase h;
  std::vector<float> Y(8, -1.0f);
  conv_fwd_cpu(1, 1, 2, 2, 4, h.X.data(), h.W.data(), h.b.data(), Y.data());
  const std::vector<float> want = {0, 2, 26, 34, 12.5f, 16.5f, 28.5f, 32.5f};
  EXPECT_EQ(Y, want);
}

TEST(ConvBwdCpu, HandWorkedCase) {
  const HandCase h;
  std::vector<float> Y(8);
  conv_fwd_cpu(1, 1, 2, 2, 4, h.X.data(), h.W.data(), h.b.data(), Y.data());
  std::vector<float> dY(8, 1.0f), dW(8, -1.0f), db(2, -1.0f), dX(16, -1.0f);
  conv_bwd_cpu(1, 1, 2, 2, 4, h.X.data(), h.W.data(), Y.data(), dY.data(), dW.data(), db.data(),
               dX.data());
  EXPECT_EQ(dY, (std::vector<float>{0, 1, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(db, (std::vector<float>{3, 4}));
  EXPECT_EQ(dW, (std::vector<float>{23, 26, 35, 38, 24, 28, 40, 44}));
  EXPECT_EQ(dX, (std::vector<float>{0, 0, 1, 1,  //
                                    0, 2, 1, 3,  //
                                    1, 1, 1, 1,  //
                                    1, 3, 1, 3}));
}

// dX may be null (layer 1 when the caller does not want G): the rest is unchanged.
TEST(ConvBwdCpu, NullDxComputesTheRest) {
  const HandCase h;
  std::vector<float> Y(8);
  conv_fwd_cpu(1, 1, 2, 2, 4, h.X.data(), h.W.data(), h.b.data(), Y.data());
  std::vector<float> dY(8, 1.0f), dW(8), db(2);
  conv_bwd_cpu(1, 1, 2, 2, 4, h.X.data(), h.W.data(), Y.data(), dY.data(), dW.data(), db.data(),
               nullptr);
  EXPECT_EQ(db, (std::vector<float>{3, 4}));
  EXPECT_EQ(dW, (std::vector<float>{23, 26, 35, 38, 24, 28, 40, 44}));
}

// ---- the layer oracle against finite differences, in double ------------------------------------

namespace {

// L = sum_i G[i] * Y[i] with Y = conv_fwd_cpu(X, W, b).
double loss(const Shape& s, const std::vector<double>& X, const std::vector<double>& W,
            const std::vector<double>& b, const std::vector<double>& G) {
  std::vector<double> Y(s.y_size());
  conv_fwd_cpu(s.n, s.cin, s.cout, s.k, s.in_size, X.data(), W.data(), b.data(), Y.data());
  double L = 0.0;
  for (size_t i = 0; i < Y.size(); ++i) L += G[i] * Y[i];
  return L;
}

// The smallest |pre-activation| of the layer: Z = Y(X, W, b) - Y(-X, W, -b) since
// ReLU(z) - ReLU(-z) = z. Finite differences are exact for this piecewise-linear loss as long as
// no step crosses a ReLU kink, i.e. while h * |dZ/dtheta| stays below this margin.
double relu_margin(const Shape& s, const std::vector<double>& X, const std::vector<double>& W,
                   const std::vector<double>& b) {
  std::vector<double> Xn(X.size()), bn(b.size()), Yp(s.y_size()), Ym(s.y_size());
  for (size_t i = 0; i < X.size(); ++i) Xn[i] = -X[i];
  for (size_t i = 0; i < b.size(); ++i) bn[i] = -b[i];
  conv_fwd_cpu(s.n, s.cin, s.cout, s.k, s.in_size, X.data(), W.data(), b.data(), Yp.data());
  conv_fwd_cpu(s.n, s.cin, s.cout, s.k, s.in_size, Xn.data(), W.data(), bn.data(), Ym.data());
  double margin = INFINITY;
  for (size_t i = 0; i < Yp.size(); ++i) margin = std::min(margin, std::fabs(Yp[i] - Ym[i]));
  return margin;
}

void check_finite_differences(const Shape& s, uint64_t seed) {
  SCOPED_TRACE(s.text());
  Rng rng(seed, kStreamSynthetic);
  std::vector<double> X = uniform<double>(s.x_size(), -1, 1, rng);
  std::vector<double> W = uniform<double>(s.w_size(), -1, 1, rng);
  std::vector<double> b = uniform<double>(s.cout, -0.5, 0.5, rng);
  const std::vector<double> G = uniform<double>(s.y_size(), -1, 1, rng);
  const double h = 1e-6;
  ASSERT_GT(relu_margin(s, X, W, b), 1e-3) << "a pre-activation sits on the ReLU kink; pick "
                                              "another seed";

  std::vector<double> Y(s.y_size()), dY = G, dW(s.w_size()), db(s.cout), dX(s.x_size());
  conv_fwd_cpu(s.n, s.cin, s.cout, s.k, s.in_size, X.data(), W.data(), b.data(), Y.data());
  conv_bwd_cpu(s.n, s.cin, s.cout, s.k, s.in_size, X.data(), W.data(), Y.data(), dY.data(),
               dW.data(), db.data(), dX.data());
  ASSERT_TRUE(std::any_of(dW.begin(), dW.end(), [](double v) { return v != 0.0; }));

  auto check = [&](std::vector<double>& theta, const std::vector<double>& grad, const char* name) {
    int bad = 0;
    for (size_t i = 0; i < theta.size(); ++i) {
      const double keep = theta[i];
      theta[i] = keep + h;
      const double up = loss(s, X, W, b, G);
      theta[i] = keep - h;
      const double down = loss(s, X, W, b, G);
      theta[i] = keep;
      const double fd = (up - down) / (2 * h);
      if (!(std::fabs(fd - grad[i]) <= 1e-7 + 1e-7 * std::fabs(grad[i])) && bad++ < 5)
        ADD_FAILURE() << name << "[" << i << "]: backward " << grad[i] << ", finite difference "
                      << fd;
    }
    EXPECT_EQ(bad, 0) << name;
  };
  check(X, dX, "dX");
  check(W, dW, "dW");
  check(b, db, "db");
}

}  // namespace

TEST(ConvBwdCpu, MatchesFiniteDifferences) {
  check_finite_differences({2, 2, 3, 2, 4}, 21);
  check_finite_differences({1, 1, 2, 3, 6}, 22);
  check_finite_differences({3, 2, 3, 3, 9}, 23);
  // in_size not a multiple of k: the uncovered border has dX = 0 (and so does its difference).
  check_finite_differences({2, 2, 2, 2, 5}, 24);
  check_finite_differences({2, 3, 2, 1, 2}, 25);  // k = 1
}

// The float oracle the GPU tests use equals the double definition up to float rounding.
TEST(ConvFwdCpu, FloatMatchesDouble) {
  const Shape s{3, 2, 3, 3, 9};
  Rng rng(31, kStreamSynthetic);
  const std::vector<float> X = uniform<float>(s.x_size(), -1, 1, rng);
  const std::vector<float> W = uniform<float>(s.w_size(), -1, 1, rng);
  const std::vector<float> b = uniform<float>(s.cout, -0.5, 0.5, rng);
  const std::vector<float> G = uniform<float>(s.y_size(), -1, 1, rng);
  std::vector<float> Y(s.y_size()), dY = G, dW(s.w_size()), db(s.cout), dX(s.x_size());
  conv_fwd_cpu(s.n, s.cin, s.cout, s.k, s.in_size, X.data(), W.data(), b.data(), Y.data());
  conv_bwd_cpu(s.n, s.cin, s.cout, s.k, s.in_size, X.data(), W.data(), Y.data(), dY.data(),
               dW.data(), db.data(), dX.data());

  auto widen = [](const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); };
  const std::vector<double> Xd = widen(X), Wd = widen(W), bd = widen(b);
  std::vector<double> Yd(s.y_size()), dYd = widen(G), dWd(s.w_size()), dbd(s.cout), dXd(s.x_size());
  conv_fwd_cpu(s.n, s.cin, s.cout, s.k, s.in_size, Xd.data(), Wd.data(), bd.data(), Yd.data());
  // The float Y decides the ReLU mask on both sides, so the two backward passes see the same dZ.
  const std::vector<double> Ymask = widen(Y);
  conv_bwd_cpu(s.n, s.cin, s.cout, s.k, s.in_size, Xd.data(), Wd.data(), Ymask.data(), dYd.data(),
               dWd.data(), dbd.data(), dXd.data());
  auto expect_rounded = [](const std::vector<float>& f, const std::vector<double>& d,
                           const char* name) {
    ASSERT_EQ(f.size(), d.size());
    for (size_t i = 0; i < f.size(); ++i)
      ASSERT_EQ(f[i], static_cast<float>(d[i])) << name << "[" << i << "]";
  };
  // Both accumulate in double from the same float inputs, so the float results are the double
  // results rounded once.
  for (size_t i = 0; i < Y.size(); ++i) {
    const float z = static_cast<float>(Yd[i]);
    ASSERT_EQ(Y[i], z) << "Y[" << i << "]";
  }
  expect_rounded(dW, dWd, "dW");
  expect_rounded(db, dbd, "db");
  expect_rounded(dX, dXd, "dX");
}
