// test_eval_gpu.cu: GPU evaluation (host/cuda/eval_gpu.cpp on kernels/rank.cu, whose kernels are
// checked against their twins in tests/test_rank_gpu.cu): evaluate_gpu against evaluate() and
// top_k_gpu against top_k() on the same scores: a table of (n_users x n_items) scores with many
// ties and some NaNs, served on the device by a DeviceScorer written here and on the host by a
// Scorer over the same numbers; full mode (at validation and test, users with several positives,
// one with 40), uni/pop and file-like modes; max_pairs from 1 up, so that blocks and chunks split
// awkwardly; a non-blocking stream. The checks of bad requests run everywhere; the rest skips
// without a usable CUDA device.
//   build/convncf_tests --gtest_filter='EvalGpu.*'
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "convncf/cuda_check.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/errors.hpp"
#include "convncf/eval_gpu.hpp"
#include "convncf/evaluate.hpp"
#include "convncf/rng.hpp"
#include "gpu_test_util.hpp"
#include "rank_test_util.hpp"

using namespace convncf;
using namespace convncf::test;

namespace {

constexpr int kTableBlock = 256;

std::vector<float> random_table(uint64_t seed, int32_t n_users, int32_t n_items) {
  Rng rng(seed, 31);
  std::vector<float> t(size_t(n_users) * size_t(n_items));
  for (float& v : t) v = tied_score(rng);
  return t;
}

// ---------------------------------------------------------------------------------------------
// The table scorers: the same numbers on the device and on the host.

__global__ void table_range_kernel(int64_t nu, int32_t item_lo, int32_t n, int32_t n_items,
                                   const int32_t* __restrict__ users,  // (nu,)
                                   const float* __restrict__ table,    // (n_users, n_items)
                                   float* __restrict__ out) {          // (nu, n)
  const int64_t total = nu * n;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = idx / n, i = idx - j * n;
    out[idx] = table[int64_t(users[j]) * n_items + item_lo + i];
  }
}

__global__ void table_pairs_kernel(int64_t n, int32_t n_items,
                                   const int32_t* __restrict__ user,  // (n,)
                                   const int32_t* __restrict__ item,  // (n,)
                                   const float* __restrict__ table,   // (n_users, n_items)
                                   float* __restrict__ out) {         // (n,)
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += int64_t(gridDim.x) * blockDim.x)
    out[k] = table[int64_t(user[k]) * n_items + item[k]];
}

unsigned table_grid(int64_t total) {
  return unsigned(std::min<int64_t>(ceil_div<int64_t>(total, kTableBlock), 4096));
}

class TableDeviceScorer final : public DeviceScorer {
 public:
  TableDeviceScorer(int32_t n_users, int32_t n_items, const std::vector<float>& table,
                    int64_t max_pairs)
      : m_users(n_users), m_items(n_items), m_max_pairs(max_pairs), m_table(table) {
    // m_table's upload is a pageable cudaMemcpy on the legacy stream, which may return before
    // the data reach the device and which a cudaStreamNonBlocking stream (NonBlockingStreamMatches)
    // does not wait for: wait here, before any kernel reads the table.
    CUDA_CHECK(cudaDeviceSynchronize());
  }
  int32_t n_items() const override { return m_items; }
  int64_t max_pairs() const override { return m_max_pairs; }
  void score_range(const int32_t* users, int64_t nu, int32_t item_lo, int32_t n, float* out,
                   cudaStream_t stream) override {
    ++calls;
    if (nu < 1 || n < 1 || nu * n > m_max_pairs || item_lo < 0 || item_lo + n > m_items) {
      ++violations;
      return;
    }
    table_range_kernel<<<table_grid(nu * n), kTableBlock, 0, stream>>>(nu, item_lo, n, m_items,
                                                                      users, m_table.data(), out);
    CUDA_CHECK_LAUNCH();
  }
  void score_pairs(const int32_t* user, const int32_t* item, int64_t n, float* out,
                   cudaStream_t stream) override {
    ++calls;
    if (n < 1 || n > m_max_pairs) {
      ++violations;
      return;
    }
    table_pairs_kernel<<<table_grid(n), kTableBlock, 0, stream>>>(n, m_items, user, item,
                                                                  m_table.data(), out);
    CUDA_CHECK_LAUNCH();
  }
  int64_t calls = 0, violations = 0;  // violations: calls outside the contract

 private:
  int32_t m_users, m_items;
  int64_t m_max_pairs;
  DeviceBuffer<float> m_table;
};

// ---------------------------------------------------------------------------------------------
// Splits by hand: per user `deg` distinct items, one valid, n_test(u) test, the rest train.

Split make_split(uint64_t seed, int32_t n_users, int32_t n_items) {
  Rng rng(seed, 98);
  std::vector<std::vector<int32_t>> tr(size_t(n_users), std::vector<int32_t>{}), va = tr, te = tr,
                                                                                   all = tr;
  for (int32_t u = 0; u < n_users; ++u) {
    // User 0 holds 40 test items (more than one 32-positive tile); users 3, 10, 17, .. none.
    const int n_test = u == 0 ? 40 : u % 7 == 3 ? 0 : 1 + int(rng.index(4));
    const int deg = n_test + 1 + int(rng.index(30));
    std::vector<int32_t> perm(size_t(n_items), 0);
    for (int32_t i = 0; i < n_items; ++i) perm[size_t(i)] = i;
    for (int k = 0; k < deg; ++k)
      std::swap(perm[size_t(k)], perm[size_t(k) + rng.index(uint32_t(n_items - k))]);
    va[size_t(u)] = {perm[0]};
    te[size_t(u)].assign(perm.begin() + 1, perm.begin() + 1 + n_test);
    tr[size_t(u)].assign(perm.begin() + 1 + n_test, perm.begin() + deg);
    all[size_t(u)].assign(perm.begin(), perm.begin() + deg);
  }
  Split s;
  s.n_users = n_users;
  s.n_items = n_items;
  s.train = csr_of(tr);
  s.valid = csr_of(va);
  s.test = csr_of(te);
  s.all = csr_of(all);
  s.item_train_count.assign(size_t(n_items), 0);
  for (int32_t u = 0; u < n_users; ++u)
    for (int32_t i : tr[size_t(u)]) {
      s.train_user.push_back(u);
      s.train_item.push_back(i);
      ++s.item_train_count[size_t(i)];
    }
  s.method = "by hand";
  return s;
}

void expect_metrics_equal(const Metrics& gpu, const Metrics& ref, const std::string& what) {
  ASSERT_EQ(gpu.size(), ref.size()) << what;
  bool nonzero = false;
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_EQ(gpu[i].first, ref[i].first) << what;
    EXPECT_NEAR(gpu[i].second, ref[i].second, 1e-12) << what << ": " << ref[i].first;
    nonzero |= ref[i].second != 0.0;
  }
  EXPECT_TRUE(nonzero) << what << ": every reference metric is 0";
}

using Lists = std::vector<std::vector<std::pair<int32_t, float>>>;

void expect_lists_equal(const Lists& gpu, const Lists& ref, const std::string& what) {
  ASSERT_EQ(gpu.size(), ref.size()) << what;
  for (size_t u = 0; u < ref.size(); ++u) {
    ASSERT_EQ(gpu[u].size(), ref[u].size()) << what << ": list " << u;
    for (size_t j = 0; j < ref[u].size(); ++j) {
      EXPECT_EQ(gpu[u][j].first, ref[u][j].first) << what << ": list " << u << " entry " << j;
      const float a = gpu[u][j].second, b = ref[u][j].second;
      EXPECT_TRUE(a == b || (std::isnan(a) && std::isnan(b)))
          << what << ": list " << u << " entry " << j << " score " << a << " vs " << b;
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// evaluate_gpu and top_k_gpu against evaluate() and top_k()

TEST(EvalGpu, FullModeMatchesEvaluate) {
  CONVNCF_REQUIRE_GPU();
  const int32_t U = 61, N = 157;
  const Split s = make_split(11, U, N);
  const std::vector<float> table = random_table(12, U, N);
  TableScorer host(N, table, 2);
  const std::vector<int> topk = {1, 5, 20};
  for (bool test : {false, true}) {
    const EvalSet set = make_eval_set(s, test, "full", 1, kStreamEvalTest, nullptr);
    ASSERT_TRUE(set.full());
    const Metrics ref = evaluate(host, set, topk);
    for (int64_t mp : {int64_t(1), int64_t(7), int64_t(37), int64_t(160), int64_t(1000),
                       int64_t(1) << 20}) {
      TableDeviceScorer dev(U, N, table, mp);
      const std::string what = std::string(test ? "test" : "valid") + " max_pairs " + std::to_string(mp);
      expect_metrics_equal(evaluate_gpu(dev, set, topk, nullptr), ref, what);
      EXPECT_EQ(dev.violations, 0) << what;
      EXPECT_GT(dev.calls, 0) << what;
    }
  }
}

TEST(EvalGpu, SampledModesMatchEvaluate) {
  CONVNCF_REQUIRE_GPU();
  const int32_t U = 61, N = 157;
  const Split s = make_split(21, U, N);
  const std::vector<float> table = random_table(22, U, N);
  TableScorer host(N, table, 2);
  const std::vector<int> topk = {1, 10};
  for (const char* mode : {"uni10", "pop5", "uni200"}) {
    const EvalSet set = make_eval_set(s, true, mode, 3, kStreamEvalTest, nullptr);
    const Metrics ref = evaluate(host, set, topk);
    for (int64_t mp : {int64_t(1), int64_t(13), int64_t(1) << 20}) {
      TableDeviceScorer dev(U, N, table, mp);
      const std::string what = std::string(mode) + " max_pairs " + std::to_string(mp);
      expect_metrics_equal(evaluate_gpu(dev, set, topk, nullptr), ref, what);
      EXPECT_EQ(dev.violations, 0) << what;
    }
  }
}

TEST(EvalGpu, FileModeMatchesEvaluate) {
  CONVNCF_REQUIRE_GPU();
  const int32_t U = 9, N = 300;
  const std::vector<float> table = random_table(32, U, N);
  TableScorer host(N, table, 2);
  // Lines as a .test.negative file gives them: users repeat, one positive each, 0 to 120
  // negatives (the first query has none).
  Rng rng(33, 5);
  EvalSet set;
  set.mode = "file";
  set.pos_offsets = {0};
  set.neg_offsets = {0};
  for (int q = 0; q < 30; ++q) {
    set.user.push_back(int32_t(rng.index(U)));
    const int32_t pos = int32_t(rng.index(N));
    set.positives.push_back(pos);
    set.pos_offsets.push_back(int64_t(set.positives.size()));
    const std::vector<int32_t> neg = distinct_items(rng, N, q == 0 ? 0 : rng.index(121), {pos});
    set.negatives.insert(set.negatives.end(), neg.begin(), neg.end());
    set.neg_offsets.push_back(int64_t(set.negatives.size()));
  }
  const Metrics ref = evaluate(host, set, {1, 3, 10});
  for (int64_t mp : {int64_t(1), int64_t(50), int64_t(1) << 20}) {
    TableDeviceScorer dev(U, N, table, mp);
    expect_metrics_equal(evaluate_gpu(dev, set, {1, 3, 10}, nullptr), ref,
                         "max_pairs " + std::to_string(mp));
    EXPECT_EQ(dev.violations, 0);
  }
}

TEST(EvalGpu, TopKMatchesTopK) {
  CONVNCF_REQUIRE_GPU();
  const int32_t U = 61, N = 157;
  const Split s = make_split(41, U, N);
  const std::vector<float> table = random_table(42, U, N);
  TableScorer host(N, table, 2);
  // Repeated users and another order than the rows'; k beyond the candidates gives them all.
  const std::vector<int32_t> users = {5, 0, 60, 5, 17, 3, 44, 1, 2, 30, 31, 32, 33, 34, 59};
  const std::vector<const Csr*> exclude = {&s.train, &s.valid};
  for (int32_t k : {1, 10, 100, 200}) {
    const Lists ref = top_k(host, users, exclude, k);
    for (int64_t mp : {int64_t(1), int64_t(50), int64_t(1000), int64_t(1) << 20}) {
      TableDeviceScorer dev(U, N, table, mp);
      const std::string what = "k " + std::to_string(k) + " max_pairs " + std::to_string(mp);
      expect_lists_equal(top_k_gpu(dev, users, exclude, k, nullptr), ref, what);
      EXPECT_EQ(dev.violations, 0) << what;
    }
  }
  // Many items and the largest k: several 1024-item windows per chunk, lists that fill up.
  const int32_t U2 = 7, N2 = 5000;
  const std::vector<float> big = random_table(43, U2, N2);
  TableScorer host2(N2, big, 2);
  const std::vector<int32_t> users2 = {0, 1, 2, 3, 4, 5, 6};
  for (int32_t k : {1000, kTopKGpuMax}) {
    const Lists ref = top_k(host2, users2, {}, k);
    for (int64_t mp : {int64_t(3000), int64_t(1) << 20}) {
      TableDeviceScorer dev(U2, N2, big, mp);
      expect_lists_equal(top_k_gpu(dev, users2, {}, k, nullptr), ref,
                         "N 5000 k " + std::to_string(k) + " max_pairs " + std::to_string(mp));
    }
  }
}

TEST(EvalGpu, NonBlockingStreamMatches) {
  CONVNCF_REQUIRE_GPU();
  const int32_t U = 40, N = 211;
  const Split s = make_split(51, U, N);
  const std::vector<float> table = random_table(52, U, N);
  TableScorer host(N, table, 2);
  cudaStream_t stream = nullptr;
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  TableDeviceScorer dev(U, N, table, 500);
  const EvalSet full = make_eval_set(s, true, "full", 1, kStreamEvalTest, nullptr);
  const EvalSet uni = make_eval_set(s, true, "uni30", 1, kStreamEvalTest, nullptr);
  expect_metrics_equal(evaluate_gpu(dev, full, {10}, stream), evaluate(host, full, {10}), "full");
  expect_metrics_equal(evaluate_gpu(dev, uni, {10}, stream), evaluate(host, uni, {10}), "uni30");
  const std::vector<int32_t> users = {0, 1, 2, 39};
  expect_lists_equal(top_k_gpu(dev, users, {&s.train}, 25, stream),
                     top_k(host, users, {&s.train}, 25), "top_k");
  CUDA_CHECK(cudaStreamDestroy(stream));
}

// Needs no GPU: the checks come before any device work.
namespace {
class UnusedScorer final : public DeviceScorer {
 public:
  int32_t n_items() const override { return 10; }
  int64_t max_pairs() const override { return 100; }
  void score_range(const int32_t*, int64_t, int32_t, int32_t, float*, cudaStream_t) override {
    ADD_FAILURE() << "score_range called";
  }
  void score_pairs(const int32_t*, const int32_t*, int64_t, float*, cudaStream_t) override {
    ADD_FAILURE() << "score_pairs called";
  }
};
}  // namespace

TEST(EvalGpu, RefusesBadRequestsBeforeDeviceWork) {
  UnusedScorer scorer;
  try {
    top_k_gpu(scorer, {0}, {}, kTopKGpuMax + 1, nullptr);
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitUsage);
    EXPECT_NE(std::string(e.what()).find(std::to_string(kTopKGpuMax)), std::string::npos) << e.what();
  }
  EXPECT_TRUE(top_k_gpu(scorer, {0, 1}, {}, 0, nullptr)[1].empty());  // k = 0: empty lists
  EXPECT_TRUE(top_k_gpu(scorer, {}, {}, 5, nullptr).empty());
  // An item out of range is an internal error, as in evaluate().
  EvalSet bad;
  bad.mode = "full";
  bad.user = {0};
  bad.pos_offsets = {0, 1};
  bad.positives = {10};
  EXPECT_THROW(evaluate_gpu(scorer, bad, {10}, nullptr), Error);
  // No queries: zero metrics, nothing scored.
  EvalSet none;
  none.mode = "full";
  none.pos_offsets = {0};
  const Metrics m = evaluate_gpu(scorer, none, {10}, nullptr);
  EXPECT_EQ(metric_value(m, "ndcg@10"), 0.0);
}
