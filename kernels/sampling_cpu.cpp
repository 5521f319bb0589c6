// sampling_cpu.cpp: the CPU twin of kernels/sampling.cu (gather_batch_cpu, the CPU engine's
// sampler and the emulated device's), the launchers' argument checks, the popularity tables and
// the host side of dynamic negative sampling (include/convncf/sampling.hpp).
// Tests: tests/test_sampling.cpp; the kernel against this twin: tests/test_sampling_gpu.cu.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "convncf/errors.hpp"
#include "convncf/sampling.hpp"

namespace convncf {

std::string NegativeSpec::describe() const {
  std::string s = std::to_string(sample_num) + (distribution == NegDistribution::Uniform ? " uniform" : " popularity");
  if (distribution == NegDistribution::Popularity && alpha != 1.0) {
    char b[32];
    std::snprintf(b, sizeof b, "^%g", alpha);
    s += b;
  }
  s += sample_num == 1 ? " negative per positive" : " negatives per positive";
  if (dynamic) s += ", each the best-scoring of " + std::to_string(candidate_num) + " candidates (dynamic)";
  return s;
}

PopularityTable make_popularity_table(const Csr& train, const std::vector<int64_t>& counts, double alpha) {
  const size_t n_items = counts.size();
  std::vector<uint64_t> w(n_items, 0);
  constexpr double kCap = 4.6e18;  // 2^62, under which every sum stays exact
  double total = 0;
  for (size_t i = 0; i < n_items; ++i) {
    if (counts[i] <= 0) continue;  // RecBole draws only items that occur
    if (alpha == 1.0) {
      w[i] = uint64_t(counts[i]);
    } else {
      const double x = std::ldexp(std::pow(double(counts[i]), alpha), kWeightShift);
      if (!(x < kCap)) throw_data("popularity weights overflow: count^alpha too large for alpha " + std::to_string(alpha));
      w[i] = std::max<uint64_t>(1, uint64_t(std::llround(x)));
    }
    total += double(w[i]);
    if (!(total < kCap)) throw_data("popularity weights overflow: their sum exceeds 2^62");
  }
  PopularityTable t;
  t.cdf.assign(n_items + 1, 0);
  for (size_t i = 0; i < n_items; ++i) t.cdf[i + 1] = t.cdf[i] + w[i];
  t.row_cum.assign(train.items.size(), 0);
  for (int32_t u = 0; u < train.n_rows(); ++u) {
    uint64_t run = 0;
    for (int64_t p = train.offsets[size_t(u)]; p < train.offsets[size_t(u) + 1]; ++p)
      t.row_cum[size_t(p)] = run += w[size_t(train.items[size_t(p)])];
  }
  return t;
}

PopularityTable negative_table(const Split& split, const NegativeSpec& spec) {
  if (spec.distribution == NegDistribution::Uniform) return {};
  std::vector<int64_t> counts(size_t(split.n_items), 0);
  for (int32_t i : split.train_item) ++counts[size_t(i)];  // repeated pairs (rm_dup_inter: keep) count again
  for (int32_t i : split.valid.items) ++counts[size_t(i)];
  for (int32_t i : split.test.items) ++counts[size_t(i)];
  return make_popularity_table(split.train, counts, spec.alpha);
}

bool has_negative(const Csr& train, int32_t n_items, int32_t u, const PopularityTable* pop) {
  if (train.degree(u) >= n_items) return false;
  return !pop || pop->absent(train, u) > 0;
}

void check_gather_batch_args(int64_t B_cap, int64_t n, int32_t n_neg, int64_t lo, const int64_t* order,
                             const int32_t* train_user, const int32_t* train_item,
                             const int64_t* row_offsets, int32_t n_items, const uint64_t* cdf,
                             const uint64_t* row_cum, const int32_t* user, const int32_t* pos,
                             const int32_t* neg) {
  if (n < 0 || n_neg < 1 || lo < 0 || n_items < 1 || B_cap < 0 || n > B_cap / n_neg)
    throw_internal("gather_batch: bad sizes B_cap=" + std::to_string(B_cap) + " n=" + std::to_string(n) +
                   " n_neg=" + std::to_string(n_neg) + " lo=" + std::to_string(lo) + " n_items=" +
                   std::to_string(n_items) + " (expected 0 <= n, n_neg >= 1, n * n_neg <= B_cap, lo >= 0, n_items >= 1)");
  if ((cdf == nullptr) != (row_cum == nullptr)) throw_internal("gather_batch: cdf and row_cum must be both set or both null");
  if (B_cap == 0) return;
  if (!user || !pos || !neg) throw_internal("gather_batch: null output");
  if (n > 0 && (!order || !train_user || !train_item || !row_offsets)) throw_internal("gather_batch: null input");
}

void gather_batch_cpu(int64_t B_cap, int64_t n, int32_t n_neg, int64_t lo, int epoch, uint64_t seed,
                      const int64_t* order, const int32_t* train_user, const int32_t* train_item,
                      const int64_t* row_offsets, const int32_t* row_items, int32_t n_items,
                      const uint64_t* cdf, const uint64_t* row_cum, int32_t* user, int32_t* pos, int32_t* neg) {
  check_gather_batch_args(B_cap, n, n_neg, lo, order, train_user, train_item, row_offsets, n_items, cdf, row_cum,
                          user, pos, neg);
  const int64_t triples = n * n_neg;
  for (int64_t s = 0; s < B_cap; ++s) {
    if (s >= triples) {
      user[s] = pos[s] = neg[s] = 0;
      continue;
    }
    const int64_t k = s / n, j = s % n;
    const int64_t t = order[lo + j];
    const int32_t u = train_user[t];
    const int64_t begin = row_offsets[u], deg = row_offsets[u + 1] - begin;
    user[s] = u;
    pos[s] = train_item[t];
    neg[s] = draw_negative(negative_bits(seed, epoch, lo + j, k), row_items + begin, deg, n_items, cdf,
                           cdf ? row_cum + begin : nullptr);
  }
}

void draw_candidates_cpu(int64_t n, int32_t n_neg, int32_t candidates, int64_t lo, int epoch, uint64_t seed,
                         const int32_t* user, const int64_t* row_offsets, const int32_t* row_items, int32_t n_items,
                         const uint64_t* cdf, const uint64_t* row_cum, int32_t* cand) {
  if (n < 0 || n_neg < 1 || candidates < 1) throw_internal("draw_candidates_cpu: bad sizes");
  const int64_t triples = n * n_neg;
  for (int64_t s = 0; s < triples; ++s) {
    const int64_t k = s / n, j = s % n;
    const int32_t u = user[s];
    const int64_t begin = row_offsets[u], deg = row_offsets[u + 1] - begin;
    for (int32_t c = 0; c < candidates; ++c)
      cand[s * candidates + c] = draw_negative(negative_bits(seed, epoch, lo + j, int64_t(c) * n_neg + k),
                                               row_items + begin, deg, n_items, cdf, cdf ? row_cum + begin : nullptr);
  }
}

int32_t best_candidate(const float* scores, int32_t candidates) {
  int32_t best = 0;
  for (int32_t c = 1; c < candidates; ++c)
    if (scores[c] > scores[best] || (std::isnan(scores[best]) && !std::isnan(scores[c]))) best = c;
  return best;
}

}  // namespace convncf
