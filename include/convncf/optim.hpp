// optim.hpp: SGD, Adagrad and Adam over flat arrays, with PyTorch's update formulas.
// Adagrad's initial accumulator and epsilon are parameters: PyTorch starts at 0 with eps 1e-10,
// TensorFlow 1 at 0.1 with no epsilon. The same update runs dense (every element) or on a list of
// embedding rows; see Optimizer::step_rows for when the two are identical.
#pragma once
#include <math.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "convncf/common.hpp"
#include "convncf/kinds.hpp"

namespace convncf {

struct OptimizerSpec {
  Learner learner = Learner::Adam;
  double lr = 1e-3;
  double weight_decay = 0.0;
  double adagrad_initial_accumulator = 0.0;
  double adagrad_eps = 1e-10;
  double beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8;
};

// One element's update, shared by the CPU Optimizer and the GPU kernels (kernels/optim.cu), so
// both run the same arithmetic: plain numbers in, T out, the mixed float/double expressions of
// PyTorch's formulas. The square root goes through optim_sqrt, which picks sqrtf for float (as
// std::sqrt(float) does) and sqrt for double; both are correctly rounded on host and device.
CONVNCF_HD float optim_sqrt(float x) { return ::sqrtf(x); }
CONVNCF_HD double optim_sqrt(double x) { return ::sqrt(x); }

template <typename T>
CONVNCF_HD void sgd_update(T& p, T g, double lr, double wd) {
  if (wd != 0) g = static_cast<T>(g + wd * p);
  p = static_cast<T>(p - lr * g);
}
template <typename T>
CONVNCF_HD void adagrad_update(T& p, T g, T& acc, double lr, double eps, double wd) {
  if (wd != 0) g = static_cast<T>(g + wd * p);
  acc = static_cast<T>(acc + g * g);
  p = static_cast<T>(p - lr * g / (optim_sqrt(acc) + eps));
}

// Adam's bias corrections of one step: bc1 = 1 - beta1^step, bc2 = 1 - beta2^step (1-based
// step), computed once per step on the host by both the CPU Optimizer and the GPU launcher.
struct AdamCorrections {
  double bc1, bc2;
};
inline AdamCorrections adam_corrections(const OptimizerSpec& s, int64_t step) {
  return {1 - std::pow(s.beta1, double(step)), 1 - std::pow(s.beta2, double(step))};
}

template <typename T>
CONVNCF_HD void adam_update(T& p, T g, T& m, T& v, double lr, double beta1, double beta2,
                            double eps, double wd, double bc1, double bc2) {
  if (wd != 0) g = static_cast<T>(g + wd * p);
  m = static_cast<T>(m + (1 - beta1) * (g - m));  // torch lerp(m, g, 1 - beta1)
  v = static_cast<T>(v * beta2 + (1 - beta2) * g * g);
  const double denom = ::sqrt(double(v)) / ::sqrt(bc2) + eps;
  p = static_cast<T>(p - (lr / bc1) * (m / denom));
}

// The state of one optimizer over one flat array of n elements (rows of `row_size`).
template <typename T>
class Optimizer {
 public:
  Optimizer() = default;
  Optimizer(const OptimizerSpec& spec, int64_t n);
  const OptimizerSpec& spec() const { return m_spec; }
  int64_t steps() const { return m_step; }
  void set_steps(int64_t s) { m_step = s; }  // restoring a checkpoint
  // Dense step over all n elements.
  void step(T* p, const T* g, int64_t n);
  // Step on the listed rows only. Identical to a dense step when every other row's gradient is
  // zero and the learner is SGD or Adagrad (a zero gradient changes neither parameter nor state);
  // Adam's moments decay on every row, so callers use step() for Adam.
  void step_rows(T* p, const T* g, const std::vector<int32_t>& rows, int row_size);
  std::vector<T>& state0() { return m_s0; }  // Adagrad accumulator or Adam's m
  std::vector<T>& state1() { return m_s1; }  // Adam's v
  const std::vector<T>& state0() const { return m_s0; }
  const std::vector<T>& state1() const { return m_s1; }

 private:
  OptimizerSpec m_spec;
  int64_t m_step = 0;
  std::vector<T> m_s0, m_s1;
};

}  // namespace convncf
