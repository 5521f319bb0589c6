// bench_cpu_engine.cpp: the CPU reference engine through the engine interface (engine.hpp), the way
// the training loop drives it, on the built-in synthetic data at ml-100k's size (943 users,
// 1,682 items, about 100k interactions, ratio split 8:1:1). Each row is the median of R repeats
// after a warm-up; "cpu_seconds" is the median CPU time of the process in the same repeats (all
// its threads, OpenMP's spinning at barriers included). JSON lines:
//   cpu_peak        this machine's FP32 FMA rate as the engine is compiled (x86-64-v3: 8-wide
//                   AVX2 FMAs): each thread runs 12 independent FMA chains in registers; GFLOP/s
//                   of wall time and per CPU-second. The yardstick of "of_peak" below.
//   cpu_train_step  Engine::step (negatives, forward, backward, regularization, the optimizer
//                   update) for both presets and MF-BPR, in triples per second; for ConvNCF also
//                   the tower's arithmetic as the engine does it ("flop_per_triple": layer 1
//                   through the user's side A, A and layer 1's weight and p gradients once per
//                   triple, 2 FLOP per multiply-add), GFLOP/s and their share of cpu_peak.
//   cpu_subnormal   the recbole step and the ConvNCF full ranking of 64 users, with the initial
//                   network and with a third of its weights replaced by subnormal floats
//                   (|w| < 1.2e-38, what the norm regularization leaves of dead units), each with
//                   the engine's flush of subnormals on (as it runs) and off (set_flush_denormals,
//                   fp_env.hpp), side by side; "vs_normal" is the rate against the row with the
//                   initial network and the same flush setting.
//   cpu_eval        Engine::evaluate, full ranking of 256 users: scored pairs per second, and
//                   GFLOP/s of the forward (A once per user and scoring chunk, not counted).
//
//   build/bench/bench_cpu_engine [--threads=N] [--repeats=R] [--compete]
//                                [--only=peak|train|subnormal|eval]
// --compete: the whole run next to a competing process of its own (two threads of FMA loops, as
// many as this 2-core machine has; it ends with the benchmark), to show the engine's share under
// load; rows then carry "competitor":true, and a last row cpu_compete gives the CPU time that
// each of the two processes got over the run (on a machine shared with others too, the fair
// share is the benchmark's half of the two).
#include <omp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
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

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// The median CPU time (all of this process's threads) of the last median_seconds() call. Less
// sensitive than wall time to other jobs on a shared machine when threads = 1; with more threads
// it includes OpenMP's spinning at barriers, which a busy machine prolongs.
double g_last_cpu = 0;

// Median of g_repeats timed runs of fn after one warm-up; before() runs untimed before each.
double median_seconds(const std::function<void()>& before, const std::function<void()>& fn) {
  std::vector<double> secs, cpu;
  for (int rep = -1; rep < g_repeats; ++rep) {
    before();
    const double c0 = process_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rep >= 0) secs.push_back(s), cpu.push_back(process_cpu_seconds() - c0);
  }
  std::sort(secs.begin(), secs.end());
  std::sort(cpu.begin(), cpu.end());
  g_last_cpu = cpu[cpu.size() / 2];
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

// FLOP of the ConvNCF tower as the engine computes it (cpu_engine.hpp), 2 per multiply-add.
// A = the user's side of layer 1 (S k k C), F1 = layer 1 from A (S S k C), Fr = layers 2..L.
struct TowerFlop {
  double A = 0, F1 = 0, Fr = 0;
  explicit TowerFlop(const TowerSpec& t) {
    const ConvLayer& l1 = t.layers[0];
    A = double(l1.out_size) * l1.k * l1.k * l1.cout;
    F1 = double(l1.out_size) * l1.out_size * l1.k * l1.cout;
    for (size_t i = 1; i < t.layers.size(); ++i) {
      const ConvLayer& l = t.layers[i];
      Fr += double(l.out_size) * l.out_size * l.k * l.k * l.cin * l.cout;
    }
  }
  // Training: A, dW1 and dp once per triple; per pair the forward, layer 1's dA and dq, and
  // dW and dX of layers 2..L.
  double train_per_triple() const { return 2 * (3 * A + 2 * (3 * F1 + 3 * Fr)); }
  double score_per_pair() const { return 2 * (F1 + Fr); }
};

// This machine's FMA rate as the engine is compiled: `threads` threads, each 12 independent
// chains of Vec FMAs held in registers (asm barrier: nothing is folded or spilled). Returns
// GFLOP/s of wall time; *per_cpu_second gets GFLOP per CPU-second.
double fma_peak_gflops(int threads, double* per_cpu_second) {
#if defined(__x86_64__)
  typedef float V __attribute__((vector_size(32)));
  const int64_t n = 100000000;  // per thread: 12 x 8 x 2 x n FLOP, about 0.2 s at 3 GHz
  const double c0 = process_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
  {
    const float f = 1.0f + 1e-7f * float(omp_get_thread_num());
    const V m = {f, f, f, f, f, f, f, f}, c = {1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f};
    V a0 = c, a1 = c, a2 = c, a3 = c, a4 = c, a5 = c, a6 = c, a7 = c, a8 = c, a9 = c, a10 = c, a11 = c;
    for (int64_t i = 0; i < n; ++i) {
      a0 = a0 * m + c, a1 = a1 * m + c, a2 = a2 * m + c, a3 = a3 * m + c, a4 = a4 * m + c, a5 = a5 * m + c;
      a6 = a6 * m + c, a7 = a7 * m + c, a8 = a8 * m + c, a9 = a9 * m + c, a10 = a10 * m + c, a11 = a11 * m + c;
      asm volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6), "+x"(a7),
                   "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11));
    }
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = process_cpu_seconds() - c0;
  const double flop = 12.0 * 8 * 2 * double(n) * threads;
  *per_cpu_second = flop / cpu / 1e9;
  return flop / wall / 1e9;
#else
  (void)threads;
  *per_cpu_second = 0;
  return 0;  // not measured off x86-64
#endif
}

// CPU seconds (user + system) that process `pid` has used, from /proc (Linux); -1 if unknown.
double cpu_seconds_of(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", int(pid));
  FILE* f = std::fopen(path, "r");
  if (!f) return -1;
  char buf[1024];
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');  // the command name may hold spaces
  unsigned long long ut = 0, st = 0;
  if (!p || std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
    return -1;
  return double(ut + st) / double(sysconf(_SC_CLK_TCK));
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
                           "[--only=peak|train|subnormal|eval]\n");
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

  const auto run_start = std::chrono::steady_clock::now();
  double peak = 0;  // GFLOP/s of wall time; 0: not measured
  try {
    if (only != "subnormal") {
      double per_cpu = 0;
      for (int rep = 0; rep < 3; ++rep) {  // the best of three: the machine's rate, when it let us have it
        double c = 0;
        peak = std::max(peak, fma_peak_gflops(threads, &c));
        per_cpu = std::max(per_cpu, c);
      }
      char b[256];
      std::snprintf(b, sizeof b, "\"what\":\"8-wide FP32 FMA, 12 chains per thread\",\"gflops\":%.1f,"
                    "\"gflops_per_cpu_second\":%.1f", peak, per_cpu);
      emit("cpu_peak", b, threads);
    }
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
          char b[384];
          int len = std::snprintf(b, sizeof b, "\"preset\":\"%s\",\"batch\":%lld,\"median_seconds\":%.5f,"
                                  "\"triples_per_second\":%.1f,\"cpu_seconds\":%.5f",
                                  c.name, (long long)B, s, double(B) / s, g_last_cpu);
          if (c.model == std::string("ConvNCF")) {
            const double f = TowerFlop(tower).train_per_triple(), gf = f * double(B) / s / 1e9;
            std::snprintf(b + len, sizeof b - size_t(len), ",\"flop_per_triple\":%.0f,\"gflops\":%.1f,\"of_peak\":%.3f",
                          f, gf, peak > 0 ? gf / peak : 0.0);
          }
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
        char b[384];
        const double pairs = double(e256.size()) * split.n_items / s;
        const double gf = pairs * TowerFlop(tower).score_per_pair() / 1e9;
        std::snprintf(b, sizeof b, "\"preset\":\"recbole\",\"users\":%lld,\"items\":%d,\"median_seconds\":%.4f,"
                      "\"pairs_per_second\":%.1f,\"cpu_seconds\":%.4f,\"gflops\":%.1f,\"of_peak\":%.3f",
                      (long long)e256.size(), split.n_items, s, pairs, g_last_cpu, gf, peak > 0 ? gf / peak : 0.0);
        emit("cpu_eval", b, threads);
      }
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_cpu_engine: %s\n", e.what());
    if (competitor > 0) kill(competitor, SIGKILL), waitpid(competitor, nullptr, 0);
    return e.code();
  }
  if (competitor > 0) {
    const double theirs = cpu_seconds_of(competitor);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
    kill(competitor, SIGKILL);
    waitpid(competitor, nullptr, 0);
    const double ours = process_cpu_seconds();
    char b[256];
    std::snprintf(b, sizeof b, "\"wall_seconds\":%.2f,\"own_cpu_seconds\":%.2f,\"competitor_cpu_seconds\":%.2f,"
                  "\"own_share\":%.3f", wall, ours, theirs, theirs >= 0 ? ours / (ours + theirs) : 0.0);
    emit("cpu_compete", b, threads);
  }
  return 0;
}
