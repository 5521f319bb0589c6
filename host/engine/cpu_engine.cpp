// cpu_engine.cpp: the CPU reference engine (see cpu_engine.hpp for the design).
// Tested by tests/test_cpu_engine.cpp: finite differences in double for every gradient, the
// fast tower against convncf_score_naive, the float kernels against the double ones, scores
// independent of their batch, determinism across runs. Timed by bench/bench_cpu_engine.cpp.
#include "convncf/cpu_engine.hpp"

#include <omp.h>

#include "convncf/fp_env.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "convncf/bpr.hpp"
#include "convncf/dist.hpp"
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

namespace {

// ---------------------------------------------------------------------------------------------
// The plain loops, for any layer shape (one pair's map at a time): the layers that the fast
// kernels below do not serve, in the tests' small towers.

// A conv layer of kernel = stride k on a channels-last map: out = ReLU(b + patches x Wt).
template <typename T>
void conv_forward(const ConvLayer& l, const T* packed, const T* X, T* out) {
  const int k = l.k, Ci = l.cin, Si = l.in_size, So = l.out_size;
  const int Co = l.cout;
  const int run = k * Ci;  // contiguous values per patch row
  const T* Wt = packed + l.w_offset;
  const T* b = packed + l.b_offset;
  std::vector<T> heap(static_cast<size_t>(Co));  // the small towers only: not a hot path
  T* acc = heap.data();
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
template <typename T>
void conv_backward(const ConvLayer& l, const T* packed, int64_t n_params, const T* X,
                          const T* dO, T* dpacked, T* dX) {
  constexpr int JB = 32;  // dX values kept in registers at once
  const int k = l.k, Ci = l.cin, Si = l.in_size, So = l.out_size;
  const int Co = l.cout;
  const int run = k * Ci;
  const int64_t K = int64_t(k) * run;
  const T* WkT = packed + n_params + l.w_offset;
  T* dWt = dpacked + l.w_offset;
  T* db = dpacked + l.b_offset;
  std::vector<T> heap(static_cast<size_t>(Co));
  T* d = heap.data();
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

// ---------------------------------------------------------------------------------------------
// Register-blocked conv kernels (layers 2..L, 32 output channels, runs of a multiple of 32
// values; every layer of both presets). A layer over a set of pairs is three small matrix
// products on the patch matrix X (rows: the So*So patches of each pair, k runs of k*Ci values
// each, row m's run r at X + rows[m] + r*Si*Ci):
//   forward  O  = ReLU(b + X W)   MR patches x 32 channels per block: MR broadcasts and 32/lanes
//                                  weight vectors give MR*32/lanes FMAs (12 for float), so the
//                                  accumulators, not the loads, set the pace (the FMA latency
//                                  is hidden by 12 independent chains);
//   dX       dX = (dO W^T) masked where X == 0, MR patches x 32 values of a run per block, over
//                                  the 32 channels (the transposed copy WkT);
//   dW       dW += X^T dO          JR values of a run x 32 channels per block, summed over every
//                                  patch of the pairs before one read-modify-write of dW.
// Each output element is one chain in a fixed order (forward: runs r, then j; dX: channels;
// dW: patches in pair order), whatever the block it falls in, so a pair's score does not depend
// on which pairs are computed with it.

// 32 bytes of T (8 floats or 4 doubles): one AVX2 register with -march=x86-64-v3, two SSE
// registers without; GCC/Clang vector extension, contracted to FMAs like the scalar code.
template <typename T>
struct Simd {
  static constexpr int kLanes = 32 / int(sizeof(T));
  static constexpr int kNV = 32 / kLanes;  // vectors per 32 channels
  static constexpr int kMR = 12 / kNV;     // rows per block: 12 accumulators (float 3, double 1)
  typedef T V __attribute__((vector_size(32)));
};
template <typename T>
using Vec = typename Simd<T>::V;

// On every loop of a fixed small count in the kernels: unrolled before GCC's scalar replacement
// of aggregates, so the accumulator arrays live in registers (without it some stay on the stack).
#define CONVNCF_UNROLL _Pragma("GCC unroll 16")

template <typename T>
inline Vec<T> vload(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
inline void vstore(T* p, const Vec<T>& v) {
  std::memcpy(p, &v, sizeof v);
}
// One broadcast instruction (Vec<T>{} + a would add 0 first; a loop over the lanes is not
// recognised as a broadcast).
inline Vec<float> vbcast(float a) { return Vec<float>{a, a, a, a, a, a, a, a}; }
inline Vec<double> vbcast(double a) { return Vec<double>{a, a, a, a}; }
// max(v, 0) and "v where x != 0, else 0", as the scalar code has them (v > 0 ? v : 0).
template <typename T>
inline Vec<T> vrelu(Vec<T> v) {
  const Vec<T> z{};
  return v > z ? v : z;
}
template <typename T>
inline Vec<T> vkeep_where_nonzero(Vec<T> v, Vec<T> x) {
  const Vec<T> z{};
  return x != z ? v : z;
}

constexpr int kFastChannels = 32;

// Whether conv_*_fast serve layer l (else the plain loops, conv_forward / conv_backward).
inline bool fast_layer(const ConvLayer& l) {
  return l.cout == kFastChannels && (l.k * l.cin) % kFastChannels == 0;
}

// Run r of MR patch rows against the weight panel Wt_r (run, 32): from the bias (r = 0) or the
// partial sums in orow, ReLU after the last run. Runs outermost keep one panel (run x 32 values,
// 16 KiB for the recbole tower's layer 2) in L1 across all row blocks.
template <typename T, int MR>
inline void conv_fwd_block(const T* const* x, int run, const T* w, const T* b, bool first, bool last,
                           T* const* orow) {
  constexpr int L = Simd<T>::kLanes, NV = Simd<T>::kNV;
  using V = Vec<T>;
  V acc[MR][NV];
  CONVNCF_UNROLL
  for (int m = 0; m < MR; ++m)
    CONVNCF_UNROLL
    for (int v = 0; v < NV; ++v) acc[m][v] = vload((first ? b : orow[m]) + v * L);
  for (int j = 0; j < run; ++j, w += kFastChannels) {
    V a[MR];
    CONVNCF_UNROLL
    for (int m = 0; m < MR; ++m) a[m] = vbcast(x[m][j]);
    CONVNCF_UNROLL
    for (int v = 0; v < NV; ++v) {
      const V wv = vload(w + v * L);
      CONVNCF_UNROLL
      for (int m = 0; m < MR; ++m) acc[m][v] += a[m] * wv;
    }
  }
  if (last) {
    CONVNCF_UNROLL
    for (int m = 0; m < MR; ++m)
      CONVNCF_UNROLL
      for (int v = 0; v < NV; ++v) acc[m][v] = vrelu<T>(acc[m][v]);
  }
  CONVNCF_UNROLL
  for (int m = 0; m < MR; ++m)
    CONVNCF_UNROLL
    for (int v = 0; v < NV; ++v) vstore(orow[m] + v * L, acc[m][v]);
}

template <typename T, int MR>
inline void conv_fwd_rows(const ConvLayer& l, int r, const T* Wt, const T* b, const int64_t* rows, int64_t m0,
                          const T* X, T* out) {
  const int run = l.k * l.cin;
  const T* xr[MR];
  T* o[MR];
  CONVNCF_UNROLL
  for (int i = 0; i < MR; ++i) {
    xr[i] = X + rows[m0 + i] + int64_t(r) * l.in_size * l.cin;
    o[i] = out + (m0 + i) * kFastChannels;
  }
  conv_fwd_block<T, MR>(xr, run, Wt + int64_t(r) * run * kFastChannels, b, r == 0, r == l.k - 1, o);
}

// out (M, 32) = ReLU(b + X Wt) over the M patch rows.
template <typename T>
void conv_forward_fast(const ConvLayer& l, const T* packed, const int64_t* rows, int64_t M, const T* X,
                       T* out) {
  constexpr int MR = Simd<T>::kMR;
  const T* Wt = packed + l.w_offset;
  const T* b = packed + l.b_offset;
  for (int r = 0; r < l.k; ++r) {
    int64_t m = 0;
    for (; m + MR <= M; m += MR) conv_fwd_rows<T, MR>(l, r, Wt, b, rows, m, X, out);
    if (MR > 2 && M - m == 2) {
      conv_fwd_rows<T, 2>(l, r, Wt, b, rows, m, X, out);
      m += 2;
    }
    for (; m < M; ++m) conv_fwd_rows<T, 1>(l, r, Wt, b, rows, m, X, out);
  }
}

// dX of MR patches over 32 consecutive values of one run: sum over the channels of dO[m][c] *
// WkT[c][j], kept where the input is non-zero.
template <typename T, int MR>
inline void conv_dx_block(const T* const* d, const T* wk, int64_t K, const T* const* x, T* const* dx) {
  constexpr int L = Simd<T>::kLanes, NV = Simd<T>::kNV;
  using V = Vec<T>;
  V acc[MR][NV];
  CONVNCF_UNROLL
  for (int m = 0; m < MR; ++m)
    CONVNCF_UNROLL
    for (int v = 0; v < NV; ++v) acc[m][v] = V{};
  for (int c = 0; c < kFastChannels; ++c) {
    const T* w = wk + c * K;
    V dv[MR];
    CONVNCF_UNROLL
    for (int m = 0; m < MR; ++m) dv[m] = vbcast(d[m][c]);
    CONVNCF_UNROLL
    for (int v = 0; v < NV; ++v) {
      const V wv = vload(w + v * L);
      CONVNCF_UNROLL
      for (int m = 0; m < MR; ++m) acc[m][v] += dv[m] * wv;
    }
  }
  CONVNCF_UNROLL
  for (int m = 0; m < MR; ++m)
    CONVNCF_UNROLL
    for (int v = 0; v < NV; ++v) vstore(dx[m] + v * L, vkeep_where_nonzero<T>(acc[m][v], vload(x[m] + v * L)));
}

template <typename T, int MR>
inline void conv_dx_rows(const T* wk, int64_t K, int64_t xoff, const int64_t* rows, int64_t m0, const T* dO,
                         const T* X, T* dX) {
  const T* d[MR];
  const T* x[MR];
  T* dx[MR];
  CONVNCF_UNROLL
  for (int i = 0; i < MR; ++i) {
    d[i] = dO + (m0 + i) * kFastChannels;
    x[i] = X + rows[m0 + i] + xoff;
    dx[i] = dX + rows[m0 + i] + xoff;
  }
  conv_dx_block<T, MR>(d, wk, K, x, dx);
}

// dW[j][c] += sum over the M patches of X[m][j] * dO[m][c], for JR consecutive values j of run r.
template <typename T, int JR>
inline void conv_dw_block(const T* X, const int64_t* rows, int64_t M, int64_t xoff, const T* dO, T* dw) {
  constexpr int L = Simd<T>::kLanes, NV = Simd<T>::kNV;
  using V = Vec<T>;
  V acc[JR][NV];
  CONVNCF_UNROLL
  for (int i = 0; i < JR; ++i)
    CONVNCF_UNROLL
    for (int v = 0; v < NV; ++v) acc[i][v] = V{};
  for (int64_t m = 0; m < M; ++m) {
    const T* x = X + rows[m] + xoff;
    const T* d = dO + m * kFastChannels;
    V a[JR];
    CONVNCF_UNROLL
    for (int i = 0; i < JR; ++i) a[i] = vbcast(x[i]);
    CONVNCF_UNROLL
    for (int v = 0; v < NV; ++v) {
      const V dv = vload(d + v * L);
      CONVNCF_UNROLL
      for (int i = 0; i < JR; ++i) acc[i][v] += a[i] * dv;
    }
  }
  CONVNCF_UNROLL
  for (int i = 0; i < JR; ++i)
    CONVNCF_UNROLL
    for (int v = 0; v < NV; ++v) {
      T* p = dw + i * kFastChannels + v * L;
      vstore(p, vload(p) + acc[i][v]);
    }
}

// Backward of conv_forward_fast given dO (M, 32), the ReLU-masked gradient of its output:
// accumulates dW and db into dpacked, writes dX (masked where X is zero).
template <typename T>
void conv_backward_fast(const ConvLayer& l, const T* packed, int64_t n_params, const int64_t* rows,
                        int64_t M, const T* X, const T* dO, T* dpacked, T* dX) {
  constexpr int MR = Simd<T>::kMR, JR = Simd<T>::kMR;
  const int run = l.k * l.cin;
  const int64_t rstep = int64_t(l.in_size) * l.cin;
  const T* WkB = packed + 2 * n_params + l.w_offset;  // blocked transposed copy (see pack)
  T* dWt = dpacked + l.w_offset;
  T* db = dpacked + l.b_offset;
  for (int64_t m = 0; m < M; ++m)
    for (int c = 0; c < kFastChannels; ++c) db[c] += dO[m * kFastChannels + c];
  // dW over chunks of patches whose runs (Mc x run values, 16 KiB) stay in L1 while every block
  // of values j passes over them; the chunks' sums are added to dW in chunk order
  const int64_t Mc = std::max<int64_t>(16, 4096 / run);
  for (int64_t m0 = 0; m0 < M; m0 += Mc) {
    const int64_t mc = std::min(Mc, M - m0);
    const T* d0 = dO + m0 * kFastChannels;
    for (int r = 0; r < l.k; ++r) {
      T* dwr = dWt + int64_t(r) * run * kFastChannels;
      int j = 0;
      for (; j + JR <= run; j += JR)
        conv_dw_block<T, JR>(X, rows + m0, mc, r * rstep + j, d0, dwr + int64_t(j) * kFastChannels);
      if (JR > 2 && run - j == 2) {
        conv_dw_block<T, 2>(X, rows + m0, mc, r * rstep + j, d0, dwr + int64_t(j) * kFastChannels);
        j += 2;
      }
      for (; j < run; ++j) conv_dw_block<T, 1>(X, rows + m0, mc, r * rstep + j, d0, dwr + int64_t(j) * kFastChannels);
    }
  }
  // 32 values of a run at a time for all patches: that block of the transposed weights (32
  // channels x 32 values, 4 KiB contiguous) stays in L1
  for (int r = 0; r < l.k; ++r)
    for (int j = 0; j < run; j += kFastChannels) {
      const T* wk = WkB + (int64_t(r) * run + j) * kFastChannels;
      const int64_t xoff = r * rstep + j;
      int64_t m = 0;
      for (; m + MR <= M; m += MR) conv_dx_rows<T, MR>(wk, kFastChannels, xoff, rows, m, dO, X, dX);
      if (MR > 2 && M - m == 2) {
        conv_dx_rows<T, 2>(wk, kFastChannels, xoff, rows, m, dO, X, dX);
        m += 2;
      }
      for (; m < M; ++m) conv_dx_rows<T, 1>(wk, kFastChannels, xoff, rows, m, dO, X, dX);
    }
}


// ---------------------------------------------------------------------------------------------
// Layer 1 with 32 channels, through its rank-1 structure (see cpu_engine.hpp), vectorized over
// the channels with the accumulators in registers:
//   forward  out[x][y] = ReLU(b + sum_s q[y*k+s] A[x][s])        l1_forward_fast
//   backward dA[x][s] += sum_y q[y*k+s] G[x][y]                    outer_acc_block
//            dq[y*k+s] += sum_x <G[x][y], A[x][s]>                 dot_block
//            dW1[r][s] += sum_x p[x*k+r] dA[x][s]                  outer_acc_block
//            dp[x*k+r] += sum_s <dA[x][s], W1[r][s]>               dot_block
// (G: the gradient of layer 1's output, masked by its ReLU; vectors of 32 channels.)

// Sum of the lanes, pairwise.
template <typename T>
inline T vsum(const Vec<T>& v) {
  constexpr int L = Simd<T>::kLanes;
  T s[L];
  std::memcpy(s, &v, sizeof v);
  CONVNCF_UNROLL
  for (int w = L / 2; w >= 1; w /= 2)
    for (int i = 0; i < w; ++i) s[i] += s[i + w];
  return s[0];
}

// db[c] += sum of the M rows of G (M, 32).
template <typename T>
inline void add_rows(const T* G, int64_t M, T* db) {
  constexpr int L = Simd<T>::kLanes, NV = Simd<T>::kNV;
  using V = Vec<T>;
  V acc[NV];
  CONVNCF_UNROLL
  for (int v = 0; v < NV; ++v) acc[v] = V{};
  for (int64_t m = 0; m < M; ++m)
    for (int v = 0; v < NV; ++v) acc[v] += vload(G + m * kFastChannels + v * L);
  CONVNCF_UNROLL
  for (int v = 0; v < NV; ++v) vstore(db + v * L, vload(db + v * L) + acc[v]);
}

// YB consecutive positions (x, y0 ..) of layer 1's output; qy = q + y0*k, Ax = A + x*k*32.
template <typename T, int YB>
inline void l1_fwd_block(const T* Ax, int k, const T* qy, const T* b, T* o) {
  constexpr int L = Simd<T>::kLanes, NV = Simd<T>::kNV;
  using V = Vec<T>;
  V acc[YB][NV];
  CONVNCF_UNROLL
  for (int v = 0; v < NV; ++v) {
    const V bv = vload(b + v * L);
    CONVNCF_UNROLL
    for (int i = 0; i < YB; ++i) acc[i][v] = bv;
  }
  for (int s = 0; s < k; ++s) {
    V qv[YB];
    CONVNCF_UNROLL
    for (int i = 0; i < YB; ++i) qv[i] = vbcast(qy[i * k + s]);
    CONVNCF_UNROLL
    for (int v = 0; v < NV; ++v) {
      const V av = vload(Ax + s * kFastChannels + v * L);
      CONVNCF_UNROLL
      for (int i = 0; i < YB; ++i) acc[i][v] += qv[i] * av;
    }
  }
  CONVNCF_UNROLL
  for (int i = 0; i < YB; ++i)
    for (int v = 0; v < NV; ++v) vstore(o + i * kFastChannels + v * L, vrelu<T>(acc[i][v]));
}

// Ax[s] = sum_r px[r] W1[r][s] for s0 <= s < s0 + SB (W, Ax offset by s0 rows of 32).
template <typename T, int SB>
inline void l1_user_block(int k, const T* px, const T* W, T* Ax) {
  constexpr int L = Simd<T>::kLanes, NV = Simd<T>::kNV;
  using V = Vec<T>;
  V acc[SB][NV];
  CONVNCF_UNROLL
  for (int i = 0; i < SB; ++i)
    CONVNCF_UNROLL
    for (int v = 0; v < NV; ++v) acc[i][v] = V{};
  for (int r = 0; r < k; ++r) {
    const V pr = vbcast(px[r]);
    CONVNCF_UNROLL
    for (int i = 0; i < SB; ++i)
      CONVNCF_UNROLL
      for (int v = 0; v < NV; ++v) acc[i][v] += pr * vload(W + (int64_t(r) * k + i) * kFastChannels + v * L);
  }
  CONVNCF_UNROLL
  for (int i = 0; i < SB; ++i)
    CONVNCF_UNROLL
    for (int v = 0; v < NV; ++v) vstore(Ax + i * kFastChannels + v * L, acc[i][v]);
}

// The user's side of layer 1 for one x: Ax[s] = sum_r px[r] W1[r][s], s < k.
template <typename T>
void l1_user_fast(int k, const T* px, const T* W, T* Ax) {
  constexpr int SB = Simd<T>::kMR;
  int s = 0;
  for (; s + SB <= k; s += SB) l1_user_block<T, SB>(k, px, W + s * kFastChannels, Ax + s * kFastChannels);
  for (; s < k; ++s) l1_user_block<T, 1>(k, px, W + s * kFastChannels, Ax + s * kFastChannels);
}

template <typename T>
void l1_forward_fast(const ConvLayer& l, const T* b, const T* A, const T* q, T* out) {
  constexpr int YB = Simd<T>::kMR;
  const int k = l.k, S = l.out_size;
  for (int x = 0; x < S; ++x) {
    const T* Ax = A + int64_t(x) * k * kFastChannels;
    T* ox = out + int64_t(x) * S * kFastChannels;
    int y = 0;
    for (; y + YB <= S; y += YB) l1_fwd_block<T, YB>(Ax, k, q + y * k, b, ox + y * kFastChannels);
    for (; y < S; ++y) l1_fwd_block<T, 1>(Ax, k, q + y * k, b, ox + y * kFastChannels);
  }
}

// dst[i] += sum over m < M of coef[m*cs + i] * R[m], for i < IB: rows of 32 values, R's rows
// rs apart, dst's ds apart.
template <typename T, int IB>
inline void outer_acc_block(int64_t M, const T* coef, int64_t cs, const T* R, int64_t rs, T* dst, int64_t ds) {
  constexpr int L = Simd<T>::kLanes, NV = Simd<T>::kNV;
  using V = Vec<T>;
  V acc[IB][NV];
  CONVNCF_UNROLL
  for (int i = 0; i < IB; ++i)
    CONVNCF_UNROLL
    for (int v = 0; v < NV; ++v) acc[i][v] = V{};
  for (int64_t m = 0; m < M; ++m) {
    V cv[IB];
    CONVNCF_UNROLL
    for (int i = 0; i < IB; ++i) cv[i] = vbcast(coef[m * cs + i]);
    CONVNCF_UNROLL
    for (int v = 0; v < NV; ++v) {
      const V rv = vload(R + m * rs + v * L);
      CONVNCF_UNROLL
      for (int i = 0; i < IB; ++i) acc[i][v] += cv[i] * rv;
    }
  }
  CONVNCF_UNROLL
  for (int i = 0; i < IB; ++i)
    CONVNCF_UNROLL
    for (int v = 0; v < NV; ++v) {
      T* d = dst + i * ds + v * L;
      vstore(d, vload(d) + acc[i][v]);
    }
}

// outer_acc_block over n values of i, in blocks of kMR.
template <typename T>
void outer_acc(int n, int64_t M, const T* coef, int64_t cs, const T* R, int64_t rs, T* dst, int64_t ds) {
  constexpr int IB = Simd<T>::kMR;
  int i = 0;
  for (; i + IB <= n; i += IB) outer_acc_block<T, IB>(M, coef + i, cs, R, rs, dst + i * ds, ds);
  if (IB > 2 && n - i == 2) {
    outer_acc_block<T, 2>(M, coef + i, cs, R, rs, dst + i * ds, ds);
    i += 2;
  }
  for (; i < n; ++i) outer_acc_block<T, 1>(M, coef + i, cs, R, rs, dst + i * ds, ds);
}

// out[a*oa + b*ob] += sum over m < M of <U[m*um + a*ua], W[m*wm + b*wb]> (vectors of 32), for
// a < AB, b < BB.
template <typename T, int AB, int BB>
inline void dot_block(int64_t M, const T* U, int64_t um, int64_t ua, const T* W, int64_t wm, int64_t wb,
                      T* out, int64_t oa, int64_t ob) {
  constexpr int L = Simd<T>::kLanes, NV = Simd<T>::kNV;
  using V = Vec<T>;
  V acc[AB][BB];
  CONVNCF_UNROLL
  for (int a = 0; a < AB; ++a)
    CONVNCF_UNROLL
    for (int b = 0; b < BB; ++b) acc[a][b] = V{};
  for (int64_t m = 0; m < M; ++m)
    CONVNCF_UNROLL
    for (int v = 0; v < NV; ++v) {
      V u[AB];
      CONVNCF_UNROLL
      for (int a = 0; a < AB; ++a) u[a] = vload(U + m * um + a * ua + v * L);
      CONVNCF_UNROLL
      for (int b = 0; b < BB; ++b) {
        const V w = vload(W + m * wm + b * wb + v * L);
        CONVNCF_UNROLL
        for (int a = 0; a < AB; ++a) acc[a][b] += u[a] * w;
      }
    }
  CONVNCF_UNROLL
  for (int a = 0; a < AB; ++a)
    CONVNCF_UNROLL
    for (int b = 0; b < BB; ++b) out[a * oa + b * ob] += vsum<T>(acc[a][b]);
}

// dot_block over na x nb outputs: b in blocks of BB (which divides nb), a in blocks of AB.
template <typename T, int AB, int BB>
void dot_grid(int na, int nb, int64_t M, const T* U, int64_t um, int64_t ua, const T* W, int64_t wm,
              int64_t wb, T* out, int64_t oa, int64_t ob) {
  for (int b = 0; b < nb; b += BB) {
    int a = 0;
    for (; a + AB <= na; a += AB)
      dot_block<T, AB, BB>(M, U + a * ua, um, ua, W + b * wb, wm, wb, out + a * oa + b * ob, oa, ob);
    for (; a < na; ++a)
      dot_block<T, 1, BB>(M, U + a * ua, um, ua, W + b * wb, wm, wb, out + a * oa + b * ob, oa, ob);
  }
}

// About 12 accumulators whatever nb is (float; double, with twice the vectors, gets fewer).
template <typename T>
void dot(int na, int nb, int64_t M, const T* U, int64_t um, int64_t ua, const T* W, int64_t wm, int64_t wb,
         T* out, int64_t oa, int64_t ob) {
  if (nb % 4 == 0)
    dot_grid<T, 3, 4>(na, nb, M, U, um, ua, W, wm, wb, out, oa, ob);
  else if (nb % 2 == 0)
    dot_grid<T, 5, 2>(na, nb, M, U, um, ua, W, wm, wb, out, oa, ob);
  else
    dot_grid<T, 6, 1>(na, nb, M, U, um, ua, W, wm, wb, out, oa, ob);
}

}  // namespace

template <typename T>
void PairWork<T>::resize(const TowerSpec& t, int n) {
  if (n < 1) throw_internal("PairWork: room for at least one pair is needed");
  pairs = n;
  const ConvLayer& l1 = t.layers[0];
  A.assign(size_t(l1.out_size) * l1.k * l1.cout, T(0));
  dA.assign(A.size(), T(0));
  act.resize(t.layers.size());
  dact.resize(t.layers.size());
  for (size_t l = 0; l < t.layers.size(); ++l) {
    const ConvLayer& c = t.layers[l];
    act[l].assign(size_t(n) * c.out_size * c.out_size * c.cout, T(0));
    dact[l].assign(act[l].size(), T(0));
  }
  h.assign(size_t(n) * t.last_channels(), T(0));
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
  const double need = sizeof(T) * (2 * maps * 2 * m_threads + n_params * (5 + m_threads * World::get().size()) + double(n_users + n_items) * E) +
                      double(n_users) + double(n_items);
  const int64_t avail = available_memory_bytes();
  if (avail >= 0 && need > double(avail)) throw_out_of_memory(what, need);
  try {
    if (m_has_tower) {
      m_packed.assign(size_t(packed_size()), T(0));
      m_thread_dnet.assign(size_t(m_threads) * size_t(World::get().size()), std::vector<T>(size_t(m_tower.n_params), T(0)));
      m_work.resize(size_t(m_threads));
      for (PairWork<T>& w : m_work) w.resize(m_tower, 2);
      // patch (x, y) of pair i starts its first run at ((x*k)*Si + y*k)*Ci of the pairs' input maps
      const int max_pairs = std::max(2, kScorePairs);
      m_rows.resize(m_tower.layers.size());
      for (size_t li = 1; li < m_tower.layers.size(); ++li) {
        const ConvLayer& l = m_tower.layers[li];
        const int64_t map = int64_t(l.in_size) * l.in_size * l.cin;
        for (int i = 0; i < max_pairs; ++i)
          for (int x = 0; x < l.out_size; ++x)
            for (int y = 0; y < l.out_size; ++y)
              m_rows[li].push_back(i * map + (int64_t(x) * l.k * l.in_size + int64_t(y) * l.k) * l.cin);
      }
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
// output layer unchanged; same offsets as the PyTorch layout. A second part (offset n_params)
// holds each layer's weight transposed, WkT[co][(r*k+s)*cin+ci], for the plain loops' backward
// dX product (the fused tower's packing has the same two parts). A third (offset 2 n_params)
// holds, for the layers of the fast kernels, the transposed weight in blocks of 32 values of kk
// = (r*k+s)*cin+ci: WkB[kk/32][co][kk%32], so the 32 x 32 block that the dX kernel reads is
// contiguous (WkT's rows, kk apart, would fall into a few L1 sets); zeros for the other layers.
template <typename T>
void CpuEngine<T>::pack(const T* net, T* packed) const {
  std::fill(packed + 2 * m_tower.n_params, packed + 3 * m_tower.n_params, T(0));
  for (const ConvLayer& l : m_tower.layers) {
    const int k = l.k;
    const bool blocked = fast_layer(l);
    for (int co = 0; co < l.cout; ++co)
      for (int ci = 0; ci < l.cin; ++ci)
        for (int r = 0; r < k; ++r)
          for (int s = 0; s < k; ++s) {
            const T v = net[l.w_offset + ((int64_t(co) * l.cin + ci) * k + r) * k + s];
            const int64_t kk = (int64_t(r) * k + s) * l.cin + ci;
            packed[l.w_offset + kk * l.cout + co] = v;
            packed[m_tower.n_params + l.w_offset + int64_t(co) * (int64_t(k) * k * l.cin) + kk] = v;
            if (blocked) packed[2 * m_tower.n_params + l.w_offset + (kk / 32 * l.cout + co) * 32 + kk % 32] = v;
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
  if (C == kFastChannels) {
    for (int x = 0; x < S; ++x) l1_user_fast(k, p + x * k, W, A + int64_t(x) * k * C);
    return;
  }
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
void CpuEngine<T>::forward_pairs(const T* packed, const T* const* q, const T* const* mask, int n,
                                 PairWork<T>& w, T* score) const {
  const std::vector<ConvLayer>& L = m_tower.layers;
  {  // layer 1 from the user's A and the item rows
    const ConvLayer& l = L[0];
    const int k = l.k, C = l.cout, S = l.out_size;
    const T* b = packed + l.b_offset;
    const T* A = w.A.data();
    for (int i = 0; i < n; ++i) {
      const T* qi = q[i];
      T* out = w.act[0].data() + int64_t(i) * S * S * C;
      if (C == kFastChannels) {
        l1_forward_fast(l, b, A, qi, out);
        continue;
      }
      for (int x = 0; x < S; ++x)
        for (int y = 0; y < S; ++y) {
          T* o = out + (int64_t(x) * S + y) * C;
          for (int c = 0; c < C; ++c) o[c] = b[c];
          for (int s = 0; s < k; ++s) {
            const T qs = qi[y * k + s];
            const T* a = A + (int64_t(x) * k + s) * C;
            for (int c = 0; c < C; ++c) o[c] += qs * a[c];
          }
          for (int c = 0; c < C; ++c) o[c] = o[c] > T(0) ? o[c] : T(0);
        }
    }
  }
  for (size_t li = 1; li < L.size(); ++li) {
    const ConvLayer& l = L[li];
    const T* X = w.act[li - 1].data();
    T* out = w.act[li].data();
    if (fast_layer(l)) {
      conv_forward_fast(l, packed, m_rows[li].data(), int64_t(n) * l.out_size * l.out_size, X, out);
    } else {
      const int64_t in_map = int64_t(l.in_size) * l.in_size * l.cin;
      const int64_t out_map = int64_t(l.out_size) * l.out_size * l.cout;
      for (int i = 0; i < n; ++i) conv_forward(l, packed, X + i * in_map, out + i * out_map);
    }
  }
  const ConvLayer& last = L.back();
  const int C = last.cout;
  const int64_t npos = int64_t(last.out_size) * last.out_size;
  const T* wo = packed + m_tower.out_w_offset;
  for (int i = 0; i < n; ++i) {
    const T* a = w.act.back().data() + i * npos * C;
    T* h = w.h.data() + int64_t(i) * C;
    for (int c = 0; c < C; ++c) h[c] = T(0);
    for (int64_t pos = 0; pos < npos; ++pos)
      for (int c = 0; c < C; ++c) h[c] += a[pos * C + c];
    const T* m = mask ? mask[i] : nullptr;
    T s = packed[m_tower.out_b_offset];
    for (int c = 0; c < C; ++c) s += wo[c] * (m ? h[c] * m[c] : h[c]);
    score[i] = s;
  }
}

template <typename T>
T CpuEngine<T>::forward_pair(const T* packed, const T* p, const T* q, const T* mask,
                             PairWork<T>& w) const {
  layer1_user(packed, p, w.A.data());
  T s;
  forward_pairs(packed, &q, &mask, 1, w, &s);
  return s;
}

template <typename T>
void CpuEngine<T>::backward_pair(const T* packed, const T* p, const T* q, const T* mask, T dscore,
                                 PairWork<T>& w, T* dpacked, T* dp, T* dq) const {
  backward_pairs(packed, p, &q, &mask, &dscore, 1, w, dpacked, dp, &dq);
}

template <typename T>
void CpuEngine<T>::backward_pairs(const T* packed, const T* p, const T* const* q,
                                  const T* const* mask, const T* dscore, int n, PairWork<T>& w,
                                  T* dpacked, T* dp, T* const* dq) const {
  const std::vector<ConvLayer>& L = m_tower.layers;
  const ConvLayer& last = L.back();
  const int CL = last.cout;
  const int64_t npos = int64_t(last.out_size) * last.out_size;
  const T* wo = packed + m_tower.out_w_offset;
  T* dwo = dpacked + m_tower.out_w_offset;
  for (int i = 0; i < n; ++i) {
    // output layer
    const T* m = mask ? mask[i] : nullptr;
    const T* h = w.h.data() + int64_t(i) * CL;
    T* dh = w.dh.data() + int64_t(i) * CL;
    for (int c = 0; c < CL; ++c) {
      const T mc = m ? m[c] : T(1);
      dwo[c] += dscore[i] * h[c] * mc;
      dh[c] = dscore[i] * wo[c] * mc;
    }
    dpacked[m_tower.out_b_offset] += dscore[i];
    // spatial sum, then the last ReLU
    const T* a = w.act.back().data() + i * npos * CL;
    T* da = w.dact.back().data() + i * npos * CL;
    for (int64_t pos = 0; pos < npos; ++pos)
      for (int c = 0; c < CL; ++c) da[pos * CL + c] = a[pos * CL + c] > T(0) ? dh[c] : T(0);
  }
  // layers L..2: dact[li] holds the ReLU-masked gradient of the layer's output
  for (size_t li = L.size() - 1; li >= 1; --li) {
    const ConvLayer& l = L[li];
    const T* X = w.act[li - 1].data();
    const T* dO = w.dact[li].data();
    T* dX = w.dact[li - 1].data();
    if (fast_layer(l)) {
      conv_backward_fast(l, packed, m_tower.n_params, m_rows[li].data(),
                         int64_t(n) * l.out_size * l.out_size, X, dO, dpacked, dX);
    } else {
      const int64_t in_map = int64_t(l.in_size) * l.in_size * l.cin;
      const int64_t out_map = int64_t(l.out_size) * l.out_size * l.cout;
      for (int i = 0; i < n; ++i)
        conv_backward(l, packed, m_tower.n_params, X + i * in_map, dO + i * out_map, dpacked, dX + i * in_map);
    }
  }
  {  // layer 1 through its rank-1 structure; the pairs share the user's A, so dA sums over them
    const ConvLayer& l = L[0];
    const int k = l.k, C = l.cout, S = l.out_size;
    const T* W = packed + l.w_offset;
    T* dW = dpacked + l.w_offset;
    T* db = dpacked + l.b_offset;
    T* dA = w.dA.data();
    std::fill(dA, dA + int64_t(S) * k * C, T(0));
    const T* A = w.A.data();
    if (C == kFastChannels) {
      constexpr int64_t C32 = kFastChannels;
      for (int i = 0; i < n; ++i) {
        const T* G = w.dact[0].data() + int64_t(i) * S * S * C32;  // masked by layer 1's ReLU
        add_rows(G, int64_t(S) * S, db);
        for (int x = 0; x < S; ++x)  // dA[x][s] += sum_y q[y*k+s] G[x][y]
          outer_acc(k, S, q[i], k, G + int64_t(x) * S * C32, C32, dA + int64_t(x) * k * C32, C32);
        // dq[y*k+s] += sum_x <G[x][y], A[x][s]>
        dot(S, k, S, G, S * C32, C32, A, k * C32, C32, dq[i], k, 1);
      }
      for (int s = 0; s < k; ++s)  // dW1[r][s] += sum_x p[x*k+r] dA[x][s]
        outer_acc(k, S, p, k, dA + s * C32, k * C32, dW + s * C32, k * C32);
      dot(S, k, k, dA, C32, k * C32, W, C32, k * C32, dp, k, 1);  // dp[x*k+r] += sum_s <dA[x][s], W1[r][s]>
      return;
    }
    for (int i = 0; i < n; ++i) {
      const T* G = w.dact[0].data() + int64_t(i) * S * S * C;  // masked by layer 1's ReLU
      const T* qi = q[i];
      T* dqi = dq[i];
      for (int x = 0; x < S; ++x)
        for (int y = 0; y < S; ++y) {
          const T* g = G + (int64_t(x) * S + y) * C;
          for (int c = 0; c < C; ++c) db[c] += g[c];
          for (int s = 0; s < k; ++s) {
            const T qs = qi[y * k + s];
            T* da = dA + (int64_t(x) * k + s) * C;
            const T* a = A + (int64_t(x) * k + s) * C;
            T acc = T(0);
#pragma omp simd reduction(+ : acc)
            for (int c = 0; c < C; ++c) {
              da[c] += g[c] * qs;
              acc += g[c] * a[c];
            }
            dqi[y * k + s] += acc;
          }
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

// The other ranks' shares of a step (dist.hpp): each rank sends its triples' losses, row-norm
// terms and (with gradients) row gradients, and its virtual threads' network partials; they land
// where one process would have computed them.
template <typename T>
void CpuEngine<T>::exchange_shares(int64_t B, int64_t V, int threads, bool want_grads, bool net_grads) {
  const World& world = World::get();
  const int W = world.size();
  const size_t E3 = size_t(3) * size_t(m_E), np = net_grads ? size_t(m_tower.n_params) : 0;
  auto first = [&](int r) { return static_share_begin(B, V, int64_t(r) * threads); };
  auto last = [&](int r) { return static_share_end(B, V, int64_t(r) * threads + threads - 1); };
  auto bytes_of = [&](int r) {
    const size_t n = size_t(last(r) - first(r));
    return n * 2 * sizeof(double) + (want_grads ? n * E3 * sizeof(T) : 0) + size_t(threads) * np * sizeof(T);
  };
  const int R = world.rank();
  const size_t lo = size_t(first(R)), n = size_t(last(R)) - lo;
  std::vector<char>& buf = m_send;
  buf.resize(bytes_of(R));
  char* at = buf.data();
  auto put = [&](const void* src, size_t bytes) {
    if (bytes) std::memcpy(at, src, bytes);
    at += bytes;
  };
  put(m_triple_loss.data() + lo, n * sizeof(double));
  put(m_triple_reg.data() + lo, n * sizeof(double));
  if (want_grads) put(m_row_grads.data() + lo * E3, n * E3 * sizeof(T));
  for (int j = 0; j < threads; ++j) put(m_thread_dnet[size_t(R) * size_t(threads) + size_t(j)].data(), np * sizeof(T));
  std::vector<int64_t> counts;
  const std::vector<char> all = world.allgather_bytes(buf.data(), int64_t(buf.size()), &counts);
  const char* from = all.data();
  auto get = [&](void* dst, size_t bytes) {
    if (bytes) std::memcpy(dst, from, bytes);
    from += bytes;
  };
  for (int r = 0; r < W; ++r) {
    const size_t rlo = size_t(first(r)), rn = size_t(last(r)) - rlo;
    if (size_t(counts[size_t(r)]) != bytes_of(r))
      throw_internal("rank " + std::to_string(r) + " sent " + std::to_string(counts[size_t(r)]) + " bytes of a step, expected " +
                     std::to_string(bytes_of(r)) + ": the ranks disagree on the batch or the thread count");
    if (r == R) {
      from += counts[size_t(r)];
      continue;
    }
    get(m_triple_loss.data() + rlo, rn * sizeof(double));
    get(m_triple_reg.data() + rlo, rn * sizeof(double));
    if (want_grads) get(m_row_grads.data() + rlo * E3, rn * E3 * sizeof(T));
    for (int j = 0; j < threads; ++j) get(m_thread_dnet[size_t(r) * size_t(threads) + size_t(j)].data(), np * sizeof(T));
  }
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
      for (auto& v : m_thread_dnet) std::fill(v.begin(), v.end(), T(0));  // every rank's: a share may be empty
  }
  m_triple_loss.assign(size_t(B), 0.0);
  m_triple_reg.assign(size_t(B), 0.0);

  // The batch in V = ranks x threads contiguous shares, virtual thread v = rank * threads + j
  // taking share v (static_share: libgomp's schedule(static)); this rank computes its threads'
  // shares, and the others' come by allgather, so every sum below runs over the same values in the
  // same order whatever the split between ranks and threads (dist.hpp).
  const World& world = World::get();
  const int W = world.size(), R = world.rank(), Tn = m_threads;
  const int64_t V = int64_t(W) * Tn;
  const bool net_grads = conv && want_grads;
#pragma omp parallel num_threads(Tn)
  {
    // fp_env.hpp: in each worker, and below for the serial part (not around the region: threads
    // the region starts would inherit the mode and keep it after the engine returns)
    const FlushDenormals flush;
    const int tid = omp_get_thread_num();
    if (tid == 0) m_last_team = omp_get_num_threads();
    std::vector<T> mask_pos(static_cast<size_t>(C)), mask_neg(static_cast<size_t>(C));
    // one share per iteration: a team smaller than asked for takes several, the same bits
#pragma omp for schedule(static, 1)
    for (int j = 0; j < Tn; ++j) {
    const int64_t v = int64_t(R) * Tn + j;
    const int64_t t_end = static_share_end(B, V, v);
    T* dnet = net_grads ? m_thread_dnet[size_t(v)].data() : nullptr;
    for (int64_t t = static_share_begin(B, V, v); t < t_end; ++t) {
      const T* p = prm.P.data() + int64_t(batch.user[t]) * E;
      const T* qp = prm.Q.data() + int64_t(batch.pos[t]) * E;
      const T* qn = prm.Q.data() + int64_t(batch.neg[t]) * E;
      T sp, sn;
      const T* masks[2] = {nullptr, nullptr};
      const T* q2[2] = {qp, qn};
      if (conv) {
        if (dropout.p > 0) {
          for (int c = 0; c < C; ++c) {
            mask_pos[size_t(c)] = T(dropout_scale(dropout, t, 0, c));
            mask_neg[size_t(c)] = T(dropout_scale(dropout, t, 1, c));
          }
          masks[0] = mask_pos.data();
          masks[1] = mask_neg.data();
        }
        PairWork<T>& w = m_work[size_t(tid)];
        layer1_user(m_packed.data(), p, w.A.data());
        T s2[2];
        forward_pairs(m_packed.data(), q2, masks, 2, w, s2);
        sp = s2[0];
        sn = s2[1];
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
        const T ds[2] = {g, -g};
        T* const dq2[2] = {dqp, dqn};
        backward_pairs(m_packed.data(), p, q2, masks, ds, 2, m_work[size_t(tid)],
                       dnet, dp, dq2);
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
  }
  if (W > 1) exchange_shares(B, V, Tn, want_grads, net_grads);

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
    for (size_t th = 1; th < m_thread_dnet.size(); ++th) {
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
  if (w.pairs < 1) throw_internal("CpuEngine::score_items: PairWork without room (make_work)");
  layer1_user(m_packed.data(), p, w.A.data());  // once for all the user's items
  const int chunk = std::min(w.pairs, kScorePairs);
  const T* q[kScorePairs];
  for (int64_t i0 = 0; i0 < n; i0 += chunk) {
    const int m = int(std::min<int64_t>(chunk, n - i0));
    for (int i = 0; i < m; ++i) q[i] = prm.Q.data() + int64_t(items[i0 + i]) * E;
    forward_pairs(m_packed.data(), q, nullptr, m, w, out + i0);
  }
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
