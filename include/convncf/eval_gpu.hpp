// eval_gpu.hpp: evaluation on the GPU. The model side is a DeviceScorer (the GPU engine, or in the
// tests a table of scores); this file ranks.
//   full ranking  users in blocks; for each block, items in chunks: the scorer writes the block's
//                 (users x chunk) scores on the device, and a counting kernel adds, for every
//                 held-out positive, how many of the chunk's candidate negatives (not excluded,
//                 not a positive of the query) beat it (score >= its score; NaN rules as in
//                 evaluate.hpp). The positions, hence every metric, are exact, and no more than a
//                 block's chunk of scores ever exists.
//   sampled/file  every candidate (positives and negatives) of a batch of queries as (user, item)
//                 pairs, scored in large launches, ranked on the host by positive_positions.
//   top_k_gpu     each user's best k items, training items masked, kept on the device and merged
//                 chunk by chunk (ties by lower item index), for `recommend`.
// Metrics come out of MetricSum, so evaluate_gpu equals evaluate() on the same scores.
// The ranking kernels and their CPU twins: rank.hpp (kernels/rank.cu, kernels/rank_cpu.cpp).
// Tests: tests/test_eval_gpu.cu (against evaluate() and top_k()).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "convncf/common.hpp"
#include "convncf/evaluate.hpp"
#include "convncf/rank.hpp"

struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace convncf {

class DeviceScorer {
 public:
  virtual ~DeviceScorer() = default;
  virtual int32_t n_items() const = 0;
  // The most (user, item) pairs one call below may score; evaluate_gpu sizes its blocks by it.
  virtual int64_t max_pairs() const = 0;
  // out (nu, n) row-major, device: scores of users[j] against items item_lo .. item_lo+n-1.
  // users is a device array; nu * n <= max_pairs().
  virtual void score_range(const int32_t* users, int64_t nu, int32_t item_lo, int32_t n,
                           float* out, cudaStream_t stream) = 0;
  // out[k] = score of (user[k], item[k]), device arrays, n <= max_pairs().
  virtual void score_pairs(const int32_t* user, const int32_t* item, int64_t n, float* out,
                           cudaStream_t stream) = 0;
};

Metrics evaluate_gpu(DeviceScorer& scorer, const EvalSet& set, const std::vector<int>& topk,
                     cudaStream_t stream);

// As top_k() in evaluate.hpp: best first, ties by lower item index, excluded items skipped.
// k <= 0 gives empty lists; k above kTopKGpuMax (rank.hpp) throws Error(kExitUsage).
std::vector<std::vector<std::pair<int32_t, float>>> top_k_gpu(
    DeviceScorer& scorer, const std::vector<int32_t>& users, const std::vector<const Csr*>& exclude,
    int32_t k, cudaStream_t stream);

}  // namespace convncf
