// fused_test_util.hpp: towers, parameters and batches shared by the fused tower's CPU and GPU
// tests (tests/test_fused_tower.cpp, tests/test_fused_tower_gpu.cu).
#pragma once
#include <cstdint>
#include <limits>
#include <vector>

#include "convncf/config.hpp"
#include "convncf/fused_tower.hpp"
#include "convncf/model.hpp"
#include "convncf/options.hpp"
#include "convncf/rng.hpp"

namespace convncf {
namespace fused_test {

struct Case {
  const char* name;
  int E;
  std::vector<int> channels, kernels;
};

inline std::vector<Case> cases() {
  return {
      {"recbole", 64, {1, 32, 32, 32, 32}, {4, 4, 2, 2}},
      {"paper", 64, {1, 32, 32, 32, 32, 32, 32}, {2, 2, 2, 2, 2, 2}},
      {"odd channels", 8, {1, 3, 5}, {4, 2}},
      {"kernel 1 layer", 6, {1, 4, 2}, {1, 3}},
      {"one layer", 4, {1, 3}, {2}},
      {"last map 2x2", 16, {1, 7, 6}, {2, 4}},
      {"engine tests' tower", 16, {1, 8, 8}, {4, 4}},
      // layer 2 with 4 tiles of 16 rows, layer 3 with 4 rows: variant 4 stacks layer 3 over groups of
      // 4 pairs and runs layer 1 in chunks of layer 2's tiles (tests force several chunks)
      {"chunked", 16, {1, 2, 6, 5}, {1, 2, 4}},
  };
}

// Variant 4's layouts that the automatic choice gives none of these towers (make_fused_tower's
// FusedTc4Choice): stacking from layer 3 with layer 1 in chunks of 3 tiles (the last one partial),
// no stacking with several chunks, the group's whole first maps stacked, and a two-layer tower
// whose last layer runs in chunks.
struct LayoutCase {
  Case tower;
  FusedTc4Choice choice;
};
inline std::vector<LayoutCase> layout_cases() {
  const Case chunked = cases()[7];
  const Case last_in_chunks{"last layer in chunks", 8, {1, 2, 3}, {1, 1}};
  return {
      {chunked, {2, 3}},
      {chunked, {3, 1}},
      {chunked, {1, 0}},
      {last_in_chunks, {2, 3}},
      {cases()[2], {2, 0}},  // odd channels: layer 2, the last, one chunk
  };
}

// Parameters that keep most ReLUs live: PyTorch's init, then positive-leaning biases.
inline Params<float> make_params(const TowerSpec& tower, int32_t n_users, int32_t n_items, uint64_t seed) {
  Config cfg;
  cfg.model = ModelKind::ConvNCF;
  cfg.embedding_size = tower.E;
  cfg.seed = seed;
  Params<float> prm = init_params(cfg, &tower, n_users, n_items);
  Rng rng(seed, 99);
  for (const ConvLayer& l : tower.layers)
    for (int c = 0; c < l.cout; ++c) prm.net[size_t(l.b_offset + c)] = float(0.05 + 0.1 * rng.uniform());
  return prm;
}

struct Batch {
  std::vector<int32_t> user, item;
  std::vector<float> dscore;
};

// Interleaved pairs (2t: positive, 2t+1: negative) of a few users, with some dscore = 0 pairs.
inline Batch make_batch(int64_t triples, int32_t n_users, int32_t n_items, uint64_t seed) {
  Batch b;
  Rng rng(seed, 7);
  for (int64_t t = 0; t < triples; ++t) {
    const int32_t u = int32_t(rng.next() % uint64_t(n_users));
    for (int side = 0; side < 2; ++side) {
      b.user.push_back(u);
      b.item.push_back(int32_t(rng.next() % uint64_t(n_items)));
    }
    const float g = t % 5 == 4 ? 0.0f : float(rng.uniform() - 0.9);
    b.dscore.push_back(g);
    b.dscore.push_back(-g);
  }
  return b;
}

// What the CPU twins of `variant` give for a batch from the packed weights: the forward's scores, the
// backward's row gradients and block slices, and the reduced network gradient (outputs NaN-filled
// first, so an element the twins never write shows).
struct TwinOutputs {
  std::vector<float> score, dp, dq, partial, dnet;
};
inline TwinOutputs run_twins(const FusedTower& ft, const Params<float>& prm, const Batch& b, const float* packed,
                             int n_blocks, const DropoutArgs& drop, int variant) {
  const int64_t n = int64_t(b.user.size());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  TwinOutputs o;
  o.score.assign(size_t(n), nan);
  o.dp.assign(size_t(n) * size_t(ft.E), nan);
  o.dq.assign(o.dp.size(), nan);
  o.partial.assign(size_t(n_blocks) * size_t(ft.n_params), nan);
  o.dnet.assign(size_t(ft.n_params), nan);
  fused_tower_fwd_cpu(ft, n, n_blocks, b.user.data(), b.item.data(), prm.P.data(), prm.Q.data(), packed, drop,
                      o.score.data(), variant);
  fused_tower_bwd_cpu(ft, n, n_blocks, b.user.data(), b.item.data(), prm.P.data(), prm.Q.data(), packed, drop,
                      b.dscore.data(), o.dp.data(), o.dq.data(), o.partial.data(), variant);
  fused_reduce_grads_cpu(ft, n_blocks, o.partial.data(), o.dnet.data());
  return o;
}

}  // namespace fused_test
}  // namespace convncf
