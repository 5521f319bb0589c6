// bench_cpu_engine.cpp: training throughput of the CPU reference engine, in triples per second,
// for both presets and MF-BPR: one full step (forward, backward, regularization, optimizer) on
// batches of random triples over an ml-100k-sized catalogue, median of repeats after a warm-up.
//
//   build/bench/bench_cpu_engine [--threads=N] [--repeats=R]
// One JSON line per result: {"bench":"cpu_train_step","preset":...,"batch":...,"triples_per_second":...}
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "convncf/cpu_engine.hpp"
#include "convncf/optim.hpp"
#include "convncf/options.hpp"
#include "convncf/rng.hpp"

using namespace convncf;

int main(int argc, char** argv) {
  int threads = omp_get_max_threads(), repeats = 5;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) threads = std::atoi(argv[i] + 10);
    else if (std::strncmp(argv[i], "--repeats=", 10) == 0) repeats = std::atoi(argv[i] + 10);
    else {
      std::fprintf(stderr, "usage: bench_cpu_engine [--threads=N] [--repeats=R]\n");
      return 64;
    }
  }
  const int32_t n_users = 943, n_items = 1682;
  struct Case { const char* name; ModelKind model; Config cfg; std::vector<int64_t> batches; };
  std::vector<Case> cases;
  // Each case's configuration comes from the preset table (host/config.cpp), as `train` gets it.
  auto preset = [](Preset p, ModelKind m) {
    Config c;
    c.preset = p;
    c.model = m;
    c.apply_preset_defaults();
    return c;
  };
  cases.push_back({"recbole", ModelKind::ConvNCF, preset(Preset::RecBole, ModelKind::ConvNCF), {512, 2048}});
  cases.push_back({"paper", ModelKind::ConvNCF, preset(Preset::Paper, ModelKind::ConvNCF), {512}});
  cases.push_back({"mf-bpr", ModelKind::BPR, preset(Preset::RecBole, ModelKind::BPR), {512, 2048}});
  for (const Case& c : cases) {
    TowerSpec tower;
    if (c.model == ModelKind::ConvNCF)
      tower = TowerSpec::make(c.cfg.embedding_size, c.cfg.cnn_channels, c.cfg.cnn_kernels, c.cfg.cnn_strides);
    const TowerSpec* tp = c.model == ModelKind::ConvNCF ? &tower : nullptr;
    Params<float> prm = init_params(c.cfg, tp, n_users, n_items);
    CpuEngine<float> eng(c.model, tp, n_users, n_items, c.cfg.embedding_size, threads);
    OptimizerSpec os;
    os.learner = c.cfg.learner;
    os.lr = c.cfg.learning_rate;
    os.adagrad_initial_accumulator = c.cfg.adagrad_initial_accumulator;
    os.adagrad_eps = c.cfg.adagrad_eps;
    Optimizer<float> oP(os, int64_t(prm.P.size())), oQ(os, int64_t(prm.Q.size())), oN(os, int64_t(prm.net.size()));
    const RegSpec reg{c.cfg.reg_type, c.cfg.reg_weights, true};
    for (int64_t B : c.batches) {
      Rng rng(1, 1);
      std::vector<int32_t> u(static_cast<size_t>(B)), p(static_cast<size_t>(B)), n(static_cast<size_t>(B));
      std::vector<double> secs;
      for (int rep = -1; rep < repeats; ++rep) {
        for (int64_t i = 0; i < B; ++i) {
          u[size_t(i)] = int32_t(rng.index(n_users));
          p[size_t(i)] = int32_t(rng.index(n_items));
          n[size_t(i)] = int32_t(rng.index(n_items));
        }
        const auto t0 = std::chrono::steady_clock::now();
        eng.compute(prm, {u.data(), p.data(), n.data(), B}, reg, {c.cfg.dropout_prob, 1, uint64_t(rep + 2)});
        oP.step(prm.P.data(), eng.grads().P.data(), int64_t(prm.P.size()));
        oQ.step(prm.Q.data(), eng.grads().Q.data(), int64_t(prm.Q.size()));
        if (!prm.net.empty()) oN.step(prm.net.data(), eng.grads().net.data(), int64_t(prm.net.size()));
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (rep >= 0) secs.push_back(s);
      }
      std::sort(secs.begin(), secs.end());
      const double med = secs[secs.size() / 2];
      std::printf("{\"bench\":\"cpu_train_step\",\"preset\":\"%s\",\"batch\":%lld,\"threads\":%d,"
                  "\"median_seconds\":%.5f,\"triples_per_second\":%.1f}\n",
                  c.name, (long long)B, threads, med, double(B) / med);
      std::fflush(stdout);
    }
  }
  return 0;
}
