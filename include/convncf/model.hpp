// model.hpp: the ConvNCF tower (RecBole's channels/kernels/strides parameterization), the flat
// layout of the network parameters, and initialization.
//
// Network parameters live in one flat array (llm.c's ParameterTensors): for each conv layer l,
// its weight (C_{l+1}, C_l, k_l, k_l) in PyTorch's layout, then its bias (C_{l+1}); then the
// output layer's weight (C_L) and bias (1). Gradients and optimizer state share this layout, so an
// optimizer is one flat loop and a model file is one copy. Embedding tables P (n_users, E) and
// Q (n_items, E) live apart because they are updated row-sparsely.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "convncf/kinds.hpp"

namespace convncf {

struct ConvLayer {
  int cin, cout, k;      // kernel k x k, stride k, no padding
  int in_size, out_size; // spatial sizes (square maps)
  int64_t w_offset, b_offset;
  int64_t w_size() const { return int64_t(cout) * cin * k * k; }
};

struct TowerSpec {
  int E = 0;
  std::vector<ConvLayer> layers;
  int64_t out_w_offset = 0, out_b_offset = 0;
  int64_t n_params = 0;  // size of the flat network array
  int last_channels() const { return layers.back().cout; }
  int last_size() const { return layers.back().out_size; }
  int64_t max_activation() const;  // largest per-pair feature map, in elements

  // Validates and lays out a tower. Throws Error(kExitUsage) naming the layer on a bad shape:
  // list lengths, channels[0] = 1, positive sizes, kernel = stride, each map size divisible.
  static TowerSpec make(int E, const std::vector<int>& channels, const std::vector<int>& kernels,
                        const std::vector<int>& strides);
  std::string describe() const;  // "64 -> 16 -> 4 -> 2 -> 1 (32 channels), 21,345 parameters"
};

// Model parameters of any of the three models. ConvNCF uses P, Q and net; BPR uses P and Q;
// Pop keeps its item counts in `net` (n_items values) and E = 0.
template <typename T>
struct Params {
  ModelKind model = ModelKind::ConvNCF;
  int E = 0;
  int32_t n_users = 0, n_items = 0;
  std::vector<T> P;    // (n_users, E)
  std::vector<T> Q;    // (n_items, E)
  std::vector<T> net;  // (tower.n_params,)
};

// How a model starts: which model, which initializer, E and the seed.
struct InitSpec {
  ModelKind model = ModelKind::ConvNCF;
  InitKind init = InitKind::PyTorch;
  int E = 64;
  uint64_t seed = 2020;
};

// Initializes parameters as spec.init says:
//   pytorch: Embedding N(0,1) (BPR: xavier_normal, as RecBole's BPR), Conv2d/Linear weight and
//            bias U(-1/sqrt(fan_in), 1/sqrt(fan_in));
//   paper:   embeddings truncated normal std 0.01, conv weights truncated normal std 0.1, conv
//            biases 0.1, output weight and bias truncated normal std 0.1.
// Draws come from Rng(seed, kStreamInit) in the order P, Q, net, so a seed fixes the model.
// Pop: E = 0 and n_items zero counts (popularity_params fills them).
Params<float> init_params(const InitSpec& spec, const TowerSpec* tower, int32_t n_users,
                          int32_t n_items);

// The popularity model of a training set: net[i] = the training count of item i.
Params<float> popularity_params(int32_t n_users, const std::vector<int64_t>& item_train_count);

}  // namespace convncf
