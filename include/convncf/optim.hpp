// optim.hpp: SGD, Adagrad and Adam over flat arrays, with PyTorch's update formulas.
// Adagrad's initial accumulator and epsilon are parameters: PyTorch starts at 0 with eps 1e-10,
// TensorFlow 1 at 0.1 with no epsilon. The same update runs dense (every element) or on a list of
// embedding rows; see Optimizer::step_rows for when the two are identical.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "convncf/config.hpp"

namespace convncf {

struct OptimizerSpec {
  Learner learner = Learner::Adam;
  double lr = 1e-3;
  double weight_decay = 0.0;
  double adagrad_initial_accumulator = 0.0;
  double adagrad_eps = 1e-10;
  double beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8;
};

// One element's update. `step` is the 1-based step count (Adam's bias correction).
template <typename T>
inline void sgd_update(T& p, T g, double lr, double wd) {
  if (wd != 0) g = static_cast<T>(g + wd * p);
  p = static_cast<T>(p - lr * g);
}
template <typename T>
inline void adagrad_update(T& p, T g, T& acc, double lr, double eps, double wd) {
  if (wd != 0) g = static_cast<T>(g + wd * p);
  acc = static_cast<T>(acc + g * g);
  p = static_cast<T>(p - lr * g / (std::sqrt(acc) + eps));
}
template <typename T>
inline void adam_update(T& p, T g, T& m, T& v, int64_t step, const OptimizerSpec& s) {
  if (s.weight_decay != 0) g = static_cast<T>(g + s.weight_decay * p);
  m = static_cast<T>(m + (1 - s.beta1) * (g - m));  // torch lerp(m, g, 1 - beta1)
  v = static_cast<T>(v * s.beta2 + (1 - s.beta2) * g * g);
  const double bc1 = 1 - std::pow(s.beta1, double(step));
  const double bc2 = 1 - std::pow(s.beta2, double(step));
  const double denom = std::sqrt(double(v)) / std::sqrt(bc2) + s.adam_eps;
  p = static_cast<T>(p - (s.lr / bc1) * (m / denom));
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

 private:
  OptimizerSpec m_spec;
  int64_t m_step = 0;
  std::vector<T> m_s0, m_s1;
};

}  // namespace convncf
