// The fused tower's kernels (kernels/fused_tower.cu, emulated: see shim.hpp and wmma.hpp) against
// their CPU twins (kernels/fused_tower_cpu.cpp), bit for bit: every launcher, every variant (3 and 4,
// the tensor cores' WMMA tiles, in tf32 and bf16; 4 also in the layouts of
// fused_test::layout_cases), every precision, dropout off and on, block counts
// 1, 7, the engine's grid and more blocks than pairs, each configuration run with the threads of
// every phase in one of ascending, descending and a seeded random order (rotated: every order
// meets every block count and variant), and the fragments' element-to-lane mapping scrambled
// with a seed of its own per configuration. Then the emulator's own checks, each shown to fire
// on a small faulty kernel.
//   build/tests/kernel_emulation/convncf_kernel_emulation_tests
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <limits>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "convncf/fused_tower.hpp"
#include "convncf/rng.hpp"
#include "fused_test_util.hpp"
#include "shim.hpp"

namespace convncf {
namespace {

using fused_test::Batch;
using fused_test::Case;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// The index of the first element whose bits differ, or -1.
int64_t first_difference(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return int64_t(i);
  return -1;
}

void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  const int64_t i = first_difference(got, want);
  if (i < 0) return;
  if (got.size() != want.size()) {
    ADD_FAILURE() << what << ": " << got.size() << " elements, the twin " << want.size();
  } else {
    ADD_FAILURE() << what << ": first difference at " << i << ": " << got[size_t(i)] << ", the twin "
                  << want[size_t(i)];
  }
}

// Device memory as cudaMalloc gives it (256-byte aligned), registered with the emulator so that
// WMMA loads from it are bounds-checked.
class DeviceVector {
 public:
  explicit DeviceVector(const std::vector<float>& v)
      : m_n(v.size()), m_p(static_cast<float*>(std::aligned_alloc(256, (v.size() * 4 + 255) / 256 * 256)), &std::free) {
    std::copy(v.begin(), v.end(), m_p.get());
    emu::register_device_buffer(m_p.get(), m_n * sizeof(float));
  }
  ~DeviceVector() { emu::clear_device_buffers(); }
  DeviceVector(const DeviceVector&) = delete;
  DeviceVector& operator=(const DeviceVector&) = delete;
  const float* data() const { return m_p.get(); }

 private:
  size_t m_n;
  std::unique_ptr<float, decltype(&std::free)> m_p;
};

void expect_no_emulation_errors(const std::string& what) {
  for (const std::string& e : emu::take_errors()) ADD_FAILURE() << what << ": emulation: " << e;
}

const char* order_name(emu::Order o) {
  return o == emu::kAscending ? "ascending" : o == emu::kDescending ? "descending" : "random";
}

// The emulated kernels of `variant` (forward, backward, the reduction) on NaN-filled outputs,
// each output equal to the twins' `want` bit for bit, with no emulation error (the caller has
// set the phase order and the seeds).
void expect_kernels_match_twins(const FusedTower& ft, const Params<float>& prm, const Batch& b, const float* d_packed,
                                int n_blocks, const DropoutArgs& drop, int variant, const fused_test::TwinOutputs& want,
                                const std::string& what) {
  const int64_t n = int64_t(b.user.size());
  std::vector<float> s2(want.score.size(), kNaN), dp2(want.dp.size(), kNaN), dq2(want.dq.size(), kNaN),
      pa2(want.partial.size(), kNaN), dn2(want.dnet.size(), kNaN);
  fused_tower_fwd(ft, n, n_blocks, b.user.data(), b.item.data(), prm.P.data(), prm.Q.data(), d_packed, drop, s2.data(),
                  nullptr, variant);
  fused_tower_bwd(ft, n, n_blocks, b.user.data(), b.item.data(), prm.P.data(), prm.Q.data(), d_packed, drop,
                  b.dscore.data(), dp2.data(), dq2.data(), pa2.data(), nullptr, variant);
  fused_reduce_grads(ft, n_blocks, pa2.data(), dn2.data(), nullptr);
  expect_no_emulation_errors(what);
  expect_same_bits(s2, want.score, "score");
  expect_same_bits(dp2, want.dp, "dp");
  expect_same_bits(dq2, want.dq, "dq");
  expect_same_bits(pa2, want.partial, "partial");
  expect_same_bits(dn2, want.dnet, "dnet");
}

struct Param {
  size_t case_index;
  Precision prec;
};

// Names the parameter in test listings (ctest names) instead of its bytes.
void PrintTo(const Param& p, std::ostream* os) {
  *os << fused_test::cases()[p.case_index].name << " " << precision_name(p.prec);
}

class FusedTowerEmulated : public ::testing::TestWithParam<Param> {};

TEST_P(FusedTowerEmulated, KernelsMatchTwins) {
  const Case c = fused_test::cases()[GetParam().case_index];
  const Precision prec = GetParam().prec;
  const TowerSpec tower = TowerSpec::make(c.E, c.channels, c.kernels, c.kernels);
  const int32_t n_users = 37, n_items = 53;
  const Params<float> prm = fused_test::make_params(tower, n_users, n_items, 5);
  // Few pairs for the 64-wide towers (each pair is some 1e6 emulated multiply-adds), fewer for
  // those whose first map has 256 positions or more.
  const int first_map = (c.E / c.kernels[0]) * (c.E / c.kernels[0]);
  const Batch b = fused_test::make_batch(c.E == 64 ? 10 : first_map >= 256 ? 16 : 40, n_users, n_items, 9);
  const int64_t n = int64_t(b.user.size());
  const FusedTower ft = make_fused_tower(tower, prec, fused_max_smem_bytes());

  std::vector<float> packed(size_t(ft.packed_size()));
  fused_pack_cpu(ft, prm.net.data(), packed.data());
  {
    std::vector<float> got(packed.size(), kNaN);
    emu::order = emu::kDescending;
    fused_pack(ft, prm.net.data(), got.data(), nullptr);
    expect_same_bits(got, packed, "pack");
    expect_no_emulation_errors("pack");
  }
  const int grid_bwd = fused_tower_grid(ft, true), grid_fwd = fused_tower_grid(ft, false);
  expect_no_emulation_errors("fused_tower_grid");
  EXPECT_EQ(grid_bwd, emu::sms * emu::per_sm);
  EXPECT_EQ(grid_fwd, emu::sms * emu::per_sm);

  // Each configuration runs once, in one of the three phase orders (ascending, descending, random),
  // rotated so that every order meets every block count and every variant: the orders of all
  // configurations would triple the runtime.
  const DeviceVector d_packed(packed);
  std::vector<int> variants = {1, 2};
  if (ft.tc.ok) variants.push_back(3);
  if (ft.tc4.ok) variants.push_back(4);
  EXPECT_EQ(ft.tc.ok, prec != Precision::FP32 && ft.L > 1) << "variant 3 must cover every tf32/bf16 tower";
  EXPECT_EQ(ft.tc4.ok, prec != Precision::FP32 && ft.L > 1) << "variant 4 must cover every tf32/bf16 tower";
  const std::vector<int> block_counts = {1, 7, grid_bwd, int(n) + 5};
  for (size_t bi = 0; bi < block_counts.size(); ++bi) {
    const int n_blocks = block_counts[bi];
    for (const double p_drop : {0.0, 0.3}) {
      // dropout off in fp32 only, as in the GPU test: the other precisions differ in layers 2..L only
      if (prec != Precision::FP32 && p_drop == 0.0) continue;
      const DropoutArgs drop{p_drop, 3, 8};
      // variants 1 and 2 share a twin
      const fused_test::TwinOutputs want12 = fused_test::run_twins(ft, prm, b, packed.data(), n_blocks, drop, 1);
      fused_test::TwinOutputs want3, want4;
      if (ft.tc.ok) want3 = fused_test::run_twins(ft, prm, b, packed.data(), n_blocks, drop, 3);
      if (ft.tc4.ok) want4 = fused_test::run_twins(ft, prm, b, packed.data(), n_blocks, drop, 4);
      for (const int variant : variants) {
        {
          const fused_test::TwinOutputs& want = variant == 4 ? want4 : variant == 3 ? want3 : want12;
          const emu::Order order = emu::Order((bi + (p_drop == 0.0 ? 0 : 2) + size_t(variant)) % 3);
          const std::string what = std::string(c.name) + " " + precision_name(prec) + " blocks " +
                                   std::to_string(n_blocks) + " dropout " + std::to_string(p_drop) + " variant " +
                                   std::to_string(variant) + " " + order_name(order);
          SCOPED_TRACE(what);
          emu::order = order;
          emu::seed = 12345;
          emu::frag_seed = unsigned(1 + bi * 7 + size_t(variant));
          expect_kernels_match_twins(ft, prm, b, d_packed.data(), n_blocks, drop, variant, want, what);
          if (HasFailure()) return;  // one report per tower and precision
        }
      }
    }
  }
}

std::vector<Param> all_params() {
  std::vector<Param> p;
  for (size_t i = 0; i < fused_test::cases().size(); ++i)
    for (const Precision prec : {Precision::FP32, Precision::TF32, Precision::BF16}) p.push_back({i, prec});
  return p;
}

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  std::string s = std::string(fused_test::cases()[info.param.case_index].name) + "_" + precision_name(info.param.prec);
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(Towers, FusedTowerEmulated, ::testing::ValuesIn(all_params()), param_name);

// Variant 4 in the layouts of fused_test::layout_cases (the automatic ones run above): groups of
// pairs stacked from layer 2 or 3, layer 1 in several chunks (the last one partial), a last layer in
// chunks; block counts that give partial groups, groups of several users and blocks without pairs,
// pairs with dscore 0, dropout.
struct LayoutParam {
  size_t index;
  Precision prec;
};
void PrintTo(const LayoutParam& p, std::ostream* os) {
  const fused_test::LayoutCase lc = fused_test::layout_cases()[p.index];
  *os << lc.tower.name << " stack0 " << lc.choice.stack0 << " chunk_tiles " << lc.choice.chunk_tiles << " "
      << precision_name(p.prec);
}

class FusedTowerEmulatedLayouts : public ::testing::TestWithParam<LayoutParam> {};

TEST_P(FusedTowerEmulatedLayouts, GroupedKernelsMatchTwins) {
  const fused_test::LayoutCase lc = fused_test::layout_cases()[GetParam().index];
  const Case& c = lc.tower;
  const Precision prec = GetParam().prec;
  const TowerSpec tower = TowerSpec::make(c.E, c.channels, c.kernels, c.kernels);
  const int32_t n_users = 37, n_items = 53;
  const Params<float> prm = fused_test::make_params(tower, n_users, n_items, 5);
  const Batch b = fused_test::make_batch(23, n_users, n_items, 9);
  const int64_t n = int64_t(b.user.size());
  const FusedTower ft = make_fused_tower(tower, prec, fused_max_smem_bytes(), lc.choice);
  ASSERT_TRUE(ft.tc4.ok);
  ASSERT_EQ(ft.tc4.stack0, lc.choice.stack0);
  std::vector<float> packed(size_t(ft.packed_size()));
  fused_pack_cpu(ft, prm.net.data(), packed.data());
  const DeviceVector d_packed(packed);
  const std::vector<int> block_counts = {1, 5, int(n) + 3};
  for (size_t bi = 0; bi < block_counts.size(); ++bi) {
    const int n_blocks = block_counts[bi];
    const DropoutArgs drop{0.3, 3, 8};
    const fused_test::TwinOutputs want = fused_test::run_twins(ft, prm, b, packed.data(), n_blocks, drop, 4);
    const emu::Order order = emu::Order((bi + GetParam().index) % 3);
    const std::string what = std::string(c.name) + " " + precision_name(prec) + " stack0 " +
                             std::to_string(ft.tc4.stack0) + " group " + std::to_string(ft.tc4.group) + " chunks " +
                             std::to_string(ft.tc4.chunks) + " blocks " + std::to_string(n_blocks) + " " +
                             order_name(order);
    SCOPED_TRACE(what);
    emu::order = order;
    emu::seed = 777;
    emu::frag_seed = unsigned(11 + bi + 3 * GetParam().index);
    expect_kernels_match_twins(ft, prm, b, d_packed.data(), n_blocks, drop, 4, want, what);
    if (HasFailure()) return;
  }
}

std::vector<LayoutParam> layout_params() {
  std::vector<LayoutParam> p;
  for (size_t i = 0; i < fused_test::layout_cases().size(); ++i)
    for (const Precision prec : {Precision::TF32, Precision::BF16}) p.push_back({i, prec});
  return p;
}

std::string layout_param_name(const ::testing::TestParamInfo<LayoutParam>& info) {
  const fused_test::LayoutCase lc = fused_test::layout_cases()[info.param.index];
  std::string s = std::string(lc.tower.name) + "_stack" + std::to_string(lc.choice.stack0) + "_chunk" +
                  std::to_string(lc.choice.chunk_tiles) + "_" + precision_name(info.param.prec);
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(Layouts, FusedTowerEmulatedLayouts, ::testing::ValuesIn(layout_params()), layout_param_name);

// No pairs: every block's slice is zeroed, the reduction gives zeros.
TEST(FusedTowerEmulatedEmpty, EmptyBatchZeroFills) {
  const TowerSpec tower = TowerSpec::make(8, {1, 3, 5}, {4, 2}, {4, 2});
  for (const int variant : {1, 2, 3, 4}) {
    const FusedTower ft =
        make_fused_tower(tower, variant >= 3 ? Precision::BF16 : Precision::FP32, fused_max_smem_bytes());
    std::vector<float> partial(size_t(5 * ft.n_params), kNaN), dnet(size_t(ft.n_params), kNaN);
    emu::order = emu::kRandom;
    fused_tower_bwd(ft, 0, 5, nullptr, nullptr, nullptr, nullptr, nullptr, {}, nullptr, nullptr, nullptr,
                    partial.data(), nullptr, variant);
    fused_reduce_grads(ft, 5, partial.data(), dnet.data(), nullptr);
    expect_no_emulation_errors("empty batch");
    EXPECT_EQ(partial, std::vector<float>(partial.size(), 0.0f));
    EXPECT_EQ(dnet, std::vector<float>(dnet.size(), 0.0f));
  }
}

// ---- The emulator's checks, each on a small faulty kernel ----

// Thread 0 waits at a barrier the others never reach.
__global__ void barrier_in_branch_kernel(float* out) {
  if (threadIdx.x == 0) __syncthreads();
  out[threadIdx.x] = 1.0f;
}

// Odd and even threads wait at different barriers (the same count each).
__global__ void different_barriers_kernel(float* out) {
  if (threadIdx.x % 2 == 1) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1.0f;
}

// Each thread reads its neighbour's shared-memory element: with the barrier the result does not
// depend on the order of the threads; without it, it does.
template <bool kBarrier>
__global__ void neighbour_kernel(float* out) {
  float* sm = emu::smem;
  sm[threadIdx.x] = float(threadIdx.x);
  if (kBarrier) __syncthreads();
  out[threadIdx.x] = sm[(threadIdx.x + 1) % blockDim.x];
}

__global__ void overrun_kernel(float* out) {
  float* sm = emu::smem;
  sm[blockDim.x + threadIdx.x] = 0.0f;  // launched with blockDim.x floats
  out[threadIdx.x] = 0.0f;
}

bool has_error_containing(const std::vector<std::string>& errors, const std::string& text) {
  for (const std::string& e : errors)
    if (e.find(text) != std::string::npos) return true;
  return false;
}

TEST(KernelEmulator, ReportsBarrierInThreadDependentBranch) {
  std::vector<float> out(32);
  for (const emu::Order order : {emu::kAscending, emu::kDescending, emu::kRandom}) {
    emu::order = order;
    emu::launch(barrier_in_branch_kernel, emu::LaunchConfig(2, 32), out.data());
    const std::vector<std::string> errors = emu::take_errors();
    EXPECT_TRUE(has_error_containing(errors, "threads exited while others wait")) << order_name(order);
    EXPECT_EQ(errors.size(), 2u) << "one report per block";
  }
}

TEST(KernelEmulator, ReportsDifferentBarriers) {
  std::vector<float> out(32);
  emu::launch(different_barriers_kernel, emu::LaunchConfig(1, 32), out.data());
  EXPECT_TRUE(has_error_containing(emu::take_errors(), "threads wait at different barriers"));
}

TEST(KernelEmulator, PhaseOrdersExposeAMissingBarrier) {
  const unsigned nt = 64;
  auto run = [&](auto kernel, emu::Order order) {
    std::vector<float> out(nt, kNaN);
    emu::order = order;
    emu::launch(kernel, emu::LaunchConfig(1, nt, nt * sizeof(float)), out.data());
    return out;
  };
  std::vector<float> want(nt);
  for (unsigned t = 0; t < nt; ++t) want[t] = float((t + 1) % nt);
  for (const emu::Order order : {emu::kAscending, emu::kDescending, emu::kRandom})
    EXPECT_EQ(run(neighbour_kernel<true>, order), want) << order_name(order);
  // Without the barrier the result depends on the order: ascending, thread 0 reads thread 1's
  // element before thread 1 has written it (the NaN garbage); descending, after.
  const std::vector<float> asc = run(neighbour_kernel<false>, emu::kAscending);
  const std::vector<float> desc = run(neighbour_kernel<false>, emu::kDescending);
  EXPECT_TRUE(std::isnan(asc[0]));
  EXPECT_EQ(desc[0], 1.0f);
  EXPECT_TRUE(emu::take_errors().empty());
}

TEST(KernelEmulator, ReportsSharedMemoryOverrun) {
  std::vector<float> out(16);
  emu::launch(overrun_kernel, emu::LaunchConfig(1, 16, 16 * sizeof(float)), out.data());
  EXPECT_TRUE(has_error_containing(emu::take_errors(), "write past"));
}

TEST(KernelEmulator, ReportsSharedMemoryAboveTheAllowedSize) {
  std::vector<float> out(16);
  const size_t big = 64 * 1024;
  emu::launch(overrun_kernel, emu::LaunchConfig(1, 16, big), out.data());
  EXPECT_TRUE(has_error_containing(emu::take_errors(), "above the kernel's limit"));
  ASSERT_EQ(cudaFuncSetAttribute(overrun_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(big)), cudaSuccess);
  emu::launch(overrun_kernel, emu::LaunchConfig(1, 16, big), out.data());
  EXPECT_TRUE(emu::take_errors().empty());
}

// ---- The warp matrix emulation (wmma.hpp): its semantics, then each check on a faulty kernel ----
namespace wmma = nvcuda::wmma;
using Tf32A = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using Tf32Acc = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;

// Shared memory of the tile kernels below (floats): A at 0, B at 256, C and D at 512 and 768.
constexpr int kA = 0, kB = 256, kC = 512, kD = 768, kTileSmem = 1024;

// Copies in (1024 floats) to shared memory, and shared memory back to out, around `body`.
template <typename F>
void around_tiles(const float* in, float* out, const F& body) {
  float* sm = emu::shared_memory<float>(32);
  for (unsigned i = threadIdx.x; i < kTileSmem; i += blockDim.x) sm[i] = in[i];
  __syncthreads();
  body(sm);
  __syncthreads();
  for (unsigned i = threadIdx.x; i < kTileSmem; i += blockDim.x) out[i] = sm[i];
}

// D = A . B + C, every warp on its own copy (each warp's D is the same tile: warps are separate).
template <typename T, int K, typename LA, typename LB>
void tile_product_kernel(const float* in, float* out, int c_layout) {
  around_tiles(in, out, [&](float* sm) {
    using Mem = typename std::conditional<std::is_same<T, __nv_bfloat16>::value, __nv_bfloat16, float>::type;
    wmma::fragment<wmma::matrix_a, 16, 16, K, T, LA> a;
    wmma::fragment<wmma::matrix_b, 16, 16, K, T, LB> b;
    wmma::fragment<wmma::accumulator, 16, 16, K, float> c;
    const bool a_row = std::is_same<LA, wmma::row_major>::value, b_row = std::is_same<LB, wmma::row_major>::value;
    wmma::load_matrix_sync(a, reinterpret_cast<const Mem*>(sm + kA), a_row ? K : 16);
    wmma::load_matrix_sync(b, reinterpret_cast<const Mem*>(sm + kB), b_row ? 16 : K);
    wmma::load_matrix_sync(c, sm + kC, 16, c_layout == 0 ? wmma::mem_row_major : wmma::mem_col_major);
    wmma::mma_sync(c, a, b, c);
    if (threadIdx.x / 32 == 0) {  // warp-uniform
      wmma::store_matrix_sync(sm + kD, c, 16, wmma::mem_row_major);
    }
  });
}

// Values exact in tf32 and bf16 (a few mantissa bits), so that every format holds them.
float small_value(Rng& rng) { return float(int(rng.next() % 17) - 8) / 8.0f; }

// The documented semantics on the host: element (i, j) of A at i*lda + j (row-major) or
// i + j*lda, the sum over k in order from C.
template <int K>
std::vector<float> tile_product_reference(const std::vector<float>& in, bool a_row, bool b_row, bool c_row,
                                          bool bf16) {
  std::vector<float> out = in;
  auto val = [&](int at) {
    if (!bf16) return in[size_t(at)];
    uint16_t h[2];
    std::memcpy(h, &in[size_t(at / 2)], sizeof h);
    return fused_bf16_float(h[at % 2]);
  };
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      float acc = in[size_t(kC + (c_row ? i * 16 + j : i + j * 16))];
      for (int k = 0; k < K; ++k)
        acc += val((bf16 ? 2 : 1) * kA + (a_row ? i * K + k : i + k * 16)) *
               val((bf16 ? 2 : 1) * kB + (b_row ? k * 16 + j : k + j * K));
      out[size_t(kD + i * 16 + j)] = acc;
    }
  return out;
}

// A (16 x K) in floats [0, 128) and B (K x 16) in [256, 384): 128 floats each, or 256 bf16
// packed two to a float; C in [512, 768); zeros elsewhere.
std::vector<float> tile_input(bool bf16, uint64_t seed) {
  Rng rng(seed, 1);
  std::vector<float> in(kTileSmem, 0.0f);
  for (const int base : {kA, kB})
    for (int i = base; i < base + 128; ++i) {
      if (bf16) {
        const uint16_t h[2] = {fused_bf16_bits(small_value(rng)), fused_bf16_bits(small_value(rng))};
        std::memcpy(&in[size_t(i)], h, sizeof h);
      } else {
        in[size_t(i)] = small_value(rng);
      }
    }
  for (int i = kC; i < kD; ++i) in[size_t(i)] = small_value(rng);
  return in;
}

TEST(KernelEmulator, WmmaTileProductsFollowTheDocumentedSemantics) {
  struct TileCase {
    const char* name;
    void (*kernel)(const float*, float*, int);
    bool a_row, b_row, bf16;
  };
  const TileCase tile_cases[] = {
      {"tf32 row row", tile_product_kernel<wmma::precision::tf32, 8, wmma::row_major, wmma::row_major>, true, true, false},
      {"tf32 col row", tile_product_kernel<wmma::precision::tf32, 8, wmma::col_major, wmma::row_major>, false, true, false},
      {"tf32 row col", tile_product_kernel<wmma::precision::tf32, 8, wmma::row_major, wmma::col_major>, true, false, false},
      {"bf16 row col", tile_product_kernel<__nv_bfloat16, 16, wmma::row_major, wmma::col_major>, true, false, true},
      {"bf16 col row", tile_product_kernel<__nv_bfloat16, 16, wmma::col_major, wmma::row_major>, false, true, true},
  };
  for (const TileCase& c : tile_cases)
    for (const int c_layout : {0, 1})
      for (const unsigned fseed : {1u, 2u, 3u}) {
        SCOPED_TRACE(std::string(c.name) + (c_layout == 0 ? " C row" : " C col") + " seed " + std::to_string(fseed));
        emu::frag_seed = fseed;
        emu::order = emu::Order(fseed % 3);
        const std::vector<float> in = tile_input(c.bf16, 5);
        std::vector<float> out(kTileSmem, kNaN);
        emu::launch(c.kernel, emu::LaunchConfig(1, 64, kTileSmem * sizeof(float)), in.data(), out.data(), c_layout);
        expect_no_emulation_errors(c.name);
        const std::vector<float> want = c.bf16 ? tile_product_reference<16>(in, c.a_row, c.b_row, c_layout == 0, true)
                                               : tile_product_reference<8>(in, c.a_row, c.b_row, c_layout == 0, false);
        expect_same_bits(out, want, c.name);
        int changed = 0;
        for (int e = 0; e < 256; ++e) changed += want[size_t(kD + e)] != in[size_t(kC + e)];
        EXPECT_GT(changed, 128) << "the product is mostly zero: the test proves nothing";
      }
}

// Lanes 0..15 reach mma_sync, 16..31 skip it.
void divergent_mma_kernel(const float* in, float* out, int) {
  around_tiles(in, out, [&](float* sm) {
    Tf32A a;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> b;
    Tf32Acc c;
    wmma::fill_fragment(c, 0.0f);
    wmma::load_matrix_sync(a, sm + kA, 8);
    wmma::load_matrix_sync(b, sm + kB, 16);
    if (threadIdx.x % 32 < 16) wmma::mma_sync(c, a, b, c);
    wmma::store_matrix_sync(sm + kD, c, 16, wmma::mem_row_major);
  });
}

// A load whose pointer depends on the lane.
void lane_pointer_kernel(const float* in, float* out, int) {
  around_tiles(in, out, [&](float* sm) {
    Tf32A a;
    wmma::load_matrix_sync(a, sm + kA + (threadIdx.x % 2) * 8, 8);
  });
}

// A load at `offset` floats from A with leading dimension `ldm`.
void load_at_kernel(const float* in, float* out, int offset_ldm) {
  around_tiles(in, out, [&](float* sm) {
    Tf32A a;
    wmma::load_matrix_sync(a, sm + offset_ldm / 100, unsigned(offset_ldm % 100));
  });
}

// bf16 with an ldm that is a multiple of 4 elements but not of 8 (16 bytes).
void bf16_ldm_kernel(const float* in, float* out, int) {
  around_tiles(in, out, [&](float* sm) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
    wmma::load_matrix_sync(a, reinterpret_cast<const __nv_bfloat16*>(sm + kA), 20);
  });
}

// Assumes that lane l holds elements 8l .. 8l+7 of the accumulator in row-major order.
void assumed_mapping_kernel(const float* in, float* out, int) {
  around_tiles(in, out, [&](float* sm) {
    Tf32Acc c;
    wmma::fill_fragment(c, 0.0f);
    for (int i = 0; i < c.num_elements; ++i) c.x[i] = float(threadIdx.x % 32 * 8 + unsigned(i));
    if (threadIdx.x < 32) wmma::store_matrix_sync(sm + kD, c, 16, wmma::mem_row_major);
  });
}

// Element-wise work on x[i] (allowed): load C, double it, store.
void elementwise_kernel(const float* in, float* out, int) {
  around_tiles(in, out, [&](float* sm) {
    Tf32Acc c;
    wmma::load_matrix_sync(c, sm + kC, 16, wmma::mem_row_major);
    for (int i = 0; i < c.num_elements; ++i) c.x[i] *= 2.0f;
    if (threadIdx.x < 32) wmma::store_matrix_sync(sm + kD, c, 16, wmma::mem_row_major);
  });
}

// tf32 operands loaded from floats that are not tf32 values, converted (round = 1) or not.
void tf32_conversion_kernel(const float* in, float* out, int round) {
  around_tiles(in, out, [&](float* sm) {
    Tf32A a;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> b;
    Tf32Acc c;
    wmma::fill_fragment(c, 0.0f);
    wmma::load_matrix_sync(a, sm + kA, 8);
    wmma::load_matrix_sync(b, sm + kB, 16);
    if (round)
      for (int i = 0; i < a.num_elements; ++i) a.x[i] = wmma::__float_to_tf32(a.x[i]);
    if (round)
      for (int i = 0; i < b.num_elements; ++i) b.x[i] = wmma::__float_to_tf32(b.x[i]);
    wmma::mma_sync(c, a, b, c);
  });
}

// One lane waits at __syncwarp, the others do not.
void divergent_syncwarp_kernel(const float* in, float* out, int) {
  around_tiles(in, out, [&](float*) {
    if (threadIdx.x % 32 == 0) __syncwarp();
  });
}

std::vector<std::string> run_tile_kernel(void (*kernel)(const float*, float*, int), int arg,
                                         std::vector<float>* result = nullptr) {
  const std::vector<float> in = tile_input(false, 3);
  std::vector<float> out(kTileSmem, kNaN);
  emu::launch(kernel, emu::LaunchConfig(1, 64, kTileSmem * sizeof(float)), in.data(), out.data(), arg);
  if (result) *result = out;
  return emu::take_errors();
}

TEST(KernelEmulator, ReportsDivergentWarpCalls) {
  for (const emu::Order order : {emu::kAscending, emu::kDescending, emu::kRandom}) {
    emu::order = order;
    const std::vector<std::string> e = run_tile_kernel(divergent_mma_kernel, 0);
    EXPECT_TRUE(has_error_containing(e, "lanes diverge at a warp-collective call: lane 0 at mma_sync at")) << order_name(order);
    EXPECT_TRUE(has_error_containing(e, "lane 16 ")) << order_name(order);
    EXPECT_TRUE(has_error_containing(e, "test_fused_tower_emulated.cpp:")) << "names the line";
  }
  EXPECT_TRUE(has_error_containing(run_tile_kernel(lane_pointer_kernel, 0), "lanes pass different arguments"));
  EXPECT_TRUE(has_error_containing(run_tile_kernel(divergent_syncwarp_kernel, 0), "lanes diverge"));
}

TEST(KernelEmulator, ReportsMisalignedOrWrongLdmOrOutOfBoundsLoads) {
  EXPECT_TRUE(run_tile_kernel(load_at_kernel, 0 * 100 + 8).empty()) << "the well-formed load";
  EXPECT_TRUE(has_error_containing(run_tile_kernel(load_at_kernel, 4 * 100 + 8), "pointer not 256-bit aligned"));
  EXPECT_TRUE(has_error_containing(run_tile_kernel(load_at_kernel, 0 * 100 + 6),
                                   "ldm 6 is not a multiple of 16 bytes"));
  EXPECT_TRUE(has_error_containing(run_tile_kernel(bf16_ldm_kernel, 0), "ldm 20 is not a multiple of 16 bytes (8"));
  // the last rows of the tile past the 1024 floats of shared memory
  EXPECT_TRUE(has_error_containing(run_tile_kernel(load_at_kernel, 960 * 100 + 8), "neither inside"));
}

TEST(KernelEmulator, ExposesAKernelThatAssumesALaneMapping) {
  std::vector<float> assumed(256);
  for (int e = 0; e < 256; ++e) assumed[size_t(e)] = float(e);
  std::vector<std::vector<float>> got;
  for (const unsigned fseed : {1u, 2u}) {
    emu::frag_seed = fseed;
    std::vector<float> out;
    EXPECT_TRUE(run_tile_kernel(assumed_mapping_kernel, 0, &out).empty());
    got.emplace_back(out.begin() + kD, out.begin() + kD + 256);
    EXPECT_NE(got.back(), assumed) << "the scrambled mapping gave the assumed layout";
  }
  EXPECT_NE(got[0], got[1]) << "the mapping does not depend on the seed";
  // element-wise work is independent of the mapping
  const std::vector<float> in = tile_input(false, 3);
  for (const unsigned fseed : {1u, 2u, 3u}) {
    emu::frag_seed = fseed;
    std::vector<float> out;
    EXPECT_TRUE(run_tile_kernel(elementwise_kernel, 0, &out).empty());
    for (int e = 0; e < 256; ++e) ASSERT_EQ(out[size_t(kD + e)], 2.0f * in[size_t(kC + e)]) << e;
  }
}

TEST(KernelEmulator, ReportsTf32OperandsThatAreNotTf32Values) {
  // tile_input's values are tf32 values; these are not
  std::vector<float> in(kTileSmem, 0.1f), out(kTileSmem);
  emu::launch(tf32_conversion_kernel, emu::LaunchConfig(1, 32, kTileSmem * sizeof(float)), in.data(), out.data(), 0);
  EXPECT_TRUE(has_error_containing(emu::take_errors(), "not a tf32 value"));
  emu::launch(tf32_conversion_kernel, emu::LaunchConfig(1, 32, kTileSmem * sizeof(float)), in.data(), out.data(), 1);
  EXPECT_TRUE(emu::take_errors().empty());
}

// Every thread writes part of C, then (with or without the barrier) warp 0 loads C as an
// accumulator and stores it to D: without the barrier warp 0 runs ahead of warp 1.
template <bool kBarrier>
void write_then_load_kernel(float* out) {
  float* sm = emu::shared_memory<float>(32);
  for (unsigned i = threadIdx.x; i < 256; i += blockDim.x) sm[kC + i] = float(i);
  if (kBarrier) __syncthreads();
  Tf32Acc c;
  wmma::load_matrix_sync(c, sm + kC, 16, wmma::mem_row_major);
  if (threadIdx.x < 32) wmma::store_matrix_sync(sm + kD, c, 16, wmma::mem_row_major);
  __syncthreads();
  for (unsigned i = threadIdx.x; i < 256; i += blockDim.x) out[i] = sm[kD + i];
}

TEST(KernelEmulator, WarpsRunAheadToExposeAMissingBarrier) {
  std::vector<float> want(256);
  for (int i = 0; i < 256; ++i) want[size_t(i)] = float(i);
  for (const emu::Order order : {emu::kAscending, emu::kDescending, emu::kRandom}) {
    emu::order = order;
    std::vector<float> out(256, kNaN);
    emu::launch(write_then_load_kernel<true>, emu::LaunchConfig(1, 64, kTileSmem * sizeof(float)), out.data());
    EXPECT_EQ(out, want) << order_name(order);
    EXPECT_TRUE(emu::take_errors().empty());
  }
  // ascending: warp 0's lanes arrive first and load before warp 1 has written its elements
  emu::order = emu::kAscending;
  std::vector<float> out(256, kNaN);
  emu::launch(write_then_load_kernel<false>, emu::LaunchConfig(1, 64, kTileSmem * sizeof(float)), out.data());
  EXPECT_TRUE(emu::take_errors().empty());
  EXPECT_TRUE(std::isnan(out[32])) << "warp 0 did not run ahead of warp 1";
}

// float4 views of shared memory: aligned only as far as the declaration says.
void float4_view_kernel(float* out, int align_offset) {
  float* sm = emu::shared_memory<float>(size_t(align_offset / 100));
  *emu::float4_view(sm + align_offset % 100) = make_float4(1, 2, 3, 4);
  out[threadIdx.x] = 0.0f;
}

TEST(KernelEmulator, ReportsFloat4ViewsBeyondTheDeclaredAlignment) {
  std::vector<float> out(32);
  auto errors = [&](int align, int offset) {
    emu::launch(float4_view_kernel, emu::LaunchConfig(1, 32, 64 * sizeof(float)), out.data(), align * 100 + offset);
    return emu::take_errors();
  };
  EXPECT_TRUE(errors(16, 4).empty());
  EXPECT_TRUE(errors(32, 8).empty());
  EXPECT_TRUE(has_error_containing(errors(4, 4), "declared 4-byte aligned"));  // no __align__: alignof(float)
  EXPECT_TRUE(has_error_containing(errors(16, 2), "not known to be 16-byte aligned"));
}

}  // namespace
}  // namespace convncf
