// checkpoint.cpp: checkpoint.bin (format in checkpoint.hpp). Tested by tests/test_checkpoint.cpp
// (round trip, every corruption refused) and the resume and SIGKILL tests of tests/test_cli.cpp.
#include "convncf/checkpoint.hpp"

#include <cstring>

#include "convncf/errors.hpp"

namespace convncf {

namespace {
constexpr char kMagic[8] = {'C', 'N', 'C', 'F', 'C', 'K', 'P', 'T'};
constexpr uint32_t kVersion = 1;

struct Out {
  std::string b;
  template <typename T>
  void put(T v) { b.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void str(const std::string& s) {
    put(uint64_t(s.size()));
    b += s;
  }
  void floats(const std::vector<float>& v) {
    put(uint64_t(v.size()));
    b.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  }
};

struct In {
  const std::string& b;
  const std::string& path;
  size_t at = 0;
  void need(uint64_t n) {
    if (n > b.size() - at)
      throw_data(path + ": truncated checkpoint (needed " + std::to_string(n) + " bytes at offset " +
                 std::to_string(at) + ")");
  }
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, b.data() + at, sizeof v);
    at += sizeof v;
    return v;
  }
  std::string str() {
    const uint64_t n = get<uint64_t>();
    need(n);
    std::string s = b.substr(at, size_t(n));
    at += size_t(n);
    return s;
  }
  std::vector<float> floats() {
    const uint64_t n = get<uint64_t>();
    if (n > (b.size() - at) / sizeof(float)) need(uint64_t(-1) / 2);
    std::vector<float> v(static_cast<size_t>(n));
    std::memcpy(v.data(), b.data() + at, size_t(n) * sizeof(float));
    at += size_t(n) * sizeof(float);
    return v;
  }
};
}  // namespace

void save_checkpoint(const std::string& path, const Checkpoint& c) {
  Out o;
  o.b.append(kMagic, sizeof kMagic);
  o.put(kVersion);
  o.str(c.config_yaml);
  o.put(c.data_fingerprint);
  o.put(c.epoch);
  o.put(c.global_step);
  o.put(c.best_epoch);
  o.put(c.best_value);
  o.put(c.evals_without_gain);
  o.put(uint8_t(c.stopped));
  o.str(model_bytes(c.latest));
  o.str(model_bytes(c.best));
  o.put(uint32_t(c.optimizers.size()));
  for (const OptimizerState& s : c.optimizers) {
    o.put(s.steps);
    o.floats(s.s0);
    o.floats(s.s1);
  }
  o.put(fnv1a(o.b.data(), o.b.size()));
  write_file_atomic(path, o.b);
}

Checkpoint load_checkpoint(const std::string& path) {
  const std::string body = checked_body(read_file_bytes(path, "checkpoint"), kMagic, kVersion, path, "checkpoint");
  In in{body, path};
  in.at = sizeof kMagic + 4;
  Checkpoint c;
  c.config_yaml = in.str();
  c.data_fingerprint = in.get<uint64_t>();
  c.epoch = in.get<int32_t>();
  c.global_step = in.get<uint64_t>();
  c.best_epoch = in.get<int32_t>();
  c.best_value = in.get<double>();
  c.evals_without_gain = in.get<int32_t>();
  c.stopped = in.get<uint8_t>() != 0;
  c.latest = model_from_bytes(in.str(), path + " (latest model)");
  c.best = model_from_bytes(in.str(), path + " (best model)");
  const uint32_t n = in.get<uint32_t>();
  if (n > 64) throw_data(path + ": implausible optimizer count " + std::to_string(n));
  for (uint32_t k = 0; k < n; ++k) {
    OptimizerState s;
    s.steps = in.get<int64_t>();
    s.s0 = in.floats();
    s.s1 = in.floats();
    c.optimizers.push_back(std::move(s));
  }
  if (in.at != body.size()) throw_data(path + ": trailing bytes in the checkpoint");
  if (c.epoch < 0) throw_data(path + ": negative epoch");
  return c;
}

}  // namespace convncf
