// cpu_engine.cpp: the CPU reference engine (see cpu_engine.hpp for the design).
// Tested by tests/test_cpu_engine.cpp: finite differences in double for every gradient, the
// fast tower against convncf_score_naive, determinism across runs.
#include "convncf/cpu_engine.hpp"

#include <omp.h>

#include "convncf/fp_env.hpp"

#include <algorithm>
#include <cmath>
#include <new>
#include <stdexcept>
#include <string>

#include "convncf/bpr.hpp"
#include "convncf/errors.hpp"
#include "convncf/head.hpp"
#include "convncf/rng.hpp"
#include "convncf/util.hpp"

namespace convncf {

// The per-element math is shared with the GPU kernels (head.hpp, bpr.hpp), so both engines draw
// the same dropout masks and compute the loss the same way.
double reg_weight(const RegSpec& reg, size_t i) {
  return reg.enabled && i < reg.weights.size() ? reg.weights[i] : 0.0;
}

std::vector<NetRegTerm> network_reg_terms(const TowerSpec& tower, const RegSpec& reg) {
  std::vector<NetRegTerm> terms;
  const int64_t ow = tower.out_w_offset;
  const int C = tower.last_channels();
  if (reg.type == RegType::Norm) {
    for (const ConvLayer& l : tower.layers) terms.push_back({l.w_offset, l.w_size(), reg_weight(reg, 1)});
    terms.push_back({ow, C, reg_weight(reg, 1)});
  } else {
    for (const ConvLayer& l : tower.layers)
      terms.push_back({l.w_offset, l.w_size() + l.cout, reg_weight(reg, 2)});  // weight and bias adjacent
    terms.push_back({ow, C + 1, reg_weight(reg, 1) + reg_weight(reg, 2)});     // output weight and bias
  }
  return terms;
}

double dropout_scale(const DropoutSpec& d, int64_t triple, int side, int channel) {
  return dropout_mask(d.p, d.seed, d.step, triple, side, channel);
}

template <typename T>
T bpr_loss(T x) {
  return softplus_neg(x);
}
template <typename T>
T bpr_grad(T x) {
  return softplus_neg_grad(x);
}

// A conv layer of kernel = stride k on a channels-last map: out = ReLU(b + patches x Wt).
// CO is the output channel count when known at compile time (the accumulators then live in
// registers), 0 for any count.
template <typename T, int CO>
static void conv_forward(const ConvLayer& l, const T* packed, const T* X, T* out) {
  const int k = l.k, Ci = l.cin, Si = l.in_size, So = l.out_size;
  const int Co = CO > 0 ? CO : l.cout;
  const int run = k * Ci;  // contiguous values per patch row
  const T* Wt = packed + l.w_offset;
  const T* b = packed + l.b_offset;
  std::vector<T> heap(CO > 0 ? 0 : size_t(Co));
  T local[CO > 0 ? CO : 1];
  T* acc = CO > 0 ? local : heap.data();
  for (int x = 0; x < So; ++x)
    for (int y = 0; y < So; ++y) {
      for (int c = 0; c < Co; ++c) acc[c] = b[c];
      for (int r = 0; r < k; ++r) {
        const T* xr = X + ((int64_t(x) * k + r) * Si + int64_t(y) * k) * Ci;
        const T* wr = Wt + int64_t(r) * run * Co;
        for (int j = 0; j < run; ++j) {
          const T a = xr[j];
          const T* wj = wr + int64_t(j) * Co;
          for (int c = 0; c < Co; ++c) acc[c] += a * wj[c];
        }
      }
      T* o = out + (int64_t(x) * So + y) * Co;
      for (int c = 0; c < Co; ++c) o[c] = acc[c] > T(0) ? acc[c] : T(0);
    }
}

// Backward of conv_forward given dO, the ReLU-masked gradient of its output: accumulates the
// weight and bias gradients into dpacked and writes dX, the gradient of the input map, already
// masked by the previous layer's ReLU (zero where X is zero). dX = dO x W uses the transposed
// copy WkT[co][(r*k+s)*cin+ci] (second half of `packed`), so every inner loop is an axpy over
// contiguous memory and vectorizes without a horizontal reduction.
template <typename T, int CO>
static void conv_backward(const ConvLayer& l, const T* packed, int64_t n_params, const T* X,
                          const T* dO, T* dpacked, T* dX) {
  constexpr int JB = 32;  // dX values kept in registers at once
  const int k = l.k, Ci = l.cin, Si = l.in_size, So = l.out_size;
  const int Co = CO > 0 ? CO : l.cout;
  const int run = k * Ci;
  const int64_t K = int64_t(k) * run;
  const T* WkT = packed + n_params + l.w_offset;
  T* dWt = dpacked + l.w_offset;
  T* db = dpacked + l.b_offset;
  std::vector<T> heap(CO > 0 ? 0 : size_t(Co));
  T local[CO > 0 ? CO : 1];
  T* d = CO > 0 ? local : heap.data();
  for (int x = 0; x < So; ++x)
    for (int y = 0; y < So; ++y) {
      const T* dsrc = dO + (int64_t(x) * So + y) * Co;
      bool any = false;
      for (int c = 0; c < Co; ++c) {
        d[c] = dsrc[c];
        db[c] += d[c];
        any = any || d[c] != T(0);
      }
      for (int r = 0; r < k; ++r) {
        const int64_t off = ((int64_t(x) * k + r) * Si + int64_t(y) * k) * Ci;
        const T* xr = X + off;
        T* dxr = dX + off;
        if (!any) {  // nothing flows back through this patch (all its outputs were ReLU-off)
          std::fill_n(dxr, run, T(0));
          continue;
        }
        T* dwr = dWt + int64_t(r) * run * Co;
        // dW: a zero input adds nothing, and testing for it would mispredict half the time
        for (int j = 0; j < run; ++j) {
          const T a = xr[j];
          T* dwj = dwr + int64_t(j) * Co;
          for (int c = 0; c < Co; ++c) dwj[c] += a * d[c];
        }
        for (int jb = 0; jb < run; jb += JB) {
          T acc[JB] = {};
          const T* wk = WkT + int64_t(r) * run + jb;
          if (run - jb >= JB) {
            for (int c = 0; c < Co; ++c) {
              const T dc = d[c];
              const T* w = wk + int64_t(c) * K;
              for (int t = 0; t < JB; ++t) acc[t] += dc * w[t];
            }
            for (int t = 0; t < JB; ++t) dxr[jb + t] = xr[jb + t] != T(0) ? acc[t] : T(0);
          } else {
            const int nj = run - jb;
            for (int c = 0; c < Co; ++c) {
              const T dc = d[c];
              const T* w = wk + int64_t(c) * K;
              for (int t = 0; t < nj; ++t) acc[t] += dc * w[t];
            }
            for (int t = 0; t < nj; ++t) dxr[jb + t] = xr[jb + t] != T(0) ? acc[t] : T(0);
          }
        }
      }
    }
}

template <typename T>
void PairWork<T>::resize(const TowerSpec& t) {
  const ConvLayer& l1 = t.layers[0];
  A.assign(size_t(l1.out_size) * l1.k * l1.cout, T(0));
  dA.assign(A.size(), T(0));
  act.resize(t.layers.size());
  dact.resize(t.layers.size());
  for (size_t l = 0; l < t.layers.size(); ++l) {
    const ConvLayer& c = t.layers[l];
    act[l].assign(size_t(c.out_size) * c.out_size * c.cout, T(0));
    dact[l].assign(act[l].size(), T(0));
  }
  h.assign(size_t(t.last_channels()), T(0));
  dh.assign(h.size(), T(0));
}

template <typename T>
CpuEngine<T>::CpuEngine(ModelKind model, const TowerSpec* tower, int32_t n_users, int32_t n_items,
                        int E, int threads)
    : m_model(model), m_n_users(n_users), m_n_items(n_items), m_E(E) {
  m_threads = threads > 0 ? threads : omp_get_max_threads();
  if (model == ModelKind::ConvNCF) {
    if (!tower) throw_internal("CpuEngine: ConvNCF needs a tower");
    if (tower->E != E) throw_internal("CpuEngine: tower and embedding sizes differ");
    m_tower = *tower;
    m_has_tower = true;
  }
  // What the lines below allocate, asked first (as CUB asks for its temporary storage): every
  // buffer is zero-filled, so one that cannot fit would fail here or bring the OOM killer.
  double maps = 0;  // one pair's feature maps (and, as much again, their gradients)
  std::string what = "the CPU engine's gradient buffers";
  if (m_has_tower) {
    const ConvLayer& l1 = m_tower.layers[0];
    maps = double(l1.out_size) * l1.k * l1.cout + m_tower.last_channels();
    for (const ConvLayer& c : m_tower.layers) maps += double(c.out_size) * c.out_size * c.cout;
    what = "the CPU engine's feature maps (tower " + m_tower.describe() + ", " + std::to_string(2 * m_threads) +
           " pairs in flight on " + std::to_string(m_threads) + " threads, maps and their gradients) and its buffers";
  }
  const double n_params = m_has_tower ? double(m_tower.n_params) : 0.0;
  const double need = sizeof(T) * (2 * maps * 2 * m_threads + n_params * (3 + m_threads) + double(n_users + n_items) * E) +
                      double(n_users) + double(n_items);
  const int64_t avail = available_memory_bytes();
  if (avail >= 0 && need > double(avail)) throw_out_of_memory(what, need);
  try {
    if (m_has_tower) {
      m_packed.assign(size_t(packed_size()), T(0));
      m_thread_dnet.assign(size_t(m_threads), std::vector<T>(size_t(m_tower.n_params), T(0)));
      m_work.resize(size_t(m_threads) * 2);
      for (PairWork<T>& w : m_work) w.resize(m_tower);
      m_grads.net.assign(size_t(m_tower.n_params), T(0));
    }
    m_grads.P.assign(size_t(n_users) * E, T(0));
    m_grads.Q.assign(size_t(n_items) * E, T(0));
    m_mark_users.assign(size_t(n_users), 0);
    m_mark_items.assign(size_t(n_items), 0);
  } catch (const std::bad_alloc&) {
    throw_out_of_memory(what, need);
  } catch (const std::length_error&) {
    throw_out_of_memory(what, need);
  }
}

// Packed layout: per layer Wt[((r*k+s)*cin+ci)*cout+co] = W[co][ci][r][s], then the bias; the
// output layer unchanged; same offsets as the PyTorch layout. A second half (offset n_params)
// holds each layer's weight transposed, WkT[co][(r*k+s)*cin+ci], for the backward dX product.
template <typename T>
void CpuEngine<T>::pack(const T* net, T* packed) const {
  for (const ConvLayer& l : m_tower.layers) {
    const int k = l.k;
    for (int co = 0; co < l.cout; ++co)
      for (int ci = 0; ci < l.cin; ++ci)
        for (int r = 0; r < k; ++r)
          for (int s = 0; s < k; ++s) {
            const T v = net[l.w_offset + ((int64_t(co) * l.cin + ci) * k + r) * k + s];
            const int64_t kk = (int64_t(r) * k + s) * l.cin + ci;
            packed[l.w_offset + kk * l.cout + co] = v;
            packed[m_tower.n_params + l.w_offset + int64_t(co) * (int64_t(k) * k * l.cin) + kk] = v;
          }
    std::copy(net + l.b_offset, net + l.b_offset + l.cout, packed + l.b_offset);
  }
  std::copy(net + m_tower.out_w_offset, net + m_tower.n_params, packed + m_tower.out_w_offset);
}

template <typename T>
void CpuEngine<T>::unpack_add(const T* packed, T* net) const {
  for (const ConvLayer& l : m_tower.layers) {
    const int k = l.k;
    for (int co = 0; co < l.cout; ++co)
      for (int ci = 0; ci < l.cin; ++ci)
        for (int r = 0; r < k; ++r)
          for (int s = 0; s < k; ++s)
            net[l.w_offset + ((int64_t(co) * l.cin + ci) * k + r) * k + s] +=
                packed[l.w_offset + ((int64_t(r) * k + s) * l.cin + ci) * l.cout + co];
    for (int co = 0; co < l.cout; ++co) net[l.b_offset + co] += packed[l.b_offset + co];
  }
  for (int64_t i = m_tower.out_w_offset; i < m_tower.n_params; ++i) net[i] += packed[i];
}

// A[(x*k+s)*C + c] = sum_r p[k*x+r] * W1[c][0][r][s]
template <typename T>
void CpuEngine<T>::layer1_user(const T* packed, const T* p, T* A) const {
  const ConvLayer& l = m_tower.layers[0];
  const int k = l.k, C = l.cout, S = l.out_size;
  const T* W = packed + l.w_offset;  // (k, k, C)
  std::fill(A, A + int64_t(S) * k * C, T(0));
  for (int x = 0; x < S; ++x)
    for (int r = 0; r < k; ++r) {
      const T pr = p[x * k + r];
      for (int s = 0; s < k; ++s) {
        T* a = A + (int64_t(x) * k + s) * C;
        const T* w = W + (int64_t(r) * k + s) * C;
        for (int c = 0; c < C; ++c) a[c] += pr * w[c];
      }
    }
}

template <typename T>
void CpuEngine<T>::forward_from_A(const T* packed, const T* A, const T* q, const T* mask,
                                  PairWork<T>& w, T* score) const {
  const std::vector<ConvLayer>& L = m_tower.layers;
  {  // layer 1 from the user's A and the item row
    const ConvLayer& l = L[0];
    const int k = l.k, C = l.cout, S = l.out_size;
    const T* b = packed + l.b_offset;
    T* out = w.act[0].data();
    for (int x = 0; x < S; ++x)
      for (int y = 0; y < S; ++y) {
        T* o = out + (int64_t(x) * S + y) * C;
        for (int c = 0; c < C; ++c) o[c] = b[c];
        for (int s = 0; s < k; ++s) {
          const T qs = q[y * k + s];
          const T* a = A + (int64_t(x) * k + s) * C;
          for (int c = 0; c < C; ++c) o[c] += qs * a[c];
        }
        for (int c = 0; c < C; ++c) o[c] = o[c] > T(0) ? o[c] : T(0);
      }
  }
  for (size_t li = 1; li < L.size(); ++li) {
    const ConvLayer& l = L[li];
    if (l.cout == 32)
      conv_forward<T, 32>(l, packed, w.act[li - 1].data(), w.act[li].data());
    else
      conv_forward<T, 0>(l, packed, w.act[li - 1].data(), w.act[li].data());
  }
  const ConvLayer& last = L.back();
  const int C = last.cout;
  const int64_t npos = int64_t(last.out_size) * last.out_size;
  const T* a = w.act.back().data();
  for (int c = 0; c < C; ++c) w.h[size_t(c)] = T(0);
  for (int64_t pos = 0; pos < npos; ++pos)
    for (int c = 0; c < C; ++c) w.h[size_t(c)] += a[pos * C + c];
  const T* wo = packed + m_tower.out_w_offset;
  T s = packed[m_tower.out_b_offset];
  for (int c = 0; c < C; ++c) s += wo[c] * (mask ? w.h[size_t(c)] * mask[c] : w.h[size_t(c)]);
  *score = s;
}

template <typename T>
T CpuEngine<T>::forward_pair(const T* packed, const T* p, const T* q, const T* mask,
                             PairWork<T>& w) const {
  layer1_user(packed, p, w.A.data());
  T s;
  forward_from_A(packed, w.A.data(), q, mask, w, &s);
  return s;
}

template <typename T>
void CpuEngine<T>::backward_pair(const T* packed, const T* p, const T* q, const T* mask, T dscore,
                                 PairWork<T>& w, T* dpacked, T* dp, T* dq) const {
  const std::vector<ConvLayer>& L = m_tower.layers;
  const ConvLayer& last = L.back();
  const int CL = last.cout;
  // output layer
  const T* wo = packed + m_tower.out_w_offset;
  T* dwo = dpacked + m_tower.out_w_offset;
  for (int c = 0; c < CL; ++c) {
    const T m = mask ? mask[c] : T(1);
    dwo[c] += dscore * w.h[size_t(c)] * m;
    w.dh[size_t(c)] = dscore * wo[c] * m;
  }
  dpacked[m_tower.out_b_offset] += dscore;
  {  // spatial sum, then the last ReLU
    const int64_t npos = int64_t(last.out_size) * last.out_size;
    const T* a = w.act.back().data();
    T* da = w.dact.back().data();
    for (int64_t pos = 0; pos < npos; ++pos)
      for (int c = 0; c < CL; ++c)
        da[pos * CL + c] = a[pos * CL + c] > T(0) ? w.dh[size_t(c)] : T(0);
  }
  // layers L..2: dact[li] holds the ReLU-masked gradient of the layer's output
  for (size_t li = L.size() - 1; li >= 1; --li) {
    const ConvLayer& l = L[li];
    if (l.cout == 32)
      conv_backward<T, 32>(l, packed, m_tower.n_params, w.act[li - 1].data(), w.dact[li].data(), dpacked, w.dact[li - 1].data());
    else
      conv_backward<T, 0>(l, packed, m_tower.n_params, w.act[li - 1].data(), w.dact[li].data(), dpacked, w.dact[li - 1].data());
  }
  {  // layer 1 through its rank-1 structure
    const ConvLayer& l = L[0];
    const int k = l.k, C = l.cout, S = l.out_size;
    const T* W = packed + l.w_offset;
    T* dW = dpacked + l.w_offset;
    T* db = dpacked + l.b_offset;
    const T* G = w.dact[0].data();  // masked by layer 1's ReLU
    T* dA = w.dA.data();
    std::fill(dA, dA + int64_t(S) * k * C, T(0));
    const T* A = w.A.data();
    for (int x = 0; x < S; ++x)
      for (int y = 0; y < S; ++y) {
        const T* g = G + (int64_t(x) * S + y) * C;
        for (int c = 0; c < C; ++c) db[c] += g[c];
        for (int s = 0; s < k; ++s) {
          const T qs = q[y * k + s];
          T* da = dA + (int64_t(x) * k + s) * C;
          const T* a = A + (int64_t(x) * k + s) * C;
          T acc = T(0);
#pragma omp simd reduction(+ : acc)
          for (int c = 0; c < C; ++c) {
            da[c] += g[c] * qs;
            acc += g[c] * a[c];
          }
          dq[y * k + s] += acc;
        }
      }
    for (int x = 0; x < S; ++x)
      for (int r = 0; r < k; ++r) {
        const T pr = p[x * k + r];
        T acc = T(0);
        for (int s = 0; s < k; ++s) {
          const T* da = dA + (int64_t(x) * k + s) * C;
          const T* wv = W + (int64_t(r) * k + s) * C;
          T* dwv = dW + (int64_t(r) * k + s) * C;
#pragma omp simd reduction(+ : acc)
          for (int c = 0; c < C; ++c) {
            dwv[c] += pr * da[c];
            acc += wv[c] * da[c];
          }
        }
        dp[x * k + r] += acc;
      }
  }
}

template <typename T>
static double sum_squares(const T* v, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(v[i]) * double(v[i]);
  return s;
}

template <typename T>
LossParts CpuEngine<T>::run(const Params<T>& prm, const TripleBatch& batch, const RegSpec& reg,
                            const DropoutSpec& dropout, bool want_grads) {
  const int64_t B = batch.size;
  const int E = m_E;
  const bool conv = m_model == ModelKind::ConvNCF;
  if (m_model == ModelKind::Pop) throw_internal("CpuEngine: the popularity model does not train");
  auto regw = [&](size_t i) { return reg_weight(reg, i); };
  const bool squared = reg.type == RegType::Squared;
  const double row_l2 = squared ? regw(0) : 0.0;  // per-triple squared row norms
  const int C = conv ? m_tower.last_channels() : 0;

  if (conv) pack(prm.net.data(), m_packed.data());
  if (want_grads) {
    try {
      m_row_grads.assign(size_t(B) * 3 * E, T(0));
    } catch (const std::bad_alloc&) {
      throw_out_of_memory("the step's embedding-row gradients (" + std::to_string(B) + " triples of train_batch_size x 3 "
                          "rows x " + std::to_string(E) + " floats)", double(B) * 3 * E * sizeof(T));
    }
    if (conv)
      for (auto& v : m_thread_dnet) std::fill(v.begin(), v.end(), T(0));
  }
  m_triple_loss.assign(size_t(B), 0.0);
  m_triple_reg.assign(size_t(B), 0.0);

#pragma omp parallel num_threads(m_threads)
  {
    // fp_env.hpp: in each worker, and below for the serial part (not around the region: threads
    // the region starts would inherit the mode and keep it after the engine returns)
    const FlushDenormals flush;
    const int tid = omp_get_thread_num();
    std::vector<T> mask_pos(static_cast<size_t>(C)), mask_neg(static_cast<size_t>(C));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < B; ++t) {
      const T* p = prm.P.data() + int64_t(batch.user[t]) * E;
      const T* qp = prm.Q.data() + int64_t(batch.pos[t]) * E;
      const T* qn = prm.Q.data() + int64_t(batch.neg[t]) * E;
      T sp, sn;
      const T* mp = nullptr;
      const T* mn = nullptr;
      if (conv) {
        if (dropout.p > 0) {
          for (int c = 0; c < C; ++c) {
            mask_pos[size_t(c)] = T(dropout_scale(dropout, t, 0, c));
            mask_neg[size_t(c)] = T(dropout_scale(dropout, t, 1, c));
          }
          mp = mask_pos.data();
          mn = mask_neg.data();
        }
        PairWork<T>& wp = m_work[size_t(tid) * 2];
        PairWork<T>& wn = m_work[size_t(tid) * 2 + 1];
        layer1_user(m_packed.data(), p, wp.A.data());
        std::copy(wp.A.begin(), wp.A.end(), wn.A.begin());
        forward_from_A(m_packed.data(), wp.A.data(), qp, mp, wp, &sp);
        forward_from_A(m_packed.data(), wn.A.data(), qn, mn, wn, &sn);
      } else {
        T a = 0, b = 0;
        for (int e = 0; e < E; ++e) {
          a += p[e] * qp[e];
          b += p[e] * qn[e];
        }
        sp = a;
        sn = b;
      }
      const T x = sp - sn;
      m_triple_loss[size_t(t)] = double(bpr_loss(x));
      if (row_l2 > 0)
        m_triple_reg[size_t(t)] = row_l2 * (sum_squares(p, E) + sum_squares(qp, E) + sum_squares(qn, E));
      if (!want_grads) continue;
      const T g = bpr_grad(x);
      T* dp = m_row_grads.data() + (t * 3 + 0) * E;
      T* dqp = m_row_grads.data() + (t * 3 + 1) * E;
      T* dqn = m_row_grads.data() + (t * 3 + 2) * E;
      if (conv) {
        T* dnet = m_thread_dnet[size_t(tid)].data();
        backward_pair(m_packed.data(), p, qp, mp, g, m_work[size_t(tid) * 2], dnet, dp, dqp);
        backward_pair(m_packed.data(), p, qn, mn, -g, m_work[size_t(tid) * 2 + 1], dnet, dp, dqn);
      } else {
        for (int e = 0; e < E; ++e) {
          dp[e] = g * (qp[e] - qn[e]);
          dqp[e] = g * p[e];
          dqn[e] = -g * p[e];
        }
      }
      if (row_l2 > 0)
        for (int e = 0; e < E; ++e) {
          dp[e] += T(2 * row_l2) * p[e];
          dqp[e] += T(2 * row_l2) * qp[e];
          dqn[e] += T(2 * row_l2) * qn[e];
        }
    }
  }

  const FlushDenormals flush;
  LossParts out;  // summed in triple order, whatever the thread count
  for (int64_t t = 0; t < B; ++t) {
    out.bpr += m_triple_loss[size_t(t)];
    out.reg += m_triple_reg[size_t(t)];
  }

  // whole-table and network regularization
  const double nP = std::sqrt(sum_squares(prm.P.data(), int64_t(prm.P.size())));
  const double nQ = std::sqrt(sum_squares(prm.Q.data(), int64_t(prm.Q.size())));
  const bool norm_tables = !squared && regw(0) > 0;
  if (norm_tables) out.reg += regw(0) * (nP + nQ);
  const std::vector<NetRegTerm> terms = conv ? network_reg_terms(m_tower, reg) : std::vector<NetRegTerm>{};
  if (conv) {
    for (const NetRegTerm& tm : terms) {
      if (tm.coef <= 0) continue;
      const double ss = sum_squares(prm.net.data() + tm.off, tm.n);
      out.reg += squared ? tm.coef * ss : tm.coef * std::sqrt(ss);
    }
  }
  if (!want_grads) return out;

  // embedding gradients: zero last step's rows, then sum per-triple rows in triple order
  auto reset = [&](std::vector<T>& table, std::vector<int32_t>& touched) {
    if (m_all_rows) {
      std::fill(table.begin(), table.end(), T(0));
    } else {
      for (int32_t r : touched) std::fill_n(table.begin() + int64_t(r) * E, E, T(0));
    }
    touched.clear();
  };
  reset(m_grads.P, m_touched_users);
  reset(m_grads.Q, m_touched_items);
  for (int64_t t = 0; t < B; ++t) {
    const int32_t ids[3] = {batch.user[t], batch.pos[t], batch.neg[t]};
    for (int side = 0; side < 3; ++side) {
      std::vector<T>& table = side == 0 ? m_grads.P : m_grads.Q;
      std::vector<uint8_t>& mark = side == 0 ? m_mark_users : m_mark_items;
      std::vector<int32_t>& touched = side == 0 ? m_touched_users : m_touched_items;
      T* dst = table.data() + int64_t(ids[side]) * E;
      const T* src = m_row_grads.data() + (t * 3 + side) * E;
      for (int e = 0; e < E; ++e) dst[e] += src[e];
      if (!mark[size_t(ids[side])]) {
        mark[size_t(ids[side])] = 1;
        touched.push_back(ids[side]);
      }
    }
  }
  for (int32_t r : m_touched_users) m_mark_users[size_t(r)] = 0;
  for (int32_t r : m_touched_items) m_mark_items[size_t(r)] = 0;
  std::sort(m_touched_users.begin(), m_touched_users.end());
  std::sort(m_touched_items.begin(), m_touched_items.end());
  m_all_rows = norm_tables;
  if (norm_tables) {
    const double cP = nP > 0 ? regw(0) / nP : 0.0, cQ = nQ > 0 ? regw(0) / nQ : 0.0;
    for (size_t i = 0; i < prm.P.size(); ++i) m_grads.P[i] += T(cP * prm.P[i]);
    for (size_t i = 0; i < prm.Q.size(); ++i) m_grads.Q[i] += T(cQ * prm.Q[i]);
  }

  if (conv) {
    // reduce thread buffers in thread order, into the packed layout, then unpack
    std::vector<T>& acc = m_thread_dnet[0];
    for (int th = 1; th < m_threads; ++th) {
      const std::vector<T>& v = m_thread_dnet[size_t(th)];
      for (size_t i = 0; i < acc.size(); ++i) acc[i] += v[i];
    }
    std::fill(m_grads.net.begin(), m_grads.net.end(), T(0));
    unpack_add(acc.data(), m_grads.net.data());
    for (const NetRegTerm& tm : terms) {
      if (tm.coef <= 0) continue;
      const T* w = prm.net.data() + tm.off;
      T* g = m_grads.net.data() + tm.off;
      if (squared) {
        for (int64_t i = 0; i < tm.n; ++i) g[i] += T(2 * tm.coef) * w[i];
      } else {
        const double n = std::sqrt(sum_squares(w, tm.n));
        if (n > 0)
          for (int64_t i = 0; i < tm.n; ++i) g[i] += T(tm.coef / n * double(w[i]));
      }
    }
  }
  return out;
}

template <typename T>
LossParts CpuEngine<T>::compute(const Params<T>& params, const TripleBatch& batch,
                                const RegSpec& reg, const DropoutSpec& dropout) {
  return run(params, batch, reg, dropout, true);
}

template <typename T>
LossParts CpuEngine<T>::loss(const Params<T>& params, const TripleBatch& batch, const RegSpec& reg,
                             const DropoutSpec& dropout) {
  return run(params, batch, reg, dropout, false);
}

template <typename T>
void CpuEngine<T>::prepare_scoring(const Params<T>& prm) {
  if (m_has_tower) pack(prm.net.data(), m_packed.data());
}

template <typename T>
void CpuEngine<T>::score_items(const Params<T>& prm, int32_t user, const int32_t* items, int64_t n,
                               T* out, PairWork<T>& w) const {
  const FlushDenormals flush;  // fp_env.hpp: every scorer's pairs come through here
  const int E = m_E;
  const T* p = prm.P.data() + int64_t(user) * E;
  if (m_model == ModelKind::Pop) {
    for (int64_t i = 0; i < n; ++i) out[i] = prm.net[size_t(items[i])];
    return;
  }
  if (m_model == ModelKind::BPR) {
    for (int64_t i = 0; i < n; ++i) {
      const T* q = prm.Q.data() + int64_t(items[i]) * E;
      T s = 0;
      for (int e = 0; e < E; ++e) s += p[e] * q[e];
      out[i] = s;
    }
    return;
  }
  layer1_user(m_packed.data(), p, w.A.data());
  for (int64_t i = 0; i < n; ++i)
    forward_from_A(m_packed.data(), w.A.data(), prm.Q.data() + int64_t(items[i]) * E, nullptr, w,
                   out + i);
}

template <typename T>
T convncf_score_naive(const TowerSpec& tower, const T* net, const T* p, const T* q, const T* mask) {
  const int E = tower.E;
  std::vector<T> x(size_t(E) * E);  // CHW with C = 1
  for (int a = 0; a < E; ++a)
    for (int b = 0; b < E; ++b) x[size_t(a) * E + b] = p[a] * q[b];
  for (const ConvLayer& l : tower.layers) {
    const int k = l.k, Si = l.in_size, So = l.out_size;
    std::vector<T> y(size_t(l.cout) * So * So);
    for (int co = 0; co < l.cout; ++co)
      for (int i = 0; i < So; ++i)
        for (int j = 0; j < So; ++j) {
          T acc = net[l.b_offset + co];
          for (int ci = 0; ci < l.cin; ++ci)
            for (int r = 0; r < k; ++r)
              for (int s = 0; s < k; ++s)
                acc += net[l.w_offset + ((int64_t(co) * l.cin + ci) * k + r) * k + s] *
                       x[(size_t(ci) * Si + size_t(i * k + r)) * Si + size_t(j * k + s)];
          y[(size_t(co) * So + size_t(i)) * So + size_t(j)] = acc > T(0) ? acc : T(0);
        }
    x.swap(y);
  }
  const ConvLayer& last = tower.layers.back();
  const int npos = last.out_size * last.out_size;
  T s = net[tower.out_b_offset];
  for (int c = 0; c < last.cout; ++c) {
    T h = 0;
    for (int i = 0; i < npos; ++i) h += x[size_t(c) * npos + size_t(i)];
    s += net[tower.out_w_offset + c] * (mask ? h * mask[c] : h);
  }
  return s;
}

template float bpr_loss<float>(float);
template double bpr_loss<double>(double);
template float bpr_grad<float>(float);
template double bpr_grad<double>(double);
template struct PairWork<float>;
template struct PairWork<double>;
template class CpuEngine<float>;
template class CpuEngine<double>;
template float convncf_score_naive<float>(const TowerSpec&, const float*, const float*, const float*, const float*);
template double convncf_score_naive<double>(const TowerSpec&, const double*, const double*, const double*, const double*);

}  // namespace convncf
