// gpu_selftest.cpp: `convncf gpu-selftest`, a check of the compiled kernels on the machine at
// hand (see gpu.hpp). It also keeps the outer-product kernel linked into the convncf binary.
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "convncf/cuda_check.hpp"
#include "convncf/device_buffer.hpp"
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
  if (report) *report = out;
  return ok;
}

}  // namespace convncf
