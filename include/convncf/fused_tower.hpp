// fused_tower.hpp: the fused ConvNCF tower (engine: fused). One thread block runs a pair's whole
// tower with every activation in shared memory; the E x E interaction map and the conv layers'
// outputs never reach global memory.
//
// Per pair (a contiguous chunk of pairs per block; consecutive pairs of one user reuse its side):
//   p, q            the two embedding rows, staged in shared memory
//   U               the user's side of layer 1 through its rank-1 structure (CpuEngine's A):
//                   U[(x*k+s)*C + c] = sum_r p[k*x+r] * W1[c][0][r][s]
//   act[0]          layer 1, channels-last: relu(b[c] + sum_s q[k*y+s] * U[(x*k+s)*C + c])
//   act[l], l >= 1  conv with kernel = stride k as a small matrix product over each patch,
//                   relu(b[co] + sum_{r, j} X[patch row r][j] * Wt[(r*run + j)*Co + co]), with
//                   both operands rounded to the precision's input format (fp32: unchanged;
//                   tf32: 10-bit mantissa, round to nearest, ties away, as cvt.rna.tf32;
//                   bf16: 7-bit mantissa, round to nearest even), accumulation in FP32
//   head            h[c] = sum over positions; score = b_out + sum_c w_out[c] * (h[c] * mask)
// Backward (fused_tower_bwd) recomputes the forward of each pair, then turns every act[l] into
// its ReLU-masked gradient in place, layer L .. 1: the weight gradient reads X and G before the
// input map is overwritten by its own gradient. Layer 1 goes back through U: dU, then dq, dW1,
// db1 and dp. Weight gradients are summed per block in a slice of `partial` (the block's pairs
// in order, no atomics) and fused_reduce_grads sums the slices in block order: deterministic for
// a fixed block count.
//
// Weights are read packed (CpuEngine::pack's layout, fused_pack builds it): per layer
// Wt[((r*k+s)*cin+ci)*cout+co], bias, output layer; the second half (from wkt_base, n_params
// rounded up to a multiple of 4) holds WkT[co][(r*k+s)*cin+ci] for the input-gradient product. `partial` slices are in the packed
// (first-half) layout; fused_reduce_grads writes PyTorch's layout.
//
// Every element is computed by one of the CONVNCF_HD functions below, used by the kernels
// (kernels/fused_tower.cu) and by their CPU twins (kernels/fused_tower_cpu.cpp), which loop over
// blocks, pairs and elements in the kernels' order: a twin reproduces the kernel up to FMA
// contraction. Variant 3 (FusedTc, tf32/bf16) runs layers 2..L as WMMA tile products on the
// tensor cores over its own layout; its twin sums each tile product in the order documented at
// "Variant 3" below; variant 4 (FusedTc4) takes the same tile products over a group of pairs and
// layer 1 in chunks (its parts of layer 1's gradient: fused_tc4_dU_part). Tests:
// tests/test_fused_tower.cpp (twins against CpuEngine), tests/test_fused_tower_gpu.cu (kernels
// against twins on a GPU), tests/kernel_emulation (the kernels on an emulated device, WMMA
// included, against twins bit for bit).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "convncf/common.hpp"
#include "convncf/head.hpp"
#include "convncf/kinds.hpp"

struct CUstream_st;
using cudaStream_t = CUstream_st*;

// Marks a hot kernel that must run on the tensor cores: tests/test_kernel_resources.cpp checks it
// for spills as CONVNCF_HOT_KERNEL and, where cuobjdump is found, for HMMA instructions in its
// SASS.
#define CONVNCF_TENSOR_CORE_KERNEL __global__

namespace convncf {

struct TowerSpec;

const char* precision_name(Precision p);             // "fp32" | "tf32" | "bf16"
Precision parse_precision(const std::string& name);  // throws Error(kExitUsage) on another name

inline constexpr int kFusedMaxLayers = 16;
inline constexpr int kFusedThreads = 256;  // threads per block of both kernels
inline constexpr int kFusedWarps = kFusedThreads / 32;
// Variant 3 (tensor cores): weight-gradient accumulator tiles (16 x 16 floats) each warp keeps in
// registers across a block's pairs; a tower with more tiles than kFusedWarps * kFusedTcSlots
// (recbole: 96 = 8 * 12, paper: 80) runs variant 2 instead.
inline constexpr int kFusedTcSlots = 12;

struct FusedLayer {
  int cin, cout, k, in_size, out_size;
  int64_t w_off, b_off;  // in the flat network array (and in the packed layout)
  int act_off;           // this layer's output map in shared memory (floats, a multiple of 4)
  bool tiled;            // layers 2..L: cin, cout and w_off multiples of 4, so variant 2's
                         // four-output functions below may use 16-byte loads
};

// Variant 3's view of layer li >= 1 as a tile product, per pair: out (rows x np) = in (rows x kp) .
// W (kp x np), rows = out_size^2 output positions, np = cout and kp = k*k*np(li-1) rounded up to 16
// (np(0) = layer 1's cout rounded up to 16); the padding is zeros. Every map is stored in the
// order the next layer's patches read it (below), so the input of layer li is the previous
// layer's output seen with leading dimension kp: no copy, no index arithmetic in the product.
struct FusedTcLayer {
  int rows = 0, mrows = 0;  // output positions per pair; rounded up to 16 (the tiles' rows)
  int np = 0, kp = 0;       // see above; multiples of 16
  int map_off = 0;          // the output map (li < L-1) in shared memory (floats, a multiple of 8)
  int64_t w_off = 0;        // W (kp x np, row-major, operand format) in the packed array (floats)
  int tile0 = 0;            // its first weight-gradient tile (kp/16 x np/16 of them, row by row)
};

// Variant 3's shared-memory layout (floats; p, q, U and dU as in variants 1 and 2, then these,
// each at a multiple of 8 floats, 32 bytes, as WMMA's pointers need), and where it applies.
// Map li's row of position (x, y) is fused_tc_row: the last map's rows are its positions in
// order; the rows of the map before a layer of kernel k are (row of the next layer's output
// position) * k*k + r*k + s for the patch element (r, s). Map 0 (layer 1's output) is at
// layer[0].map_off with row length np(0) (tc0_np). Operand format: tf32 as floats holding tf32
// values, bf16 as bf16 bits (uint16_t), 2 per float.
struct FusedTc {
  bool packed = false;   // precision tf32/bf16, L >= 2 and the tiles fit the slots: the layer
                         // geometry below and the operand-format weights exist (variants 3, 4)
  bool ok = false;       // packed, and variant 3's shared memory fits
  int smem_floats = 0;
  int np0 = 0;           // map 0's row length
  FusedTcLayer layer[kFusedMaxLayers];  // [0]: only map_off; [li >= 1] as above
  int last_off = 0;      // the last map, FP32, positions x channels (the head's input)
  int glast_off = 0;     // its masked gradient (mrows x np of the last layer, operand format)
  int stage_off = 0;     // kFusedWarps tiles of 16 x 16 floats: each warp's epilogue staging
  int rowq_off = 0;      // int[S1*S1]: map 0's row of each layer-1 position (x*S1 + y)
  int h_off = 0;         // the head sums (C_L)
  int tiles = 0;         // weight-gradient tiles of layers 2..L
  int64_t w_base = 0, w_end = 0;  // the packed tensor-core weights [w_base, w_end)
  size_t smem_bytes() const { return size_t(smem_floats) * sizeof(float); }
};

// Variant 4 (tensor cores, as variant 3, with FusedTc's geometry and weights) changes two things:
//  - Pairs in groups. The layers from stack0 on (0-based; 1, 2, or L for none) run once per group
//    of `group` pairs: the pairs' maps are stacked (pair g's rows at g * its rows), so one 16-row
//    tile holds rows of several pairs; group = 16 / gcd(16, rows of the last layer) makes every
//    stacked layer's rows a multiple of 16. The layers before stack0 run pair by pair. The
//    automatic choice stacks from the first layer whose rows are not a multiple of 16 when that is
//    layer 2 or 3 (0-based 1 or 2) and the group fits the shared memory; deeper towers (the paper
//    tower) stack nothing (group 1): their per-pair maps would have to be recomputed for the
//    backward.
//  - Layer 1 in chunks (stack0 >= 2): it is computed chunk by chunk into a buffer of chunk_tiles
//    16-row tiles of layer 2's input (map 0's rows of those tiles) as layer 2's tile products
//    consume it, never as a whole map; the backward recomputes each chunk for layer 2's dW and dX
//    and reduces the chunk's part of layer 1's gradient (dU, dq, db1) before the next. chunk_tiles
//    fills the warps (8 / layer 2's 16-column tiles), or is halved where that fits more blocks
//    per SM by shared memory (kernels/fused_tower_cpu.cpp: blocks_per_sm).
// The backward of a group: its forward (each pair's own layers, then the stacked ones, the head),
// the output layer and the last map's gradient of each pair, the stacked layers' dW and dX for the
// whole group, then pair by pair its own layers (the pair's p, q and U staged again) and layer 1.
// Pairs with dscore 0 take no slot. Same sums as variant 3 but for layer 1's gradient with several
// chunks (each sum chunk by chunk, see fused_tc4_dU_part); the tile products sum each output
// element in the same order, so where there is one chunk the twins agree with variant 3's bit for
// bit.
struct FusedTc4Choice {  // make_fused_tower's override of the automatic layout (tests); 0: automatic
  int stack0 = 0;        // 1; 2 (layer 2's rows a multiple of 16); or L
  int chunk_tiles = 0;   // >= 1 (stack0 >= 2)
};
struct FusedTc4 {
  bool ok = false;       // FusedTc::packed and its shared memory fits
  int smem_floats = 0;
  int stack0 = 0;        // the first stacked layer (0-based): 1, 2, or L (none)
  int group = 1;         // pairs per group (1 when stack0 == L)
  int chunk_tiles = 0;   // layer 2's output tiles per chunk of layer 1 (stack0 >= 2)
  int chunks = 0;        // chunks per pair (stack0 >= 2)
  // Map li (li < L-1), each at a multiple of 8 floats, its padding 0: [0] the chunk buffer
  // (chunk_tiles * 16 rows of layer 2's input, kp(1) each; stack0 >= 2) or the group's map 0
  // (stack0 == 1); li >= 1 as in variant 3 for one pair, or `group` pairs' stacked maps (li >=
  // stack0 - 1), pair g at g * fused_tc4_slot(li).
  int map_off[kFusedMaxLayers] = {};
  int last_off = 0;      // the last map (FP32), group x positions x channels
  int glast_off = 0;     // its masked gradient, operand format, rows padded to 16
  int stage_off = 0;     // kFusedWarps staging tiles
  int rowq_off = 0;      // int[S1*S1]: map 0's row of each layer-1 position
  int posq_off = 0;      // int[S1*S1]: the position of each map-0 row
  int box_off = 0;       // int[4 * chunks]: each chunk's positions' bounding box (x0, x1, y0, y1)
  int slot_off = 0;      // int[group]: the group's pairs (k - first pair of the group)
  int h_off = 0;         // the head sums, group x C_L
  int dq_off = 0;        // E: dq of the pair, summed over the chunks
  int db1_off = 0;       // C_1: layer 1's bias gradient of the pair, summed over the chunks
  size_t smem_bytes() const { return size_t(smem_floats) * sizeof(float); }
};

// The tower as the kernels take it (by value, a kernel parameter) with its shared-memory layout,
// in floats: p (E), q (E), U and dU (S1*k1*C1 each), act[l] (S_l^2 * C_l each), h (C_L), each
// starting at a multiple of 4. The packed weights: the first half at 0 (n_params), the
// transposed conv weights from wkt_base (n_params rounded up to a multiple of 4).
struct FusedTower {
  int E = 0, L = 0;
  FusedLayer layer[kFusedMaxLayers];
  int64_t out_w_off = 0, out_b_off = 0, n_params = 0, wkt_base = 0;
  int p_off = 0, q_off = 0, u_off = 0, du_off = 0, h_off = 0, smem_floats = 0;
  Precision precision = Precision::FP32;
  FusedTc tc;    // variant 3 (and the geometry and weights of variant 4)
  FusedTc4 tc4;  // variant 4
  CONVNCF_HD int u_size() const { return layer[0].out_size * layer[0].k * layer[0].cout; }
  size_t smem_bytes() const { return size_t(smem_floats) * sizeof(float); }
  // variants 1, 2: [0, wkt_base + n_params); with tc.packed the tensor-core weights follow
  CONVNCF_HD int64_t packed_size() const { return tc.packed ? tc.w_end : wkt_base + n_params; }
};

// Throws Error(kExitUsage) when the tower has more than kFusedMaxLayers layers or its shared
// memory exceeds max_smem_bytes (0: no limit), naming the size and engine: cudnn as the way out.
// `choice` overrides variant 4's automatic layout (Error(kExitSoftware) for one it cannot take).
FusedTower make_fused_tower(const TowerSpec& tower, Precision precision, size_t max_smem_bytes,
                            const FusedTc4Choice& choice = {});

// ---- Element math shared by the kernels and the twins ----

CONVNCF_HD uint32_t fused_float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}
CONVNCF_HD float fused_bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

// x in the precision's input format (as a float). NaN and inf pass unchanged.
CONVNCF_HD float round_operand(float x, Precision p) {
  if (p == Precision::FP32) return x;
  uint32_t u = fused_float_bits(x);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;
  if (p == Precision::TF32) {
    u = (u + 0x1000u) & 0xffffe000u;  // ties away from zero (cvt.rna.tf32.f32)
  } else {
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;  // ties to even (__float2bfloat16_rn)
  }
  return fused_bits_float(u);
}

CONVNCF_HD float fused_relu(float v) { return v > 0.0f ? v : 0.0f; }

// packed[i] for i in [0, packed_size()) from the PyTorch-layout network (CpuEngine::pack, with
// its second half moved to wkt_base; with tc.ok, variant 3's weights after it); the padding and
// the second half outside the conv weights are 0.
CONVNCF_HD float fused_tc_pack_value(const FusedTower& t, const float* net, int64_t i);  // variant 3's part
CONVNCF_HD float fused_pack_value(const FusedTower& t, const float* net, int64_t i) {
  if (i >= t.wkt_base + t.n_params) return fused_tc_pack_value(t, net, i);
  if (i >= t.n_params && i < t.wkt_base) return 0.0f;
  const bool second = i >= t.wkt_base;
  const int64_t j = second ? i - t.wkt_base : i;
  for (int l = 0; l < t.L; ++l) {
    const FusedLayer& c = t.layer[l];
    const int64_t K = int64_t(c.k) * c.k * c.cin;
    if (j >= c.w_off && j < c.w_off + K * c.cout) {
      const int64_t w = j - c.w_off;
      const int64_t kk = second ? w % K : w / c.cout;
      const int64_t co = second ? w / K : w % c.cout;
      const int64_t ci = kk % c.cin, rs = kk / c.cin;
      const int64_t r = rs / c.k, s = rs % c.k;
      return net[c.w_off + ((co * c.cin + ci) * c.k + r) * c.k + s];
    }
  }
  return second ? 0.0f : net[j];
}

// Where the PyTorch-layout parameter i lives in the packed first half.
CONVNCF_HD int64_t fused_packed_index(const FusedTower& t, int64_t i) {
  for (int l = 0; l < t.L; ++l) {
    const FusedLayer& c = t.layer[l];
    const int64_t K = int64_t(c.k) * c.k * c.cin;
    if (i >= c.w_off && i < c.w_off + K * c.cout) {
      const int64_t w = i - c.w_off;  // ((co*cin + ci)*k + r)*k + s
      const int64_t s = w % c.k, r = (w / c.k) % c.k, ci = (w / (int64_t(c.k) * c.k)) % c.cin;
      const int64_t co = w / K;
      return c.w_off + ((r * c.k + s) * c.cin + ci) * c.cout + co;
    }
  }
  return i;
}

// The inverse of fused_packed_index: the PyTorch-layout index of packed (first-half) index j.
CONVNCF_HD int64_t fused_unpacked_index(const FusedTower& t, int64_t j) {
  for (int l = 0; l < t.L; ++l) {
    const FusedLayer& c = t.layer[l];
    const int64_t K = int64_t(c.k) * c.k * c.cin;
    if (j >= c.w_off && j < c.w_off + K * c.cout) {
      const int64_t w = j - c.w_off;  // kk*cout + co, kk = (r*k + s)*cin + ci
      const int64_t co = w % c.cout, kk = w / c.cout;
      const int64_t ci = kk % c.cin, rs = kk / c.cin, r = rs / c.k, s = rs % c.k;
      return c.w_off + ((co * c.cin + ci) * c.k + r) * c.k + s;
    }
  }
  return j;
}

// U[idx], idx = (x*k+s)*C + c: the user's side of layer 1 (r in order, from 0).
CONVNCF_HD float fused_user_side(const FusedTower& t, const float* packed, const float* p, int idx) {
  const FusedLayer& l = t.layer[0];
  const int C = l.cout, k = l.k;
  const int c = idx % C, xs = idx / C, x = xs / k, s = xs % k;
  const float* W = packed + l.w_off;  // Wt[(r*k+s)*C + c] (cin = 1)
  float acc = 0.0f;
  for (int r = 0; r < k; ++r) acc += p[x * k + r] * W[(r * k + s) * C + c];
  return acc;
}

// act[0][idx], idx = (x*S+y)*C + c.
CONVNCF_HD float fused_layer1(const FusedTower& t, const float* packed, const float* U,
                              const float* q, int idx) {
  const FusedLayer& l = t.layer[0];
  const int C = l.cout, k = l.k, S = l.out_size;
  const int c = idx % C, xy = idx / C, x = xy / S, y = xy % S;
  float acc = packed[l.b_off + c];
  for (int s = 0; s < k; ++s) acc += q[y * k + s] * U[(x * k + s) * C + c];
  return fused_relu(acc);
}

// act[li][idx] (li >= 1), idx = (x*So+y)*Co + co, from X = act[li-1].
CONVNCF_HD float fused_conv(const FusedTower& t, int li, const float* packed, const float* X,
                            int idx) {
  const FusedLayer& l = t.layer[li];
  const int Co = l.cout, Ci = l.cin, k = l.k, Si = l.in_size, So = l.out_size, run = k * Ci;
  const int co = idx % Co, pos = idx / Co, x = pos / So, y = pos % So;
  const float* Wt = packed + l.w_off;
  float acc = packed[l.b_off + co];
  for (int r = 0; r < k; ++r) {
    const float* xr = X + ((x * k + r) * Si + y * k) * Ci;
    const float* wr = Wt + int64_t(r) * run * Co + co;
    for (int j = 0; j < run; ++j)
      acc += round_operand(xr[j], t.precision) * round_operand(wr[int64_t(j) * Co], t.precision);
  }
  return fused_relu(acc);
}

// h[c]: the last map's spatial sum in position order.
CONVNCF_HD float fused_head_sum(const FusedTower& t, const float* act_last, int c) {
  const FusedLayer& l = t.layer[t.L - 1];
  const int C = l.cout, npos = l.out_size * l.out_size;
  float acc = 0.0f;
  for (int pos = 0; pos < npos; ++pos) acc += act_last[pos * C + c];
  return acc;
}

// score = b_out + sum_c w_out[c] * (h[c] * mask(pair, c)), c in order.
CONVNCF_HD float fused_score(const FusedTower& t, const float* packed, const float* h,
                             const DropoutArgs& drop, int64_t pair) {
  const int C = t.layer[t.L - 1].cout;
  float s = packed[t.out_b_off];
  for (int c = 0; c < C; ++c)
    s += packed[t.out_w_off + c] * (drop.p > 0.0 ? h[c] * pair_mask(drop, pair, c) : h[c]);
  return s;
}

// Output layer backward of channel c: the dw_out term (dscore * h * mask) and dh (dscore * w * mask).
CONVNCF_HD float fused_dw_out(float dscore, float h, const DropoutArgs& drop, int64_t pair, int c) {
  return drop.p > 0.0 ? dscore * h * pair_mask(drop, pair, c) : dscore * h;
}
CONVNCF_HD float fused_dh(const FusedTower& t, const float* packed, float dscore,
                          const DropoutArgs& drop, int64_t pair, int c) {
  const float w = packed[t.out_w_off + c];
  return drop.p > 0.0 ? dscore * w * pair_mask(drop, pair, c) : dscore * w;
}

// Packed weight gradient of layer li (li >= 1), w = kk*Co + co, for one pair: the sum over
// output positions (x, y in order) of G[pos][co] * X[patch(pos)][kk].
CONVNCF_HD float fused_dW(const FusedTower& t, int li, const float* G, const float* X, int w) {
  const FusedLayer& l = t.layer[li];
  const int Co = l.cout, Ci = l.cin, k = l.k, Si = l.in_size, So = l.out_size;
  const int co = w % Co, kk = w / Co, ci = kk % Ci, rs = kk / Ci, r = rs / k, s = rs % k;
  float acc = 0.0f;
  for (int x = 0; x < So; ++x)
    for (int y = 0; y < So; ++y)
      acc += round_operand(G[(x * So + y) * Co + co], t.precision) *
             round_operand(X[((x * k + r) * Si + y * k + s) * Ci + ci], t.precision);
  return acc;
}

// Bias gradient of layer li (any li) for one pair: sum over positions of G[pos][co].
CONVNCF_HD float fused_db(const FusedTower& t, int li, const float* G, int co) {
  const FusedLayer& l = t.layer[li];
  const int npos = l.out_size * l.out_size;
  float acc = 0.0f;
  for (int pos = 0; pos < npos; ++pos) acc += G[pos * l.cout + co];
  return acc;
}

// The masked gradient of X = act[li-1] at idx = (X*Si+Y)*Ci + ci (li >= 1), from G = act[li]'s
// gradient: 0 where X is 0 (ReLU off), else sum_co G[out pos][co] * W[co][ci][r][s], co in order.
CONVNCF_HD float fused_dX(const FusedTower& t, int li, const float* packed, const float* G,
                          const float* X, int idx) {
  const FusedLayer& l = t.layer[li];
  if (!(X[idx] > 0.0f)) return 0.0f;
  const int Co = l.cout, Ci = l.cin, k = l.k, Si = l.in_size, So = l.out_size;
  const int K = k * k * Ci;
  const int ci = idx % Ci, pin = idx / Ci, xi = pin / Si, yi = pin % Si;
  const int x = xi / k, r = xi % k, y = yi / k, s = yi % k;
  const int kk = (r * k + s) * Ci + ci;
  const float* WkT = packed + t.wkt_base + l.w_off;  // WkT[co*K + kk]
  const float* g = G + (x * So + y) * Co;
  float acc = 0.0f;
  for (int co = 0; co < Co; ++co)
    acc += round_operand(g[co], t.precision) * round_operand(WkT[int64_t(co) * K + kk], t.precision);
  return acc;
}

// ---- Variant 2: four outputs per thread, 16-byte loads (layers with FusedLayer::tiled) ----
// Each computes four of the functions above at once, every output's sum in the same order with
// the same operands: the results of four single calls up to FMA contraction.
struct Float4 {
  float x, y, z, w;
};
CONVNCF_HD Float4 fused_load4(const float* p) {  // p 16-byte aligned on the device
#if defined(__CUDA_ARCH__)
  const float4 v = *reinterpret_cast<const float4*>(p);
  return {v.x, v.y, v.z, v.w};
#else
  return {p[0], p[1], p[2], p[3]};
#endif
}

// act[li] at (x*So+y)*Co + co0 .. co0+3 (co0 a multiple of 4) = fused_conv of each.
CONVNCF_HD void fused_conv4(const FusedTower& t, int li, const float* packed, const float* X, int pos,
                            int co0, float* out) {
  const FusedLayer& l = t.layer[li];
  const int Co = l.cout, Ci = l.cin, k = l.k, Si = l.in_size, So = l.out_size, run = k * Ci;
  const int x = pos / So, y = pos % So;
  const Precision pr = t.precision;
  const Float4 b = fused_load4(packed + l.b_off + co0);
  float a0 = b.x, a1 = b.y, a2 = b.z, a3 = b.w;
  for (int r = 0; r < k; ++r) {
    const float* xr = X + ((x * k + r) * Si + y * k) * Ci;
    const float* wr = packed + l.w_off + int64_t(r) * run * Co + co0;
    for (int j = 0; j < run; ++j) {
      const float xv = round_operand(xr[j], pr);
      const Float4 w = fused_load4(wr + int64_t(j) * Co);
      a0 += xv * round_operand(w.x, pr);
      a1 += xv * round_operand(w.y, pr);
      a2 += xv * round_operand(w.z, pr);
      a3 += xv * round_operand(w.w, pr);
    }
  }
  out[0] = fused_relu(a0);
  out[1] = fused_relu(a1);
  out[2] = fused_relu(a2);
  out[3] = fused_relu(a3);
}

// fused_dW for w = kk*Co + co0 .. co0+3.
CONVNCF_HD void fused_dW4(const FusedTower& t, int li, const float* G, const float* X, int kk, int co0,
                          float* acc) {
  const FusedLayer& l = t.layer[li];
  const int Co = l.cout, Ci = l.cin, k = l.k, Si = l.in_size, So = l.out_size;
  const int ci = kk % Ci, rs = kk / Ci, r = rs / k, s = rs % k;
  const Precision pr = t.precision;
  float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
  for (int x = 0; x < So; ++x)
    for (int y = 0; y < So; ++y) {
      const Float4 g = fused_load4(G + (x * So + y) * Co + co0);
      const float xv = round_operand(X[((x * k + r) * Si + y * k + s) * Ci + ci], pr);
      a0 += round_operand(g.x, pr) * xv;
      a1 += round_operand(g.y, pr) * xv;
      a2 += round_operand(g.z, pr) * xv;
      a3 += round_operand(g.w, pr) * xv;
    }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
}

// fused_dX at (X*Si+Y)*Ci + ci0 .. ci0+3 (ci0 a multiple of 4), reading only those four of X.
CONVNCF_HD void fused_dX4(const FusedTower& t, int li, const float* packed, const float* G, const float* X,
                          int pin, int ci0, float* out) {
  const FusedLayer& l = t.layer[li];
  const int Co = l.cout, Ci = l.cin, k = l.k, Si = l.in_size, So = l.out_size;
  const int K = k * k * Ci;
  const int xi = pin / Si, yi = pin % Si, x = xi / k, r = xi % k, y = yi / k, s = yi % k;
  const int kk0 = (r * k + s) * Ci + ci0;
  const float* WkT = packed + t.wkt_base + l.w_off;
  const float* g = G + (x * So + y) * Co;
  const Precision pr = t.precision;
  float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
  for (int co = 0; co < Co; ++co) {
    const float gv = round_operand(g[co], pr);
    const Float4 w = fused_load4(WkT + int64_t(co) * K + kk0);
    a0 += gv * round_operand(w.x, pr);
    a1 += gv * round_operand(w.y, pr);
    a2 += gv * round_operand(w.z, pr);
    a3 += gv * round_operand(w.w, pr);
  }
  const Float4 xv = fused_load4(X + pin * Ci + ci0);
  out[0] = xv.x > 0.0f ? a0 : 0.0f;
  out[1] = xv.y > 0.0f ? a1 : 0.0f;
  out[2] = xv.z > 0.0f ? a2 : 0.0f;
  out[3] = xv.w > 0.0f ? a3 : 0.0f;
}

// Layer 1 backward from G = act[0]'s masked gradient, read through g(x, y, c) (variants 1 and 2:
// FusedNaturalMap, act[0] itself; variant 3: FusedTcMap0, map 0 in its rows).
struct FusedNaturalMap {
  const float* p;
  int S, C;
  CONVNCF_HD float operator()(int x, int y, int c) const { return p[(x * S + y) * C + c]; }
};
// dU[idx], idx = (x*k+s)*C + c: sum_y G[(x*S+y)*C + c] * q[y*k+s].
template <typename GAt>
CONVNCF_HD float fused_dU_at(const FusedTower& t, const GAt& g, const float* q, int idx) {
  const FusedLayer& l = t.layer[0];
  const int C = l.cout, k = l.k, S = l.out_size;
  const int c = idx % C, xs = idx / C, x = xs / k, s = xs % k;
  float acc = 0.0f;
  for (int y = 0; y < S; ++y) acc += g(x, y, c) * q[y * k + s];
  return acc;
}
CONVNCF_HD float fused_dU(const FusedTower& t, const float* G, const float* q, int idx) {
  return fused_dU_at(t, FusedNaturalMap{G, t.layer[0].out_size, t.layer[0].cout}, q, idx);
}
// dq[e], e = y*k+s: sum_x (sum_c G[(x*S+y)*C + c] * U[(x*k+s)*C + c]).
template <typename GAt>
CONVNCF_HD float fused_dq_at(const FusedTower& t, const GAt& g, const float* U, int e) {
  const FusedLayer& l = t.layer[0];
  const int C = l.cout, k = l.k, S = l.out_size;
  const int y = e / k, s = e % k;
  float total = 0.0f;
  for (int x = 0; x < S; ++x) {
    const float* u = U + (x * k + s) * C;
    float acc = 0.0f;
    for (int c = 0; c < C; ++c) acc += g(x, y, c) * u[c];
    total += acc;
  }
  return total;
}
CONVNCF_HD float fused_dq(const FusedTower& t, const float* G, const float* U, int e) {
  return fused_dq_at(t, FusedNaturalMap{G, t.layer[0].out_size, t.layer[0].cout}, U, e);
}
// Layer 1's bias gradient: sum over positions (x, y in order) of G[x][y][c] (= fused_db(t, 0, ..)).
template <typename GAt>
CONVNCF_HD float fused_db0_at(const FusedTower& t, const GAt& g, int c) {
  const int S = t.layer[0].out_size;
  float acc = 0.0f;
  for (int x = 0; x < S; ++x)
    for (int y = 0; y < S; ++y) acc += g(x, y, c);
  return acc;
}
// Packed dW1[w], w = (r*k+s)*C + c: sum_x p[x*k+r] * dU[(x*k+s)*C + c].
CONVNCF_HD float fused_dW1(const FusedTower& t, const float* p, const float* dU, int w) {
  const FusedLayer& l = t.layer[0];
  const int C = l.cout, k = l.k, S = l.out_size;
  const int c = w % C, rs = w / C, r = rs / k, s = rs % k;
  float acc = 0.0f;
  for (int x = 0; x < S; ++x) acc += p[x * k + r] * dU[(x * k + s) * C + c];
  return acc;
}
// dp[e], e = x*k+r: sum_s sum_c W1[(r*k+s)*C + c] * dU[(x*k+s)*C + c].
CONVNCF_HD float fused_dp(const FusedTower& t, const float* packed, const float* dU, int e) {
  const FusedLayer& l = t.layer[0];
  const int C = l.cout, k = l.k;
  const int x = e / k, r = e % k;
  const float* W = packed + l.w_off;
  float acc = 0.0f;
  for (int s = 0; s < k; ++s)
    for (int c = 0; c < C; ++c) acc += W[(r * k + s) * C + c] * dU[(x * k + s) * C + c];
  return acc;
}

// ---- Variant 3: layers 2..L as tile products on the tensor cores (FusedTc) ----
// The products themselves are WMMA tiles in the kernels; their twins (kernels/fused_tower_cpu.cpp)
// sum each output element over the padded reduction index in order (k in order within a k-step,
// k-steps in order), as the emulated mma_sync does (tests/kernel_emulation). The padding adds
// exact zeros (0 * 0). Bias, ReLU, masks and layer 1 are these functions on FP32 cores.

// Map 0's row of layer-1 position (x, y) (see FusedTc).
CONVNCF_HD int fused_tc_row(const FusedTower& t, int x, int y) {
  int q = 0, mult = 1;
  for (int li = 1; li < t.L; ++li) {
    const int k = t.layer[li].k;
    q += ((x % k) * k + y % k) * mult;
    mult *= k * k;
    x /= k;
    y /= k;
  }
  return q + (x * t.layer[t.L - 1].out_size + y) * mult;
}

// The operand format: tf32 values in floats, bf16 as its bits.
CONVNCF_HD uint16_t fused_bf16_bits(float x) {
  const uint32_t u = fused_float_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);  // NaN stays NaN
  return uint16_t(fused_float_bits(round_operand(x, Precision::BF16)) >> 16);
}
CONVNCF_HD float fused_bf16_float(uint16_t b) { return fused_bits_float(uint32_t(b) << 16); }
CONVNCF_HD float fused_tc_get(const float* p, int64_t i) { return p[i]; }
CONVNCF_HD float fused_tc_get(const uint16_t* p, int64_t i) { return fused_bf16_float(p[i]); }
// round: store an operand (tf32-rounded); false: keep FP32 (map 0's gradient in tf32)
CONVNCF_HD void fused_tc_put(float* p, int64_t i, float v, bool round) {
  p[i] = round ? round_operand(v, Precision::TF32) : v;
}
CONVNCF_HD void fused_tc_put(uint16_t* p, int64_t i, float v, bool) { p[i] = fused_bf16_bits(v); }

// Map 0 (or its gradient, in place) read as g(x, y, c) by the layer-1 functions.
template <typename T>
struct FusedTcMap0 {
  const T* p;
  const int* rowq;  // FusedTc::rowq_off
  int S, ld;
  CONVNCF_HD float operator()(int x, int y, int c) const { return fused_tc_get(p, int64_t(rowq[x * S + y]) * ld + c); }
};

// The packed first-half index of layer li's weight at padded row kk, column c of W, or -1 for
// padding.
CONVNCF_HD int64_t fused_tc_weight_index(const FusedTower& t, int li, int kk, int c) {
  const FusedLayer& l = t.layer[li];
  const int npp = li == 1 ? t.tc.np0 : t.tc.layer[li - 1].np;
  const int rs = kk / npp, ci = kk % npp;
  if (ci >= l.cin || c >= l.cout || rs >= l.k * l.k) return -1;
  return l.w_off + (int64_t(rs) * l.cin + ci) * l.cout + c;
}

// Float i of the tensor-core weights (i in [tc.w_base, tc.w_end)): W of each layer rounded to the
// operand format (bf16: elements 2i' and 2i'+1 of the layer in the low and high half).
CONVNCF_HD float fused_tc_pack_value(const FusedTower& t, const float* net, int64_t i) {
  const bool bf16 = t.precision == Precision::BF16;
  for (int li = 1; li < t.L; ++li) {
    const FusedTcLayer& c = t.tc.layer[li];
    const int64_t n = int64_t(c.kp) * c.np, floats = bf16 ? n / 2 : n;
    if (i < c.w_off || i >= c.w_off + floats) continue;
    auto weight = [&](int64_t e) {
      const int64_t j = fused_tc_weight_index(t, li, int(e / c.np), int(e % c.np));
      return j < 0 ? 0.0f : net[fused_unpacked_index(t, j)];
    };
    const int64_t e = i - c.w_off;
    if (!bf16) return round_operand(weight(e), Precision::TF32);
    return fused_bits_float(uint32_t(fused_bf16_bits(weight(2 * e))) |
                            uint32_t(fused_bf16_bits(weight(2 * e + 1))) << 16);
  }
  return 0.0f;  // alignment padding
}

// Layer li's output value at (row, c) from the tile product's acc: relu(acc + b[c]).
CONVNCF_HD float fused_tc_out(const FusedTower& t, int li, const float* packed, float acc, int c) {
  return fused_relu(acc + packed[t.layer[li].b_off + c]);
}

// The last map's masked gradient at (row, c): dh[c] where the output is positive.
CONVNCF_HD float fused_tc_glast(const FusedTower& t, const float* last, const float* dh, int row, int c) {
  return last[row * t.layer[t.L - 1].cout + c] > 0.0f ? dh[c] : 0.0f;
}

// Bias gradient of layer li >= 1 for one pair: sum over its rows (in order) of G[row][co].
template <typename T>
CONVNCF_HD float fused_tc_db(const FusedTower& t, int li, const T* G, int co) {
  const FusedTcLayer& c = t.tc.layer[li];
  float acc = 0.0f;
  for (int r = 0; r < c.rows; ++r) acc += fused_tc_get(G, int64_t(r) * c.np + co);
  return acc;
}

// Weight-gradient tile j (in [0, tc.tiles)): its layer and its tile row and column in W.
struct FusedTcTile {
  int li, kt, nt;
};
CONVNCF_HD FusedTcTile fused_tc_tile(const FusedTower& t, int j) {
  int li = 1;
  while (li + 1 < t.L && j >= t.tc.layer[li + 1].tile0) ++li;
  const int local = j - t.tc.layer[li].tile0, n_nt = t.tc.layer[li].np / 16;
  return {li, local / n_nt, local % n_nt};
}
// Tile j's warp and register slot in the backward kernel.
CONVNCF_HD int fused_tc_tile_warp(int j) { return j % kFusedWarps; }
CONVNCF_HD int fused_tc_tile_slot(int j) { return j / kFusedWarps; }

// ---- Variant 4: pairs in groups, layer 1 in chunks (FusedTc4) ----

// Elements of one pair's slot in variant 4's stacked map li (its rows x np; li == 0: map 0's, with
// stack0 == 1; li == L-1: the last map's gradient).
CONVNCF_HD int64_t fused_tc4_slot(const FusedTower& t, int li) {
  if (li == 0) return int64_t(t.layer[0].out_size) * t.layer[0].out_size * t.tc.np0;
  return int64_t(t.tc.layer[li].rows) * t.tc.layer[li].np;
}

// Chunk ch of layer 1 (stack0 >= 2): layer 2's output rows [row0, row0 + rows) in `tiles` 16-row
// tiles, and map 0's rows [r0, r1) that they read (the chunk buffer's rows from r0 on).
struct FusedTc4Chunk {
  int row0, rows, tiles, r0, r1;
};
CONVNCF_HD FusedTc4Chunk fused_tc4_chunk(const FusedTower& t, int ch) {
  const int rows2 = t.tc.layer[1].rows, kk = t.layer[1].k * t.layer[1].k, per = t.tc4.chunk_tiles * 16;
  const int row0 = ch * per, rows = rows2 - row0 < per ? rows2 - row0 : per;
  return {row0, rows, (rows + 15) / 16, row0 * kk, (row0 + rows) * kk};
}

// The bounding box [x0, x1) x [y0, y1) of chunk ch's layer-1 positions, from the position of each
// map-0 row (posq, FusedTc4::posq_off).
struct FusedTc4Box {
  int x0, x1, y0, y1;
};
CONVNCF_HD FusedTc4Box fused_tc4_box(const FusedTower& t, const int* posq, int ch) {
  const int S = t.layer[0].out_size;
  const FusedTc4Chunk c = fused_tc4_chunk(t, ch);
  FusedTc4Box b{S, 0, S, 0};
  for (int r = c.r0; r < c.r1; ++r) {
    const int x = posq[r] / S, y = posq[r] % S;
    b.x0 = x < b.x0 ? x : b.x0;
    b.x1 = x + 1 > b.x1 ? x + 1 : b.x1;
    b.y0 = y < b.y0 ? y : b.y0;
    b.y1 = y + 1 > b.y1 ? y + 1 : b.y1;
  }
  return b;
}

// A chunk's part of map 0's gradient (the chunk buffer after layer 2's dX), read as g(x, y, c) at
// the positions it holds (has(x, y): map 0's row of (x, y) in [r0, r1)).
template <typename T>
struct FusedTc4Map0 {
  const T* p;
  const int* rowq;
  int S, ld, r0, r1;
  CONVNCF_HD bool has(int x, int y) const {
    const int r = rowq[x * S + y];
    return r >= r0 && r < r1;
  }
  CONVNCF_HD float operator()(int x, int y, int c) const {
    return fused_tc_get(p, int64_t(rowq[x * S + y] - r0) * ld + c);
  }
};

// A chunk's parts of layer 1's gradient, summed over its positions in the box in order (x, then
// y), 0 where the chunk holds none. The pair's dU[idx], dq[e] and db1[c] are the sums of these
// parts over its chunks in order, each from 0 (with one chunk: fused_dU_at, fused_dq_at and
// fused_db0_at's sums).
template <typename M>
CONVNCF_HD float fused_tc4_dU_part(const FusedTower& t, const M& g, const FusedTc4Box& b, const float* q, int idx) {
  const FusedLayer& l = t.layer[0];
  const int C = l.cout, k = l.k;
  const int c = idx % C, xs = idx / C, x = xs / k, s = xs % k;
  float acc = 0.0f;
  if (x < b.x0 || x >= b.x1) return acc;
  for (int y = b.y0; y < b.y1; ++y)
    if (g.has(x, y)) acc += g(x, y, c) * q[y * k + s];
  return acc;
}
template <typename M>
CONVNCF_HD float fused_tc4_dq_part(const FusedTower& t, const M& g, const FusedTc4Box& b, const float* U, int e) {
  const FusedLayer& l = t.layer[0];
  const int C = l.cout, k = l.k;
  const int y = e / k, s = e % k;
  float total = 0.0f;
  if (y < b.y0 || y >= b.y1) return total;
  for (int x = b.x0; x < b.x1; ++x) {
    if (!g.has(x, y)) continue;
    const float* u = U + (x * k + s) * C;
    float acc = 0.0f;
    for (int c = 0; c < C; ++c) acc += g(x, y, c) * u[c];
    total += acc;
  }
  return total;
}
template <typename M>
CONVNCF_HD float fused_tc4_db1_part(const M& g, const FusedTc4Box& b, int c) {
  float acc = 0.0f;
  for (int x = b.x0; x < b.x1; ++x)
    for (int y = b.y0; y < b.y1; ++y)
      if (g.has(x, y)) acc += g(x, y, c);
  return acc;
}

// Pairs [lo, hi) of block b when n pairs are split into n_blocks contiguous chunks.
struct PairRange {
  int64_t lo, hi;
};
CONVNCF_HD PairRange fused_block_pairs(int64_t n, int n_blocks, int b) {
  const int64_t chunk = (n + n_blocks - 1) / n_blocks;
  const int64_t lo = int64_t(b) * chunk < n ? int64_t(b) * chunk : n;
  const int64_t hi = lo + chunk < n ? lo + chunk : n;
  return {lo, hi};
}

// ---- Launchers (device pointers, asynchronous on `stream`) ----
// Each checks its arguments (Error(kExitSoftware) naming the function) and launches nothing for
// n_pairs == 0 (fused_tower_bwd still zero-fills the partial slices). variant 1: every element
// by one thread (the plain port of the twin); variant 2: on the tiled layers, four outputs per
// thread through the *4 functions (the same sums in the same order; layers that are not tiled
// run as in 1); variant 3 (towers with tc.ok: tf32 and bf16 only): layers 2..L as WMMA tile
// products on the tensor cores, maps in their rows (FusedTc), weight gradients summed in
// registers over a block's pairs; variant 4 (towers with tc4.ok): variant 3 with a block's pairs in
// groups whose small last maps run as one tile product, and layer 1 in chunks (FusedTc4). Variants
// 1 and 2 give the same bits; variants 3 and 4 sum in other orders (their own twins).

// The engine's variant: 4 where the tower allows it (tc4.ok), else 3 (tc.ok), else 2.
inline int fused_engine_variant(const FusedTower& t) { return t.tc4.ok ? 4 : t.tc.ok ? 3 : 2; }
inline size_t fused_variant_smem_bytes(const FusedTower& t, int variant) {
  return variant == 4 ? t.tc4.smem_bytes() : variant == 3 ? t.tc.smem_bytes() : t.smem_bytes();
}
inline size_t fused_engine_smem_bytes(const FusedTower& t) {
  return fused_variant_smem_bytes(t, fused_engine_variant(t));
}

// Blocks of the engine variant's kernel that fill the current device (SMs x resident blocks at
// its shared memory); the block count the engine passes to fused_tower_bwd and sizes `partial`
// with.
int fused_tower_grid(const FusedTower& t, bool backward);
// The device's opt-in shared memory per block (bytes), for make_fused_tower.
size_t fused_max_smem_bytes();

// packed (packed_size()) from net (n_params).
void fused_pack(const FusedTower& t, const float* net, float* packed, cudaStream_t stream);

// score[k] of pair (user[k], item[k]); dropout on pair index k (training: 2t + side).
void fused_tower_fwd(const FusedTower& t, int64_t n_pairs, int n_blocks,
                     const int32_t* pair_user, const int32_t* pair_item,
                     const float* P, const float* Q, const float* packed, DropoutArgs drop,
                     float* score,  // (n_pairs,)
                     cudaStream_t stream, int variant);

// Gradients of sum_k dscore[k] * score[k]: dp, dq (n_pairs, E) overwritten (0 where dscore is
// 0: such pairs are skipped), partial (n_blocks, n_params) overwritten with each block's packed
// weight-gradient sums.
void fused_tower_bwd(const FusedTower& t, int64_t n_pairs, int n_blocks,
                     const int32_t* pair_user, const int32_t* pair_item,
                     const float* P, const float* Q, const float* packed, DropoutArgs drop,
                     const float* dscore,  // (n_pairs,)
                     float* dp, float* dq, float* partial, cudaStream_t stream, int variant);

// dnet[i] = sum over blocks b in order of partial[b][fused_packed_index(i)] (overwritten).
void fused_reduce_grads(const FusedTower& t, int n_blocks, const float* partial, float* dnet,
                        cudaStream_t stream);

// CPU twins: same arguments, host pointers (variants 1 and 2 have one twin).
void fused_pack_cpu(const FusedTower& t, const float* net, float* packed);
void fused_tower_fwd_cpu(const FusedTower& t, int64_t n_pairs, int n_blocks,
                         const int32_t* pair_user, const int32_t* pair_item, const float* P,
                         const float* Q, const float* packed, DropoutArgs drop, float* score,
                         int variant = 1);
void fused_tower_bwd_cpu(const FusedTower& t, int64_t n_pairs, int n_blocks,
                         const int32_t* pair_user, const int32_t* pair_item, const float* P,
                         const float* Q, const float* packed, DropoutArgs drop,
                         const float* dscore, float* dp, float* dq, float* partial, int variant = 1);
void fused_reduce_grads_cpu(const FusedTower& t, int n_blocks, const float* partial, float* dnet);

// Argument checks shared by each launcher, its twin and the emulated launcher (defined in
// kernels/fused_tower_cpu.cpp); they throw Error(kExitSoftware) naming `fn`. check_fused_args: a
// tower made by make_fused_tower, n_pairs >= 0, n_blocks >= 1, and ptrs not null when n_pairs > 0.
// fused_tower_bwd's: those on its eight arrays, and partial never null (it is zero-filled even
// for no pairs).
void check_fused_args(const char* fn, const FusedTower& t, int64_t n_pairs, int n_blocks,
                      std::initializer_list<const void*> ptrs);
// 1 or 2, 3 where t.tc.ok, 4 where t.tc4.ok.
void check_fused_variant(const char* fn, const FusedTower& t, int variant);
void check_fused_tower_bwd_args(const char* fn, const FusedTower& t, int64_t n_pairs, int n_blocks,
                                const int32_t* pair_user, const int32_t* pair_item, const float* P,
                                const float* Q, const float* packed, const float* dscore,
                                const float* dp, const float* dq, const float* partial);

}  // namespace convncf
