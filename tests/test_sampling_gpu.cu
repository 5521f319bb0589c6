// test_sampling_gpu.cu: the device batch sampler (kernels/sampling.cu). The batch must equal the
// CPU engine's sampler, host/engine/cpu_training_engine.cpp (sample_negative with
// rng_hash(seed, kStreamNegative, (epoch << 40) + index)) exactly. CPU-only checks always run; the rest skips without a CUDA device.
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

// The CPU engine's sampler (host/engine/cpu_training_engine.cpp) for one batch, with zero padding to B_cap.
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
