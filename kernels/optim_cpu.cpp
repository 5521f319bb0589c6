// optim_cpu.cpp: the argument checks of kernels/optim.cu's launchers (optim_gpu.hpp). The CPU
// twin of the kernels is Optimizer<float> (host/engine/optim.cpp): both run optim.hpp's per-element
// updates and Adam's bias corrections, so there is no second copy of them here. Tests:
// tests/test_optim_gpu.cu (OptimGpu.LaunchersRejectBadArguments runs everywhere).
#include <string>

#include "convncf/errors.hpp"
#include "convncf/optim_gpu.hpp"

namespace convncf {
namespace {

// What every launch needs: a 1-based step and the state the learner keeps.
void check_step(const char* who, const OptimizerSpec& spec, int64_t step, const float* s0,
                const float* s1) {
  if (step < 1) throw_internal(std::string(who) + ": step " + std::to_string(step) + " < 1");
  if (spec.learner != Learner::SGD && !s0)
    throw_internal(std::string(who) + ": Adagrad and Adam need state s0");
  if (spec.learner == Learner::Adam && !s1)
    throw_internal(std::string(who) + ": Adam needs state s1");
}

}  // namespace

void check_optim_dense_args(const OptimizerSpec& spec, int64_t step, int64_t n, const float* p,
                            const float* g, const float* s0, const float* s1) {
  if (n < 0) throw_internal("optim_dense_gpu: n = " + std::to_string(n) + " < 0");
  check_step("optim_dense_gpu", spec, step, s0, s1);
  if (n > 0 && (!p || !g)) throw_internal("optim_dense_gpu: null p or g");
}

void check_optim_rows_args(const OptimizerSpec& spec, int64_t step, const int32_t* rows,
                           const int32_t* n_rows, int64_t max_rows, int row_size, const float* p,
                           const float* g, const float* s0, const float* s1) {
  if (max_rows < 0 || row_size < 1)
    throw_internal("optim_rows_gpu: bad sizes max_rows=" + std::to_string(max_rows) + " row_size=" +
                   std::to_string(row_size) + " (expected max_rows >= 0, row_size >= 1)");
  check_step("optim_rows_gpu", spec, step, s0, s1);
  if (max_rows > 0 && (!rows || !n_rows || !p || !g))
    throw_internal("optim_rows_gpu: null pointer argument");
}

}  // namespace convncf
