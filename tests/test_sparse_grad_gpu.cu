// test_sparse_grad_gpu.cu: RowGradCombiner (kernels/sparse_grad.cu) against its CPU twin
// combine_rows_cpu. The deterministic mode adds each row's entries in entry order like the twin,
// so the table must match bit for bit; the fast mode adds in any order, so each element must be
// within the bound of a reordered float sum. Skips with the reason when no CUDA device is usable.
//   build/convncf_tests --gtest_filter='RowGradCombiner*'
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "convncf/cuda_check.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/errors.hpp"
#include "convncf/rng.hpp"
#include "convncf/sparse_grad.hpp"
#include "gpu_test_util.hpp"

namespace {

using convncf::DeviceBuffer;

struct Case {
  int64_t n;        // entries
  int E;            // row size
  int32_t n_table;  // rows of the table (few rows: many repeats)
};
// n = 0 and 1, n not a multiple of the 8 warps per block, E = 1, E not a multiple of 32 and
// E > 32 (lanes loop over columns), the model's E = 64, a table of one row (all entries on one
// id: one long run), and more rows than entries (mostly distinct ids).
const Case kCases[] = {{0, 64, 10},     {1, 64, 10},      {1, 1, 1},        {7, 5, 3},
                       {33, 33, 4},     {255, 64, 1},     {256, 64, 100},   {1000, 64, 5000},
                       {4099, 17, 300}, {6144, 64, 2048}, {20000, 96, 3000}};

// Runs `calls` combines of growing sizes on one combiner (max_entries = the largest), each
// checked against the twin. Returns nothing; failures are reported through gtest.
void check_case(const Case& c, bool deterministic, uint64_t seed) {
  SCOPED_TRACE(std::string(deterministic ? "deterministic" : "fast") + " n=" + std::to_string(c.n) +
               " E=" + std::to_string(c.E) + " n_table=" + std::to_string(c.n_table));
  convncf::Rng rng(seed, convncf::kStreamSynthetic);
  const int E = c.E;
  // One combiner sized for more than this call, reused for a smaller call first: the storage
  // sized at construction must serve every n up to max_entries.
  convncf::RowGradCombiner comb(c.n + 13, E, deterministic);
  EXPECT_EQ(comb.deterministic(), deterministic);
  for (int64_t n : {c.n / 2, c.n}) {
    SCOPED_TRACE("call with n=" + std::to_string(n));
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (int32_t& id : ids) id = int32_t(rng.index(uint32_t(c.n_table)));
    std::vector<float> rows(size_t(n) * E), table(size_t(c.n_table) * E);
    for (float& x : rows) x = float(rng.normal());
    for (float& x : table) x = float(rng.normal());

    std::vector<float> ref = table;
    const std::vector<int32_t> ref_ids =
        convncf::combine_rows_cpu(n, E, ids.data(), rows.data(), ref.data());

    DeviceBuffer<int32_t> d_ids(ids), d_unique(size_t(std::max<int64_t>(n, 1))), d_count(1);
    DeviceBuffer<float> d_rows(rows), d_table(table);
    // 0xFF bytes: -1 everywhere, an id that can never be right.
    CUDA_CHECK(cudaMemset(d_unique.data(), 0xFF, d_unique.size() * sizeof(int32_t)));
    CUDA_CHECK(cudaMemset(d_count.data(), 0xFF, sizeof(int32_t)));
    comb.combine(n, d_ids.data(), d_rows.data(), d_table.data(), d_unique.data(), d_count.data(),
                 nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    const int32_t count = d_count.download()[0];
    ASSERT_EQ(count, int32_t(ref_ids.size()));
    const std::vector<int32_t> got_ids = d_unique.download(d_unique.data(), size_t(count));
    EXPECT_EQ(got_ids, ref_ids);
    const std::vector<float> got = d_table.download();

    if (deterministic) {
      int64_t bad = 0;
      for (size_t i = 0; i < ref.size(); ++i)
        if (!(got[i] == ref[i]) && bad++ < 5)
          ADD_FAILURE() << "table[" << i / size_t(E) << "][" << i % size_t(E) << "]: gpu " << got[i]
                        << ", cpu " << ref[i] << " (must be bit-identical)";
      EXPECT_EQ(bad, 0) << "elements differing from the entry-order sum";
    } else {
      // A float sum of k terms in any order is within (k + 1) * 2^-24 * sum|terms| of another
      // order's (recursive-summation bound, terms including the start value).
      std::vector<double> abs_sum(ref.size()), count_of(ref.size(), 1.0);
      for (size_t i = 0; i < ref.size(); ++i) abs_sum[i] = std::fabs(double(table[i]));
      for (int64_t j = 0; j < n; ++j)
        for (int e = 0; e < E; ++e) {
          const size_t at = size_t(ids[size_t(j)]) * E + e;
          abs_sum[at] += std::fabs(double(rows[size_t(j) * E + e]));
          count_of[at] += 1.0;
        }
      int64_t bad = 0;
      for (size_t i = 0; i < ref.size(); ++i) {
        const double tol = (count_of[i] + 1.0) * 0x1.0p-24 * abs_sum[i];
        if (!(std::fabs(double(got[i]) - double(ref[i])) <= tol) && bad++ < 5)
          ADD_FAILURE() << "table[" << i / size_t(E) << "][" << i % size_t(E) << "]: gpu " << got[i]
                        << ", cpu " << ref[i] << ", tolerance " << tol;
      }
      EXPECT_EQ(bad, 0) << "elements outside the reordering bound";
    }
  }
}

}  // namespace

TEST(RowGradCombiner, DeterministicMatchesCpuExactly) {
  CONVNCF_REQUIRE_GPU();
  uint64_t seed = 500;
  for (const Case& c : kCases) check_case(c, true, seed++);
}

TEST(RowGradCombiner, FastMatchesCpuWithinRounding) {
  CONVNCF_REQUIRE_GPU();
  uint64_t seed = 600;
  for (const Case& c : kCases) check_case(c, false, seed++);
}

// Two runs of the deterministic mode on the same inputs give the same bits, and an empty batch
// writes a count of 0 and touches nothing.
TEST(RowGradCombiner, DeterministicRepeatsAndEmptyBatch) {
  CONVNCF_REQUIRE_GPU();
  convncf::Rng rng(700, convncf::kStreamSynthetic);
  const int64_t n = 5000;
  const int E = 64;
  const int32_t n_table = 40;
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = int32_t(rng.index(n_table));
  std::vector<float> rows(size_t(n) * E), table(size_t(n_table) * E);
  for (float& x : rows) x = float(rng.normal());
  for (float& x : table) x = float(rng.normal());
  convncf::RowGradCombiner comb(n, E, true);
  DeviceBuffer<int32_t> d_ids(ids), d_unique(n), d_count(1);
  DeviceBuffer<float> d_rows(rows);
  std::vector<std::vector<float>> results;
  for (int run = 0; run < 2; ++run) {
    DeviceBuffer<float> d_table(table);
    comb.combine(n, d_ids.data(), d_rows.data(), d_table.data(), d_unique.data(), d_count.data(),
                 nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    results.push_back(d_table.download());
  }
  EXPECT_EQ(results[0], results[1]);

  DeviceBuffer<float> d_table(table);
  CUDA_CHECK(cudaMemset(d_count.data(), 0xFF, sizeof(int32_t)));
  comb.combine(0, nullptr, nullptr, nullptr, nullptr, d_count.data(), nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_EQ(d_count.download()[0], 0);
  EXPECT_EQ(d_table.download(), table);
}

// Refused before any device call, so this runs everywhere.
TEST(RowGradCombiner, RejectsBadSizes) {
  EXPECT_THROW(convncf::RowGradCombiner(-1, 64, true), convncf::Error);
  EXPECT_THROW(convncf::RowGradCombiner(10, 0, false), convncf::Error);
  EXPECT_THROW(convncf::RowGradCombiner(int64_t(1) << 31, 64, true), convncf::Error);
}

TEST(RowGradCombiner, CombineRejectsTooManyEntries) {
  CONVNCF_REQUIRE_GPU();
  convncf::RowGradCombiner comb(8, 4, true);
  DeviceBuffer<int32_t> d_count(1);
  EXPECT_THROW(comb.combine(9, nullptr, nullptr, nullptr, nullptr, d_count.data(), nullptr),
               convncf::Error);
  EXPECT_THROW(comb.combine(-1, nullptr, nullptr, nullptr, nullptr, d_count.data(), nullptr),
               convncf::Error);
}
