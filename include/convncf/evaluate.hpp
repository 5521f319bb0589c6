// evaluate.hpp: the evaluation protocols and metrics. Popularity, MF-BPR and ConvNCF all go
// through evaluate(), whatever the protocol.
//
// A query is one user's held-out items (the positives) ranked against candidates:
//   full    every item except the user's excluded ones (training items; at test time the
//           validation items too), RecBole's `full`
//   uniN    N distinct negatives per positive, uniform over the items the user never touched
//   popN    the same, drawn in proportion to training popularity
//   file    the negatives of a .test.negative file, one query per line
//
// Ranking: candidates in descending score; a positive tied with a negative is placed after it
// (ties count against the positives), a NaN score ranks last. For a query with m positives at
// 0-based positions p_1 < ... < p_m among C candidates (n = C - m negatives):
//   hit@K = [p_1 < K]                 recall@K = |{j: p_j < K}| / m
//   precision@K = |{j: p_j < K}| / K  mrr@K = 1 / (p_1 + 1) if p_1 < K, else 0
//   ndcg@K = sum_{p_j < K} 1/log2(p_j + 2)  /  sum_{i < min(m, K)} 1/log2(i + 2)
//   auc = 1 - mean_j (p_j - (j - 1)) / (n + 1)    (p_j - (j-1): negatives ranked above p_j)
// All averaged over queries. With one positive these are the paper's formulas (REFERENCE.md,
// AUC = 1 - position / 1000 for 999 negatives) and RecBole's.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "convncf/cpu_engine.hpp"
#include "convncf/dataset.hpp"
#include "convncf/formats.hpp"

namespace convncf {

using Metrics = std::vector<std::pair<std::string, double>>;  // in a fixed order

// Ranking queries of one protocol (see the top of this file).
struct EvalSet {
  std::string mode;                  // "full", "uni99", "pop100", "file"
  std::vector<int32_t> user;         // (Q,) a user may appear in several queries (file mode)
  std::vector<int64_t> pos_offsets;  // (Q+1,) into positives
  std::vector<int32_t> positives;    // sorted within a query
  std::vector<int64_t> neg_offsets;  // (Q+1,) into negatives; empty in full mode
  std::vector<int32_t> negatives;
  std::vector<const Csr*> exclude;   // full mode: a user's excluded items = union of these rows
  bool full() const { return mode == "full"; }
  int64_t size() const { return static_cast<int64_t>(user.size()); }
};

// Parses a mode name: "full", "uniN", "popN" (N >= 1) or "file"; throws kExitUsage otherwise.
void check_eval_mode(const std::string& mode);

// The queries of `split`'s validation (test = false) or test items (test = true) under `mode`.
// Sampled negatives are deterministic in (seed, stream) and distinct within a query, never an
// item of split.all for that user; fewer when fewer exist. `file` takes `file_negatives`
// (required, kExitUsage when null or empty) and only at test time; at validation it falls back
// to full. Users without held-out items get no query.
EvalSet make_eval_set(const Split& split, bool test, const std::string& mode, uint64_t seed,
                      uint64_t stream, const FileNegatives* file_negatives);

// What scores (user, item) pairs: popularity, MF-BPR or ConvNCF parameters behind one interface.
class Scorer {
 public:
  virtual ~Scorer() = default;
  virtual int threads() const = 0;
  virtual int32_t n_items() const = 0;
  // One user against `n` listed items. Called concurrently, with tid in [0, threads()).
  virtual void score_items(int32_t user, const int32_t* items, int64_t n, float* out,
                           int tid) = 0;
  // `nu` users against every item: out is (nu, n_items) row-major. Called from one thread; it
  // may use threads() threads itself.
  virtual void score_all(const int32_t* users, int64_t nu, float* out) = 0;
};
// The scorer of `params` (model kind from params.model). Keeps references to both arguments.
std::unique_ptr<Scorer> make_scorer(CpuEngine<float>& engine, const Params<float>& params);

// Ranks every query and averages the metrics at each K of `topk`. Batched over users and
// parallel; full mode scores blocks of users at once and never holds more than a block's scores.
Metrics evaluate(Scorer& scorer, const EvalSet& set, const std::vector<int>& topk);

// Several ranks (dist.hpp) rank one contiguous share of the queries each (the queries are grouped
// by user, so a share of users): this rank's are [lo, hi) (all of them on one process). Once each
// rank has filled its share's entries of `positions` (set.positives' layout) and `n_neg` (one per
// query), gather_query_shares fills in the others' by allgather (nothing on one process), so that
// every rank sums all of them in query order, as one process does. evaluate() and evaluate_gpu()
// both work this way; the GPU ranks its share as a set of its own, slice_queries(set, lo, hi).
struct QueryRange {
  int64_t lo = 0, hi = 0;
};
QueryRange rank_queries(const EvalSet& set);
void gather_query_shares(const EvalSet& set, std::vector<int64_t>& positions, std::vector<int64_t>& n_neg);
EvalSet slice_queries(const EvalSet& set, int64_t lo, int64_t hi);

// 0-based positions of the m positives (scores pos[0..m)) among themselves and n negatives,
// ascending, under the tie rule above. out has m entries.
void positive_positions(const float* pos, int64_t m, const float* neg, int64_t n, int64_t* out);

// Per-query metrics from positions, accumulated (hand-checkable; used by evaluate()).
class MetricSum {
 public:
  explicit MetricSum(const std::vector<int>& topk);
  void add(const int64_t* positions, int64_t m, int64_t n_negatives);
  void merge(const MetricSum& other);
  Metrics mean() const;  // hit, recall, precision, ndcg, mrr at each K, then auc
 private:
  std::vector<int> m_topk;
  std::vector<double> m_sum;
  int64_t m_count = 0;
};

// The top `k` items of each user by score, excluding the items of the `exclude` rows, best
// first (ties by lower item index). Parallel over users.
std::vector<std::vector<std::pair<int32_t, float>>> top_k(Scorer& scorer,
                                                          const std::vector<int32_t>& users,
                                                          const std::vector<const Csr*>& exclude,
                                                          int32_t k);

double metric_value(const Metrics& m, const std::string& name);  // throws kExitUsage if absent
std::string metrics_json(const Metrics& m);                      // {"hit@10":0.5,...}
std::string metrics_brief(const Metrics& m, const std::vector<std::string>& names);

}  // namespace convncf
