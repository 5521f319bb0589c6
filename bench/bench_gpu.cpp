// bench_gpu.cpp: the CUDA engine's kernels one by one, end-to-end training throughput of each
// engine, and the time of a full-ranking evaluation.
//
//   build/bench/bench_gpu [--repeats=R] [--quick] [--json=FILE] [--engines=LIST] [--batches=LIST]
//                         [--eval-users=N] [--help]
//
// kernel      per kernel: median time over R repeats (CUDA events, after a warm-up), the bytes
//             and FLOPs it must move or do, the achieved GB/s or TFLOP/s, and the floor (the time
//             at the card's nominal HBM bandwidth or FP32 rate: H100 SXM 3.35 TB/s, H200
//             4.8 TB/s, 67 TFLOP/s FP32).
// train_step  Engine::step (engine.hpp, the interface the training loop drives) of each engine in LIST (cudnn, fused-fp32, fused-tf32,
//             fused-bf16; default all) on a 30k-user x 40k-item synthetic catalogue, both presets,
//             batch sizes 512 .. 16384 (--quick: 2048 and 16384, fewer steps; --batches=LIST to
//             choose): triples per second, and that rate as a fraction of two floors, the FP32
//             floor (flop_per_triple at 67 TFLOP/s) and the tensor-core floor (at the
//             precision's dense tensor-core peak: TF32 495 TFLOP/s for the fp32 and tf32
//             engines, BF16 989 TFLOP/s). An engine the device cannot hold (the fused tower
//             larger than shared memory: make_cuda_engine throws) gives a line with
//             "skipped" and the message instead of a rate. Fused lines carry "fused_variant"
//             and "tensor_cores" (variants 3 and 4 run layers 2..L on the tensor cores in tf32
//             and bf16 where the tower allows, the engine takes 4; fp32 runs variant 2 on FP32
//             cores).
// eval_full   evaluate_gpu's full ranking of a 30,000-user x 41,000-item catalogue (the recbole
//             tower, random parameters, each user's training and validation items masked) for
//             each engine in LIST (Engine::evaluate), after checking the scores of its top 10 of
//             256 users (Engine::top_k) against the CPU engine's. --eval-users=N times the first N users and scales the time to all of
//             them ("extrapolated": true; --quick: 1000 users); 0 skips this part. --eval-pairs:
//             pairs per forward (default 131072).
// Every row carries its repeats ("samples_ms" of a kernel, "samples_tps" of a training row: the
// timed steps in up to 5 chunks, "samples_seconds" of an evaluation: the timed users in up to 5
// chunks, each scaled to all users) and their "spread", (max - min) / median, so that
// bench_table.py --baseline can tell a slower row from noise.
// Peaks are the H100 SXM's (the H200 is the same chip; main() picks its HBM bandwidth by name);
// on another card the floors are still the H100's. Every result is one JSON line with the GPU
// name, SM clock, CUDA and cuDNN versions. bench/bench_table.py runs this and the PyTorch peer
// and makes the table.
// Exit: 0; 64 a bad flag; 69 no usable GPU (it says why; no --json file is made); 70 a score
// check failed or a CUDA, cuDNN or engine call threw (the lines before it are printed); 74 the
// --json file cannot be written.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "convncf/bpr.hpp"
#include "convncf/config.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/cudnn_conv.hpp"
#include "convncf/dataset.hpp"
#include "convncf/engine.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/errors.hpp"
#include "convncf/eval_gpu.hpp"
#include "convncf/evaluate.hpp"
#include "convncf/fused_tower.hpp"
#include "convncf/gpu.hpp"
#include "convncf/gpu_engine.hpp"
#include "convncf/head.hpp"
#include "convncf/model.hpp"
#include "convncf/optim_gpu.hpp"
#include "convncf/options.hpp"
#include "convncf/outer_product.hpp"
#include "convncf/rng.hpp"
#include "convncf/sparse_grad.hpp"

using namespace convncf;

namespace {

int g_repeats = 20;
std::string g_meta;  // "gpu":...,"sm_clock_mhz":...,"cuda":...,"cudnn":...
// Dense peaks of the H100 SXM; main() raises the bandwidth for an H200 (same compute).
double g_peak_bw = 3.35e12, g_peak_fp32 = 67e12;
constexpr double kPeakTf32 = 495e12, kPeakBf16 = 989e12;  // tensor cores, dense
std::ofstream g_json;
bool g_failed = false;  // a check failed: exit 70 after the other results

// The engines --engines chooses from, with the names their JSON lines carry.
struct EngineChoice {
  const char* key;        // --engines name
  const char* engine;     // "engine": "cudnn" | "fused"
  const char* precision;  // "precision": "fp32" | "tf32" | "bf16"
  bool fused;
  Precision fused_precision;
  double tc_peak;  // the tensor-core peak of its floor: fp32 engines are held to TF32's
};
const EngineChoice kEngines[] = {
    {"cudnn", "cudnn", "fp32", false, Precision::FP32, kPeakTf32},
    {"fused-fp32", "fused", "fp32", true, Precision::FP32, kPeakTf32},
    {"fused-tf32", "fused", "tf32", true, Precision::TF32, kPeakTf32},
    {"fused-bf16", "fused", "bf16", true, Precision::BF16, kPeakBf16},
};

// Training FLOP per triple, REFERENCE.md's table: the conv layers' multiply-adds of one pair
// (recbole 413,696, paper 1,527,808; layer 1 counted as a dense conv over the E x E map, not
// through its rank-1 shortcut) x 2 FLOP x 2 pairs (positive, negative) x 3 (the forward, and the
// backward's input and weight gradients). The outer product, head, loss, embedding rows and
// optimizers are left out, so a floor from it is a bound no engine can beat. recbole: 4.96 M,
// written 5.0 M. paper: this count gives 18.3 M; REFERENCE.md's 18.6 M is kept because the
// PyTorch peer (bench/peer/convncf_torch.py) uses it too, and both must share one floor.
double flop_per_triple(const std::string& preset) { return preset == "recbole" ? 5.0e6 : 18.6e6; }

std::string json_escape(const std::string& t) {
  std::string o;
  for (const char c : t) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(c));
      o += b;
    } else {
      o += c;
    }
  }
  return o;
}

// Each line is flushed: bench_table.py reads stdout through a pipe and may stop this program at
// its time limit, which must not lose the lines already measured.
void emit(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  if (g_json) g_json << line << std::endl;
}

// A row's repeats as a JSON array, and their spread (max - min) / median: bench_table.py compares
// a run with a baseline row by row and counts a row slower only beyond the spread of its repeats.
std::string samples_json(const std::vector<double>& v, const char* fmt) {
  std::string o = "[";
  char b[64];
  for (size_t i = 0; i < v.size(); ++i) {
    std::snprintf(b, sizeof b, fmt, v[i]);
    o += (i ? "," : "") + std::string(b);
  }
  return o + "]";
}
double spread_of(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double med = v[v.size() / 2];
  return med > 0 ? (v.back() - v.front()) / med : 0.0;
}

struct Timing {
  double ms = 0;                // the median
  std::vector<double> samples;  // every repeat, in the order run
};

// Milliseconds of fn() over g_repeats runs after two warm-ups, timed with events: the median and
// every repeat.
Timing time_ms(const std::function<void()>& fn, cudaStream_t s) {
  cudaEvent_t a, b;
  CUDA_CHECK(cudaEventCreate(&a));
  CUDA_CHECK(cudaEventCreate(&b));
  fn();
  fn();
  std::vector<float> ms;
  for (int r = 0; r < g_repeats; ++r) {
    CUDA_CHECK(cudaEventRecord(a, s));
    fn();
    CUDA_CHECK(cudaEventRecord(b, s));
    CUDA_CHECK(cudaEventSynchronize(b));
    float t = 0;
    CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  CUDA_CHECK(cudaEventDestroy(a));
  CUDA_CHECK(cudaEventDestroy(b));
  Timing out;
  out.samples.assign(ms.begin(), ms.end());
  std::sort(ms.begin(), ms.end());
  out.ms = ms[ms.size() / 2];
  return out;
}

void kernel_result(const std::string& name, const std::string& shape, const Timing& t, double bytes, double flops) {
  const double ms = t.ms;
  const double floor_ms = std::max(bytes / g_peak_bw, flops / g_peak_fp32) * 1e3;
  char b[512];
  std::snprintf(b, sizeof b,
                "{\"bench\":\"kernel\",\"kernel\":\"%s\",\"shape\":\"%s\",\"ms\":%.4f,\"GBps\":%.1f,\"TFLOPs\":%.3f,"
                "\"floor_ms\":%.4f,\"of_floor\":%.3f,\"spread\":%.4f,\"samples_ms\":",
                name.c_str(), shape.c_str(), ms, bytes / ms / 1e6, flops / ms / 1e9, floor_ms, floor_ms / ms,
                spread_of(t.samples));
  emit(b + samples_json(t.samples, "%.5f") + "," + g_meta + "}");
}

std::vector<float> randn(size_t n, uint64_t seed, float scale) {
  Rng r(seed, kStreamSynthetic);
  std::vector<float> v(n);
  for (float& x : v) x = float(r.normal()) * scale;
  return v;
}
std::vector<int32_t> rand_ids(size_t n, int32_t range, uint64_t seed) {
  Rng r(seed, kStreamSynthetic);
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = int32_t(r.index(uint32_t(range)));
  return v;
}

void bench_kernels(int64_t B) {
  const int E = 64;
  const int32_t n_users = 30000, n_items = 40000;
  const int64_t N = 2 * B;  // pairs
  cudaStream_t s = nullptr;
  CUDA_CHECK(cudaStreamCreate(&s));
  DeviceBuffer<float> P(randn(size_t(n_users) * E, 1, 1)), Q(randn(size_t(n_items) * E, 2, 1));
  DeviceBuffer<int32_t> pu(rand_ids(size_t(N), n_users, 3)), pi(rand_ids(size_t(N), n_items, 4));
  DeviceBuffer<float> map(size_t(N) * E * E), dp(size_t(N) * E), dq(size_t(N) * E);
  const std::string shape = "pairs=" + std::to_string(N) + " E=64";
  const double map_bytes = double(N) * E * E * 4;
  for (int v : {1, 2}) {
    const Timing ms = time_ms([&] { outer_product_fwd(N, E, pu.data(), pi.data(), P.data(), Q.data(), map.data(), s, v); }, s);
    kernel_result("outer_product_fwd_kernel" + std::to_string(v), shape, ms, map_bytes + 2.0 * N * E * 4, double(N) * E * E);
  }
  {
    const Timing ms = time_ms([&] {
      outer_product_bwd(N, E, pu.data(), pi.data(), P.data(), Q.data(), map.data(), dp.data(), dq.data(), s);
    }, s);
    kernel_result("outer_product_bwd", shape, ms, map_bytes + 4.0 * N * E * 4, 4.0 * N * E * E);
  }
  {  // the head of the recbole tower (32 channels, 1x1 last map) and the loss
    const int C = 32;
    DeviceBuffer<float> Y(randn(size_t(N) * C, 10, 1)), w(randn(size_t(C), 11, 0.2f)), b(randn(1, 12, 0.1f)),
        h(size_t(N) * C), score(static_cast<size_t>(N)), dscore(static_cast<size_t>(N)), dY(size_t(N) * C),
        dw(static_cast<size_t>(C)), db(1);
    DeviceBuffer<double> loss(static_cast<size_t>(B));
    const DropoutArgs drop{0.2, 1, 1};
    const std::string sh = "pairs=" + std::to_string(N) + " C=32";
    kernel_result("head_fwd", sh, time_ms([&] {
                    head_fwd(N, C, 1, Y.data(), w.data(), b.data(), drop, h.data(), score.data(), s);
                  }, s), double(N) * C * 4 * 2 + N * 4.0, 2.0 * N * C);
    kernel_result("bpr_loss_grad", "triples=" + std::to_string(B),
                  time_ms([&] { bpr_loss_grad(B, B, score.data(), loss.data(), dscore.data(), s); }, s),
                  double(N) * 8 + B * 8.0, 0);
    kernel_result("head_bwd", sh, time_ms([&] {
                    head_bwd(N, C, 1, dscore.data(), w.data(), h.data(), drop, dY.data(), dw.data(), db.data(), s);
                  }, s), double(N) * C * 4 * 2 + N * 4.0, 4.0 * N * C);
  }
  // conv layers of both presets, forward and backward
  CudnnContext ctx(s);
  struct L { const char* preset; int cin, cout, k, in; };
  for (const L& l : {L{"recbole", 1, 32, 4, 64}, L{"recbole", 32, 32, 4, 16}, L{"recbole", 32, 32, 2, 4},
                     L{"recbole", 32, 32, 2, 2}, L{"paper", 1, 32, 2, 64}, L{"paper", 32, 32, 2, 32},
                     L{"paper", 32, 32, 2, 16}}) {
    ConvLayerPlans plans(ctx.handle(), ConvShape{N, l.cin, l.cout, l.k, l.in}, ConvOptions{});
    const int So = l.in / l.k;
    const size_t xs = size_t(N) * l.cin * l.in * l.in, ys = size_t(N) * l.cout * So * So;
    DeviceBuffer<float> X(randn(xs, 5, 1)), W(randn(size_t(l.cout) * l.cin * l.k * l.k, 6, 0.1f)),
        b(randn(size_t(l.cout), 7, 0.1f)), Y(ys), dY(randn(ys, 8, 1)), dW(W.size()), db(b.size()), dX(xs);
    DeviceBuffer<unsigned char> ws(std::max<size_t>(plans.workspace_bytes(), 1));
    const double flops = 2.0 * double(N) * l.cout * So * So * l.cin * l.k * l.k;
    const double io = double(xs + ys) * 4;
    const std::string sh = std::string(l.preset) + " " + std::to_string(l.cin) + "->" + std::to_string(l.cout) + " k" +
                           std::to_string(l.k) + " in" + std::to_string(l.in) + " pairs=" + std::to_string(N);
    kernel_result("conv_fwd", sh, time_ms([&] { plans.forward(X.data(), W.data(), b.data(), Y.data(), ws.data(), s); }, s),
                  io, flops);
    kernel_result("conv_bwd", sh, time_ms([&] {
                    plans.backward(X.data(), W.data(), Y.data(), dY.data(), dW.data(), db.data(), dX.data(), ws.data(), s);
                  }, s),
                  2 * io + double(xs) * 4, 2 * flops);
  }
  // sparse combiner and updaters on a batch's rows
  {
    RowGradCombiner comb(N, E, true);
    DeviceBuffer<float> rows(randn(size_t(N) * E, 9, 1)), table(size_t(n_items) * E);
    DeviceBuffer<int32_t> uniq(static_cast<size_t>(N)), nu(1);
    CUDA_CHECK(cudaMemset(table.data(), 0, table.size() * 4));
    const Timing ms = time_ms([&] { comb.combine(N, pi.data(), rows.data(), table.data(), uniq.data(), nu.data(), s); }, s);
    kernel_result("row_grad_combine_deterministic", "entries=" + std::to_string(N) + " E=64", ms, 3.0 * N * E * 4, 0);
    OptimizerSpec spec;
    DeviceBuffer<float> m(table.size()), v(table.size());
    CUDA_CHECK(cudaMemset(m.data(), 0, m.size() * 4));
    CUDA_CHECK(cudaMemset(v.data(), 0, v.size() * 4));
    const Timing ms2 = time_ms([&] {
      optim_dense_gpu(spec, 1, int64_t(table.size()), Q.data(), table.data(), m.data(), v.data(), s);
    }, s);
    kernel_result("adam_dense", "n=" + std::to_string(table.size()), ms2, 7.0 * double(table.size()) * 4, 0);
  }
  CUDA_CHECK(cudaStreamDestroy(s));
}

// The synthetic catalogue of the training and evaluation benchmarks: every user gets `per_user`
// distinct items drawn uniformly, in a random order that ratio_split cuts 0.8/0.1/0.1 (RecBole's
// default) into train, valid and test. make_synthetic's planted preferences change neither the
// cost of a step nor that of a ranking, and its draw per (user, item) takes about 30 s for
// 30k x 40k on one core: more than the whole --quick run may take.
Split uniform_split(int32_t n_users, int32_t n_items, int per_user, uint64_t seed) {
  Interactions data;
  data.name = "uniform";
  for (int32_t u = 0; u < n_users; ++u) data.users.get_or_add(std::to_string(u + 1));
  for (int32_t i = 0; i < n_items; ++i) data.items.get_or_add(std::to_string(i + 1));
  Rng rng(seed, kStreamSynthetic);
  std::vector<int32_t> row;
  double t = 0.0;
  for (int32_t u = 0; u < n_users; ++u) {
    row.clear();
    while (int(row.size()) < std::min(per_user, n_items)) {
      const int32_t it = int32_t(rng.index(uint32_t(n_items)));
      if (std::find(row.begin(), row.end(), it) == row.end()) row.push_back(it);
    }
    for (const int32_t it : row) {
      data.user.push_back(u);
      data.item.push_back(it);
      data.time.push_back(t += 1.0);
    }
  }
  return ratio_split(data, {0.8, 0.1, 0.1}, SplitOrder::Random, seed);
}

// The start of a result line: bench, engine, precision, preset and the keys given.
std::string line_head(const char* bench, const EngineChoice& ec, const char* preset) {
  return std::string("{\"bench\":\"") + bench + "\",\"engine\":\"" + ec.engine +
         "\",\"precision\":\"" + ec.precision + "\",\"preset\":\"" + preset + "\"";
}

// Which fused variant the engine runs for this tower (fused_engine_variant: 4 or 3, the tensor
// cores, for tf32/bf16 where the tower allows; else 2): bench_table.py's tensor-core rows.
std::string variant_keys(const EngineChoice& ec, const TowerSpec& tower) {
  if (!ec.fused) return "";
  const FusedTower ft = make_fused_tower(tower, ec.fused_precision, fused_max_smem_bytes());
  const int v = fused_engine_variant(ft);
  return ",\"fused_variant\":" + std::to_string(v) + ",\"tensor_cores\":" + (v >= 3 ? "true" : "false");
}

// The line of a configuration whose engine could not be built (e.g. the fused tower does not fit
// in shared memory): the constructor's message, not a crash.
void emit_skipped(const std::string& head, const Error& e) {
  emit(head + ",\"skipped\":\"" + json_escape(e.what()) +
       "\",\"exit_code\":" + std::to_string(e.code()) + "," + g_meta + "}");
}

// The CUDA engine that `ec` names for `cfg`'s model, through the one engine interface (the one the
// training loop drives): its batch cap and pairs per evaluation forward set here.
std::unique_ptr<Engine> make_engine_for(const EngineChoice& ec, const Config& cfg, const Split& split,
                                        int64_t batch_cap, int64_t eval_pairs, bool training) {
  EngineOptions o = engine_options(cfg, training);
  o.device = Device::Cuda;
  o.cuda.batch_cap = batch_cap;
  o.cuda.eval_pairs = eval_pairs;
  o.cuda.fused = ec.fused;
  o.cuda.precision = ec.fused_precision;
  return make_cuda_engine(o, split);
}

void bench_train(const std::vector<const EngineChoice*>& engines,
                 const std::vector<int64_t>& batches, bool quick) {
  const Split split = uniform_split(30000, 40000, 50, 1);
  std::vector<int64_t> order(split.train_user.size());
  std::iota(order.begin(), order.end(), 0);
  for (const int64_t B : batches)
    if (B >= int64_t(order.size()))
      throw_usage("--batches: " + std::to_string(B) + " is not below the " +
                  std::to_string(order.size()) + " training triples of the benchmark catalogue");
  for (const char* preset : {"recbole", "paper"}) {
    const Config cfg =
        Config::from_args({std::string("--preset=") + preset, "--model=ConvNCF", "--quiet", "--seed=1"});
    const TowerSpec tower = tower_spec(cfg);
    const Params<float> prm = init_params(cfg, &tower, split.n_users, split.n_items);
    const double flop = flop_per_triple(preset);
    for (const EngineChoice* ec : engines) {
      for (const int64_t B : batches) {
        const std::string head =
            line_head("train_step", *ec, preset) + ",\"batch\":" + std::to_string(B);
        std::unique_ptr<Engine> eng;
        try {
          eng = make_engine_for(*ec, cfg, split, B, 1024, true);
        } catch (const Error& e) {
          emit_skipped(head, e);
          continue;
        }
        eng->set_params(prm);
        eng->begin_epoch(1, order);
        const int64_t steps =
            std::max<int64_t>(5, std::min<int64_t>(quick ? 20 : 60, int64_t(order.size()) / B));
        auto run = [&](int64_t k0, int64_t k1) {
          for (int64_t k = k0; k < k1; ++k) {
            StepSpec spec;  // the main phase, the preset's regularization and dropout
            spec.reg = RegSpec{cfg.reg_type, cfg.reg_weights, true};
            spec.dropout = DropoutSpec{cfg.dropout_prob, 1, uint64_t(k + 1)};
            eng->step((k * B) % (int64_t(order.size()) - B), B, spec);
          }
        };
        run(0, 3);  // warm-up (a step synchronizes once, for the loss)
        // The timed steps in up to 5 chunks, each timed on its own: the rate of each chunk is a
        // repeat of the row (its spread is the noise bench_table.py's baseline comparison allows).
        const int64_t chunks = std::min<int64_t>(5, steps);
        std::vector<double> rates;
        double sec = 0.0;
        for (int64_t c = 0, k = 3; c < chunks; ++c) {
          const int64_t n = steps / chunks + (c < steps % chunks ? 1 : 0);
          const auto t0 = std::chrono::steady_clock::now();
          run(k, k + n);
          const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          sec += dt;
          rates.push_back(double(n * B) / dt);
          k += n;
        }
        const double tps = double(steps * B) / sec;
        char b[512];
        std::snprintf(b, sizeof b,
                      ",\"steps\":%lld,\"triples_per_second\":%.0f,\"flop_per_triple\":%.3g,"
                      "\"of_fp32_floor\":%.4g,\"of_tc_floor\":%.4g,\"tc_peak_tflops\":%.0f,\"spread\":%.4f,"
                      "\"samples_tps\":",
                      (long long)steps, tps, flop, tps * flop / g_peak_fp32,
                      tps * flop / ec->tc_peak, ec->tc_peak / 1e12, spread_of(rates));
        emit(head + variant_keys(*ec, tower) + b + samples_json(rates, "%.0f") + "," + g_meta + "}");
      }
    }
  }
}

// Queries lo .. hi-1 of a full-ranking set (clamped to its size).
EvalSet query_range(const EvalSet& s, int64_t lo, int64_t hi) {
  hi = std::min(hi, s.size());
  lo = std::min(lo, hi);
  EvalSet t;
  t.mode = s.mode;
  t.exclude = s.exclude;
  t.user.assign(s.user.begin() + lo, s.user.begin() + hi);
  for (int64_t q = lo; q <= hi; ++q) t.pos_offsets.push_back(s.pos_offsets[size_t(q)] - s.pos_offsets[size_t(lo)]);
  t.positives.assign(s.positives.begin() + s.pos_offsets[size_t(lo)], s.positives.begin() + s.pos_offsets[size_t(hi)]);
  return t;
}
// The first k queries (all of them when k >= its size).
EvalSet first_queries(const EvalSet& s, int64_t k) { return query_range(s, 0, k); }

// Full ranking of every test user of a Gowalla-size catalogue (29,858 users x 40,981 items,
// 1.03 M interactions, about 34 per user), recbole tower, PyTorch-default random parameters.
// eval_users < all: the first eval_users queries are timed and the time is scaled by
// all / eval_users. Pairs per second count every (query, item) the ranking scores.
void bench_eval(const std::vector<const EngineChoice*>& engines, int64_t eval_users,
                int64_t eval_pairs) {
  const int32_t n_users = 30000, n_items = 41000;
  const Split split = uniform_split(n_users, n_items, 34, 2);
  const Config cfg = Config::from_args({"--preset=recbole", "--model=ConvNCF", "--quiet"});
  const TowerSpec tower =
      TowerSpec::make(cfg.embedding_size, cfg.cnn_channels, cfg.cnn_kernels, cfg.cnn_strides);
  const Params<float> prm = init_params(cfg, &tower, split.n_users, split.n_items);
  const EvalSet all = make_eval_set(split, true, "full", 1, kStreamEvalTest, nullptr);
  const EvalSet timed = first_queries(all, eval_users),
                warm = first_queries(all, std::min<int64_t>(64, eval_users));
  const bool extrapolated = timed.size() < all.size();
  const double scale = double(all.size()) / double(std::max<int64_t>(timed.size(), 1));

  // The check before timing: the engine's top 10 of 256 users (through Engine::top_k, the
  // ranking path's scores), each (user, item, score) against the CPU engine's score of that pair
  // (the oracle): 2,560 pairs.
  std::vector<int32_t> check_users(256);
  std::iota(check_users.begin(), check_users.end(), 0);
  CpuEngine<float> cpu(ModelKind::ConvNCF, &tower, n_users, n_items, cfg.embedding_size, 1);
  const std::unique_ptr<Scorer> oracle = make_scorer(cpu, prm);

  for (const EngineChoice* ec : engines) {
    char b[640];
    std::snprintf(b, sizeof b, ",\"users\":%d,\"items\":%d,\"queries\":%lld,\"eval_pairs\":%lld",
                  n_users, n_items, (long long)all.size(), (long long)eval_pairs);
    const std::string head = line_head("eval_full", *ec, "recbole") + b;
    std::unique_ptr<Engine> eng;
    try {
      eng = make_engine_for(*ec, cfg, split, 256, eval_pairs, false);
    } catch (const Error& e) {
      emit_skipped(head, e);
      continue;
    }
    const std::string head_v = head + variant_keys(*ec, tower);
    eng->set_params(prm);
    const TopKLists lists = eng->top_k(check_users, all.exclude, 10);
    double err = 0.0, ref_max = 0.0;  // largest |gpu - cpu| relative to the largest |cpu|; NaN fails
    size_t n_check = 0;
    for (size_t u = 0; u < lists.size(); ++u)
      for (const auto& [item, score] : lists[u]) {
        float ref = 0.0f;
        oracle->score_items(check_users[u], &item, 1, &ref, 0);
        ref_max = std::max(ref_max, double(std::abs(ref)));
        const double d = std::abs(double(score) - double(ref));
        err = std::isnan(d) ? HUGE_VAL : std::max(err, d);
        ++n_check;
      }
    err /= std::max(ref_max, 1e-30);
    // fp32: a few hundred sums in another order; tf32 and bf16 round the operands of layers 2..L
    // to 10 and 7 mantissa bits (tolerances by storage type, STYLE.md).
    const double tol = ec->fused_precision == Precision::BF16   ? 5e-2
                       : ec->fused_precision == Precision::TF32 ? 1e-2
                                                                : 1e-4;
    if (n_check != 10 * check_users.size() || !(err <= tol)) {
      std::snprintf(b, sizeof b,
                    ",\"error\":\"top-10 scores differ from the CPU engine: max |gpu - cpu| / max |cpu| "
                    "= %.3g over %zu pairs (tolerance %.0e); not timed\",",
                    err, n_check, tol);
      emit(head_v + b + g_meta + "}");
      g_failed = true;
      continue;
    }
    eng->evaluate(warm, {10});  // warm-up: cuDNN's first launches
    // The timed queries in up to 5 chunks, each timed and scaled to all queries on its own: the
    // repeats of the row, whose spread bench_table.py's baseline comparison allows.
    const int64_t chunks = std::min<int64_t>(5, std::max<int64_t>(timed.size(), 1));
    std::vector<double> samples;
    double sec = 0.0, ndcg_sum = 0.0;
    for (int64_t c = 0; c < chunks; ++c) {
      const EvalSet part = query_range(timed, timed.size() * c / chunks, timed.size() * (c + 1) / chunks);
      if (part.size() == 0) continue;
      const auto t0 = std::chrono::steady_clock::now();
      const Metrics m = eng->evaluate(part, {10});
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      sec += dt;
      samples.push_back(dt * double(all.size()) / double(part.size()));
      ndcg_sum += metric_value(m, "ndcg@10") * double(part.size());  // a mean over queries
    }
    std::snprintf(
        b, sizeof b,
        ",\"queries_timed\":%lld,\"measured_seconds\":%.3f,\"seconds\":%.3f,\"extrapolated\":%s,"
        "\"pairs_per_second\":%.4g,\"score_check_rel_err\":%.2e,\"ndcg@10\":%.5f,\"spread\":%.4f,"
        "\"samples_seconds\":",
        (long long)timed.size(), sec, sec * scale, extrapolated ? "true" : "false",
        double(timed.size()) * n_items / sec, err, ndcg_sum / double(std::max<int64_t>(timed.size(), 1)),
        spread_of(samples));
    emit(head_v + b + samples_json(samples, "%.4f") + "," + g_meta + "}");
  }
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t a = 0;
  while (a <= s.size()) {
    const size_t c = std::min(s.find(',', a), s.size());
    out.push_back(s.substr(a, c - a));
    a = c + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::vector<const EngineChoice*> engines;
  std::vector<int64_t> batches;
  int64_t eval_users = -1;  // -1: the mode's default
  std::string json_path;    // opened after the device check: no GPU, no (empty) file
  // Pairs per evaluation forward: 256 users x 512 items, about 7 GB of cuDNN activations. 2^18
  // would make the recbole tower's first conv output exactly 2^31 floats, past int32 counts.
  int64_t eval_pairs = int64_t(1) << 17;
  const char* usage =
      "usage: bench_gpu [--repeats=R] [--quick] [--json=FILE] "
      "[--engines=cudnn,fused-fp32,fused-tf32,fused-bf16]\n"
      "                 [--batches=B1,B2,..] [--eval-users=N (0: no evaluation benchmark)] "
      "[--eval-pairs=N]\n";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--repeats=", 10) == 0) {
      g_repeats = std::max(1, std::atoi(argv[i] + 10));
    } else if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strncmp(argv[i], "--json=", 7) == 0) {
      json_path = argv[i] + 7;
    } else if (std::strncmp(argv[i], "--engines=", 10) == 0) {
      for (const std::string& name : split_list(argv[i] + 10)) {
        const EngineChoice* found = nullptr;
        for (const EngineChoice& ec : kEngines)
          if (name == ec.key) found = &ec;
        if (!found) {
          std::fprintf(stderr,
                       "bench_gpu: --engines: unknown engine '%s' (cudnn, fused-fp32, fused-tf32, "
                       "fused-bf16)\n",
                       name.c_str());
          return kExitUsage;
        }
        if (std::find(engines.begin(), engines.end(), found) == engines.end())
          engines.push_back(found);
      }
    } else if (std::strncmp(argv[i], "--batches=", 10) == 0) {
      for (const std::string& v : split_list(argv[i] + 10)) {
        char* end = nullptr;
        const long long b = std::strtoll(v.c_str(), &end, 10);
        if (v.empty() || *end != '\0' || b < 1) {
          std::fprintf(stderr, "bench_gpu: --batches: '%s' is not a positive integer\n", v.c_str());
          return kExitUsage;
        }
        batches.push_back(b);
      }
    } else if (std::strncmp(argv[i], "--eval-users=", 13) == 0) {
      char* end = nullptr;
      eval_users = std::strtoll(argv[i] + 13, &end, 10);
      if (argv[i][13] == '\0' || *end != '\0' || eval_users < 0) {
        std::fprintf(stderr, "bench_gpu: --eval-users: '%s' is not a count >= 0\n", argv[i] + 13);
        return kExitUsage;
      }
    } else if (std::strncmp(argv[i], "--eval-pairs=", 13) == 0) {
      char* end = nullptr;
      eval_pairs = std::strtoll(argv[i] + 13, &end, 10);
      if (argv[i][13] == '\0' || *end != '\0' || eval_pairs < 1) {
        std::fprintf(stderr, "bench_gpu: --eval-pairs: '%s' is not a count >= 1\n", argv[i] + 13);
        return kExitUsage;
      }
    } else if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::printf("%s", usage);  // before any device call: tools/gpu_check.sh's start check
      return 0;
    } else {
      std::fprintf(stderr, "%s", usage);
      return kExitUsage;
    }
  }
  if (engines.empty())
    for (const EngineChoice& ec : kEngines) engines.push_back(&ec);
  if (batches.empty())
    batches = quick ? std::vector<int64_t>{2048, 16384}
                    : std::vector<int64_t>{512, 2048, 4096, 8192, 16384};
  if (eval_users < 0) eval_users = quick ? 1000 : 30000;
  std::string reason;
  if (!cuda_device_available(&reason)) {
    std::fprintf(stderr, "bench_gpu: %s\n", reason.c_str());
    return kExitUnavailable;
  }
  if (!json_path.empty()) {
    g_json.open(json_path);
    if (!g_json) {
      std::fprintf(stderr, "bench_gpu: cannot write %s\n", json_path.c_str());
      return kExitIo;
    }
  }
  try {
    cudaDeviceProp p{};
    CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    int clock_khz = 0, rt = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0));
    CUDA_CHECK(cudaRuntimeGetVersion(&rt));
    if (std::strstr(p.name, "H200")) g_peak_bw = 4.8e12;
    g_meta = std::string("\"gpu\":\"") + json_escape(p.name) +
             "\",\"sm_clock_mhz\":" + std::to_string(clock_khz / 1000) +
             ",\"cuda_runtime\":" + std::to_string(rt) + ",\"cudnn\":\"" + cudnn_version() + "\"";
    for (int64_t B : quick ? std::vector<int64_t>{2048} : std::vector<int64_t>{2048, 16384}) bench_kernels(B);
    bench_train(engines, batches, quick);
    if (eval_users > 0) bench_eval(engines, eval_users, eval_pairs);
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_gpu: %s\n", e.what());
    return e.code();
  }
  if (g_failed) {
    std::fprintf(stderr, "bench_gpu: a score check failed (its line says which); exit %d\n",
                 int(kExitSoftware));
    return kExitSoftware;
  }
  return 0;
}
