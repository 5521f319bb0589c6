// evaluate.cpp: sampled evaluation and metrics (see evaluate.hpp). Tested by
// tests/test_evaluate.cpp with hand-worked positions, ties and K beyond the candidate list.
#include "convncf/evaluate.hpp"

#include <omp.h>

#include <cmath>
#include <cstdio>

#include "convncf/errors.hpp"

namespace convncf {

int64_t rank_position(float positive, const float* negatives, int64_t n) {
  if (std::isnan(positive)) return n;
  int64_t pos = 0;
  for (int64_t i = 0; i < n; ++i) pos += !(negatives[i] < positive);  // >=, and NaN counts against
  return pos;
}

Metrics metrics_from_positions(const std::vector<int64_t>& positions,
                               const std::vector<int64_t>& n_negatives, const std::vector<int>& topk) {
  const size_t U = positions.size();
  Metrics m;
  const double inv = U ? 1.0 / double(U) : 0.0;
  for (int k : topk) {
    double hit = 0, ndcg = 0, mrr = 0;
    for (size_t u = 0; u < U; ++u) {
      const int64_t p = positions[u];
      if (p < k) {
        hit += 1;
        ndcg += std::log(2.0) / std::log(double(p) + 2.0);
        mrr += 1.0 / double(p + 1);
      }
    }
    const std::string K = "@" + std::to_string(k);
    m.emplace_back("hit" + K, hit * inv);
    m.emplace_back("ndcg" + K, ndcg * inv);
    m.emplace_back("mrr" + K, mrr * inv);
    m.emplace_back("recall" + K, hit * inv);
    m.emplace_back("precision" + K, hit * inv / double(k));
  }
  double auc = 0;
  for (size_t u = 0; u < U; ++u) auc += 1.0 - double(positions[u]) / double(n_negatives[u] + 1);
  m.emplace_back("auc", auc * inv);
  return m;
}

double metric_value(const Metrics& m, const std::string& name) {
  for (const auto& kv : m)
    if (kv.first == name) return kv.second;
  throw_usage("metric '" + name + "' is not computed; valid_metric must use a K listed in topk");
}

std::string metrics_json(const Metrics& m) {
  std::string s = "{";
  char buf[64];
  for (size_t i = 0; i < m.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%.10g", m[i].second);
    s += (i ? ",\"" : "\"") + m[i].first + "\":" + buf;
  }
  return s + "}";
}

std::string metrics_brief(const Metrics& m, const std::vector<std::string>& names) {
  std::string s;
  char buf[96];
  for (const std::string& n : names) {
    std::snprintf(buf, sizeof buf, "%s%s %.4f", s.empty() ? "" : "  ", n.c_str(), metric_value(m, n));
    s += buf;
  }
  return s;
}

Metrics evaluate_sampled(CpuEngine<float>& engine, const Params<float>& params,
                         const EvalCandidates& cand, const std::vector<int>& topk) {
  const int64_t U = int64_t(cand.user.size());
  std::vector<int64_t> positions(static_cast<size_t>(U)), n_neg(static_cast<size_t>(U));
  engine.prepare_scoring(params);
#pragma omp parallel num_threads(engine.threads())
  {
    PairWork<float> work = engine.make_work();
    std::vector<int32_t> items;
    std::vector<float> scores;
#pragma omp for schedule(dynamic, 4)
    for (int64_t u = 0; u < U; ++u) {
      const int64_t b = cand.offsets[size_t(u)], e = cand.offsets[size_t(u) + 1];
      items.assign(1, cand.positive[size_t(u)]);
      items.insert(items.end(), cand.negatives.begin() + b, cand.negatives.begin() + e);
      scores.resize(items.size());
      engine.score_items(params, cand.user[size_t(u)], items.data(), int64_t(items.size()),
                         scores.data(), work);
      positions[size_t(u)] = rank_position(scores[0], scores.data() + 1, e - b);
      n_neg[size_t(u)] = e - b;
    }
  }
  return metrics_from_positions(positions, n_neg, topk);
}

}  // namespace convncf
