// bytes.hpp: little-endian binary images of the project's files (model.bin, checkpoint.bin):
// a writer that appends plain values, arrays and length-prefixed strings, and a bounds-checked
// reader that throws Error(kExitData) naming the file when it runs past the end.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "convncf/errors.hpp"

namespace convncf {

struct ByteWriter {
  std::string buf;
  template <typename T>
  void put(const T& v) { buf.append(reinterpret_cast<const char*>(&v), sizeof v); }
  template <typename T>
  void put_vec(const std::vector<T>& v) {
    buf.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  }
  template <typename Len>  // the length's width is part of each file's format
  void put_str(const std::string& s) {
    put(Len(s.size()));
    buf.append(s);
  }
};

struct ByteReader {
  const std::string& buf;
  const std::string& path;
  const char* what;  // "model file", "checkpoint"
  size_t at = 0;
  void need(uint64_t n) const {
    if (n > buf.size() - at)
      throw_data(path + ": truncated " + what + " (needed " + std::to_string(n) + " bytes at offset " +
                 std::to_string(at) + ", file has " + std::to_string(buf.size()) + ")");
  }
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, buf.data() + at, sizeof v);
    at += sizeof v;
    return v;
  }
  template <typename T>
  void get_vec(std::vector<T>& v, uint64_t n) {
    if (n > (buf.size() - at) / sizeof(T)) need(n > UINT64_MAX / sizeof(T) ? UINT64_MAX : n * sizeof(T));
    v.resize(size_t(n));
    std::memcpy(v.data(), buf.data() + at, size_t(n) * sizeof(T));
    at += size_t(n) * sizeof(T);
  }
  template <typename Len>
  std::string get_str() {
    const uint64_t n = get<Len>();
    need(n);
    std::string s = buf.substr(at, size_t(n));
    at += size_t(n);
    return s;
  }
};

}  // namespace convncf
