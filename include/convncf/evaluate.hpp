// evaluate.hpp: sampled evaluation (one held-out item per user ranked against N negatives) and
// the metrics of REFERENCE.md. Popularity, MF-BPR and ConvNCF all go through evaluate_sampled.
//
// position = number of negatives whose score is >= the held-out item's (ties count against);
// a NaN score of the held-out item ranks it last. Per user, with n negatives:
//   hit@K = recall@K = [position < K]        precision@K = hit@K / K
//   ndcg@K = log 2 / log(position + 2) if position < K, else 0
//   mrr@K = 1 / (position + 1) if position < K, else 0
//   auc = 1 - position / (n + 1)   (REFERENCE.md: 1 - position / 1000 for 999 negatives)
// All averaged over the evaluated users.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "convncf/cpu_engine.hpp"
#include "convncf/dataset.hpp"

namespace convncf {

using Metrics = std::vector<std::pair<std::string, double>>;  // in a fixed order

int64_t rank_position(float positive, const float* negatives, int64_t n);

// Averages the per-user metrics of `positions` (n_negatives[u] negatives for user u).
Metrics metrics_from_positions(const std::vector<int64_t>& positions,
                               const std::vector<int64_t>& n_negatives, const std::vector<int>& topk);

double metric_value(const Metrics& m, const std::string& name);  // throws if absent
std::string metrics_json(const Metrics& m);                      // {"hit@10":0.5,...}
std::string metrics_brief(const Metrics& m, const std::vector<std::string>& names);

// Scores every candidate list with the engine (parallel over users) and returns the metrics.
Metrics evaluate_sampled(CpuEngine<float>& engine, const Params<float>& params,
                         const EvalCandidates& cand, const std::vector<int>& topk);

}  // namespace convncf
