// test_cudnn_conv_gpu.cu: ConvLayerPlans (host/cuda/cudnn_conv.cpp, cuDNN's graph API) against the
// layer's plain definition conv_fwd_cpu / conv_bwd_cpu (kernels/conv_bias_relu_cpu.cpp, itself
// checked by finite differences in tests/test_conv_bias_relu.cpp), for the ConvNCF layer shapes and
// odd small ones, deterministic and not, fused forward and not. Tolerance |gpu - ref| <= atol +
// rtol |ref| with rtol 1e-5 and atol 1e-5 * max|ref| (fp32 sums in another order than the double
// oracle); TF32 is checked at 1e-2. The CPU backward is given the GPU's Y, so that both sides apply
// the same ReLU mask (a pre-activation within rounding of 0 could otherwise flip), and dZ must then
// match bit for bit. Skips with the reason when no CUDA device is usable; the argument checks and
// the version string run everywhere.
//   build/convncf_tests --gtest_filter='ConvLayerPlans.*:CudnnVersion.*'
#include <cuda_runtime.h>
#include <cudnn.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "convncf/conv_bias_relu.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/cudnn_conv.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/errors.hpp"
#include "convncf/rng.hpp"
#include "gpu_test_util.hpp"

using convncf::ConvLayerPlans;
using convncf::ConvMath;
using convncf::ConvOptions;
using convncf::ConvShape;

namespace {

ConvShape shape(int64_t n, int cin, int cout, int k, int in_size) {
  ConvShape s;
  s.n = n;
  s.cin = cin;
  s.cout = cout;
  s.k = k;
  s.in_size = in_size;
  return s;
}

std::string text(const ConvShape& s) {
  return "n=" + std::to_string(s.n) + " cin=" + std::to_string(s.cin) +
         " cout=" + std::to_string(s.cout) + " k=" + std::to_string(s.k) +
         " in_size=" + std::to_string(s.in_size);
}

std::string text(const ConvOptions& o) {
  return std::string(o.deterministic ? "deterministic" : "nondeterministic") +
         (o.math == ConvMath::Fp32 ? " fp32" : " tf32") + (o.allow_fused ? "" : " unfused");
}

// The ConvNCF layers at E = 64: the `recbole` tower (64 -> 16 -> 4 -> 2 -> 1) and the `paper`
// tower's 2x2 layers (64 -> 32 -> 16 -> 8 -> 4 -> 2 -> 1), at an odd batch, plus one realistic
// batch for the widest layer.
const ConvShape kConvNcfShapes[] = {
    shape(37, 1, 32, 4, 64),  shape(37, 32, 32, 4, 16), shape(37, 32, 32, 2, 4),
    shape(37, 32, 32, 2, 2),  shape(37, 1, 32, 2, 64),  shape(37, 32, 32, 2, 32),
    shape(37, 32, 32, 2, 16), shape(37, 32, 32, 2, 8),  shape(512, 32, 32, 4, 16)};

// Odd small layers: batch 1, 3, 5; cin 2, cout 3, k 3; in_size 10 leaves a border no block covers
// (its dX must be 0); a 1x1 layer.
const ConvShape kOddShapes[] = {shape(1, 2, 3, 3, 9), shape(3, 2, 3, 3, 9), shape(5, 2, 3, 3, 9),
                                shape(3, 2, 3, 3, 10), shape(1, 1, 1, 1, 1)};

struct Inputs {
  std::vector<float> X, W, b, dY;
};

// X uniform in [-1, 1], W and b PyTorch-like U(-1/sqrt(fan_in), 1/sqrt(fan_in)), dY normal.
Inputs make_inputs(const ConvShape& s, uint64_t seed) {
  convncf::Rng rng(seed, convncf::kStreamSynthetic);
  const int S = s.in_size, So = s.out_size();
  const double bound = 1.0 / std::sqrt(static_cast<double>(s.cin) * s.k * s.k);
  Inputs in;
  in.X.resize(static_cast<size_t>(s.n) * s.cin * S * S);
  in.W.resize(static_cast<size_t>(s.cout) * s.cin * s.k * s.k);
  in.b.resize(s.cout);
  in.dY.resize(static_cast<size_t>(s.n) * s.cout * So * So);
  for (float& v : in.X) v = static_cast<float>(2.0 * rng.uniform() - 1.0);
  for (float& v : in.W) v = static_cast<float>(bound * (2.0 * rng.uniform() - 1.0));
  for (float& v : in.b) v = static_cast<float>(bound * (2.0 * rng.uniform() - 1.0));
  for (float& v : in.dY) v = static_cast<float>(rng.normal());
  return in;
}

struct Outputs {
  std::vector<float> Y, dZ, dW, db, dX;
};

// A blocking stream (it orders with the legacy default stream that DeviceBuffer's copies and
// poison() use); the tests also synchronize the device before each run.
struct Stream {
  cudaStream_t s = nullptr;
  Stream() { CUDA_CHECK(cudaStreamCreate(&s)); }
  ~Stream() { CUDA_CHECK_NOTHROW(cudaStreamDestroy(s)); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
};

// One forward and one backward on freshly poisoned outputs.
Outputs run_gpu(const ConvLayerPlans& plans, const Inputs& in, cudaStream_t stream, bool want_dx) {
  convncf::DeviceBuffer<float> X(in.X), W(in.W), b(in.b), dY(in.dY);
  convncf::DeviceBuffer<float> Y(in.dY.size()), dW(in.W.size()), db(in.b.size()), dX(in.X.size());
  convncf::DeviceBuffer<unsigned char> ws(std::max<size_t>(plans.workspace_bytes(), 1));
  for (const auto* buf : {&Y, &dW, &db, &dX}) convncf::test::poison(*buf);
  CUDA_CHECK(cudaDeviceSynchronize());
  plans.forward(X.data(), W.data(), b.data(), Y.data(), ws.data(), stream);
  plans.backward(X.data(), W.data(), Y.data(), dY.data(), dW.data(), db.data(),
                 want_dx ? dX.data() : nullptr, ws.data(), stream);
  CUDA_CHECK(cudaStreamSynchronize(stream));
  CUDA_CHECK(cudaDeviceSynchronize());
  Outputs out;
  out.Y = Y.download();
  out.dZ = dY.download();
  out.dW = dW.download();
  out.db = db.download();
  out.dX = dX.download();
  return out;
}

double max_abs(const std::vector<float>& v) {
  double m = 0.0;
  for (float x : v) m = std::max(m, std::fabs(static_cast<double>(x)));
  return m;
}

void expect_bitwise_equal(const std::vector<float>& a, const std::vector<float>& b,
                          const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  size_t bad = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) == 0) continue;
    if (bad++ < 5) ADD_FAILURE() << what << ": [" << i << "] " << a[i] << " vs " << b[i];
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << a.size() << " elements differ";
}

// Builds the plans, runs them, and compares every output with the CPU oracle. Returns the GPU
// outputs (for the determinism check).
Outputs check_layer(const ConvShape& s, const ConvOptions& opt, uint64_t seed, double rtol,
                    double atol_scale, bool want_dx = true) {
  SCOPED_TRACE(text(s) + ", " + text(opt));
  Stream stream;
  convncf::CudnnContext ctx(stream.s);
  const ConvLayerPlans plans(ctx.handle(), s, opt);
  std::printf("[ conv     ] %s\n", plans.describe().c_str());
  const Inputs in = make_inputs(s, seed);
  Outputs got = run_gpu(plans, in, stream.s, want_dx);

  const int S = s.in_size;
  std::vector<float> Y(in.dY.size());
  convncf::conv_fwd_cpu(s.n, s.cin, s.cout, s.k, S, in.X.data(), in.W.data(), in.b.data(),
                        Y.data());
  const double y_max = max_abs(Y);
  convncf::test::expect_close(got.Y, Y, atol_scale * y_max, rtol, "Y");

  // Backward from the GPU's Y: the same ReLU mask on both sides.
  std::vector<float> dZ = in.dY, dW(in.W.size()), db(in.b.size()), dX(in.X.size());
  convncf::conv_bwd_cpu(s.n, s.cin, s.cout, s.k, S, in.X.data(), in.W.data(), got.Y.data(),
                        dZ.data(), dW.data(), db.data(), dX.data());
  expect_bitwise_equal(got.dZ, dZ, "dZ");
  convncf::test::expect_close(got.db, db, atol_scale * max_abs(db), rtol, "db");
  convncf::test::expect_close(got.dW, dW, atol_scale * max_abs(dW), rtol, "dW");
  if (want_dx) {
    convncf::test::expect_close(got.dX, dX, atol_scale * max_abs(dX), rtol, "dX");
  } else {
    // dX == nullptr: the buffer keeps its poison (every element NaN).
    EXPECT_TRUE(std::all_of(got.dX.begin(), got.dX.end(), [](float v) { return std::isnan(v); }));
  }
  return got;
}

constexpr double kRtol = 1e-5, kAtolScale = 1e-5;

ConvOptions options(bool deterministic, ConvMath math = ConvMath::Fp32, bool fused = true) {
  ConvOptions o;
  o.deterministic = deterministic;
  o.math = math;
  o.allow_fused = fused;
  return o;
}

}  // namespace

TEST(ConvLayerPlans, ConvNcfShapesMatchCpuDeterministic) {
  CONVNCF_REQUIRE_GPU();
  uint64_t seed = 1000;
  for (const ConvShape& s : kConvNcfShapes)
    check_layer(s, options(true), seed++, kRtol, kAtolScale);
}

TEST(ConvLayerPlans, ConvNcfShapesMatchCpuNondeterministic) {
  CONVNCF_REQUIRE_GPU();
  uint64_t seed = 1100;
  for (const ConvShape& s : kConvNcfShapes)
    check_layer(s, options(false), seed++, kRtol, kAtolScale);
}

TEST(ConvLayerPlans, OddShapesMatchCpu) {
  CONVNCF_REQUIRE_GPU();
  uint64_t seed = 1200;
  for (bool det : {true, false})
    for (const ConvShape& s : kOddShapes) check_layer(s, options(det), seed++, kRtol, kAtolScale);
}

// The conv-only forward graph plus bias_relu_fwd, whichever path the fused attempt would take.
TEST(ConvLayerPlans, UnfusedForwardMatchesCpu) {
  CONVNCF_REQUIRE_GPU();
  uint64_t seed = 1300;
  for (const ConvShape& s :
       {kConvNcfShapes[0], kConvNcfShapes[1], kConvNcfShapes[3], kOddShapes[3]})
    for (bool det : {true, false})
      check_layer(s, options(det, ConvMath::Fp32, false), seed++, kRtol, kAtolScale);
}

TEST(ConvLayerPlans, DeterministicRunsAreBitIdentical) {
  CONVNCF_REQUIRE_GPU();
  std::vector<ConvShape> shapes(std::begin(kConvNcfShapes), std::end(kConvNcfShapes));
  shapes.insert(shapes.end(), std::begin(kOddShapes), std::end(kOddShapes));
  uint64_t seed = 1400;
  for (const ConvShape& s : shapes) {
    for (bool fused : {true, false}) {
      SCOPED_TRACE(text(s) + (fused ? " fused allowed" : " unfused"));
      Stream stream;
      convncf::CudnnContext ctx(stream.s);
      const ConvLayerPlans plans(ctx.handle(), s, options(true, ConvMath::Fp32, fused));
      const Inputs in = make_inputs(s, seed++);
      const Outputs a = run_gpu(plans, in, stream.s, true);
      const Outputs b = run_gpu(plans, in, stream.s, true);
      expect_bitwise_equal(a.Y, b.Y, "Y");
      expect_bitwise_equal(a.dZ, b.dZ, "dZ");
      expect_bitwise_equal(a.dW, b.dW, "dW");
      expect_bitwise_equal(a.db, b.db, "db");
      expect_bitwise_equal(a.dX, b.dX, "dX");
    }
  }
}

// TF32 allowed: 10-bit mantissas in the products, so only about 1e-3 relative.
TEST(ConvLayerPlans, Tf32MatchesCpuLoosely) {
  CONVNCF_REQUIRE_GPU();
  uint64_t seed = 1500;
  for (const ConvShape& s : {kConvNcfShapes[0], kConvNcfShapes[1], kConvNcfShapes[8]})
    check_layer(s, options(true, ConvMath::AllowTf32), seed++, 1e-2, 1e-2);
}

// dX == nullptr (layer 1 without G): dW and db still right, dX untouched.
TEST(ConvLayerPlans, BackwardWithoutDx) {
  CONVNCF_REQUIRE_GPU();
  check_layer(kConvNcfShapes[0], options(true), 1600, kRtol, kAtolScale, false);
  check_layer(kOddShapes[1], options(true), 1601, kRtol, kAtolScale, false);
}

// A moved-to object keeps working plans.
TEST(ConvLayerPlans, MovedPlansStillRun) {
  CONVNCF_REQUIRE_GPU();
  const ConvShape s = kOddShapes[1];
  Stream stream;
  convncf::CudnnContext ctx(stream.s);
  ConvLayerPlans first(ctx.handle(), s, options(true));
  const std::string described = first.describe();
  ConvLayerPlans moved(std::move(first));
  EXPECT_EQ(moved.describe(), described);
  EXPECT_NE(described.find("engine"), std::string::npos) << described;
  ConvLayerPlans assigned(ctx.handle(), kOddShapes[0], options(false));
  assigned = std::move(moved);
  EXPECT_EQ(assigned.shape().n, s.n);
  const Inputs in = make_inputs(s, 1700);
  const Outputs got = run_gpu(assigned, in, stream.s, true);
  std::vector<float> Y(in.dY.size());
  convncf::conv_fwd_cpu(s.n, s.cin, s.cout, s.k, s.in_size, in.X.data(), in.W.data(), in.b.data(),
                        Y.data());
  convncf::test::expect_close(got.Y, Y, kAtolScale * max_abs(Y), kRtol, "Y");
}

// Pointers that break the declared alignment, a missing workspace, and a stream other than the
// handle's are refused before anything runs.
TEST(ConvLayerPlans, RejectsBadPointersAndForeignStream) {
  CONVNCF_REQUIRE_GPU();
  const ConvShape s = kConvNcfShapes[1];
  Stream stream, other;
  convncf::CudnnContext ctx(stream.s);
  const ConvLayerPlans plans(ctx.handle(), s, options(true));
  const Inputs in = make_inputs(s, 1800);
  // One extra float at the front of each buffer, so that data() + 1 is 4 but not 16 byte aligned.
  convncf::DeviceBuffer<float> X(in.X.size() + 4), W(in.W.size() + 4), b(in.b.size() + 4),
      Y(in.dY.size() + 4), dY(in.dY.size() + 4), dW(in.W.size() + 4), db(in.b.size() + 4),
      dX(in.X.size() + 4);
  convncf::DeviceBuffer<unsigned char> ws(std::max<size_t>(plans.workspace_bytes(), 1));
  EXPECT_THROW(plans.forward(X.data() + 1, W.data(), b.data(), Y.data(), ws.data(), stream.s),
               convncf::Error);
  EXPECT_THROW(plans.forward(X.data(), W.data(), b.data(), Y.data() + 1, ws.data(), stream.s),
               convncf::Error);
  EXPECT_THROW(plans.forward(X.data(), W.data(), b.data(), Y.data(), ws.data(), other.s),
               convncf::Error);
  EXPECT_THROW(plans.forward(nullptr, W.data(), b.data(), Y.data(), ws.data(), stream.s),
               convncf::Error);
  EXPECT_THROW(plans.backward(X.data(), W.data(), Y.data(), dY.data() + 1, dW.data(), db.data(),
                              dX.data(), ws.data(), stream.s),
               convncf::Error);
  EXPECT_THROW(plans.backward(X.data(), W.data(), Y.data(), dY.data(), dW.data(), db.data(),
                              dX.data() + 2, ws.data(), stream.s),
               convncf::Error);
  if (plans.workspace_bytes() > 0) {
    EXPECT_THROW(plans.forward(X.data(), W.data(), b.data(), Y.data(), nullptr, stream.s),
                 convncf::Error);
  }
  // Parameters need only float alignment: W + 1 and b + 1 are accepted.
  X.upload(std::vector<float>(in.X.size() + 4, 0.5f));
  W.upload(std::vector<float>(in.W.size() + 4, 0.25f));
  b.upload(std::vector<float>(in.b.size() + 4, 0.125f));
  CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_NO_THROW(
      plans.forward(X.data(), W.data() + 1, b.data() + 1, Y.data(), ws.data(), stream.s));
  CUDA_CHECK(cudaStreamSynchronize(stream.s));
}

// Shapes cuDNN cannot take are refused before any cuDNN call, so this runs everywhere.
TEST(ConvLayerPlans, RejectsBadShapes) {
  const ConvOptions o;
  EXPECT_THROW(ConvLayerPlans(nullptr, shape(0, 1, 32, 4, 64), o), convncf::Error);
  EXPECT_THROW(ConvLayerPlans(nullptr, shape(1, 0, 32, 4, 64), o), convncf::Error);
  EXPECT_THROW(ConvLayerPlans(nullptr, shape(1, 1, 0, 4, 64), o), convncf::Error);
  EXPECT_THROW(ConvLayerPlans(nullptr, shape(1, 1, 32, 0, 64), o), convncf::Error);
  EXPECT_THROW(ConvLayerPlans(nullptr, shape(1, 1, 32, 4, 3), o), convncf::Error);
  EXPECT_THROW(ConvLayerPlans(nullptr, shape(1, 1, 32, 4, 64), o), convncf::Error);  // no handle
  try {
    ConvLayerPlans(nullptr, shape(1, 1, 32, 4, 3), o);
    ADD_FAILURE() << "no exception";
  } catch (const convncf::Error& e) {
    EXPECT_EQ(e.code(), convncf::kExitSoftware);
    EXPECT_NE(std::string(e.what()).find("in_size=3"), std::string::npos) << e.what();
  }
}

// "major.minor.patch" from the loaded library; its major matches the header the build used.
TEST(CudnnVersion, IsMajorMinorPatch) {
  const std::string v = convncf::cudnn_version();
  int major = -1, minor = -1, patch = -1;
  char tail = 0;
  ASSERT_EQ(std::sscanf(v.c_str(), "%d.%d.%d%c", &major, &minor, &patch, &tail), 3) << v;
  EXPECT_EQ(major, CUDNN_MAJOR) << v;
  EXPECT_GE(minor, 0);
  EXPECT_GE(patch, 0);
}
