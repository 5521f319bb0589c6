// reduce_cpu.cpp: the argument checks of kernels/reduce.cu's launchers, and the size of their
// partials. No CPU twin: a reduction's twin is its plain loop in the CPU engine; the emulated
// device (tests/emulated/fake_kernels.cpp) replays the kernels' fixed grid and tree to get their
// bits. Tests: tests/test_reduce_gpu.cu (Reduce.LaunchersRejectBadArguments runs everywhere).
#include <string>

#include "convncf/errors.hpp"
#include "convncf/reduce.hpp"

namespace convncf {

int64_t reduce_partials_size() { return kReduceBlocks; }

void check_deterministic_sum_args(int64_t n, const void* x, const double* partials,
                                  const double* out, const char* who) {
  if (n < 0) throw_internal(std::string(who) + ": n = " + std::to_string(n) + " < 0");
  if (!partials || !out) throw_internal(std::string(who) + ": null partials or out");
  if (n > 0 && !x) throw_internal(std::string(who) + ": null x");
}

void check_count_non_finite_args(int64_t n, const float* x, const int32_t* out) {
  if (n < 0) throw_internal("count_non_finite_gpu: n = " + std::to_string(n) + " < 0");
  if (n > 0 && (!x || !out)) throw_internal("count_non_finite_gpu: null pointer argument");
}

}  // namespace convncf
