// test_rank_gpu.cu: each ranking kernel (kernels/rank.cu) against its CPU twin
// (kernels/rank_cpu.cpp), every output compared exactly (integer counts; list entries are copies
// of scores): count_beating at sizes around the warp and block widths, users with 0 to 70
// positives (the kernel's 32-positive tiles), a block of users taken from the middle of the
// arrays (offsets not starting at 0), counts added to existing values; top_k_merge from empty and
// from filled lists, n around its 1024-item window, k from 1 to kTopKGpuMax. Launcher argument
// checks run everywhere; the rest skips without a usable CUDA device.
//   build/convncf_tests --gtest_filter='CountBeating.*:TopKMerge.*'
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "convncf/cuda_check.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/errors.hpp"
#include "convncf/rank.hpp"
#include "convncf/rng.hpp"
#include "gpu_test_util.hpp"
#include "rank_test_util.hpp"

using namespace convncf;
using namespace convncf::test;

TEST(CountBeating, Kernel1MatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  Rng rng(515, 3);
  int64_t cases = 0, nonzero = 0;
  for (int64_t nu_all : {1, 2, 5, 40}) {
    for (int32_t n : {1, 31, 32, 33, 257, 1000, 3000}) {
      const int32_t item_lo = int32_t(rng.index(100));
      const int32_t universe = item_lo + n + 20;  // some positives and exclusions off the chunk
      std::vector<int64_t> pos_offsets = {0}, excl_offsets = {0};
      std::vector<int32_t> positives, excl;
      std::vector<float> pos_score;
      for (int64_t u = 0; u < nu_all; ++u) {
        const int64_t m = u % 4 == 3 ? 0 : u % 4 == 2 ? 33 + rng.index(38) : rng.index(9);
        const std::vector<int32_t> p = distinct_items(rng, universe, m, {});
        const std::vector<int32_t> x = distinct_items(rng, universe, rng.index(uint32_t(universe) / 2), p);
        positives.insert(positives.end(), p.begin(), p.end());
        excl.insert(excl.end(), x.begin(), x.end());
        pos_offsets.push_back(int64_t(positives.size()));
        excl_offsets.push_back(int64_t(excl.size()));
        for (size_t j = 0; j < p.size(); ++j) pos_score.push_back(tied_score(rng));
      }
      // A block from the middle: offsets index the whole arrays.
      const int64_t q0 = nu_all / 3, nb = nu_all - q0;
      std::vector<float> scores(size_t(nb) * size_t(n));
      for (float& v : scores) v = tied_score(rng);
      std::vector<int64_t> ref(positives.size());
      for (int64_t& b : ref) b = int64_t(rng.index(1000));  // counts are added to these
      const std::vector<int64_t> start = ref;
      count_beating_cpu(nb, item_lo, n, scores.data(), pos_offsets.data() + q0, positives.data(),
                        pos_score.data(), excl_offsets.data() + q0, excl.data(), ref.data());

      DeviceBuffer<float> d_scores(scores), d_pos_score(pos_score);
      DeviceBuffer<int64_t> d_pos_offsets(pos_offsets), d_excl_offsets(excl_offsets), d_beat(start);
      DeviceBuffer<int32_t> d_positives(positives), d_excl(excl);
      count_beating_gpu(nb, item_lo, n, d_scores.data(), d_pos_offsets.data() + q0,
                        d_positives.data(), d_pos_score.data(), d_excl_offsets.data() + q0,
                        d_excl.data(), d_beat.data(), nullptr);
      CUDA_CHECK(cudaDeviceSynchronize());
      const std::vector<int64_t> got = d_beat.download();
      ASSERT_EQ(got.size(), ref.size());
      for (size_t j = 0; j < ref.size(); ++j) {
        EXPECT_EQ(got[j], ref[j]) << "nu " << nb << " n " << n << " positive slot " << j;
        nonzero += ref[j] != start[j];
      }
      ++cases;
    }
  }
  EXPECT_EQ(cases, 28);
  EXPECT_GT(nonzero, 100) << "the reference added almost nothing: the test would pass on nothing";
}

TEST(CountBeating, LauncherRejectsBadArguments) {
  const float s = 0.f;
  const int64_t off[] = {0, 0};
  const int32_t it = 0;
  int64_t beat = 0;
  EXPECT_THROW(count_beating_gpu(-1, 0, 1, &s, off, &it, &s, off, &it, &beat, nullptr), Error);
  EXPECT_THROW(count_beating_gpu(1, 0, -1, &s, off, &it, &s, off, &it, &beat, nullptr), Error);
  EXPECT_THROW(count_beating_gpu(1, 0, 1, nullptr, off, &it, &s, off, &it, &beat, nullptr), Error);
  EXPECT_THROW(count_beating_gpu(1, 0, 1, &s, nullptr, &it, &s, off, &it, &beat, nullptr), Error);
  EXPECT_THROW(count_beating_gpu(1, 0, 1, &s, off, &it, &s, nullptr, &it, &beat, nullptr), Error);
  // nothing to count launches nothing
  EXPECT_NO_THROW(count_beating_gpu(0, 0, 5, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                    nullptr, nullptr));
  EXPECT_NO_THROW(count_beating_gpu(3, 0, 0, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                    nullptr, nullptr));
}

TEST(TopKMerge, Kernel1MatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  Rng rng(616, 4);
  int64_t cases = 0;
  for (int64_t nu : {1, 3, 20}) {
    for (int32_t n : {1, 100, 1023, 1024, 1025, 5000}) {
      for (int32_t k : {1, 7, 64, kTopKGpuMax}) {
        // Two chunks of n items: the first from empty lists, the second into filled ones.
        const int32_t n_items = 2 * n + 3;
        std::vector<int64_t> excl_offsets = {0};
        std::vector<int32_t> excl;
        for (int64_t u = 0; u < nu; ++u) {
          const std::vector<int32_t> x =
              distinct_items(rng, n_items, u % 2 ? rng.index(uint32_t(n_items)) : 0, {});
          excl.insert(excl.end(), x.begin(), x.end());
          excl_offsets.push_back(int64_t(excl.size()));
        }
        std::vector<int32_t> li(size_t(nu) * size_t(k), -7), cnt(size_t(nu), 0);
        std::vector<float> ls(size_t(nu) * size_t(k), kNaN);
        DeviceBuffer<int64_t> d_excl_offsets(excl_offsets);
        DeviceBuffer<int32_t> d_excl(excl), d_li(li), d_cnt(cnt);
        DeviceBuffer<float> d_ls(ls);
        for (int32_t lo : {3, 3 + n}) {
          std::vector<float> scores(size_t(nu) * size_t(n));
          for (float& v : scores) v = tied_score(rng);
          top_k_merge_cpu(nu, lo, n, k, scores.data(), excl_offsets.data(), excl.data(), li.data(),
                          ls.data(), cnt.data());
          DeviceBuffer<float> d_scores(scores);
          top_k_merge_gpu(nu, lo, n, k, d_scores.data(), d_excl_offsets.data(), d_excl.data(),
                          d_li.data(), d_ls.data(), d_cnt.data(), nullptr);
          CUDA_CHECK(cudaDeviceSynchronize());
          const std::vector<int32_t> g_cnt = d_cnt.download(), g_li = d_li.download();
          const std::vector<float> g_ls = d_ls.download();
          const std::string what = "nu " + std::to_string(nu) + " n " + std::to_string(n) +
                                   " k " + std::to_string(k) + " lo " + std::to_string(lo);
          ASSERT_EQ(g_cnt, cnt) << what;
          for (int64_t u = 0; u < nu; ++u)
            for (int32_t j = 0; j < cnt[size_t(u)]; ++j) {
              const size_t at = size_t(u) * size_t(k) + size_t(j);
              ASSERT_EQ(g_li[at], li[at]) << what << " user " << u << " entry " << j;
              ASSERT_TRUE(g_ls[at] == ls[at] || (std::isnan(g_ls[at]) && std::isnan(ls[at])))
                  << what << " user " << u << " entry " << j;
            }
        }
        ++cases;
      }
    }
  }
  EXPECT_EQ(cases, 72);
}

TEST(TopKMerge, LauncherRejectsBadArguments) {
  const float s = 0.f;
  const int64_t off[] = {0, 0};
  int32_t it = 0, c = 0;
  float ls = 0.f;
  EXPECT_THROW(top_k_merge_gpu(-1, 0, 1, 1, &s, off, &it, &it, &ls, &c, nullptr), Error);
  EXPECT_THROW(top_k_merge_gpu(1, 0, 1, 0, &s, off, &it, &it, &ls, &c, nullptr), Error);
  EXPECT_THROW(top_k_merge_gpu(1, 0, 1, kTopKGpuMax + 1, &s, off, &it, &it, &ls, &c, nullptr), Error);
  EXPECT_THROW(top_k_merge_gpu(1, 0, 1, 1, &s, off, &it, nullptr, &ls, &c, nullptr), Error);
  EXPECT_NO_THROW(top_k_merge_gpu(0, 0, 1, 1, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                  nullptr));
  EXPECT_NO_THROW(top_k_merge_gpu(2, 0, 0, 1, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                  nullptr));
}
