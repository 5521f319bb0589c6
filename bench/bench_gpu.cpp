// bench_gpu.cpp: the CUDA engine's kernels one by one, and end-to-end training throughput.
//
//   build/bench/bench_gpu [--repeats=R] [--quick] [--json=FILE]
//
// Per kernel: median time over R repeats (CUDA events, after a warm-up), the bytes and FLOPs it
// must move or do, the achieved GB/s or TFLOP/s, and the floor (the time at the card's nominal
// HBM bandwidth or FP32 rate: H100 SXM 3.35 TB/s, H200 4.8 TB/s, 67 TFLOP/s FP32). End to end:
// GpuEngine::train_step on a 30k-user x 40k-item synthetic catalogue, triples per second for
// both presets at batch sizes 512 .. 16384 (--quick: 2048 only). Every result is also one JSON
// line with the GPU name, SM clock, CUDA and cuDNN versions.
// Without a usable GPU it says why and exits 69.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "convncf/config.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/cudnn_conv.hpp"
#include "convncf/dataset.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/errors.hpp"
#include "convncf/gpu.hpp"
#include "convncf/gpu_engine.hpp"
#include "convncf/model.hpp"
#include "convncf/optim_gpu.hpp"
#include "convncf/outer_product.hpp"
#include "convncf/pair_kernels.hpp"
#include "convncf/rng.hpp"
#include "convncf/sparse_grad.hpp"

using namespace convncf;

namespace {

int g_repeats = 20;
std::string g_meta;  // "gpu":...,"sm_clock_mhz":...,"cuda":...,"cudnn":...
double g_peak_bw = 3.35e12, g_peak_fp32 = 67e12;
std::ofstream g_json;

void emit(const std::string& line) {
  std::printf("%s\n", line.c_str());
  if (g_json) g_json << line << "\n";
}

// Median milliseconds of fn() over g_repeats runs after two warm-ups, timed with events.
double time_ms(const std::function<void()>& fn, cudaStream_t s) {
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
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void kernel_result(const std::string& name, const std::string& shape, double ms, double bytes, double flops) {
  const double floor_ms = std::max(bytes / g_peak_bw, flops / g_peak_fp32) * 1e3;
  char b[512];
  std::snprintf(b, sizeof b,
                "{\"bench\":\"kernel\",\"kernel\":\"%s\",\"shape\":\"%s\",\"ms\":%.4f,\"GBps\":%.1f,\"TFLOPs\":%.3f,"
                "\"floor_ms\":%.4f,\"of_floor\":%.3f,%s}",
                name.c_str(), shape.c_str(), ms, bytes / ms / 1e6, flops / ms / 1e9, floor_ms, floor_ms / ms,
                g_meta.c_str());
  emit(b);
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
    const double ms = time_ms([&] { outer_product_fwd(N, E, pu.data(), pi.data(), P.data(), Q.data(), map.data(), s, v); }, s);
    kernel_result("outer_product_fwd_kernel" + std::to_string(v), shape, ms, map_bytes + 2.0 * N * E * 4, double(N) * E * E);
  }
  {
    const double ms = time_ms([&] {
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
    const double ms = time_ms([&] { comb.combine(N, pi.data(), rows.data(), table.data(), uniq.data(), nu.data(), s); }, s);
    kernel_result("row_grad_combine_deterministic", "entries=" + std::to_string(N) + " E=64", ms, 3.0 * N * E * 4, 0);
    OptimizerSpec spec;
    DeviceBuffer<float> m(table.size()), v(table.size());
    CUDA_CHECK(cudaMemset(m.data(), 0, m.size() * 4));
    CUDA_CHECK(cudaMemset(v.data(), 0, v.size() * 4));
    const double ms2 = time_ms([&] {
      optim_dense_gpu(spec, 1, int64_t(table.size()), Q.data(), table.data(), m.data(), v.data(), s);
    }, s);
    kernel_result("adam_dense", "n=" + std::to_string(table.size()), ms2, 7.0 * double(table.size()) * 4, 0);
  }
  CUDA_CHECK(cudaStreamDestroy(s));
}

void bench_train(bool quick) {
  SyntheticSpec spec;
  spec.n_users = 30000;
  spec.n_items = 40000;
  spec.n_interactions = 1500000;
  const Interactions data = make_synthetic(1, spec);
  const Split split = ratio_split(data, {0.8, 0.1, 0.1}, SplitOrder::Random, 1);
  const std::vector<int64_t> batches = quick ? std::vector<int64_t>{2048} : std::vector<int64_t>{512, 2048, 4096, 8192, 16384};
  for (const char* preset : {"recbole", "paper"}) {
    for (int64_t B : batches) {
      Config cfg = Config::from_args({std::string("--preset=") + preset, "--model=ConvNCF", "--quiet"});
      const TowerSpec tower = TowerSpec::make(cfg.embedding_size, cfg.cnn_channels, cfg.cnn_kernels, cfg.cnn_strides);
      const Params<float> prm = init_params(cfg, &tower, split.n_users, split.n_items);
      GpuEngineOptions go;
      go.batch_cap = B;
      go.eval_pairs = 1024;
      GpuEngine eng(ModelKind::ConvNCF, &tower, split, cfg.embedding_size, go);
      OptimizerSpec os;
      os.learner = cfg.learner;
      os.lr = cfg.learning_rate;
      os.adagrad_initial_accumulator = cfg.adagrad_initial_accumulator;
      os.adagrad_eps = cfg.adagrad_eps;
      Optimizer<float> oP(os, int64_t(prm.P.size())), oQ(os, int64_t(prm.Q.size())), oN(os, int64_t(prm.net.size()));
      eng.upload_params(prm);
      eng.upload_optimizers(0, {&oP, &oQ, &oN});
      std::vector<int64_t> order(split.train_user.size());
      std::iota(order.begin(), order.end(), 0);
      eng.set_epoch_order(order);
      const RegSpec reg{cfg.reg_type, cfg.reg_weights, true};
      const int64_t steps = std::max<int64_t>(5, std::min<int64_t>(60, int64_t(order.size()) / B));
      auto run = [&](int64_t k0, int64_t k1) {
        for (int64_t k = k0; k < k1; ++k)
          eng.train_step(1, (k * B) % (int64_t(order.size()) - B), B, 0, reg, DropoutSpec{cfg.dropout_prob, 1, uint64_t(k + 1)}, 1);
      };
      run(0, 3);  // warm-up
      const auto t0 = std::chrono::steady_clock::now();
      run(3, 3 + steps);
      const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double tps = double(steps * B) / sec;
      const double flop_per_triple = std::string(preset) == "recbole" ? 5.0e6 : 18.6e6;
      char b[512];
      std::snprintf(b, sizeof b,
                    "{\"bench\":\"train_step\",\"engine\":\"cudnn\",\"preset\":\"%s\",\"batch\":%lld,\"steps\":%lld,"
                    "\"triples_per_second\":%.0f,\"of_fp32_floor\":%.3f,%s}",
                    preset, (long long)B, (long long)steps, tps, tps * flop_per_triple / g_peak_fp32, g_meta.c_str());
      emit(b);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--repeats=", 10) == 0) g_repeats = std::max(1, std::atoi(argv[i] + 10));
    else if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    else if (std::strncmp(argv[i], "--json=", 7) == 0) g_json.open(argv[i] + 7);
    else {
      std::fprintf(stderr, "usage: bench_gpu [--repeats=R] [--quick] [--json=FILE]\n");
      return kExitUsage;
    }
  }
  std::string reason;
  if (!cuda_device_available(&reason)) {
    std::fprintf(stderr, "bench_gpu: %s\n", reason.c_str());
    return kExitUnavailable;
  }
  try {
    cudaDeviceProp p{};
    CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    int clock_khz = 0, rt = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0));
    CUDA_CHECK(cudaRuntimeGetVersion(&rt));
    if (std::strstr(p.name, "H200")) g_peak_bw = 4.8e12;
    g_meta = std::string("\"gpu\":\"") + p.name + "\",\"sm_clock_mhz\":" + std::to_string(clock_khz / 1000) +
             ",\"cuda_runtime\":" + std::to_string(rt) + ",\"cudnn\":\"" + cudnn_version() + "\"";
    for (int64_t B : quick ? std::vector<int64_t>{2048} : std::vector<int64_t>{2048, 16384}) bench_kernels(B);
    bench_train(quick);
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_gpu: %s\n", e.what());
    return e.code();
  }
  return 0;
}
