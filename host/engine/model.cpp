// model.cpp: tower validation and layout, parameter initialization (see model.hpp).
#include "convncf/model.hpp"

#include <cmath>
#include <new>
#include <sstream>

#include "convncf/errors.hpp"
#include "convncf/rng.hpp"
#include "convncf/util.hpp"

namespace convncf {

int64_t TowerSpec::max_activation() const {
  int64_t m = 0;
  for (const ConvLayer& l : layers) m = std::max<int64_t>(m, int64_t(l.out_size) * l.out_size * l.cout);
  return m;
}

TowerSpec TowerSpec::make(int E, const std::vector<int>& channels, const std::vector<int>& kernels,
                          const std::vector<int>& strides) {
  auto fail = [](const std::string& m) { throw_usage("invalid conv tower: " + m); };
  if (E <= 0) fail("embedding_size must be positive, got " + std::to_string(E));
  if (kernels.empty()) fail("cnn_kernels is empty: at least one conv layer is needed");
  if (channels.size() != kernels.size() + 1)
    fail("cnn_channels has " + std::to_string(channels.size()) + " entries but cnn_kernels has " +
         std::to_string(kernels.size()) + "; expected one more channel than kernels");
  if (strides.size() != kernels.size())
    fail("cnn_strides has " + std::to_string(strides.size()) + " entries but cnn_kernels has " +
         std::to_string(kernels.size()) + "; expected the same number");
  if (channels[0] != 1)
    fail("cnn_channels[0] must be 1 (the interaction map has one channel), got " +
         std::to_string(channels[0]));
  TowerSpec t;
  t.E = E;
  int size = E;
  int64_t offset = 0;
  for (size_t l = 0; l < kernels.size(); ++l) {
    const std::string name = "layer " + std::to_string(l + 1);
    if (channels[l + 1] <= 0)
      fail(name + ": cnn_channels[" + std::to_string(l + 1) + "] must be positive, got " +
           std::to_string(channels[l + 1]));
    if (kernels[l] <= 0)
      fail(name + ": kernel must be positive, got " + std::to_string(kernels[l]));
    if (strides[l] != kernels[l])
      fail(name + ": stride " + std::to_string(strides[l]) + " differs from kernel " +
           std::to_string(kernels[l]) + "; ConvNCF needs stride = kernel (non-overlapping blocks)");
    if (size % kernels[l] != 0)
      fail(name + ": input map " + std::to_string(size) + "x" + std::to_string(size) +
           " is not divisible by kernel " + std::to_string(kernels[l]));
    ConvLayer c;
    c.cin = channels[l];
    c.cout = channels[l + 1];
    c.k = kernels[l];
    c.in_size = size;
    c.out_size = size / kernels[l];
    c.w_offset = offset;
    offset += c.w_size();
    c.b_offset = offset;
    offset += c.cout;
    t.layers.push_back(c);
    size = c.out_size;
  }
  t.out_w_offset = offset;
  offset += t.last_channels();
  t.out_b_offset = offset;
  offset += 1;
  t.n_params = offset;
  return t;
}

std::string TowerSpec::describe() const {
  std::ostringstream s;
  s << E;
  for (const ConvLayer& l : layers) s << " -> " << l.out_size;
  s << " (channels";
  for (const ConvLayer& l : layers) s << ' ' << l.cout;
  s << "), " << n_params << " network parameters";
  return s.str();
}

Params<float> init_params(const InitSpec& cfg, const TowerSpec* tower, int32_t n_users,
                          int32_t n_items) {
  Params<float> prm;
  prm.model = cfg.model;
  prm.n_users = n_users;
  prm.n_items = n_items;
  if (cfg.model == ModelKind::Pop) {
    prm.E = 0;
    prm.net.assign(size_t(n_items), 0.f);
    return prm;
  }
  const int E = cfg.E;
  prm.E = E;
  const double bytes = double(n_users + int64_t(n_items)) * E * sizeof(float);
  const std::string what = "the embeddings (" + std::to_string(n_users) + " users and " + std::to_string(n_items) +
                           " items x embedding_size " + std::to_string(E) + " floats)";
  const int64_t avail = available_memory_bytes();
  if (avail >= 0 && bytes > double(avail)) throw_out_of_memory(what, bytes);
  try {
    prm.P.resize(size_t(n_users) * E);
    prm.Q.resize(size_t(n_items) * E);
  } catch (const std::bad_alloc&) {
    throw_out_of_memory(what, bytes);
  }
  Rng rng(cfg.seed, kStreamInit);
  const bool paper = cfg.init == InitKind::Paper;
  auto fill_embedding = [&](std::vector<float>& table, int32_t rows) {
    if (paper) {
      for (float& v : table) v = float(0.01 * rng.truncated_normal());
    } else if (cfg.model == ModelKind::BPR) {
      // RecBole's BPR: xavier_normal_ on the (rows, E) weight: std = sqrt(2 / (fan_in + fan_out)).
      const double std = std::sqrt(2.0 / double(rows + E));
      for (float& v : table) v = float(std * rng.normal());
    } else {
      for (float& v : table) v = float(rng.normal());
    }
  };
  fill_embedding(prm.P, n_users);
  fill_embedding(prm.Q, n_items);
  if (cfg.model != ModelKind::ConvNCF) return prm;
  if (!tower) throw_internal("init_params: ConvNCF without a tower");
  prm.net.assign(size_t(tower->n_params), 0.f);
  auto uniform = [&](double bound) { return float(bound * (2.0 * rng.uniform() - 1.0)); };
  for (const ConvLayer& l : tower->layers) {
    const double bound = 1.0 / std::sqrt(double(l.cin) * l.k * l.k);
    for (int64_t i = 0; i < l.w_size(); ++i)
      prm.net[size_t(l.w_offset + i)] = paper ? float(0.1 * rng.truncated_normal()) : uniform(bound);
    for (int i = 0; i < l.cout; ++i)
      prm.net[size_t(l.b_offset + i)] = paper ? 0.1f : uniform(bound);
  }
  const int C = tower->last_channels();
  const double bound = 1.0 / std::sqrt(double(C));
  for (int i = 0; i < C; ++i)
    prm.net[size_t(tower->out_w_offset + i)] = paper ? float(0.1 * rng.truncated_normal()) : uniform(bound);
  prm.net[size_t(tower->out_b_offset)] = paper ? float(0.1 * rng.truncated_normal()) : uniform(bound);
  return prm;
}

Params<float> popularity_params(int32_t n_users, const std::vector<int64_t>& item_train_count) {
  Params<float> prm;
  prm.model = ModelKind::Pop;
  prm.n_users = n_users;
  prm.n_items = int32_t(item_train_count.size());
  prm.net.resize(item_train_count.size());
  for (size_t i = 0; i < item_train_count.size(); ++i) prm.net[i] = float(item_train_count[i]);
  return prm;
}

}  // namespace convncf
