// head.hpp: the output layer of a pair, between the last conv layer and the loss, forward and
// backward, on the GPU, with its CPU twins.
//   head_fwd   h[p][c] = sum_s Y[p][c][s]; h'[p][c] = h[p][c] * mask(p, c);
//              score[p] = b_out + sum_c w_out[c] * h'[p][c]
//   head_bwd   dY[p][c][s] = dscore[p] * w_out[c] * mask(p, c) (the same for every s; the conv
//              layer's backward applies the ReLU mask); dw_out[c] = sum_p dscore[p] * h'[p][c],
//              db_out = sum_p dscore[p] (fixed-order sums, overwritten)
// mask(p, c) is the inverted-dropout scale of channel c of pair p (training only); pairs are
// interleaved as pairs.hpp says, so pair p is (triple, side) = (p / 2, p % 2).
//
// The per-element math (the dropout mask, one pair's head) is defined once, below, and used by
// the CPU engine and the fused tower too. CPU twins: *_cpu, same arguments, host pointers.
// Kernels: kernels/head.cu. CPU twins and argument checks: kernels/head_cpu.cpp.
// Tests: tests/test_head.cpp, tests/test_head_gpu.cu.
#pragma once
#include <cstdint>

#include "convncf/common.hpp"
#include "convncf/rng.hpp"

struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace convncf {

// Inverted dropout: the scale of channel `channel` of pair (triple, side) at global step `step`,
// 0 or 1/(1-p); 1 when p <= 0. Pure function of its arguments (CpuEngine's dropout_scale).
CONVNCF_HD double dropout_mask(double p, uint64_t seed, uint64_t step, int64_t triple, int side,
                               int channel) {
  if (p <= 0.0) return 1.0;
  const uint64_t pair = static_cast<uint64_t>(triple) * 2u + static_cast<uint64_t>(side);
  const uint64_t bits =
      rng_hash(rng_hash(seed, kStreamDropout, step), pair, static_cast<uint64_t>(channel));
  return uniform01(bits) < p ? 0.0 : 1.0 / (1.0 - p);
}

struct DropoutArgs {
  double p = 0.0;  // 0: no dropout (evaluation)
  uint64_t seed = 0;
  uint64_t step = 0;
  // A rank's share of a data-parallel step (sampling.hpp's StepShare): its local triple t is the
  // step's share_triple_in_step(t, share_n, share_lo, step_n). share_n 0: the whole step.
  int64_t share_n = 0, share_lo = 0, step_n = 0;
};

// ---- Per-element math shared by the kernels and their CPU twins ----
// Each kernel's first variant runs these per thread, so the CPU tests exercise the arithmetic
// (and its order) that the GPU runs; only FMA contraction can differ.

// The dropout scale of channel c of pair `pair` as the float CpuEngine multiplies by (T(mask)).
CONVNCF_HD float pair_mask(const DropoutArgs& d, int64_t pair, int c) {
  const int64_t t = d.share_n > 0 ? share_triple_in_step(pair / 2, d.share_n, d.share_lo, d.step_n) : pair / 2;
  return static_cast<float>(dropout_mask(d.p, d.seed, d.step, t, static_cast<int>(pair % 2), c));
}

// The head of one pair, in CpuEngine::forward_from_A's order: h[c] = sum_s Y[c][s] in s order,
// times the mask when dropout is on; score = b_out + sum_c w_out[c] * h[c] in c order.
CONVNCF_HD float head_pair_fwd(int C, int HW,
                               const float* Y,      // (C, HW) this pair's last feature map
                               const float* w_out,  // (C,)
                               float b_out, const DropoutArgs& drop, int64_t pair,
                               float* h) {          // (C,) h' written
  float s = b_out;
  for (int c = 0; c < C; ++c) {
    float acc = 0.0f;
    for (int k = 0; k < HW; ++k) acc += Y[static_cast<int64_t>(c) * HW + k];
    if (drop.p > 0.0) acc = acc * pair_mask(drop, pair, c);
    h[c] = acc;
    s += w_out[c] * acc;
  }
  return s;
}

// dL/dY[p][c][s] for every s: CpuEngine::backward_pair's dh[c] = dscore * w_out[c] * mask.
CONVNCF_HD float head_dY(float dscore, float w, const DropoutArgs& drop, int64_t pair, int c) {
  return drop.p > 0.0 ? dscore * w * pair_mask(drop, pair, c) : dscore * w;
}

// Dropout (drop.p > 0, training only) masks pair p as (triple, side) = (p / 2, p % 2).
void head_fwd(int64_t n_pairs, int C, int HW,
              const float* __restrict__ Y,      // (n_pairs, C, HW) last conv layer's output
              const float* __restrict__ w_out,  // (C,)
              const float* __restrict__ b_out,  // (1,)
              DropoutArgs drop,
              float* __restrict__ h,            // (n_pairs, C) h' after the mask, kept for head_bwd
              float* __restrict__ score,        // (n_pairs,)
              cudaStream_t stream);

void head_bwd(int64_t n_pairs, int C, int HW,
              const float* __restrict__ dscore,  // (n_pairs,)
              const float* __restrict__ w_out,   // (C,)
              const float* __restrict__ h,       // (n_pairs, C) from head_fwd
              DropoutArgs drop,                  // the same as head_fwd's
              float* __restrict__ dY,            // (n_pairs, C, HW) overwritten
              float* __restrict__ dw_out,        // (C,) overwritten
              float* __restrict__ db_out,        // (1,) overwritten
              cudaStream_t stream);

// CPU twins.
void head_fwd_cpu(int64_t n_pairs, int C, int HW, const float* Y, const float* w_out,
                  const float* b_out, DropoutArgs drop, float* h, float* score);
void head_bwd_cpu(int64_t n_pairs, int C, int HW, const float* dscore, const float* w_out,
                  const float* h, DropoutArgs drop, float* dY, float* dw_out, float* db_out);

// The launchers' argument checks, shared by each launcher, its twin (who = "<launcher>_cpu") and
// the emulated launcher: sizes (n_pairs * C * HW within int64 bounds), 0 <= drop.p < 1, and no
// null pointer where there is work (head_bwd always writes dw_out and db_out). Throw
// Error(kExitSoftware) naming `who`.
void check_head_fwd_args(int64_t n_pairs, int C, int HW, const float* Y, const float* w_out,
                         const float* b_out, const DropoutArgs& drop, const float* h,
                         const float* score, const char* who = "head_fwd");
void check_head_bwd_args(int64_t n_pairs, int C, int HW, const float* dscore, const float* w_out,
                         const float* h, const DropoutArgs& drop, const float* dY,
                         const float* dw_out, const float* db_out, const char* who = "head_bwd");

}  // namespace convncf
