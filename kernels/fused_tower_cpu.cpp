// fused_tower_cpu.cpp: the fused tower's layout (make_fused_tower), its argument checks and the
// CPU twins of kernels/fused_tower.cu (see fused_tower.hpp). Each twin loops over blocks, the
// block's pairs and each phase's elements exactly as the kernel does, calling the same element
// functions, so it reproduces the kernel's sums in the kernel's order.
#include <algorithm>
#include <climits>
#include <cstring>
#include <string>
#include <vector>

#include "convncf/errors.hpp"
#include "convncf/fused_tower.hpp"
#include "convncf/model.hpp"

namespace convncf {

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32: return "fp32";
    case Precision::TF32: return "tf32";
    case Precision::BF16: return "bf16";
  }
  return "?";
}

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::FP32;
  if (name == "tf32") return Precision::TF32;
  if (name == "bf16") return Precision::BF16;
  throw_usage("precision must be fp32, tf32 or bf16, got '" + name + "'");
}

namespace {

int round_up(int64_t n, int m) { return int(std::min<int64_t>((n + m - 1) / m * m, INT_MAX / 8)); }

// Variant 3's layout (FusedTc) after p, q, U and dU; t.tc.ok stays false where it does not apply.
void make_tc_layout(FusedTower& t, size_t max_smem_bytes) {
  FusedTc& tc = t.tc;
  tc = FusedTc{};
  if (t.precision == Precision::FP32 || t.L < 2) return;
  const int64_t elem = t.precision == Precision::BF16 ? 2 : 4;  // bytes of an operand
  int64_t off = round_up(int64_t(t.du_off) + t.u_size(), 8);
  auto next = [&off](int64_t floats) {  // each array at a multiple of 8 floats (32 bytes)
    const int64_t at = off;
    off = std::min<int64_t>(round_up(off + floats, 8), INT_MAX / 8);
    return int(at);
  };
  auto operand_floats = [elem](int64_t n) { return (n * elem + 3) / 4; };
  tc.np0 = round_up(t.layer[0].cout, 16);
  for (int li = 1; li < t.L; ++li) {
    const FusedLayer& l = t.layer[li];
    FusedTcLayer& c = tc.layer[li];
    c.rows = l.out_size * l.out_size;
    c.mrows = round_up(c.rows, 16);
    c.np = round_up(l.cout, 16);
    c.kp = l.k * l.k * (li == 1 ? tc.np0 : tc.layer[li - 1].np);
    c.tile0 = tc.tiles;
    tc.tiles += c.kp / 16 * (c.np / 16);
  }
  // map li: the output of layer li as written (rows x np) and as the next layer's input (mrows x kp)
  for (int li = 0; li + 1 < t.L; ++li) {
    const FusedTcLayer& n = tc.layer[li + 1];
    const int64_t as_out = li == 0 ? 0 : int64_t(tc.layer[li].mrows) * tc.layer[li].np;
    tc.layer[li].map_off = next(operand_floats(std::max<int64_t>(as_out, int64_t(n.mrows) * n.kp)));
  }
  const FusedLayer& last = t.layer[t.L - 1];
  tc.last_off = next(int64_t(last.out_size) * last.out_size * last.cout);
  tc.glast_off = next(operand_floats(int64_t(tc.layer[t.L - 1].mrows) * tc.layer[t.L - 1].np));
  tc.stage_off = next(int64_t(kFusedWarps) * 256);
  tc.rowq_off = next(int64_t(t.layer[0].out_size) * t.layer[0].out_size);
  tc.h_off = next(last.cout);
  tc.smem_floats = int(off);
  // the tensor-core weights after variant 2's packed halves
  int64_t w = (t.wkt_base + t.n_params + 7) / 8 * 8;
  tc.w_base = w;
  for (int li = 1; li < t.L; ++li) {
    FusedTcLayer& c = tc.layer[li];
    c.w_off = w;
    w = (w + operand_floats(int64_t(c.kp) * c.np) + 7) / 8 * 8;
  }
  tc.w_end = w;
  tc.packed = tc.tiles <= kFusedWarps * kFusedTcSlots;
  tc.ok = tc.packed && off < INT_MAX / 8 && (max_smem_bytes == 0 || tc.smem_bytes() <= max_smem_bytes);
}

// Blocks of variant 4 that an H100's / H200's SM holds by shared memory (228 KiB, 1 KiB of it per
// block the system's), counted up to 4 (the forward kernel's registers allow no more: about 64 per
// thread, bench/NOTES.md): the automatic chunk size is the largest that reaches the most.
int blocks_per_sm(size_t smem_bytes) {
  return int(std::min<size_t>(4, (228 * 1024) / (smem_bytes + 1024)));
}

// Variant 4's layout (FusedTc4) with stack0 s, chunk_tiles P (s >= 2), after p, q, U and dU.
FusedTc4 tc4_layout(const FusedTower& t, int s, int P) {
  const FusedTc& tc = t.tc;
  FusedTc4 v;
  const int L = t.L, S1 = t.layer[0].out_size;
  const int64_t elem = t.precision == Precision::BF16 ? 2 : 4;
  auto operand_floats = [elem](int64_t n) { return (n * elem + 3) / 4; };
  auto r16 = [](int64_t n) { return (n + 15) / 16 * 16; };
  v.stack0 = s;
  if (s < L) {
    int g = 16;
    const int last_rows = tc.layer[L - 1].rows;
    while (g > 1 && (int64_t(last_rows) * (g / 2)) % 16 == 0) g /= 2;  // 16 / gcd(16, rows)
    v.group = g;
  }
  const int64_t G = v.group;
  if (s >= 2) {
    v.chunk_tiles = P;
    v.chunks = int((tc.layer[1].rows + 16 * P - 1) / (16 * P));
  }
  int64_t off = round_up(int64_t(t.du_off) + t.u_size(), 8);
  auto next = [&off](int64_t floats) {
    const int64_t at = off;
    off = std::min<int64_t>(round_up(off + floats, 8), INT_MAX / 8);
    return int(at);
  };
  // map 0: the chunk buffer, or the group's map 0 (as layer 1's output and as layer 2's input)
  const FusedTcLayer& l2 = tc.layer[1];
  v.map_off[0] = next(operand_floats(s >= 2 ? int64_t(P) * 16 * l2.kp
                                            : std::max<int64_t>(G * fused_tc4_slot(t, 0), r16(G * l2.rows) * l2.kp)));
  for (int li = 1; li + 1 < L; ++li) {
    const FusedTcLayer& c = tc.layer[li];
    const FusedTcLayer& n = tc.layer[li + 1];
    const int64_t g = li >= s - 1 ? G : 1;  // stacked or one pair's
    v.map_off[li] = next(operand_floats(std::max<int64_t>(r16(g * c.rows) * c.np, r16(g * n.rows) * n.kp)));
  }
  const FusedLayer& last = t.layer[L - 1];
  const FusedTcLayer& cl = tc.layer[L - 1];
  v.last_off = next(G * cl.rows * last.cout);
  v.glast_off = next(operand_floats(r16(G * cl.rows) * cl.np));
  v.stage_off = next(int64_t(kFusedWarps) * 256);
  v.rowq_off = next(int64_t(S1) * S1);
  v.posq_off = next(int64_t(S1) * S1);
  v.box_off = next(4 * int64_t(v.chunks));
  v.slot_off = next(G);
  v.h_off = next(G * last.cout);
  v.dq_off = next(t.E);
  v.db1_off = next(t.layer[0].cout);
  v.smem_floats = int(off);
  v.ok = off < INT_MAX / 8;
  return v;
}

// Variant 4's layout where it applies (FusedTc::packed and its shared memory fits), the
// automatic choice (FusedTc4) unless `choice` says otherwise.
void make_tc4_layout(FusedTower& t, size_t max_smem_bytes, const FusedTc4Choice& choice) {
  t.tc4 = FusedTc4{};
  const int L = t.L;
  if (choice.stack0 != 0 || choice.chunk_tiles != 0) {
    if (!t.tc.packed) throw_internal("make_fused_tower: a variant 4 layout for a tower without tensor-core weights");
    const bool s_ok = choice.stack0 == 1 || choice.stack0 == L ||
                      (choice.stack0 == 2 && L > 2 && t.tc.layer[1].rows % 16 == 0);
    if (choice.stack0 != 0 && !s_ok)
      throw_internal("make_fused_tower: variant 4 cannot stack from layer index " + std::to_string(choice.stack0));
    if (choice.chunk_tiles < 0) throw_internal("make_fused_tower: negative chunk_tiles");
  }
  if (!t.tc.packed) return;
  const FusedTc& tc = t.tc;
  auto fits = [&](const FusedTc4& v) { return v.ok && (max_smem_bytes == 0 || v.smem_bytes() <= max_smem_bytes); };
  const int tiles2 = (tc.layer[1].rows + 15) / 16;
  // chunk_tiles: the choice's, or fill the warps and halve while above two blocks per SM
  auto with_chunks = [&](int s) {
    if (s < 2) return tc4_layout(t, s, 0);
    if (choice.chunk_tiles > 0) return tc4_layout(t, s, std::min(choice.chunk_tiles, tiles2));
    FusedTc4 best = tc4_layout(t, s, std::max(1, std::min(tiles2, kFusedWarps / (tc.layer[1].np / 16))));
    for (int P = best.chunk_tiles / 2; P >= 1; P /= 2) {
      const FusedTc4 v = tc4_layout(t, s, P);
      if (blocks_per_sm(v.smem_bytes()) > blocks_per_sm(best.smem_bytes())) best = v;
    }
    return best;
  };
  if (choice.stack0 != 0) {
    t.tc4 = with_chunks(choice.stack0);
  } else {
    int s = L;
    for (int li = 1; li < L; ++li)
      if (tc.layer[li].rows % 16 != 0) {
        s = li;
        break;
      }
    if (s > 2) s = L;  // the pair's own maps would not survive the group's forward
    t.tc4 = with_chunks(s);
    if (s < L && !fits(t.tc4)) t.tc4 = with_chunks(L);
  }
  t.tc4.ok = fits(t.tc4);
}

}  // namespace

FusedTower make_fused_tower(const TowerSpec& tower, Precision precision, size_t max_smem_bytes,
                            const FusedTc4Choice& choice) {
  const int L = int(tower.layers.size());
  if (L < 1 || L > kFusedMaxLayers)
    throw_usage("engine: fused takes towers of 1 to " + std::to_string(kFusedMaxLayers) +
                " conv layers, this one has " + std::to_string(L) + "; use engine: cudnn");
  FusedTower t;
  t.E = tower.E;
  t.L = L;
  t.precision = precision;
  t.out_w_off = tower.out_w_offset;
  t.out_b_off = tower.out_b_offset;
  t.n_params = tower.n_params;
  t.wkt_base = (tower.n_params + 3) / 4 * 4;
  const ConvLayer& first = tower.layers[0];
  int64_t off = 0;
  auto next = [&off](int64_t size) {  // each array at a multiple of 4 floats (16 bytes)
    const int64_t at = off;
    off = std::min<int64_t>((off + size + 3) / 4 * 4, INT_MAX);
    return int(at);
  };
  t.p_off = next(t.E);
  t.q_off = next(t.E);
  const int64_t u_size = int64_t(first.out_size) * first.k * first.cout;
  t.u_off = next(u_size);
  t.du_off = next(u_size);
  for (int l = 0; l < L; ++l) {
    const ConvLayer& c = tower.layers[size_t(l)];
    FusedLayer& f = t.layer[l];
    f.cin = c.cin;
    f.cout = c.cout;
    f.k = c.k;
    f.in_size = c.in_size;
    f.out_size = c.out_size;
    f.w_off = c.w_offset;
    f.b_off = c.b_offset;
    f.act_off = next(int64_t(c.out_size) * c.out_size * c.cout);
    f.tiled = l > 0 && c.cin % 4 == 0 && c.cout % 4 == 0 && c.w_offset % 4 == 0;
  }
  t.h_off = next(tower.last_channels());
  const int64_t bytes = off * int64_t(sizeof(float));
  if (off > INT_MAX / 4 || (max_smem_bytes > 0 && uint64_t(bytes) > max_smem_bytes))
    throw_usage("engine: fused keeps a pair's feature maps in shared memory: this tower needs " +
                std::to_string((bytes + 1023) / 1024) + " KiB per block, the device allows " +
                std::to_string(max_smem_bytes / 1024) + " KiB; use engine: cudnn");
  t.smem_floats = int(off);
  make_tc_layout(t, max_smem_bytes);
  make_tc4_layout(t, max_smem_bytes, choice);
  return t;
}

void check_fused_args(const char* fn, const FusedTower& t, int64_t n_pairs, int n_blocks,
                      std::initializer_list<const void*> ptrs) {
  auto fail = [&](const std::string& m) { throw_internal(std::string(fn) + ": " + m); };
  if (t.L < 1 || t.L > kFusedMaxLayers || t.E <= 0 || t.smem_floats <= 0 || t.n_params <= 0 ||
      t.wkt_base < t.n_params || t.wkt_base % 4 != 0)
    fail("tower not made by make_fused_tower (L " + std::to_string(t.L) + ", E " + std::to_string(t.E) + ")");
  if (n_pairs < 0) fail("negative pair count " + std::to_string(n_pairs));
  if (n_blocks < 1) fail("block count must be at least 1, got " + std::to_string(n_blocks));
  if (n_pairs == 0) return;
  int k = 0;
  for (const void* p : ptrs) {
    if (!p) fail("pointer argument " + std::to_string(k) + " is null");
    ++k;
  }
}

void check_fused_variant(const char* fn, const FusedTower& t, int variant) {
  if (variant < 1 || variant > 4)
    throw_internal(std::string(fn) + ": variant must be 1, 2, 3 or 4, got " + std::to_string(variant));
  if (variant == 4 && !t.tc4.ok)
    throw_internal(std::string(fn) + ": variant 4 (tensor cores, pairs in groups) needs a tf32 or bf16 tower of at "
                   "least two layers whose weight-gradient tiles and variant-4 shared memory fit (FusedTc4::ok); this "
                   "one is " + precision_name(t.precision) + " with " + std::to_string(t.L) + " layers");
  if (variant == 3 && !t.tc.ok)
    throw_internal(std::string(fn) + ": variant 3 (tensor cores) needs a tf32 or bf16 tower of at least two layers "
                   "whose weight-gradient tiles and shared memory fit (FusedTc::ok); this one is " +
                   precision_name(t.precision) + " with " + std::to_string(t.L) + " layers");
}

void check_fused_tower_bwd_args(const char* fn, const FusedTower& t, int64_t n_pairs, int n_blocks,
                                const int32_t* pair_user, const int32_t* pair_item, const float* P,
                                const float* Q, const float* packed, const float* dscore,
                                const float* dp, const float* dq, const float* partial) {
  check_fused_args(fn, t, n_pairs, n_blocks, {pair_user, pair_item, P, Q, packed, dscore, dp, dq});
  if (!partial) throw_internal(std::string(fn) + ": partial is null");
}

void fused_pack_cpu(const FusedTower& t, const float* net, float* packed) {
  check_fused_args("fused_pack_cpu", t, 1, 1, {net, packed});
  for (int64_t i = 0; i < t.packed_size(); ++i) packed[i] = fused_pack_value(t, net, i);
}

namespace {

// A pair's rows of P and Q, and the user's side U when the user changes (the kernels' first
// phases).
void stage_pair(const FusedTower& t, const float* P, const float* Q, const float* packed, int32_t user,
                int32_t item, int32_t& cur_user, float* sm) {
  const int E = t.E;
  const bool new_user = user != cur_user;
  if (new_user)
    for (int e = 0; e < E; ++e) sm[t.p_off + e] = P[int64_t(user) * E + e];
  for (int e = 0; e < E; ++e) sm[t.q_off + e] = Q[int64_t(item) * E + e];
  if (new_user) {
    for (int i = 0; i < t.u_size(); ++i) sm[t.u_off + i] = fused_user_side(t, packed, sm + t.p_off, i);
    cur_user = user;
  }
}

// One pair's forward into the block's shared memory `sm` (the kernel's fwd_pair, phase by phase).
void forward_pair(const FusedTower& t, const float* P, const float* Q, const float* packed,
                  int32_t user, int32_t item, int32_t& cur_user, float* sm) {
  stage_pair(t, P, Q, packed, user, item, cur_user, sm);
  const FusedLayer& l0 = t.layer[0];
  for (int i = 0; i < l0.out_size * l0.out_size * l0.cout; ++i)
    sm[l0.act_off + i] = fused_layer1(t, packed, sm + t.u_off, sm + t.q_off, i);
  for (int li = 1; li < t.L; ++li) {
    const FusedLayer& l = t.layer[li];
    for (int i = 0; i < l.out_size * l.out_size * l.cout; ++i)
      sm[l.act_off + i] = fused_conv(t, li, packed, sm + t.layer[li - 1].act_off, i);
  }
  const FusedLayer& last = t.layer[t.L - 1];
  for (int c = 0; c < last.cout; ++c) sm[t.h_off + c] = fused_head_sum(t, sm + last.act_off, c);
}

// A pair with dscore 0: its dp and dq rows are zeroed and it is skipped (the kernels' skip_pair).
bool skip_pair(float ds, int64_t k, int E, float* dp, float* dq) {
  if (ds != 0.0f) return false;
  std::fill(dp + k * E, dp + (k + 1) * E, 0.0f);
  std::fill(dq + k * E, dq + (k + 1) * E, 0.0f);
  return true;
}

// The output layer's backward (dw_out, db_out into the slice; h becomes dh), shared by both twins.
void head_backward(const FusedTower& t, float ds, const DropoutArgs& drop, int64_t k, const float* packed, float* h,
                   float* slice) {
  const int C = t.layer[t.L - 1].cout;
  for (int c = 0; c < C; ++c) {
    slice[t.out_w_off + c] += fused_dw_out(ds, h[c], drop, k, c);
    h[c] = fused_dh(t, packed, ds, drop, k, c);
  }
  slice[t.out_b_off] += ds;
}

// Layer 1's backward through U from its masked gradient g (read as g(x, y, c)): dq, the bias and
// dW1 into the slice, dp. dU is written at du_off.
template <typename GAt>
void layer1_backward(const FusedTower& t, const GAt& g, const float* packed, float* sm, int64_t k, float* dp,
                     float* dq, float* slice) {
  const FusedLayer& l0 = t.layer[0];
  const int E = t.E;
  float* dU = sm + t.du_off;
  for (int i = 0; i < t.u_size(); ++i) dU[i] = fused_dU_at(t, g, sm + t.q_off, i);
  for (int e = 0; e < E; ++e) dq[k * E + e] = fused_dq_at(t, g, sm + t.u_off, e);
  for (int c = 0; c < l0.cout; ++c) slice[l0.b_off + c] += fused_db0_at(t, g, c);
  for (int w = 0; w < l0.k * l0.k * l0.cout; ++w) slice[l0.w_off + w] += fused_dW1(t, sm + t.p_off, dU, w);
  for (int e = 0; e < E; ++e) dp[k * E + e] = fused_dp(t, packed, dU, e);
}

// ---- Variant 3's twin: the same layout (FusedTc), the tile products summed per element over
// the padded reduction index in order, as the emulated mma_sync sums them. T: the operand format.
template <typename T>
T* tc_map(float* sm, int off) {
  return reinterpret_cast<T*>(sm + off);
}
template <typename T>
const T* tc_weights(const FusedTower& t, int li, const float* packed) {
  return reinterpret_cast<const T*>(packed + t.tc.layer[li].w_off);
}

std::vector<int> tc_rows(const FusedTower& t) {
  const int S = t.layer[0].out_size;
  std::vector<int> rowq(size_t(S) * size_t(S));
  for (int x = 0; x < S; ++x)
    for (int y = 0; y < S; ++y) rowq[size_t(x * S + y)] = fused_tc_row(t, x, y);
  return rowq;
}

// One pair's forward (the kernel's tc_fwd_pair): map 0 in its rows, then each layer's product.
template <typename T>
void forward_pair_tc(const FusedTower& t, const float* P, const float* Q, const float* packed, const int* rowq,
                     int32_t user, int32_t item, int32_t& cur_user, float* sm) {
  const FusedTc& tc = t.tc;
  stage_pair(t, P, Q, packed, user, item, cur_user, sm);
  const FusedLayer& l0 = t.layer[0];
  T* m0 = tc_map<T>(sm, tc.layer[0].map_off);
  for (int i = 0; i < l0.out_size * l0.out_size * l0.cout; ++i)
    fused_tc_put(m0, int64_t(rowq[i / l0.cout]) * tc.np0 + i % l0.cout,
                 fused_layer1(t, packed, sm + t.u_off, sm + t.q_off, i), true);
  float* last = sm + tc.last_off;
  for (int li = 1; li < t.L; ++li) {
    const FusedTcLayer& c = tc.layer[li];
    const T* A = tc_map<T>(sm, tc.layer[li - 1].map_off);
    const T* W = tc_weights<T>(t, li, packed);
    T* out = tc_map<T>(sm, c.map_off);
    const int cout = t.layer[li].cout;
    for (int r = 0; r < c.rows; ++r)
      for (int co = 0; co < cout; ++co) {
        float acc = 0.0f;
        for (int kk = 0; kk < c.kp; ++kk)
          acc += fused_tc_get(A, int64_t(r) * c.kp + kk) * fused_tc_get(W, int64_t(kk) * c.np + co);
        const float v = fused_tc_out(t, li, packed, acc, co);
        if (li + 1 < t.L) {
          fused_tc_put(out, int64_t(r) * c.np + co, v, true);
        } else {
          last[r * cout + co] = v;
        }
      }
  }
  const FusedLayer& lastl = t.layer[t.L - 1];
  for (int co = 0; co < lastl.cout; ++co) sm[tc.h_off + co] = fused_head_sum(t, last, co);
}

// The register tiles (dw[li]: layer li's weight gradient, kp x np) into the block's slice, at the
// end of a backward of variant 3 or 4 (the kernels' store_weight_tiles).
void store_weight_tiles(const FusedTower& t, const std::vector<std::vector<float>>& dw, float* slice) {
  for (int j = 0; j < t.tc.tiles; ++j) {
    const FusedTcTile tile = fused_tc_tile(t, j);
    const FusedTcLayer& c = t.tc.layer[tile.li];
    for (int e = 0; e < 256; ++e) {
      const int kk = tile.kt * 16 + e / 16, co = tile.nt * 16 + e % 16;
      const int64_t idx = fused_tc_weight_index(t, tile.li, kk, co);
      if (idx >= 0) slice[idx] = dw[size_t(tile.li)][size_t(kk * c.np + co)];
    }
  }
}

template <typename T>
void fwd_tc(const FusedTower& t, int64_t n_pairs, int n_blocks, const int32_t* pair_user, const int32_t* pair_item,
            const float* P, const float* Q, const float* packed, DropoutArgs drop, float* score) {
  std::vector<float> buf(size_t(t.tc.smem_floats));
  float* sm = buf.data();
  const std::vector<int> rowq = tc_rows(t);
  for (int b = 0; b < n_blocks; ++b) {
    std::memset(sm, 0, buf.size() * sizeof(float));  // the padding of every map is 0
    const PairRange r = fused_block_pairs(n_pairs, n_blocks, b);
    int32_t cur_user = -1;
    for (int64_t k = r.lo; k < r.hi; ++k) {
      forward_pair_tc<T>(t, P, Q, packed, rowq.data(), pair_user[k], pair_item[k], cur_user, sm);
      score[k] = fused_score(t, packed, sm + t.tc.h_off, drop, k);
    }
  }
}

template <typename T>
void bwd_tc(const FusedTower& t, int64_t n_pairs, int n_blocks, const int32_t* pair_user, const int32_t* pair_item,
            const float* P, const float* Q, const float* packed, DropoutArgs drop, const float* dscore, float* dp,
            float* dq, float* partial) {
  const FusedTc& tc = t.tc;
  const int E = t.E, L = t.L;
  std::vector<float> buf(size_t(tc.smem_floats));
  float* sm = buf.data();
  const std::vector<int> rowq = tc_rows(t);
  std::vector<std::vector<float>> dw(static_cast<size_t>(L));  // the register tiles: layer li's W (kp x np)
  for (int b = 0; b < n_blocks; ++b) {
    float* slice = partial + int64_t(b) * t.n_params;
    std::fill(slice, slice + t.n_params, 0.0f);
    std::memset(sm, 0, buf.size() * sizeof(float));
    for (int li = 1; li < L; ++li) dw[size_t(li)].assign(size_t(tc.layer[li].kp) * size_t(tc.layer[li].np), 0.0f);
    const PairRange r = fused_block_pairs(n_pairs, n_blocks, b);
    int32_t cur_user = -1;
    for (int64_t k = r.lo; k < r.hi; ++k) {
      const float ds = dscore[k];
      if (skip_pair(ds, k, E, dp, dq)) continue;
      forward_pair_tc<T>(t, P, Q, packed, rowq.data(), pair_user[k], pair_item[k], cur_user, sm);
      float* h = sm + tc.h_off;
      head_backward(t, ds, drop, k, packed, h, slice);
      // the last map's masked gradient
      const FusedTcLayer& cl = tc.layer[L - 1];
      T* glast = tc_map<T>(sm, tc.glast_off);
      for (int row = 0; row < cl.rows; ++row)
        for (int co = 0; co < t.layer[L - 1].cout; ++co)
          fused_tc_put(glast, int64_t(row) * cl.np + co, fused_tc_glast(t, sm + tc.last_off, h, row, co), true);
      // layers L .. 2: dW += X^T G (over the padded rows, in order), db, then X becomes its gradient
      for (int li = L - 1; li >= 1; --li) {
        const FusedTcLayer& c = tc.layer[li];
        const FusedLayer& l = t.layer[li];
        T* X = tc_map<T>(sm, tc.layer[li - 1].map_off);
        const T* G = li == L - 1 ? glast : tc_map<T>(sm, c.map_off);
        const T* W = tc_weights<T>(t, li, packed);
        float* d = dw[size_t(li)].data();
        for (int kk = 0; kk < c.kp; ++kk)
          for (int co = 0; co < c.np; ++co) {
            float acc = d[kk * c.np + co];
            for (int row = 0; row < c.mrows; ++row)
              acc += fused_tc_get(X, int64_t(row) * c.kp + kk) * fused_tc_get(G, int64_t(row) * c.np + co);
            d[kk * c.np + co] = acc;
          }
        for (int co = 0; co < l.cout; ++co) slice[l.b_off + co] += fused_tc_db(t, li, G, co);
        const int npp = li == 1 ? tc.np0 : tc.layer[li - 1].np;
        for (int row = 0; row < c.rows; ++row)
          for (int kk = 0; kk < c.kp; ++kk) {
            if (kk % npp >= l.cin) continue;  // padding stays 0
            float acc = 0.0f;
            for (int co = 0; co < c.np; ++co)
              acc += fused_tc_get(G, int64_t(row) * c.np + co) * fused_tc_get(W, int64_t(kk) * c.np + co);
            const int64_t idx = int64_t(row) * c.kp + kk;
            fused_tc_put(X, idx, fused_tc_get(X, idx) > 0.0f ? acc : 0.0f, li > 1);
          }
      }
      const FusedTcMap0<T> g0{tc_map<T>(sm, tc.layer[0].map_off), rowq.data(), t.layer[0].out_size, tc.np0};
      layer1_backward(t, g0, packed, sm, k, dp, dq, slice);
    }
    store_weight_tiles(t, dw, slice);
  }
}

// ---- Variant 4's twin: variant 3's tile products (each output element summed in the same order)
// over groups of pairs and layer 1's chunks, phase by phase as the kernels run them
// (kernels/fused_tower.cu: tc4_*, fused_tc4_*_kernel). T: the operand format.
int* tc4_ints(float* sm, int off) { return reinterpret_cast<int*>(sm + off); }

// The maps zeroed, the row tables, the chunks' boxes (the kernels' tc4_init).
void tc4_init(const FusedTower& t, float* sm) {
  const FusedTc4& v = t.tc4;
  const int S = t.layer[0].out_size;
  std::fill(sm + v.map_off[0], sm + v.stage_off, 0.0f);
  int* rowq = tc4_ints(sm, v.rowq_off);
  int* posq = tc4_ints(sm, v.posq_off);
  for (int i = 0; i < S * S; ++i) {
    const int r = fused_tc_row(t, i / S, i % S);
    rowq[i] = r;
    posq[r] = i;
  }
  int* box = tc4_ints(sm, v.box_off);
  for (int ch = 0; ch < v.chunks; ++ch) {
    const FusedTc4Box b = fused_tc4_box(t, posq, ch);
    box[4 * ch] = b.x0;
    box[4 * ch + 1] = b.x1;
    box[4 * ch + 2] = b.y0;
    box[4 * ch + 3] = b.y1;
  }
}

FusedTc4Box tc4_box(const FusedTower& t, const float* sm, int ch) {
  const int* b = reinterpret_cast<const int*>(sm + t.tc4.box_off) + 4 * ch;
  return {b[0], b[1], b[2], b[3]};
}

// Layer li's forward product over nrows rows of A into out (or, the last layer, last).
template <typename T>
void tc4_layer_fwd(const FusedTower& t, int li, const float* packed, const T* A, int nrows, T* out, float* last) {
  const FusedTcLayer& c = t.tc.layer[li];
  const T* W = tc_weights<T>(t, li, packed);
  const int cout = t.layer[li].cout;
  const bool is_last = li + 1 == t.L;
  for (int r = 0; r < nrows; ++r)
    for (int co = 0; co < cout; ++co) {
      float acc = 0.0f;
      for (int kk = 0; kk < c.kp; ++kk)
        acc += fused_tc_get(A, int64_t(r) * c.kp + kk) * fused_tc_get(W, int64_t(kk) * c.np + co);
      const float o = fused_tc_out(t, li, packed, acc, co);
      if (is_last) {
        last[r * cout + co] = o;
      } else {
        fused_tc_put(out, int64_t(r) * c.np + co, o, true);
      }
    }
}

// d (layer li's W, kp x np) += X^T G over nrows rows, padded to 16.
template <typename T>
void tc4_layer_dW(const FusedTower& t, int li, const T* X, const T* G, int nrows, float* d) {
  const FusedTcLayer& c = t.tc.layer[li];
  const int mrows = (nrows + 15) / 16 * 16;
  for (int kk = 0; kk < c.kp; ++kk)
    for (int co = 0; co < c.np; ++co) {
      float acc = d[kk * c.np + co];
      for (int row = 0; row < mrows; ++row)
        acc += fused_tc_get(X, int64_t(row) * c.kp + kk) * fused_tc_get(G, int64_t(row) * c.np + co);
      d[kk * c.np + co] = acc;
    }
}

// X (nrows rows of kp) becomes its masked gradient G W^T, in place.
template <typename T>
void tc4_layer_dX(const FusedTower& t, int li, const float* packed, const T* G, int nrows, T* X) {
  const FusedTcLayer& c = t.tc.layer[li];
  const FusedLayer& l = t.layer[li];
  const T* W = tc_weights<T>(t, li, packed);
  const int npp = li == 1 ? t.tc.np0 : t.tc.layer[li - 1].np;
  for (int row = 0; row < nrows; ++row)
    for (int kk = 0; kk < c.kp; ++kk) {
      if (kk % npp >= l.cin) continue;  // the padding stays 0
      float acc = 0.0f;
      for (int co = 0; co < c.np; ++co)
        acc += fused_tc_get(G, int64_t(row) * c.np + co) * fused_tc_get(W, int64_t(kk) * c.np + co);
      const int64_t idx = int64_t(row) * c.kp + kk;
      fused_tc_put(X, idx, fused_tc_get(X, idx) > 0.0f ? acc : 0.0f, li > 1);
    }
}

// Layer 1 at chunk c's rows of map 0 into the chunk buffer (zeros past the chunk's rows).
template <typename T>
void tc4_layer1_chunk(const FusedTower& t, const float* packed, const FusedTc4Chunk& c, float* sm) {
  T* buf = tc_map<T>(sm, t.tc4.map_off[0]);
  const int* posq = tc4_ints(sm, t.tc4.posq_off);
  const int C = t.layer[0].cout, kk = t.layer[1].k * t.layer[1].k, n = c.tiles * 16 * kk * C;
  for (int i = 0; i < n; ++i) {
    const int r = c.r0 + i / C, ch = i % C;
    const float v = r < c.r1 ? fused_layer1(t, packed, sm + t.u_off, sm + t.q_off, posq[r] * C + ch) : 0.0f;
    fused_tc_put(buf, int64_t(i / C) * t.tc.np0 + ch, v, true);
  }
}

// The next group from kb: pairs with dscore 0 (dscore not null) zero their rows and take no slot.
int64_t tc4_form_group(const FusedTower& t, const float* dscore, int64_t kb, int64_t hi, float* dp, float* dq,
                       float* sm, int& n) {
  int* slot = tc4_ints(sm, t.tc4.slot_off);
  n = 0;
  int64_t k = kb;
  for (; k < hi && n < t.tc4.group; ++k) {
    if (dscore && skip_pair(dscore[k], k, t.E, dp, dq)) continue;
    slot[n++] = int(k - kb);
  }
  return k;
}

// A group of n < group pairs: the stacked maps' and the last gradient's unused slots zeroed.
template <typename T>
void tc4_zero_tails(const FusedTower& t, int n, float* sm) {
  const FusedTc4& v = t.tc4;
  for (int li = v.stack0 - 1; li < t.L; ++li) {
    T* m = tc_map<T>(sm, li + 1 == t.L ? v.glast_off : v.map_off[li]);
    const int64_t slot_n = fused_tc4_slot(t, li);
    for (int64_t i = n * slot_n; i < v.group * slot_n; ++i) fused_tc_put(m, i, 0.0f, false);
  }
}

// A group's forward (the kernels' tc4_group_fwd): each pair's own layers (layer 1 in chunks into
// layer 2, or into the group's map 0), the stacked layers, the head sums of each pair.
template <typename T>
void tc4_group_fwd(const FusedTower& t, const float* P, const float* Q, const float* packed,
                   const int32_t* pair_user, const int32_t* pair_item, int64_t kb, int n, int32_t& cur_user,
                   float* sm) {
  const FusedTc4& v = t.tc4;
  const FusedTc& tc = t.tc;
  const int L = t.L, s = v.stack0;
  const int* slot = tc4_ints(sm, v.slot_off);
  const int* rowq = tc4_ints(sm, v.rowq_off);
  float* last = sm + v.last_off;
  if (n < v.group) tc4_zero_tails<T>(t, n, sm);
  for (int g = 0; g < n; ++g) {
    const int64_t k = kb + slot[g];
    stage_pair(t, P, Q, packed, pair_user[k], pair_item[k], cur_user, sm);
    if (s == 1) {
      T* m0 = tc_map<T>(sm, v.map_off[0]) + g * fused_tc4_slot(t, 0);
      const FusedLayer& l0 = t.layer[0];
      for (int i = 0; i < l0.out_size * l0.out_size * l0.cout; ++i)
        fused_tc_put(m0, int64_t(rowq[i / l0.cout]) * tc.np0 + i % l0.cout,
                     fused_layer1(t, packed, sm + t.u_off, sm + t.q_off, i), true);
      continue;
    }
    T* out1 = L > 2 ? tc_map<T>(sm, v.map_off[1]) + (s == 2 ? g * fused_tc4_slot(t, 1) : 0) : nullptr;
    for (int ch = 0; ch < v.chunks; ++ch) {
      const FusedTc4Chunk c = fused_tc4_chunk(t, ch);
      tc4_layer1_chunk<T>(t, packed, c, sm);
      tc4_layer_fwd<T>(t, 1, packed, tc_map<T>(sm, v.map_off[0]), c.rows,
                       out1 ? out1 + int64_t(c.row0) * tc.layer[1].np : nullptr, last + c.row0 * t.layer[1].cout);
    }
    for (int li = 2; li < s; ++li)
      tc4_layer_fwd<T>(t, li, packed, tc_map<T>(sm, v.map_off[li - 1]), tc.layer[li].rows,
                       li + 1 < L ? tc_map<T>(sm, v.map_off[li]) : nullptr, last);
  }
  for (int li = s; li < L; ++li)
    tc4_layer_fwd<T>(t, li, packed, tc_map<T>(sm, v.map_off[li - 1]), n * tc.layer[li].rows,
                     li + 1 < L ? tc_map<T>(sm, v.map_off[li]) : nullptr, last);
  const int C = t.layer[L - 1].cout;
  for (int i = 0; i < n * C; ++i)
    sm[v.h_off + i] = fused_head_sum(t, last + (i / C) * tc.layer[L - 1].rows * C, i % C);
}

template <typename T>
void fwd_tc4(const FusedTower& t, int64_t n_pairs, int n_blocks, const int32_t* pair_user, const int32_t* pair_item,
             const float* P, const float* Q, const float* packed, DropoutArgs drop, float* score) {
  std::vector<float> buf(size_t(t.tc4.smem_floats));
  float* sm = buf.data();
  const int C = t.layer[t.L - 1].cout;
  for (int b = 0; b < n_blocks; ++b) {
    std::memset(sm, 0, buf.size() * sizeof(float));
    tc4_init(t, sm);
    const PairRange r = fused_block_pairs(n_pairs, n_blocks, b);
    int32_t cur_user = -1;
    for (int64_t kb = r.lo; kb < r.hi;) {
      int n = 0;
      const int64_t ke = tc4_form_group(t, nullptr, kb, r.hi, nullptr, nullptr, sm, n);
      tc4_group_fwd<T>(t, P, Q, packed, pair_user, pair_item, kb, n, cur_user, sm);
      const int* slot = tc4_ints(sm, t.tc4.slot_off);
      for (int g = 0; g < n; ++g)
        score[kb + slot[g]] = fused_score(t, packed, sm + t.tc4.h_off + g * C, drop, kb + slot[g]);
      kb = ke;
    }
  }
}

template <typename T>
void bwd_tc4(const FusedTower& t, int64_t n_pairs, int n_blocks, const int32_t* pair_user, const int32_t* pair_item,
             const float* P, const float* Q, const float* packed, DropoutArgs drop, const float* dscore, float* dp,
             float* dq, float* partial) {
  const FusedTc4& v = t.tc4;
  const FusedTc& tc = t.tc;
  const int E = t.E, L = t.L, s = v.stack0, S = t.layer[0].out_size;
  const FusedLayer& l0 = t.layer[0];
  const int C = t.layer[L - 1].cout;
  std::vector<float> buf(size_t(v.smem_floats));
  float* sm = buf.data();
  const int* slot = tc4_ints(sm, v.slot_off);
  const int* rowq = tc4_ints(sm, v.rowq_off);
  std::vector<std::vector<float>> dw(static_cast<size_t>(L));  // the register tiles: layer li's W (kp x np)
  auto G_of = [&](int li) {  // layer li's output gradient (slot 0)
    return li + 1 == L ? tc_map<T>(sm, v.glast_off) : tc_map<T>(sm, v.map_off[li]);
  };
  // layer li's weight and bias gradients and X's gradient, over n pairs' rows (stacked, or one pair)
  auto layer_bwd = [&](int li, int n, float* slice) {
    const FusedTcLayer& c = tc.layer[li];
    T* X = tc_map<T>(sm, v.map_off[li - 1]);
    const T* G = G_of(li);
    tc4_layer_dW<T>(t, li, X, G, n * c.rows, dw[size_t(li)].data());
    for (int co = 0; co < t.layer[li].cout; ++co)
      for (int g = 0; g < n; ++g)
        slice[t.layer[li].b_off + co] += fused_tc_db(t, li, G + g * fused_tc4_slot(t, li), co);
    tc4_layer_dX<T>(t, li, packed, G, n * c.rows, X);
  };
  for (int b = 0; b < n_blocks; ++b) {
    float* slice = partial + int64_t(b) * t.n_params;
    std::fill(slice, slice + t.n_params, 0.0f);
    std::memset(sm, 0, buf.size() * sizeof(float));
    tc4_init(t, sm);
    for (int li = 1; li < L; ++li) dw[size_t(li)].assign(size_t(tc.layer[li].kp) * size_t(tc.layer[li].np), 0.0f);
    const PairRange r = fused_block_pairs(n_pairs, n_blocks, b);
    int32_t cur_user = -1;
    for (int64_t kb = r.lo; kb < r.hi;) {
      int n = 0;
      const int64_t ke = tc4_form_group(t, dscore, kb, r.hi, dp, dq, sm, n);
      if (n == 0) {
        kb = ke;
        continue;
      }
      tc4_group_fwd<T>(t, P, Q, packed, pair_user, pair_item, kb, n, cur_user, sm);
      // the output layer of each pair in order; h becomes dh
      float* h = sm + v.h_off;
      for (int c = 0; c < C; ++c)
        for (int g = 0; g < n; ++g) {
          const int64_t k = kb + slot[g];
          const float ds = dscore[k];
          slice[t.out_w_off + c] += fused_dw_out(ds, h[g * C + c], drop, k, c);
          h[g * C + c] = fused_dh(t, packed, ds, drop, k, c);
        }
      for (int g = 0; g < n; ++g) slice[t.out_b_off] += dscore[kb + slot[g]];
      // the last map's masked gradient
      const FusedTcLayer& cl = tc.layer[L - 1];
      T* glast = tc_map<T>(sm, v.glast_off);
      for (int i = 0; i < n * cl.rows * C; ++i) {
        const int row = i / C, co = i % C;
        const float gv = fused_tc_glast(t, sm + v.last_off, h + row / cl.rows * C, row, co);
        fused_tc_put(glast, int64_t(row) * cl.np + co, gv, true);
      }
      // the stacked layers, then each pair's own layers and layer 1
      for (int li = L - 1; li >= s; --li) layer_bwd(li, n, slice);
      for (int g = 0; g < n; ++g) {
        const int64_t k = kb + slot[g];
        if (v.group > 1) stage_pair(t, P, Q, packed, pair_user[k], pair_item[k], cur_user, sm);
        if (s == 1) {
          const FusedTcMap0<T> g0{tc_map<T>(sm, v.map_off[0]) + g * fused_tc4_slot(t, 0), rowq, S, tc.np0};
          layer1_backward(t, g0, packed, sm, k, dp, dq, slice);
          continue;
        }
        for (int li = s - 1; li >= 2; --li) layer_bwd(li, 1, slice);
        const T* G2 = G_of(1) + (s == 2 && L > 2 ? g * fused_tc4_slot(t, 1) : 0);
        const FusedTcLayer& c2 = tc.layer[1];
        for (int co = 0; co < t.layer[1].cout; ++co) slice[t.layer[1].b_off + co] += fused_tc_db(t, 1, G2, co);
        float* dU = sm + t.du_off;
        float* dqa = sm + v.dq_off;
        float* db1 = sm + v.db1_off;
        std::fill(dU, dU + t.u_size(), 0.0f);
        std::fill(dqa, dqa + E, 0.0f);
        std::fill(db1, db1 + l0.cout, 0.0f);
        T* cb = tc_map<T>(sm, v.map_off[0]);
        for (int ch = 0; ch < v.chunks; ++ch) {
          const FusedTc4Chunk c = fused_tc4_chunk(t, ch);
          tc4_layer1_chunk<T>(t, packed, c, sm);
          tc4_layer_dW<T>(t, 1, cb, G2 + int64_t(c.row0) * c2.np, c.rows, dw[1].data());
          tc4_layer_dX<T>(t, 1, packed, G2 + int64_t(c.row0) * c2.np, c.rows, cb);
          const FusedTc4Map0<T> g0{cb, rowq, S, tc.np0, c.r0, c.r1};
          const FusedTc4Box box = tc4_box(t, sm, ch);
          for (int i = 0; i < t.u_size(); ++i) dU[i] += fused_tc4_dU_part(t, g0, box, sm + t.q_off, i);
          for (int e = 0; e < E; ++e) dqa[e] += fused_tc4_dq_part(t, g0, box, sm + t.u_off, e);
          for (int c1 = 0; c1 < l0.cout; ++c1) db1[c1] += fused_tc4_db1_part(g0, box, c1);
        }
        for (int e = 0; e < E; ++e) dq[k * E + e] = dqa[e];
        for (int c1 = 0; c1 < l0.cout; ++c1) slice[l0.b_off + c1] += db1[c1];
        for (int w = 0; w < l0.k * l0.k * l0.cout; ++w) slice[l0.w_off + w] += fused_dW1(t, sm + t.p_off, dU, w);
        for (int e = 0; e < E; ++e) dp[k * E + e] = fused_dp(t, packed, dU, e);
      }
      kb = ke;
    }
    store_weight_tiles(t, dw, slice);
  }
}

}  // namespace

void fused_tower_fwd_cpu(const FusedTower& t, int64_t n_pairs, int n_blocks,
                         const int32_t* pair_user, const int32_t* pair_item, const float* P,
                         const float* Q, const float* packed, DropoutArgs drop, float* score, int variant) {
  check_fused_args("fused_tower_fwd_cpu", t, n_pairs, n_blocks, {pair_user, pair_item, P, Q, packed, score});
  check_fused_variant("fused_tower_fwd_cpu", t, variant);
  if (variant == 4) {
    if (t.precision == Precision::BF16) {
      fwd_tc4<uint16_t>(t, n_pairs, n_blocks, pair_user, pair_item, P, Q, packed, drop, score);
    } else {
      fwd_tc4<float>(t, n_pairs, n_blocks, pair_user, pair_item, P, Q, packed, drop, score);
    }
    return;
  }
  if (variant == 3) {
    if (t.precision == Precision::BF16) {
      fwd_tc<uint16_t>(t, n_pairs, n_blocks, pair_user, pair_item, P, Q, packed, drop, score);
    } else {
      fwd_tc<float>(t, n_pairs, n_blocks, pair_user, pair_item, P, Q, packed, drop, score);
    }
    return;
  }
  std::vector<float> sm(size_t(t.smem_floats));
  for (int b = 0; b < n_blocks; ++b) {
    const PairRange r = fused_block_pairs(n_pairs, n_blocks, b);
    int32_t cur_user = -1;
    for (int64_t k = r.lo; k < r.hi; ++k) {
      forward_pair(t, P, Q, packed, pair_user[k], pair_item[k], cur_user, sm.data());
      score[k] = fused_score(t, packed, sm.data() + t.h_off, drop, k);
    }
  }
}

void fused_tower_bwd_cpu(const FusedTower& t, int64_t n_pairs, int n_blocks,
                         const int32_t* pair_user, const int32_t* pair_item, const float* P,
                         const float* Q, const float* packed, DropoutArgs drop,
                         const float* dscore, float* dp, float* dq, float* partial, int variant) {
  check_fused_tower_bwd_args("fused_tower_bwd_cpu", t, n_pairs, n_blocks, pair_user, pair_item, P,
                             Q, packed, dscore, dp, dq, partial);
  check_fused_variant("fused_tower_bwd_cpu", t, variant);
  if (variant == 4) {
    if (t.precision == Precision::BF16) {
      bwd_tc4<uint16_t>(t, n_pairs, n_blocks, pair_user, pair_item, P, Q, packed, drop, dscore, dp, dq, partial);
    } else {
      bwd_tc4<float>(t, n_pairs, n_blocks, pair_user, pair_item, P, Q, packed, drop, dscore, dp, dq, partial);
    }
    return;
  }
  if (variant == 3) {
    if (t.precision == Precision::BF16) {
      bwd_tc<uint16_t>(t, n_pairs, n_blocks, pair_user, pair_item, P, Q, packed, drop, dscore, dp, dq, partial);
    } else {
      bwd_tc<float>(t, n_pairs, n_blocks, pair_user, pair_item, P, Q, packed, drop, dscore, dp, dq, partial);
    }
    return;
  }
  const int E = t.E;
  std::vector<float> buf(size_t(t.smem_floats));
  float* sm = buf.data();
  for (int b = 0; b < n_blocks; ++b) {
    float* slice = partial + int64_t(b) * t.n_params;
    std::fill(slice, slice + t.n_params, 0.0f);
    const PairRange r = fused_block_pairs(n_pairs, n_blocks, b);
    int32_t cur_user = -1;
    for (int64_t k = r.lo; k < r.hi; ++k) {
      const float ds = dscore[k];
      if (skip_pair(ds, k, E, dp, dq)) continue;
      forward_pair(t, P, Q, packed, pair_user[k], pair_item[k], cur_user, sm);
      // output layer; h becomes dh
      const FusedLayer& last = t.layer[t.L - 1];
      float* h = sm + t.h_off;
      head_backward(t, ds, drop, k, packed, h, slice);
      // spatial sum and the last ReLU: the last map becomes its masked gradient
      float* a = sm + last.act_off;
      for (int i = 0; i < last.out_size * last.out_size * last.cout; ++i)
        a[i] = a[i] > 0.0f ? h[i % last.cout] : 0.0f;
      // layers L .. 2: weights from G and X, then X becomes its own masked gradient
      for (int li = t.L - 1; li >= 1; --li) {
        const FusedLayer& l = t.layer[li];
        const float* G = sm + l.act_off;
        float* X = sm + t.layer[li - 1].act_off;
        const int K = l.k * l.k * l.cin;
        for (int w = 0; w < K * l.cout; ++w) slice[l.w_off + w] += fused_dW(t, li, G, X, w);
        for (int co = 0; co < l.cout; ++co) slice[l.b_off + co] += fused_db(t, li, G, co);
        for (int i = 0; i < l.in_size * l.in_size * l.cin; ++i) X[i] = fused_dX(t, li, packed, G, X, i);
      }
      // layer 1 through the user's side
      const FusedLayer& l0 = t.layer[0];
      layer1_backward(t, FusedNaturalMap{sm + l0.act_off, l0.out_size, l0.cout}, packed, sm, k, dp, dq, slice);
    }
  }
}

void fused_reduce_grads_cpu(const FusedTower& t, int n_blocks, const float* partial, float* dnet) {
  check_fused_args("fused_reduce_grads_cpu", t, 1, n_blocks, {partial, dnet});
  for (int64_t j = 0; j < t.n_params; ++j) {
    float s = 0.0f;
    for (int b = 0; b < n_blocks; ++b) s += partial[int64_t(b) * t.n_params + j];
    dnet[fused_unpacked_index(t, j)] = s;
  }
}

}  // namespace convncf
