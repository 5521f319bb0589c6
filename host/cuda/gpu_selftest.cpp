// gpu_selftest.cpp: `convncf gpu-selftest`, a check of the compiled kernels on the machine at
// hand (see gpu.hpp): each outer-product variant against its twin, bit for bit, then the whole CUDA
// engine against the CPU engine for one epoch (engine_compare.hpp).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "convncf/cuda_check.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/engine_compare.hpp"
#include "convncf/errors.hpp"
#include "convncf/gpu.hpp"
#include "convncf/outer_product.hpp"
#include "convncf/rng.hpp"

namespace convncf {

bool gpu_selftest(std::string* report) {
  std::string reason;
  if (!cuda_device_available(&reason)) throw Error(kExitUnavailable, reason);
  const int32_t n_users = 37, n_items = 53;
  bool ok = true;
  std::string out;
  for (int E : {64, 13}) {
    for (int64_t B : {1, 300}) {
      Rng rng(17, uint64_t(E) * 1000 + uint64_t(B));
      std::vector<float> P(size_t(n_users) * E), Q(size_t(n_items) * E);
      for (float& v : P) v = float(rng.normal());
      for (float& v : Q) v = float(rng.normal());
      std::vector<int32_t> u(static_cast<size_t>(B)), it(static_cast<size_t>(B));
      for (int64_t b = 0; b < B; ++b) {
        u[size_t(b)] = int32_t(rng.index(n_users));
        it[size_t(b)] = int32_t(rng.index(n_items));
      }
      std::vector<float> ref(size_t(B) * E * E), got(ref.size());
      outer_product_fwd_cpu(B, E, u.data(), it.data(), P.data(), Q.data(), ref.data());
      DeviceBuffer<float> dP(P), dQ(Q), dout(ref.size());
      DeviceBuffer<int32_t> du(u), di(it);
      for (int variant : {1, 2}) {
        CUDA_CHECK(cudaMemset(dout.data(), 0xff, ref.size() * 4));  // NaN poison
        outer_product_fwd(B, E, du.data(), di.data(), dP.data(), dQ.data(), dout.data(), nullptr, variant);
        CUDA_CHECK(cudaDeviceSynchronize());
        got = dout.download();
        const bool same = std::memcmp(got.data(), ref.data(), ref.size() * 4) == 0;
        ok = ok && same;
        out += "outer_product_fwd variant " + std::to_string(variant) + " E=" + std::to_string(E) +
               " B=" + std::to_string(B) + ": " + (same ? "ok" : "MISMATCH") + "\n";
      }
    }
  }
  // The whole engine: one epoch of a small ConvNCF (both presets' settings) and of MF-BPR
  // against the CPU reference engine (engine_compare.hpp, the same check as the GpuEngine tests).
  const std::vector<std::string> small{"--embedding_size=16", "--cnn_channels=[1,8,8]", "--cnn_kernels=[4,4]",
                                       "--cnn_strides=[4,4]", "--train_batch_size=256", "--seed=5", "--quiet"};
  struct Case {
    const char* name;
    std::vector<std::string> extra;
    EngineTolerance tol;
  };
  const EngineTolerance exact = engine_tolerance(Precision::FP32), tf32 = engine_tolerance(Precision::TF32),
                        bf16 = engine_tolerance(Precision::BF16);
  const std::vector<std::string> recbole{"--preset=recbole", "--model=ConvNCF"};
  const std::vector<std::string> paper{"--preset=paper", "--model=ConvNCF", "--warmup_epochs=0", "--drop_last_batch=false"};
  auto plus = [](std::vector<std::string> v, std::initializer_list<std::string> more) {
    v.insert(v.end(), more);
    return v;
  };
  for (const Case& c : {Case{"ConvNCF recbole (Adam, dropout, norms)", recbole, exact},
                        Case{"ConvNCF paper (Adagrad, squared norms)", paper, exact},
                        Case{"MF-BPR (Adam)", {"--model=BPR"}, exact},
                        Case{"ConvNCF recbole, fused fp32", plus(recbole, {"--engine=fused"}), exact},
                        Case{"ConvNCF paper, fused fp32", plus(paper, {"--engine=fused"}), exact},
                        Case{"ConvNCF recbole, fused tf32", plus(recbole, {"--engine=fused", "--precision=tf32"}), tf32},
                        Case{"ConvNCF recbole, fused bf16", plus(recbole, {"--engine=fused", "--precision=bf16"}), bf16}}) {
    std::vector<std::string> args = small;
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    EngineComparison r;
    try {
      r = compare_engines(args, c.tol);
    } catch (const Error& e) {
      r.ok = false;
      r.detail = e.what();
    }
    ok = ok && r.ok;
    char line[256];
    std::snprintf(line, sizeof line, "engine %s: %d steps against the CPU engine: %s (worst loss error %.2g, worst "
                  "parameter error %.2g of the tolerance)\n", c.name, r.steps, r.ok ? "ok" : "MISMATCH",
                  r.worst_loss_rel, r.worst_param);
    out += line;
    if (!r.ok) out += r.detail;
  }
  if (report) *report = out;
  return ok;
}

}  // namespace convncf
