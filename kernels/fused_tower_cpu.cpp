// fused_tower_cpu.cpp: the fused tower's layout (make_fused_tower), its argument checks and the
// CPU twins of kernels/fused_tower.cu (see fused_tower.hpp). Each twin loops over blocks, the
// block's pairs and each phase's elements exactly as the kernel does, calling the same element
// functions, so it reproduces the kernel's sums in the kernel's order.
#include <algorithm>
#include <climits>
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

FusedTower make_fused_tower(const TowerSpec& tower, Precision precision, size_t max_smem_bytes) {
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

void check_fused_variant(const char* fn, int variant) {
  if (variant != 1 && variant != 2)
    throw_internal(std::string(fn) + ": variant must be 1 or 2, got " + std::to_string(variant));
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

// One pair's forward into the block's shared memory `sm` (the kernel's fwd_pair, phase by phase).
void forward_pair(const FusedTower& t, const float* P, const float* Q, const float* packed,
                  int32_t user, int32_t item, int32_t& cur_user, float* sm) {
  const int E = t.E;
  const bool new_user = user != cur_user;
  if (new_user)
    for (int e = 0; e < E; ++e) sm[t.p_off + e] = P[int64_t(user) * E + e];
  for (int e = 0; e < E; ++e) sm[t.q_off + e] = Q[int64_t(item) * E + e];
  if (new_user) {
    for (int i = 0; i < t.u_size(); ++i) sm[t.u_off + i] = fused_user_side(t, packed, sm + t.p_off, i);
    cur_user = user;
  }
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

}  // namespace

void fused_tower_fwd_cpu(const FusedTower& t, int64_t n_pairs, int n_blocks,
                         const int32_t* pair_user, const int32_t* pair_item, const float* P,
                         const float* Q, const float* packed, DropoutArgs drop, float* score) {
  check_fused_args("fused_tower_fwd_cpu", t, n_pairs, n_blocks, {pair_user, pair_item, P, Q, packed, score});
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
                         const float* dscore, float* dp, float* dq, float* partial) {
  check_fused_tower_bwd_args("fused_tower_bwd_cpu", t, n_pairs, n_blocks, pair_user, pair_item, P,
                             Q, packed, dscore, dp, dq, partial);
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
      if (ds == 0.0f) {
        std::fill(dp + k * E, dp + (k + 1) * E, 0.0f);
        std::fill(dq + k * E, dq + (k + 1) * E, 0.0f);
        continue;
      }
      forward_pair(t, P, Q, packed, pair_user[k], pair_item[k], cur_user, sm);
      // output layer; h becomes dh
      const FusedLayer& last = t.layer[t.L - 1];
      float* h = sm + t.h_off;
      for (int c = 0; c < last.cout; ++c) {
        slice[t.out_w_off + c] += fused_dw_out(ds, h[c], drop, k, c);
        h[c] = fused_dh(t, packed, ds, drop, k, c);
      }
      slice[t.out_b_off] += ds;
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
      const float* G = sm + l0.act_off;
      float* dU = sm + t.du_off;
      for (int i = 0; i < t.u_size(); ++i) dU[i] = fused_dU(t, G, sm + t.q_off, i);
      for (int e = 0; e < E; ++e) dq[k * E + e] = fused_dq(t, G, sm + t.u_off, e);
      for (int c = 0; c < l0.cout; ++c) slice[l0.b_off + c] += fused_db(t, 0, G, c);
      for (int w = 0; w < l0.k * l0.k * l0.cout; ++w) slice[l0.w_off + w] += fused_dW1(t, sm + t.p_off, dU, w);
      for (int e = 0; e < E; ++e) dp[k * E + e] = fused_dp(t, packed, dU, e);
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
