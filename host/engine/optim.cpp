// optim.cpp: optimizer state and the dense and row-wise steps (see optim.hpp).
#include "convncf/optim.hpp"

#include "convncf/fp_env.hpp"

namespace convncf {

template <typename T>
Optimizer<T>::Optimizer(const OptimizerSpec& spec, int64_t n) : m_spec(spec) {
  if (spec.learner == Learner::Adagrad) m_s0.assign(size_t(n), T(spec.adagrad_initial_accumulator));
  if (spec.learner == Learner::Adam) {
    m_s0.assign(size_t(n), T(0));
    m_s1.assign(size_t(n), T(0));
  }
}

template <typename T>
void Optimizer<T>::step(T* p, const T* g, int64_t n) {
  const FlushDenormals flush;  // fp_env.hpp
  ++m_step;
  const OptimizerSpec& s = m_spec;
  const AdamCorrections c = adam_corrections(s, m_step);  // once per step, as on the GPU
  switch (s.learner) {
    case Learner::SGD:
      for (int64_t i = 0; i < n; ++i) sgd_update(p[i], g[i], s.lr, s.weight_decay);
      break;
    case Learner::Adagrad:
      for (int64_t i = 0; i < n; ++i)
        adagrad_update(p[i], g[i], m_s0[size_t(i)], s.lr, s.adagrad_eps, s.weight_decay);
      break;
    case Learner::Adam:
      for (int64_t i = 0; i < n; ++i)
        adam_update(p[i], g[i], m_s0[size_t(i)], m_s1[size_t(i)], s.lr, s.beta1, s.beta2,
                    s.adam_eps, s.weight_decay, c.bc1, c.bc2);
      break;
  }
}

template <typename T>
void Optimizer<T>::step_rows(T* p, const T* g, const std::vector<int32_t>& rows, int row_size) {
  const FlushDenormals flush;  // fp_env.hpp
  ++m_step;
  const OptimizerSpec& s = m_spec;
  const AdamCorrections c = adam_corrections(s, m_step);  // once per step, as on the GPU
  for (int32_t r : rows) {
    const int64_t base = int64_t(r) * row_size;
    for (int64_t i = base; i < base + row_size; ++i) {
      switch (s.learner) {
        case Learner::SGD: sgd_update(p[i], g[i], s.lr, s.weight_decay); break;
        case Learner::Adagrad:
          adagrad_update(p[i], g[i], m_s0[size_t(i)], s.lr, s.adagrad_eps, s.weight_decay);
          break;
        case Learner::Adam:
          adam_update(p[i], g[i], m_s0[size_t(i)], m_s1[size_t(i)], s.lr, s.beta1, s.beta2,
                      s.adam_eps, s.weight_decay, c.bc1, c.bc2);
          break;
      }
    }
  }
}

template class Optimizer<float>;
template class Optimizer<double>;

}  // namespace convncf
