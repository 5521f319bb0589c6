// The fused tower's kernels (kernels/fused_tower.cu, emulated: see shim.hpp) against their CPU
// twins (kernels/fused_tower_cpu.cpp), bit for bit: every launcher, both variants, every precision,
// dropout off and on, block counts 1, 7, the engine's grid and more blocks than pairs, each
// configuration run with the threads of every phase in one of ascending, descending and a
// seeded random order (rotated: every order meets every block count and variant). Then the
// emulator's own checks, each shown to fire on a small faulty kernel.
//   build/tests/kernel_emulation/convncf_kernel_emulation_tests
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "convncf/fused_tower.hpp"
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

void expect_no_emulation_errors(const std::string& what) {
  for (const std::string& e : emu::take_errors()) ADD_FAILURE() << what << ": emulation: " << e;
}

const char* order_name(emu::Order o) {
  return o == emu::kAscending ? "ascending" : o == emu::kDescending ? "descending" : "random";
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
  // Few pairs for the 64-wide towers (each pair is some 1e6 emulated multiply-adds).
  const Batch b = fused_test::make_batch(c.E == 64 ? 10 : 40, n_users, n_items, 9);
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
  // rotated so that every order meets every block count and both variants: the orders of all
  // configurations would triple the runtime.
  const std::vector<int> block_counts = {1, 7, grid_bwd, int(n) + 5};
  for (size_t bi = 0; bi < block_counts.size(); ++bi) {
    const int n_blocks = block_counts[bi];
    for (const double p_drop : {0.0, 0.3}) {
      // dropout off in fp32 only, as in the GPU test: the other precisions differ in layers 2..L only
      if (prec != Precision::FP32 && p_drop == 0.0) continue;
      const DropoutArgs drop{p_drop, 3, 8};
      const fused_test::TwinOutputs want = fused_test::run_twins(ft, prm, b, packed.data(), n_blocks, drop);
      for (const int variant : {1, 2}) {
        {
          const emu::Order order = emu::Order((bi + (p_drop == 0.0 ? 0 : 2) + size_t(variant)) % 3);
          const std::string what = std::string(c.name) + " " + precision_name(prec) + " blocks " +
                                   std::to_string(n_blocks) + " dropout " + std::to_string(p_drop) + " variant " +
                                   std::to_string(variant) + " " + order_name(order);
          SCOPED_TRACE(what);
          emu::order = order;
          emu::seed = 12345;
          std::vector<float> s2(want.score.size(), kNaN), dp2(want.dp.size(), kNaN), dq2(want.dq.size(), kNaN),
              pa2(want.partial.size(), kNaN), dn2(want.dnet.size(), kNaN);
          fused_tower_fwd(ft, n, n_blocks, b.user.data(), b.item.data(), prm.P.data(), prm.Q.data(), packed.data(),
                          drop, s2.data(), nullptr, variant);
          fused_tower_bwd(ft, n, n_blocks, b.user.data(), b.item.data(), prm.P.data(), prm.Q.data(), packed.data(),
                          drop, b.dscore.data(), dp2.data(), dq2.data(), pa2.data(), nullptr, variant);
          fused_reduce_grads(ft, n_blocks, pa2.data(), dn2.data(), nullptr);
          expect_no_emulation_errors(what);
          expect_same_bits(s2, want.score, "score");
          expect_same_bits(dp2, want.dp, "dp");
          expect_same_bits(dq2, want.dq, "dq");
          expect_same_bits(pa2, want.partial, "partial");
          expect_same_bits(dn2, want.dnet, "dnet");
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

// No pairs: every block's slice is zeroed, the reduction gives zeros.
TEST(FusedTowerEmulatedEmpty, EmptyBatchZeroFills) {
  const TowerSpec tower = TowerSpec::make(8, {1, 3, 5}, {4, 2}, {4, 2});
  const FusedTower ft = make_fused_tower(tower, Precision::FP32, fused_max_smem_bytes());
  std::vector<float> partial(size_t(5 * ft.n_params), kNaN), dnet(size_t(ft.n_params), kNaN);
  for (const int variant : {1, 2}) {
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

}  // namespace
}  // namespace convncf
