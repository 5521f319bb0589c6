// launch_checks.hpp: the pieces the kernels' argument checks are made of. Every launcher has one
// check_<op>_args, declared in its header next to the launcher and defined in kernels/<op>_cpu.cpp
// next to the CPU twin; the real launcher (kernels/<op>.cu), the twin where it checks the same
// and the emulated launcher (tests/emulated/fake_kernels.cpp) all call it, so none of them can
// accept what another refuses. The helpers below are what several of those checks share. Each
// throws Error(kExitSoftware) naming the function `fn` and the bad value. Plain C++, no CUDA
// header; defined in kernels/launch_checks.cpp. Tests: tests/test_launch_checks.cpp (through the
// twins) and tests/test_launch_checks_gpu.cu (through the launchers; no GPU needed).
#pragma once
#include <cstdint>
#include <initializer_list>

namespace convncf {

// The largest E of the row kernels (gather_row_grads, mf_bpr_fwd_bwd, rows_squared_reg,
// mf_score_pairs): any E in practice (outer_product_bwd has its own, kPairBwdMaxE).
inline constexpr int kRowKernelMaxE = 1 << 20;

namespace detail {
// 0 <= n_valid <= B_cap <= 2^40 (triples of a batch buffer).
void check_batch(const char* fn, int64_t B_cap, int64_t n_valid);
// 1 <= E <= max_E.
void check_E(const char* fn, int E, int max_E);
// None of ptrs is null (the message gives the position of the first null one).
void check_pointers(const char* fn, std::initializer_list<const void*> ptrs);
}  // namespace detail

}  // namespace convncf
