// test_sampling_gpu.cu: the device batch sampler (kernels/sampling.cu). The batch must equal its
// CPU twin gather_batch_cpu (kernels/sampling_cpu.cpp) exactly, uniform and by popularity, with
// one and several negatives per positive; the twin itself is checked in tests/test_sampling.cpp.
// CPU-only checks always run; the rest skips without a CUDA device.
//   build/convncf_tests --gtest_filter='GatherBatch*:NthAbsentItemHd*'
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "convncf/cuda_check.hpp"
#include "convncf/dataset.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/errors.hpp"
#include "convncf/rng.hpp"
#include "convncf/sampling.hpp"
#include "gpu_test_util.hpp"

namespace {

using convncf::DeviceBuffer;

// A random training set: per user a sorted CSR row and its positives. Users 0 and 1 have degree 0,
// users 2 and 3 miss only one item, the others a random share (with one item, some have every item:
// their positives stay out of the epoch's order, as in host/engine/schedule.cpp). Degree-0 users get one
// positive each anyway (an item the CSR does not list): the sampler never checks the two agree, and
// this makes it draw from a row with nothing to skip.
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

// The twin for one batch, with zero padding to B_cap.
void host_batch(const TrainSet& s, const std::vector<int64_t>& order, int64_t B_cap, int64_t n, int32_t N,
                int64_t lo, int epoch, uint64_t seed, const convncf::PopularityTable* pop,
                std::vector<int32_t>& user, std::vector<int32_t>& pos, std::vector<int32_t>& neg) {
  user.assign(size_t(B_cap), -1);
  pos.assign(size_t(B_cap), -1);
  neg.assign(size_t(B_cap), -1);
  convncf::gather_batch_cpu(B_cap, n, N, lo, epoch, seed, order.data(), s.train_user.data(), s.train_item.data(),
                            s.offsets.data(), s.items.data(), s.n_items, pop ? pop->cdf.data() : nullptr,
                            pop ? pop->row_cum.data() : nullptr, user.data(), pos.data(), neg.data());
}

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

TEST(GatherBatch, MatchesTwinExactly) {
  CONVNCF_REQUIRE_GPU();
  convncf::Rng rng(77, convncf::kStreamSynthetic);
  struct Shape {
    int32_t n_users, n_items;
  };
  for (const Shape sh : {Shape{6, 1}, Shape{9, 2}, Shape{40, 37}, Shape{300, 1000}}) {
    const TrainSet s = random_train_set(rng, sh.n_users, sh.n_items);
    // The epoch's order as host/engine/schedule.cpp builds it: the positives of users who miss at least
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
    // popularity: counts over the positives, some items never drawn (count 0)
    std::vector<int64_t> counts(size_t(s.n_items), 0);
    for (int32_t i : s.train_item) counts[size_t(i)] += i % 5 == 4 ? 0 : 1 + i % 3;
    convncf::Csr csr;
    csr.offsets = s.offsets;
    csr.items = s.items;
    const convncf::PopularityTable pop = convncf::make_popularity_table(csr, counts, 0.75);
    std::vector<int64_t> pop_order;  // popularity: only users with absent weight to draw from
    for (int64_t t : order)
      if (convncf::has_negative(csr, s.n_items, s.train_user[size_t(t)], &pop)) pop_order.push_back(t);
    DeviceBuffer<int64_t> d_pop_order(pop_order);
    DeviceBuffer<uint64_t> d_cdf(pop.cdf), d_cum(pop.row_cum.empty() ? std::vector<uint64_t>{0} : pop.row_cum);
    for (const bool popular : {false, true}) {
      const std::vector<int64_t>& ord = popular ? pop_order : order;
      const int64_t T_use = int64_t(ord.size());
      if (T_use < 2) continue;
      for (const int32_t N : {1, 3})
        for (const Batch& b0 : batches) {
          Batch b = b0;
          b.n = std::min<int64_t>(b.n, std::min<int64_t>(T_use - b.lo, b.B_cap / N));
          if (b.lo + b.n > T_use) continue;
          SCOPED_TRACE("users " + std::to_string(s.n_users) + " items " + std::to_string(s.n_items) + " B_cap " +
                       std::to_string(b.B_cap) + " n " + std::to_string(b.n) + " N " + std::to_string(N) + " lo " +
                       std::to_string(b.lo) + " epoch " + std::to_string(b.epoch) + (popular ? " popularity" : ""));
          const uint64_t seed = 2020 + uint64_t(b.B_cap);
          std::vector<int32_t> hu, hp, hn;
          host_batch(s, ord, b.B_cap, b.n, N, b.lo, b.epoch, seed, popular ? &pop : nullptr, hu, hp, hn);
          DeviceBuffer<int32_t> du(static_cast<size_t>(b.B_cap)), dp(static_cast<size_t>(b.B_cap)),
              dn(static_cast<size_t>(b.B_cap));
          for (const DeviceBuffer<int32_t>* d : {&du, &dp, &dn})
            CUDA_CHECK(cudaMemset(d->data(), 0xFF, d->size() * sizeof(int32_t)));  // -1 everywhere
          convncf::gather_batch_gpu(b.B_cap, b.n, N, b.lo, b.epoch, seed, popular ? d_pop_order.data() : d_order.data(),
                                    d_tu.data(), d_ti.data(), d_offsets.data(), d_items.data(), s.n_items,
                                    popular ? d_cdf.data() : nullptr, popular ? d_cum.data() : nullptr, du.data(),
                                    dp.data(), dn.data(), nullptr);
          CUDA_CHECK(cudaDeviceSynchronize());
          EXPECT_EQ(du.download(), hu);
          EXPECT_EQ(dp.download(), hp);
          EXPECT_EQ(dn.download(), hn);
          // the twin itself: every negative is an item the user does not have
          for (int64_t j = 0; j < b.n * N; ++j) {
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
}

TEST(GatherBatch, LauncherRejectsBadArguments) {
  int32_t x[6] = {0, 0, 0, 0, 0, 0};  // distinct arrays: the parameters are __restrict__
  const int64_t o[2] = {0, 0};
  const uint64_t w[2] = {0, 1};
  auto call = [&](int64_t B_cap, int64_t n, int32_t N, int64_t lo, int32_t n_items, const uint64_t* cdf) {
    convncf::gather_batch_gpu(B_cap, n, N, lo, 1, 1, &o[0], &x[0], &x[1], &o[1], &x[2], n_items, cdf, cdf ? w : nullptr,
                              &x[3], &x[4], &x[5], nullptr);
  };
  EXPECT_THROW(call(4, 5, 1, 0, 10, nullptr), convncf::Error);  // n > B_cap
  EXPECT_THROW(call(4, 3, 2, 0, 10, nullptr), convncf::Error);  // n * N > B_cap
  EXPECT_THROW(call(4, 2, 0, 0, 10, nullptr), convncf::Error);
  EXPECT_THROW(call(4, -1, 1, 0, 10, nullptr), convncf::Error);
  EXPECT_THROW(call(4, 2, 1, -1, 10, nullptr), convncf::Error);
  EXPECT_THROW(call(4, 2, 1, 0, 0, nullptr), convncf::Error);
  EXPECT_THROW(convncf::gather_batch_gpu(4, 1, 1, 0, 1, 1, &o[0], &x[0], &x[1], &o[1], &x[2], 10, w, nullptr, &x[3],
                                         &x[4], &x[5], nullptr),
               convncf::Error);  // the tables come in pairs
  EXPECT_NO_THROW(call(0, 0, 1, 0, 10, nullptr));  // nothing to write: no launch
}
