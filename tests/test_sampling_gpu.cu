// test_sampling_gpu.cu: the device batch sampler and the deterministic reductions
// (kernels/sampling.cu). The batch must equal the host loop of host/train.cpp (sample_negative
// with rng_hash(seed, kStreamNegative, (epoch << 40) + index)) exactly; the sums must be within
// 1e-12 of a long-double reference and bit-identical from run to run. CPU-only checks always run;
// the rest skips without a CUDA device.
//   build/convncf_tests --gtest_filter='GatherBatch*:NthAbsentItemHd*:Reduce*'
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "convncf/cuda_check.hpp"
#include "convncf/dataset.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/errors.hpp"
#include "convncf/rng.hpp"
#include "convncf/reduce.hpp"
#include "convncf/regularization.hpp"
#include "convncf/sampling.hpp"
#include "gpu_test_util.hpp"

namespace {

using convncf::DeviceBuffer;

// A random training set: per user a sorted CSR row and its positives. Users 0 and 1 have
// degree 0, users 2 and 3 miss only one item, the others a random share (with one item, some
// have every item: their positives stay out of the epoch's order, as in host/train.cpp). Degree-0
// users get one positive each anyway (an item the CSR does not list): the sampler never checks the
// two agree, and this makes it draw from a row with nothing to skip.
struct TrainSet {
  int32_t n_users = 0, n_items = 0;
  std::vector<int64_t> offsets;
  std::vector<int32_t> items;
  std::vector<int32_t> train_user, train_item;
};

TrainSet random_train_set(convncf::Rng& rng, int32_t n_users, int32_t n_items) {
  TrainSet s;
  s.n_users = n_users;
  s.n_items = n_items;
  s.offsets.push_back(0);
  for (int32_t u = 0; u < n_users; ++u) {
    const double share = u < 2 ? 0.0 : u < 4 ? 2.0 : rng.uniform() * 0.9;
    const int32_t missing = u >= 2 && u < 4 ? int32_t(rng.index(uint32_t(n_items))) : -1;
    for (int32_t i = 0; i < n_items; ++i) {
      const bool in = share >= 1.0 ? i != missing : rng.uniform() < share;
      if (!in) continue;
      s.items.push_back(i);
      s.train_user.push_back(u);
      s.train_item.push_back(i);
    }
    if (u < 2) {
      s.train_user.push_back(u);
      s.train_item.push_back(int32_t(rng.index(uint32_t(n_items))));
    }
    s.offsets.push_back(int64_t(s.items.size()));
  }
  return s;
}

// The host loop of host/train.cpp for one batch, with zero padding to B_cap.
void host_batch(const TrainSet& s, const std::vector<int64_t>& order, int64_t B_cap, int64_t n,
                int64_t lo, int epoch, uint64_t seed, std::vector<int32_t>& user,
                std::vector<int32_t>& pos, std::vector<int32_t>& neg) {
  user.assign(size_t(B_cap), 0);
  pos.assign(size_t(B_cap), 0);
  neg.assign(size_t(B_cap), 0);
  for (int64_t j = 0; j < n; ++j) {
    const int64_t t = order[size_t(lo + j)];
    const int32_t u = s.train_user[size_t(t)];
    user[size_t(j)] = u;
    pos[size_t(j)] = s.train_item[size_t(t)];
    neg[size_t(j)] =
        convncf::sample_negative(s.items.data() + s.offsets[size_t(u)],
                                 s.offsets[size_t(u) + 1] - s.offsets[size_t(u)], s.n_items,
                                 convncf::rng_hash(seed, convncf::kStreamNegative,
                                                   (uint64_t(epoch) << 40) + uint64_t(lo + j)));
  }
}

// Long-double reference sums (64-bit mantissa on x86), far more exact than what is checked.
template <typename T, typename F>
long double ref_sum(const std::vector<T>& x, F f) {
  long double acc = 0;
  for (T v : x) acc += f(static_cast<long double>(v));
  return acc;
}

const int64_t kReduceSizes[] = {1, 7, 255, 256, 257, 1000, 1024 * 256 - 1, 1024 * 256 + 1, 3000017};

}  // namespace

// The header's search equals dataset.hpp's and the plain definition (count the absent items).
TEST(NthAbsentItemHd, MatchesPlainDefinition) {
  convncf::Rng rng(31, convncf::kStreamSynthetic);
  for (int trial = 0; trial < 300; ++trial) {
    const int32_t n_items = 1 + int32_t(rng.index(50));
    std::vector<int32_t> sorted, absent;
    const double share = rng.uniform();
    for (int32_t i = 0; i < n_items; ++i) (rng.uniform() < share ? sorted : absent).push_back(i);
    for (size_t r = 0; r < absent.size(); ++r) {
      const int64_t deg = int64_t(sorted.size());
      ASSERT_EQ(convncf::nth_absent_item(sorted.data(), deg, int64_t(r)), absent[r]);
      ASSERT_EQ(convncf::nth_absent_item(sorted.data(), deg, int64_t(r)), absent[r]);
    }
  }
}

TEST(GatherBatch, MatchesHostLoopExactly) {
  CONVNCF_REQUIRE_GPU();
  convncf::Rng rng(77, convncf::kStreamSynthetic);
  struct Shape {
    int32_t n_users, n_items;
  };
  for (const Shape sh : {Shape{6, 1}, Shape{9, 2}, Shape{40, 37}, Shape{300, 1000}}) {
    const TrainSet s = random_train_set(rng, sh.n_users, sh.n_items);
    // The epoch's order as host/train.cpp builds it: the positives of users who miss at least
    // one item (a user with every item has no negative), shuffled.
    std::vector<int64_t> order;
    for (size_t t = 0; t < s.train_user.size(); ++t) {
      const int32_t u = s.train_user[t];
      if (s.offsets[size_t(u) + 1] - s.offsets[size_t(u)] < s.n_items) order.push_back(int64_t(t));
    }
    const int64_t T = int64_t(order.size());
    ASSERT_GE(T, 2);
    for (int64_t t = T - 1; t > 0; --t)
      std::swap(order[size_t(t)], order[rng.index(uint32_t(t + 1))]);
    DeviceBuffer<int64_t> d_order(order), d_offsets(s.offsets);
    DeviceBuffer<int32_t> d_tu(s.train_user), d_ti(s.train_item), d_items(s.items);
    struct Batch {
      int64_t B_cap, n, lo;
      int epoch;
    };
    const std::vector<Batch> batches = {
        {1, 1, 0, 1},
        {1, 0, 0, 1},
        {7, std::min<int64_t>(T, 7), 0, 3},
        {300, std::min<int64_t>(T, 300), 0, 300},
        {2048, std::min<int64_t>(T, 2048), 0, 12},
        {256, std::min<int64_t>(T - 1, 100), 1, 7},
        {257, std::min<int64_t>(T, 257), T - std::min<int64_t>(T, 257), 2}};
    for (const Batch& b : batches) {
      SCOPED_TRACE("users " + std::to_string(s.n_users) + " items " + std::to_string(s.n_items) +
                   " B_cap " + std::to_string(b.B_cap) + " n " + std::to_string(b.n) + " lo " +
                   std::to_string(b.lo) + " epoch " + std::to_string(b.epoch));
      const uint64_t seed = 2020 + uint64_t(b.B_cap);
      std::vector<int32_t> hu, hp, hn;
      host_batch(s, order, b.B_cap, b.n, b.lo, b.epoch, seed, hu, hp, hn);
      DeviceBuffer<int32_t> du(static_cast<size_t>(b.B_cap)), dp(static_cast<size_t>(b.B_cap)),
          dn(static_cast<size_t>(b.B_cap));
      for (const DeviceBuffer<int32_t>* d : {&du, &dp, &dn})
        CUDA_CHECK(cudaMemset(d->data(), 0xFF, d->size() * sizeof(int32_t)));  // -1 everywhere
      convncf::gather_batch_gpu(b.B_cap, b.n, b.lo, b.epoch, seed, d_order.data(), d_tu.data(),
                                d_ti.data(), d_offsets.data(), d_items.data(), s.n_items, du.data(),
                                dp.data(), dn.data(), nullptr);
      CUDA_CHECK(cudaDeviceSynchronize());
      EXPECT_EQ(du.download(), hu);
      EXPECT_EQ(dp.download(), hp);
      EXPECT_EQ(dn.download(), hn);
      // The host loop itself: every negative is an item the user does not have.
      for (int64_t j = 0; j < b.n; ++j) {
        const int32_t u = hu[size_t(j)];
        const int32_t* row = s.items.data() + s.offsets[size_t(u)];
        const int32_t* end = s.items.data() + s.offsets[size_t(u) + 1];
        ASSERT_GE(hn[size_t(j)], 0);
        ASSERT_LT(hn[size_t(j)], s.n_items);
        ASSERT_FALSE(std::binary_search(row, end, hn[size_t(j)]));
      }
    }
  }
}

TEST(GatherBatch, LauncherRejectsBadArguments) {
  int32_t x[6] = {0, 0, 0, 0, 0, 0};  // distinct arrays: the parameters are __restrict__
  const int64_t o[2] = {0, 0};
  auto call = [&](int64_t B_cap, int64_t n, int64_t lo, int32_t n_items) {
    convncf::gather_batch_gpu(B_cap, n, lo, 1, 1, &o[0], &x[0], &x[1], &o[1], &x[2], n_items, &x[3],
                              &x[4], &x[5], nullptr);
  };
  EXPECT_THROW(call(4, 5, 0, 10), convncf::Error);  // n > B_cap
  EXPECT_THROW(call(4, -1, 0, 10), convncf::Error);
  EXPECT_THROW(call(4, 2, -1, 10), convncf::Error);
  EXPECT_THROW(call(4, 2, 0, 0), convncf::Error);
  EXPECT_NO_THROW(call(0, 0, 0, 10));  // nothing to write: no launch
}

TEST(Reduce, SumSquaresMatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  convncf::Rng rng(81, convncf::kStreamSynthetic);
  DeviceBuffer<double> partials(size_t(convncf::reduce_partials_size())), out(1);
  for (int64_t n : kReduceSizes) {
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = float(rng.normal() * 3.0);
    const long double ref = ref_sum(x, [](long double v) { return v * v; });
    ASSERT_GT(ref, 0);
    DeviceBuffer<float> dx(x);
    convncf::sum_squares_gpu(n, dx.data(), partials.data(), out.data(), nullptr);
    const double got = out.download()[0];
    EXPECT_LE(std::fabs(got - double(ref)), 1e-12 * double(ref)) << "n=" << n << " gpu " << got;
  }
  CUDA_CHECK(cudaMemset(out.data(), 0xFF, sizeof(double)));
  convncf::sum_squares_gpu(0, nullptr, partials.data(), out.data(), nullptr);
  EXPECT_EQ(out.download()[0], 0.0);
}

// Signed terms: the error is measured against the sum of |x| (the sum itself may cancel).
TEST(Reduce, SumMatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  convncf::Rng rng(82, convncf::kStreamSynthetic);
  DeviceBuffer<double> partials(size_t(convncf::reduce_partials_size())), out(1);
  for (int64_t n : kReduceSizes) {
    std::vector<double> x(static_cast<size_t>(n));
    for (double& v : x) v = rng.normal() + 0.1;
    const long double ref = ref_sum(x, [](long double v) { return v; });
    const long double abs_ref = ref_sum(x, [](long double v) { return v < 0 ? -v : v; });
    DeviceBuffer<double> dx(x);
    convncf::sum_gpu(n, dx.data(), partials.data(), out.data(), nullptr);
    const double got = out.download()[0];
    EXPECT_LE(std::fabs(got - double(ref)), 1e-12 * double(abs_ref)) << "n=" << n << " gpu " << got;
  }
  CUDA_CHECK(cudaMemset(out.data(), 0xFF, sizeof(double)));
  convncf::sum_gpu(0, nullptr, partials.data(), out.data(), nullptr);
  EXPECT_EQ(out.download()[0], 0.0);
}

// The same input twice, the partials buffer poisoned in between: the same bits.
TEST(Reduce, RunToRunBitIdentical) {
  CONVNCF_REQUIRE_GPU();
  convncf::Rng rng(83, convncf::kStreamSynthetic);
  const int64_t n = 3000017;
  std::vector<float> xf(static_cast<size_t>(n));
  std::vector<double> xd(static_cast<size_t>(n));
  for (size_t i = 0; i < xf.size(); ++i) {
    xf[i] = float(rng.normal());
    xd[i] = rng.normal() * 1e3;
  }
  DeviceBuffer<float> dxf(xf);
  DeviceBuffer<double> dxd(xd), partials(size_t(convncf::reduce_partials_size())), out(1);
  double first[2] = {0, 0};
  for (int run = 0; run < 3; ++run) {
    CUDA_CHECK(cudaMemset(partials.data(), run == 0 ? 0 : 0xFF, partials.size() * sizeof(double)));
    convncf::sum_squares_gpu(n, dxf.data(), partials.data(), out.data(), nullptr);
    const double a = out.download()[0];
    convncf::sum_gpu(n, dxd.data(), partials.data(), out.data(), nullptr);
    const double b = out.download()[0];
    if (run == 0) {
      first[0] = a;
      first[1] = b;
      continue;
    }
    EXPECT_EQ(std::memcmp(&a, &first[0], sizeof a), 0)
        << "run " << run << ": " << a << " vs " << first[0];
    EXPECT_EQ(std::memcmp(&b, &first[1], sizeof b), 0)
        << "run " << run << ": " << b << " vs " << first[1];
  }
}

TEST(Reduce, CountNonFiniteAddsToOut) {
  CONVNCF_REQUIRE_GPU();
  convncf::Rng rng(84, convncf::kStreamSynthetic);
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t n : {1, 255, 257, 100000, 1024 * 256 * 70 + 3}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = float(rng.normal());
    // Finite extremes that must not count.
    x[0] = std::numeric_limits<float>::max();
    if (n > 1) x[1] = std::numeric_limits<float>::denorm_min();
    if (n > 2) x[2] = -std::numeric_limits<float>::max();
    int32_t want = 0;
    const float bad[3] = {std::nanf(""), inf, -inf};
    for (int k = 0; k < 40 && n > 3; ++k) {
      const size_t at = 3 + rng.index(uint32_t(n - 3));
      if (std::isfinite(x[at])) ++want;
      x[at] = bad[k % 3];
    }
    DeviceBuffer<float> dx(x);
    DeviceBuffer<int32_t> out(std::vector<int32_t>{5});
    convncf::count_non_finite_gpu(n, dx.data(), out.data(), nullptr);
    EXPECT_EQ(out.download()[0], 5 + want) << "n=" << n;
    convncf::count_non_finite_gpu(0, nullptr, out.data(), nullptr);
    EXPECT_EQ(out.download()[0], 5 + want) << "n=0 must add nothing";
  }
}

// y += float(coef / sqrt(sumsq) * double(x)): the same operations on host and device, each
// correctly rounded (double sqrt and division are IEEE on the device), so the bits must match.
TEST(Reduce, NormGradMatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  convncf::Rng rng(85, convncf::kStreamSynthetic);
  DeviceBuffer<double> partials(size_t(convncf::reduce_partials_size())), sumsq(1);
  for (int64_t n : {1, 255, 257, 100000, 1024 * 256 * 70 + 3}) {
    std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
    for (float& v : x) v = float(rng.normal());
    for (float& v : y) v = float(rng.normal() * 0.1);
    DeviceBuffer<float> dx(x), dy(y);
    convncf::sum_squares_gpu(n, dx.data(), partials.data(), sumsq.data(), nullptr);
    const double s = sumsq.download()[0];
    const double coef = 0.1;
    convncf::norm_grad_gpu(n, coef, sumsq.data(), dx.data(), dy.data(), nullptr);
    const std::vector<float> got = dy.download();
    const double c = coef / std::sqrt(s);
    int64_t bad = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const float want = y[i] + static_cast<float>(c * double(x[i]));
      if (!(got[i] == want) && bad++ < 5)
        ADD_FAILURE() << "n=" << n << " y[" << i << "]: gpu " << got[i] << ", cpu " << want;
    }
    EXPECT_EQ(bad, 0);
  }
  // A zero norm adds nothing.
  std::vector<float> zeros(100, 0.0f), y(100, 0.5f);
  DeviceBuffer<float> dz(zeros), dy(y);
  convncf::sum_squares_gpu(100, dz.data(), partials.data(), sumsq.data(), nullptr);
  convncf::norm_grad_gpu(100, 0.1, sumsq.data(), dz.data(), dy.data(), nullptr);
  EXPECT_EQ(dy.download(), y);
}

TEST(Reduce, LaunchersRejectBadArguments) {
  double d[3] = {0, 0, 0};  // distinct arrays: the parameters are __restrict__
  float f[2] = {0, 0};
  int32_t k = 0;
  EXPECT_THROW(convncf::sum_squares_gpu(-1, &f[0], &d[0], &d[1], nullptr), convncf::Error);
  EXPECT_THROW(convncf::sum_gpu(-1, &d[0], &d[1], &d[2], nullptr), convncf::Error);
  EXPECT_THROW(convncf::sum_squares_gpu(1, &f[0], nullptr, &d[0], nullptr), convncf::Error);
  EXPECT_THROW(convncf::count_non_finite_gpu(-1, &f[0], &k, nullptr), convncf::Error);
  EXPECT_THROW(convncf::norm_grad_gpu(-1, 1.0, &d[0], &f[0], &f[1], nullptr), convncf::Error);
  EXPECT_NO_THROW(convncf::count_non_finite_gpu(0, nullptr, nullptr, nullptr));
  EXPECT_NO_THROW(convncf::norm_grad_gpu(0, 1.0, nullptr, nullptr, nullptr, nullptr));
  EXPECT_EQ(convncf::reduce_partials_size(), 1024);
}
