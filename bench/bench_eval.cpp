// bench_eval.cpp: evaluation throughput of host/evaluate.cpp on the CPU.
//   mf-bpr full   full ranking of a Gowalla-size catalogue (30,000 users x 41,000 items, E = 64,
//                 random P and Q, ~30 random training items masked and 1 test item per user):
//                 seconds for scoring + ranking every user (evaluate()), and for the scoring
//                 alone (score_all over the same user blocks); GFLOP/s = 2 U I E / seconds.
//   convncf uni999  sampled evaluation of the RecBole tower (channels 1,32,32,32,32, kernels and
//                 strides 4,4,2,2, E = 64) for 1,000 users with 999 negatives each: seconds to
//                 draw the negatives and to rank, and scored pairs per second.
// The BPR scores are checked against double-precision dot products before timing.
//
//   build/bench/bench_eval [--threads=N] [--repeats=R] [--users=U] [--conv-users=U]
// One JSON line per result: {"bench":"eval_full_bpr",...} and {"bench":"eval_uni999_convncf",...}
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "convncf/cpu_engine.hpp"
#include "convncf/evaluate.hpp"
#include "convncf/rng.hpp"

using namespace convncf;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Users with ~`n_train` distinct random training items (duplicates dropped) and one test item.
Split random_split(int32_t n_users, int32_t n_items, int n_train, uint64_t seed) {
  Split s;
  s.n_users = n_users;
  s.n_items = n_items;
  Rng rng(seed, kStreamSplit);
  s.train.offsets = {0};
  s.valid.offsets.assign(size_t(n_users) + 1, 0);
  s.test.offsets = {0};
  s.all.offsets = {0};
  s.item_train_count.assign(size_t(n_items), 0);
  std::vector<int32_t> row;
  for (int32_t u = 0; u < n_users; ++u) {
    row.clear();
    for (int k = 0; k <= n_train; ++k) row.push_back(int32_t(rng.index(uint32_t(n_items))));
    const int32_t test_item = row.back();
    std::sort(row.begin(), row.end());
    row.erase(std::unique(row.begin(), row.end()), row.end());
    s.all.items.insert(s.all.items.end(), row.begin(), row.end());
    s.all.offsets.push_back(int64_t(s.all.items.size()));
    row.erase(std::find(row.begin(), row.end(), test_item));
    for (int32_t i : row) ++s.item_train_count[size_t(i)];
    s.train.items.insert(s.train.items.end(), row.begin(), row.end());
    s.train.offsets.push_back(int64_t(s.train.items.size()));
    s.test.items.push_back(test_item);
    s.test.offsets.push_back(int64_t(s.test.items.size()));
  }
  s.method = "random";
  return s;
}

Params<float> random_params(ModelKind model, int32_t n_users, int32_t n_items, int E, uint64_t seed) {
  Params<float> p;
  p.model = model;
  p.E = E;
  p.n_users = n_users;
  p.n_items = n_items;
  p.P.resize(size_t(n_users) * E);
  p.Q.resize(size_t(n_items) * E);
  Rng rng(seed, kStreamInit);
  for (float& v : p.P) v = float(0.1 * rng.normal());
  for (float& v : p.Q) v = float(0.1 * rng.normal());
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, repeats = 3;
  int32_t n_users = 30000, conv_users = 1000;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) threads = std::atoi(argv[i] + 10);
    else if (std::strncmp(argv[i], "--repeats=", 10) == 0) repeats = std::atoi(argv[i] + 10);
    else if (std::strncmp(argv[i], "--users=", 8) == 0) n_users = std::atoi(argv[i] + 8);
    else if (std::strncmp(argv[i], "--conv-users=", 13) == 0) conv_users = std::atoi(argv[i] + 13);
    else {
      std::fprintf(stderr, "usage: bench_eval [--threads=N] [--repeats=R] [--users=U] [--conv-users=U]\n");
      return 64;
    }
  }
  repeats = std::max(repeats, 1);
  const int32_t n_items = 41000;
  const int E = 64;
  const std::vector<int> topk = {10, 20};

  // --- MF-BPR, full ranking -------------------------------------------------------------------
  if (n_users > 0) {
    const Split split = random_split(n_users, n_items, 30, 1);
    const Params<float> prm = random_params(ModelKind::BPR, n_users, n_items, E, 2);
    CpuEngine<float> eng(ModelKind::BPR, nullptr, n_users, n_items, E, threads);
    const EvalSet set = make_eval_set(split, true, "full", 1, kStreamEvalTest, nullptr);
    std::unique_ptr<Scorer> scorer = make_scorer(eng, prm);

    // Check against double-precision dot products first (and warm the packed copy of Q).
    const int64_t nb = std::min<int64_t>(96, set.size());
    std::vector<float> block(size_t(nb) * n_items);
    scorer->score_all(set.user.data(), nb, block.data());
    double worst = 0.0;
    for (int64_t r = 0; r < nb; r += 7)
      for (int32_t i = 0; i < n_items; i += 13) {
        double ref = 0.0, mag = 0.0;
        for (int e = 0; e < E; ++e) {
          const double a = prm.P[size_t(set.user[size_t(r)]) * E + size_t(e)], b = prm.Q[size_t(i) * E + size_t(e)];
          ref += a * b;
          mag += std::abs(a * b);
        }
        worst = std::max(worst, std::abs(block[size_t(r) * n_items + size_t(i)] - ref) / (1e-7 + 1e-6 * mag));
      }
    if (worst > 1.0) {
      std::fprintf(stderr, "bench_eval: BPR score_all differs from the dot products (%.3g)\n", worst);
      return 70;
    }

    std::vector<double> t_eval, t_score;
    Metrics m;
    for (int rep = 0; rep < repeats; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      m = evaluate(*scorer, set, topk);
      t_eval.push_back(seconds_since(t0));
      t0 = std::chrono::steady_clock::now();
      for (int64_t q0 = 0; q0 < set.size(); q0 += nb)
        scorer->score_all(set.user.data() + q0, std::min(nb, set.size() - q0), block.data());
      t_score.push_back(seconds_since(t0));
    }
    const double flop = 2.0 * double(set.size()) * n_items * E;
    const double te = median(t_eval), ts = median(t_score);
    std::printf("{\"bench\":\"eval_full_bpr\",\"users\":%lld,\"items\":%d,\"E\":%d,\"threads\":%d,"
                "\"median_seconds\":%.3f,\"gflops_implied\":%.1f,\"score_only_seconds\":%.3f,"
                "\"score_only_gflops\":%.1f,\"ndcg@10\":%.6f}\n",
                (long long)set.size(), n_items, E, threads, te, flop / te * 1e-9, ts,
                flop / ts * 1e-9, metric_value(m, "ndcg@10"));
    std::fflush(stdout);
  }

  // --- ConvNCF, uni999 ------------------------------------------------------------------------
  if (conv_users > 0) {
    const Split split = random_split(conv_users, n_items, 30, 3);
    const TowerSpec tower = TowerSpec::make(E, {1, 32, 32, 32, 32}, {4, 4, 2, 2}, {4, 4, 2, 2});
    Params<float> prm = random_params(ModelKind::ConvNCF, conv_users, n_items, E, 4);
    prm.net.resize(size_t(tower.n_params));
    Rng rng(4, kStreamInit + 1);
    for (const ConvLayer& l : tower.layers) {  // PyTorch's default U(-1/sqrt(fan_in), +)
      const double bound = 1.0 / std::sqrt(double(l.cin) * l.k * l.k);
      for (int64_t i = 0; i < l.w_size(); ++i)
        prm.net[size_t(l.w_offset + i)] = float(bound * (2 * rng.uniform() - 1));
      for (int64_t i = 0; i < l.cout; ++i)
        prm.net[size_t(l.b_offset + i)] = float(bound * (2 * rng.uniform() - 1));
    }
    for (int64_t i = tower.out_w_offset; i < tower.n_params; ++i)
      prm.net[size_t(i)] = float((2 * rng.uniform() - 1) / std::sqrt(double(tower.last_channels())));
    CpuEngine<float> eng(ModelKind::ConvNCF, &tower, conv_users, n_items, E, threads);
    std::vector<double> t_sample, t_eval;
    EvalSet set;
    Metrics m;
    for (int rep = 0; rep < repeats; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      set = make_eval_set(split, true, "uni999", 1, kStreamEvalTest, nullptr);
      t_sample.push_back(seconds_since(t0));
      t0 = std::chrono::steady_clock::now();
      std::unique_ptr<Scorer> scorer = make_scorer(eng, prm);
      m = evaluate(*scorer, set, topk);
      t_eval.push_back(seconds_since(t0));
    }
    const double pairs = double(set.positives.size() + set.negatives.size());
    const double te = median(t_eval);
    std::printf("{\"bench\":\"eval_uni999_convncf\",\"users\":%lld,\"items\":%d,\"E\":%d,\"threads\":%d,"
                "\"sample_seconds\":%.4f,\"median_seconds\":%.3f,\"pairs_per_second\":%.0f,"
                "\"ndcg@10\":%.6f}\n",
                (long long)set.size(), n_items, E, threads, median(t_sample), te, pairs / te,
                metric_value(m, "ndcg@10"));
    std::fflush(stdout);
  }
  return 0;
}
