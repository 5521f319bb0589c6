// checkpoint.cpp: checkpoint.bin (format in checkpoint.hpp). Tested by tests/test_checkpoint.cpp
// (round trip, every corruption refused) and the resume and SIGKILL tests of tests/test_cli.cpp.
#include "convncf/checkpoint.hpp"

#include "convncf/bytes.hpp"
#include "convncf/errors.hpp"

namespace convncf {

namespace {
constexpr char kMagic[8] = {'C', 'N', 'C', 'F', 'C', 'K', 'P', 'T'};
constexpr uint32_t kVersion = 1;

}  // namespace

void save_checkpoint(const std::string& path, const Checkpoint& c) {
  ByteWriter o;
  o.buf.append(kMagic, sizeof kMagic);
  o.put(kVersion);
  o.put_str<uint64_t>(c.config_yaml);
  o.put(c.data_fingerprint);
  o.put(c.epoch);
  o.put(c.global_step);
  o.put(c.best_epoch);
  o.put(c.best_value);
  o.put(c.evals_without_gain);
  o.put(uint8_t(c.stopped));
  o.put_str<uint64_t>(model_bytes(c.latest));
  o.put_str<uint64_t>(model_bytes(c.best));
  o.put(uint32_t(c.optimizers.size()));
  for (const OptimizerState& s : c.optimizers) {
    o.put(s.steps);
    for (const std::vector<float>* v : {&s.s0, &s.s1}) {
      o.put(uint64_t(v->size()));
      o.put_vec(*v);
    }
  }
  o.put(fnv1a(o.buf.data(), o.buf.size()));
  write_file_atomic(path, o.buf);
}

Checkpoint load_checkpoint(const std::string& path) { return checkpoint_from_bytes(read_file_bytes(path, "checkpoint"), path); }

Checkpoint checkpoint_from_bytes(const std::string& bytes, const std::string& path) {
  const std::string body = checked_body(bytes, kMagic, kVersion, path, "checkpoint");
  ByteReader in{body, path, "checkpoint"};
  in.at = sizeof kMagic + 4;
  Checkpoint c;
  c.config_yaml = in.get_str<uint64_t>();
  c.data_fingerprint = in.get<uint64_t>();
  c.epoch = in.get<int32_t>();
  c.global_step = in.get<uint64_t>();
  c.best_epoch = in.get<int32_t>();
  c.best_value = in.get<double>();
  c.evals_without_gain = in.get<int32_t>();
  c.stopped = in.get<uint8_t>() != 0;
  c.latest = model_from_bytes(in.get_str<uint64_t>(), path + " (latest model)");
  c.best = model_from_bytes(in.get_str<uint64_t>(), path + " (best model)");
  const uint32_t n = in.get<uint32_t>();
  if (n > 64) throw_data(path + ": implausible optimizer count " + std::to_string(n));
  for (uint32_t k = 0; k < n; ++k) {
    OptimizerState s;
    s.steps = in.get<int64_t>();
    for (std::vector<float>* v : {&s.s0, &s.s1}) in.get_vec(*v, in.get<uint64_t>());
    c.optimizers.push_back(std::move(s));
  }
  if (in.at != body.size()) throw_data(path + ": trailing bytes in the checkpoint");
  if (c.epoch < 0) throw_data(path + ": negative epoch");
  return c;
}

}  // namespace convncf
