// model_io.cpp: reading and writing model.bin (format in model_io.hpp).
#include "convncf/model_io.hpp"
#include "convncf/util.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

#include "convncf/bytes.hpp"
#include "convncf/errors.hpp"

namespace convncf {

namespace {
constexpr char kMagic[8] = {'C', 'O', 'N', 'V', 'N', 'C', 'F', '\0'};
constexpr uint32_t kVersion = 1;

}  // namespace

std::string model_bytes(const ModelFile& m) {
  const Params<float>& p = m.params;
  ByteWriter w;
  w.buf.append(kMagic, sizeof kMagic);
  w.put(kVersion);
  w.put(uint32_t(p.model));
  w.put(int32_t(p.E));
  w.put(int32_t(m.kernels.size()));
  for (int c : m.channels) w.put(int32_t(c));
  for (int k : m.kernels) w.put(int32_t(k));
  w.put(int32_t(p.n_users));
  w.put(int32_t(p.n_items));
  w.put(uint64_t(p.net.size()));
  w.put_vec(p.P);
  w.put_vec(p.Q);
  w.put_vec(p.net);
  for (const std::string& s : m.user_ids) w.put_str<uint32_t>(s);
  for (const std::string& s : m.item_ids) w.put_str<uint32_t>(s);
  w.put(fnv1a(w.buf.data(), w.buf.size()));
  return std::move(w.buf);
}

namespace {

// write_file_atomic and write_file_new: `replace` renames over an existing file, else link(2)
// puts the file in place only where none is (EEXIST otherwise, whatever another process does).
void write_file_whole(const std::string& path, const std::string& bytes, bool replace) {
  // Test hook (tests/test_cli.cpp's SIGKILL test): pause halfway through the temporary file so
  // that a kill lands inside a write.
  static const long delay_ms = [] {
    const char* e = std::getenv("CONVNCF_TEST_WRITE_DELAY_MS");
    return e ? std::strtol(e, nullptr, 10) : 0L;
  }();
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw_io("cannot write " + tmp + ": " + std::strerror(errno));
  const size_t half = delay_ms > 0 ? bytes.size() / 2 : bytes.size();
  bool ok = std::fwrite(bytes.data(), 1, half, f) == half;
  if (ok && delay_ms > 0) {
    std::fflush(f);
    usleep(useconds_t(delay_ms) * 1000);
    ok = std::fwrite(bytes.data() + half, 1, bytes.size() - half, f) == bytes.size() - half;
  }
  ok = ok && std::fflush(f) == 0 && fsync(fileno(f)) == 0;
  const int err = errno;
  if (std::fclose(f) != 0 || !ok) {
    std::remove(tmp.c_str());
    throw_io("cannot write " + tmp + ": " + std::strerror(err));
  }
  if (!replace) {
    const int linked = link(tmp.c_str(), path.c_str());
    const int e = errno;
    std::remove(tmp.c_str());
    if (linked != 0 && e == EEXIST) throw_usage(path + " already exists; nothing is overwritten");
    if (linked != 0) throw_io("cannot link " + tmp + " to " + path + ": " + std::strerror(e));
  } else if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    throw_io("cannot rename " + tmp + " to " + path + ": " + std::strerror(e));
  }
  // The rename itself is durable once the folder's entry is on disk.
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& bytes) { write_file_whole(path, bytes, true); }
void write_file_new(const std::string& path, const std::string& bytes) { write_file_whole(path, bytes, false); }

void save_model(const std::string& path, const ModelFile& m) { write_file_atomic(path, model_bytes(m)); }

std::string read_file_bytes(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_no_input(std::string("cannot open ") + what + " " + path + ": " + std::strerror(errno));
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

ModelFile load_model(const std::string& path) { return model_from_bytes(read_file_bytes(path, "model file"), path); }

std::string checked_body(const std::string& bytes, const char (&magic)[8], uint32_t version,
                         const std::string& path, const char* what) {
  if (bytes.size() < 8 + 4 + 8 || std::memcmp(bytes.data(), magic, 8) != 0)
    throw_data(path + ": not a convncf " + what + " (bad magic number)");
  uint64_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
  if (fnv1a(bytes.data(), bytes.size() - 8) != stored)
    throw_data(path + ": checksum mismatch: the " + what + " is corrupt or truncated");
  uint32_t v;
  std::memcpy(&v, bytes.data() + 8, 4);
  if (v != version)
    throw_data(path + ": " + what + " version " + std::to_string(v) + ", this build reads " +
               std::to_string(version));
  return bytes.substr(0, bytes.size() - 8);
}

ModelFile model_from_bytes(const std::string& buf, const std::string& path) {
  const std::string body = checked_body(buf, kMagic, kVersion, path, "model file");
  ByteReader r{body, path, "model file"};
  r.at = sizeof kMagic + 4;
  ModelFile m;
  const uint32_t kind = r.get<uint32_t>();
  if (kind > 2) throw_data(path + ": unknown model kind " + std::to_string(kind));
  m.params.model = ModelKind(kind);
  m.params.E = r.get<int32_t>();
  const int32_t layers = r.get<int32_t>();
  if (layers < 0 || layers > 64 || m.params.E < 0 || m.params.E > (1 << 16))
    throw_data(path + ": implausible header (E " + std::to_string(m.params.E) + ", " +
               std::to_string(layers) + " layers)");
  if (layers > 0) {
    for (int i = 0; i <= layers; ++i) m.channels.push_back(r.get<int32_t>());
    for (int i = 0; i < layers; ++i) m.kernels.push_back(r.get<int32_t>());
  }
  m.params.n_users = r.get<int32_t>();
  m.params.n_items = r.get<int32_t>();
  const uint64_t n_net = r.get<uint64_t>();
  if (m.params.n_users < 0 || m.params.n_items < 0)
    throw_data(path + ": negative table sizes");
  r.get_vec(m.params.P, uint64_t(m.params.n_users) * uint64_t(m.params.E));
  r.get_vec(m.params.Q, uint64_t(m.params.n_items) * uint64_t(m.params.E));
  r.get_vec(m.params.net, n_net);
  for (int32_t i = 0; i < m.params.n_users; ++i) m.user_ids.push_back(r.get_str<uint32_t>());
  for (int32_t i = 0; i < m.params.n_items; ++i) m.item_ids.push_back(r.get_str<uint32_t>());
  if (r.at != body.size()) throw_data(path + ": trailing bytes after the id maps");
  return m;
}

Params<float> params_for_data(const ModelFile& m, const Interactions& in, const std::string& name) {
  Params<float> p;
  p.model = m.params.model;
  p.E = m.params.E;
  p.n_users = in.n_users();
  p.n_items = in.n_items();
  const size_t E = static_cast<size_t>(p.E);
  auto remap = [&](const IdMap& ids, const std::vector<std::string>& raw, const std::vector<float>& src,
                   std::vector<float>& dst, size_t width, const char* what) {
    IdMap index;
    for (const std::string& r : raw) index.get_or_add(r);
    dst.assign(static_cast<size_t>(ids.size()) * width, 0.0f);
    for (int32_t i = 0; i < ids.size(); ++i) {
      const int32_t j = index.find(ids.raw(i));
      if (j < 0)
        throw_data(name + ": the model has no " + what + " '" + ids.raw(i) + "' of this dataset: it was trained on other data");
      std::copy_n(src.begin() + static_cast<ptrdiff_t>(size_t(j) * width), width,
                  dst.begin() + static_cast<ptrdiff_t>(size_t(i) * width));
    }
  };
  if (p.model == ModelKind::Pop) {
    remap(in.items, m.item_ids, m.params.net, p.net, 1, "item");
    return p;
  }
  remap(in.users, m.user_ids, m.params.P, p.P, E, "user");
  remap(in.items, m.item_ids, m.params.Q, p.Q, E, "item");
  p.net = m.params.net;
  return p;
}

}  // namespace convncf
