// bench_cpu_engine.cpp: the CPU reference engine through the engine interface (engine.hpp), the way
// the training loop drives it, on the built-in synthetic data at ml-100k's size (943 users,
// 1,682 items, about 100k interactions, ratio split 8:1:1). Each row is the median of R repeats
// after a warm-up. JSON lines:
//   cpu_train_step  Engine::step (negatives, forward, backward, regularization, the optimizer
//                   update) for both presets and MF-BPR, in triples per second.
//   cpu_subnormal   the recbole step and the ConvNCF full ranking of 64 users, with the initial
//                   network and with a third of its weights replaced by subnormal floats
//                   (|w| < 1.2e-38, what the norm regularization leaves of dead units), each with
//                   the engine's flush of subnormals on (as it runs) and off (set_flush_denormals,
//                   fp_env.hpp), side by side; "vs_normal" is the rate against the row with the
//                   initial network and the same flush setting.
//   cpu_eval        Engine::evaluate, full ranking of 256 users: scored pairs per second.
//
//   build/bench/bench_cpu_engine [--threads=N] [--repeats=R] [--compete] [--only=train|subnormal|eval]
// --compete: the whole run next to a competing process of its own (two threads of FMA loops, as
// many as this 2-core machine has; it ends with the benchmark), to show the engine's share under
// load; rows then carry "competitor":true.
#include <omp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "convncf/config.hpp"
#include "convncf/dataset.hpp"
#include "convncf/engine.hpp"
#include "convncf/errors.hpp"
#include "convncf/evaluate.hpp"
#include "convncf/fp_env.hpp"
#include "convncf/options.hpp"
#include "convncf/rng.hpp"

using namespace convncf;

namespace {

int g_repeats = 5;
bool g_compete = false;

double seconds_of(const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Median of g_repeats timed runs of fn after one warm-up; before() runs untimed before each.
double median_seconds(const std::function<void()>& before, const std::function<void()>& fn) {
  std::vector<double> secs;
  for (int rep = -1; rep < g_repeats; ++rep) {
    before();
    const double s = seconds_of(fn);
    if (rep >= 0) secs.push_back(s);
  }
  std::sort(secs.begin(), secs.end());
  return secs[secs.size() / 2];
}

Config config_of(const char* preset, const char* model, int threads) {
  return Config::from_args({std::string("--preset=") + preset, std::string("--model=") + model,
                            "--device=cpu", "--quiet", "--threads=" + std::to_string(threads)});
}

// The recbole tower's initial network with every third weight (biases left alone) a subnormal.
Params<float> with_subnormal_weights(Params<float> p, const TowerSpec& t) {
  Rng rng(5, 1);
  auto seed_layer = [&](int64_t off, int64_t n) {
    for (int64_t i = off; i < off + n; ++i)
      if (rng.index(3) == 0) p.net[size_t(i)] = (rng.index(2) ? 1.f : -1.f) * 1e-39f * float(1 + rng.index(9));
  };
  for (const ConvLayer& l : t.layers) seed_layer(l.w_offset, l.w_size());
  seed_layer(t.out_w_offset, t.last_channels());
  return p;
}

void emit(const char* bench, const std::string& keys, int threads) {
  std::printf("{\"bench\":\"%s\",%s,\"threads\":%d%s}\n", bench, keys.c_str(), threads,
              g_compete ? ",\"competitor\":true" : "");
  std::fflush(stdout);
}

// One step's median over the epoch's order, from `prm` each time (set_params untimed).
double step_seconds(Engine& eng, const Config& cfg, const Params<float>& prm, int64_t B,
                    const std::vector<int64_t>& order) {
  int64_t k = 0;
  StepSpec spec;
  spec.reg = RegSpec{cfg.reg_type, cfg.reg_weights, true};
  return median_seconds([&] { eng.set_params(prm); },
                        [&] {
                          spec.dropout = DropoutSpec{cfg.dropout_prob, 1, uint64_t(k + 1)};
                          eng.step((k * B) % (int64_t(order.size()) - B), B, spec);
                          ++k;
                        });
}

// A competing process: two threads of dependent FMA chains until it is killed.
pid_t start_competitor() {
  const pid_t pid = fork();
  if (pid != 0) return pid;
#pragma omp parallel num_threads(2)
  {
    volatile double a = 1.0 + omp_get_thread_num() * 1e-9;  // volatile: the loop is not folded
    for (;;) a = a * 0.9999999 + 1e-7;
  }
  _exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = omp_get_max_threads();
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) threads = std::atoi(argv[i] + 10);
    else if (std::strncmp(argv[i], "--repeats=", 10) == 0) g_repeats = std::max(1, std::atoi(argv[i] + 10));
    else if (std::strcmp(argv[i], "--compete") == 0) g_compete = true;
    else if (std::strncmp(argv[i], "--only=", 7) == 0) only = argv[i] + 7;
    else {
      std::fprintf(stderr, "usage: bench_cpu_engine [--threads=N] [--repeats=R] [--compete] "
                           "[--only=train|subnormal|eval]\n");
      return 64;
    }
  }
  // before anything of OpenMP's starts in this process: the child runs its own team
  const pid_t competitor = g_compete ? start_competitor() : 0;
  SyntheticSpec ss;
  ss.n_users = 943;
  ss.n_items = 1682;
  const Interactions data = make_synthetic(1, ss);
  const Split split = ratio_split(data, {0.8, 0.1, 0.1}, SplitOrder::Random, 1);
  std::vector<int64_t> order(split.train_user.size());
  std::iota(order.begin(), order.end(), 0);
  Rng shuffle(1, kStreamShuffle);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[shuffle.index(uint32_t(i))]);

  try {
    if (only.empty() || only == "train") {
      struct Case { const char* name; const char* preset; const char* model; std::vector<int64_t> batches; };
      const Case cases[] = {{"recbole", "recbole", "ConvNCF", {512, 2048}},
                            {"paper", "paper", "ConvNCF", {512, 2048}},
                            {"mf-bpr", "recbole", "BPR", {512, 2048}}};
      for (const Case& c : cases) {
        const Config cfg = config_of(c.preset, c.model, threads);
        const TowerSpec tower = c.model == std::string("ConvNCF") ? tower_spec(cfg) : TowerSpec{};
        const Params<float> prm = init_params(cfg, c.model == std::string("ConvNCF") ? &tower : nullptr,
                                              split.n_users, split.n_items);
        const std::unique_ptr<Engine> eng = make_cpu_engine(engine_options(cfg), split);
        eng->begin_epoch(1, order);
        for (const int64_t B : c.batches) {
          const double s = step_seconds(*eng, cfg, prm, B, order);
          char b[256];
          std::snprintf(b, sizeof b, "\"preset\":\"%s\",\"batch\":%lld,\"median_seconds\":%.5f,\"triples_per_second\":%.1f",
                        c.name, (long long)B, s, double(B) / s);
          emit("cpu_train_step", b, threads);
        }
      }
    }
    if (only.empty() || only == "subnormal" || only == "eval") {
      const Config cfg = config_of("recbole", "ConvNCF", threads);
      const TowerSpec tower = tower_spec(cfg);
      const Params<float> normal = init_params(cfg, &tower, split.n_users, split.n_items);
      const Params<float> sub = with_subnormal_weights(normal, tower);
      const std::unique_ptr<Engine> eng = make_cpu_engine(engine_options(cfg), split);
      eng->begin_epoch(1, order);
      EvalSet full = make_eval_set(split, false, "full", 1, kStreamEvalValid, nullptr);
      auto first = [&](int64_t n) {
        EvalSet s = full;
        n = std::min<int64_t>(n, s.size());
        s.user.resize(size_t(n));
        s.pos_offsets.resize(size_t(n) + 1);
        s.positives.resize(size_t(s.pos_offsets.back()));
        return s;
      };
      if (only.empty() || only == "subnormal") {
        const EvalSet e64 = first(64);
        for (const bool flush : {true, false}) {
          set_flush_denormals(flush);
          double step_normal = 0, eval_normal = 0;
          for (const bool subnormal : {false, true}) {
            const Params<float>& p = subnormal ? sub : normal;
            const double st = step_seconds(*eng, cfg, p, 2048, order);
            const double ev = median_seconds([&] { eng->set_params(p); }, [&] { eng->evaluate(e64, {10}); });
            if (!subnormal) step_normal = st, eval_normal = ev;
            char b[384];
            std::snprintf(b, sizeof b,
                          "\"preset\":\"recbole\",\"flush\":%s,\"weights\":\"%s\",\"train_triples_per_second\":%.1f,"
                          "\"train_vs_normal\":%.3f,\"eval_pairs_per_second\":%.1f,\"eval_vs_normal\":%.3f",
                          flush ? "true" : "false", subnormal ? "a third subnormal" : "initial",
                          2048.0 / st, step_normal / st, double(e64.size()) * split.n_items / ev,
                          eval_normal / ev);
            emit("cpu_subnormal", b, threads);
          }
        }
        set_flush_denormals(true);
      }
      if (only.empty() || only == "eval") {
        const EvalSet e256 = first(256);
        eng->set_params(normal);
        const double s = median_seconds([] {}, [&] { eng->evaluate(e256, {10}); });
        char b[256];
        std::snprintf(b, sizeof b, "\"preset\":\"recbole\",\"users\":%lld,\"items\":%d,\"median_seconds\":%.4f,\"pairs_per_second\":%.1f",
                      (long long)e256.size(), split.n_items, s, double(e256.size()) * split.n_items / s);
        emit("cpu_eval", b, threads);
      }
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_cpu_engine: %s\n", e.what());
    if (competitor > 0) kill(competitor, SIGKILL), waitpid(competitor, nullptr, 0);
    return e.code();
  }
  if (competitor > 0) {
    kill(competitor, SIGKILL);
    waitpid(competitor, nullptr, 0);
  }
  return 0;
}
