// npy.cpp: the .npy writer (see npy.hpp).
#include "npy.hpp"

#include <algorithm>

namespace convncf {

namespace {

// A .npy file (format 1.0): magic, header dict padded to a multiple of 64 bytes, raw data.
std::string npy(const std::string& descr, const std::vector<int64_t>& shape, const std::string& data) {
  std::string sh = "(";
  for (size_t i = 0; i < shape.size(); ++i)  // as NumPy writes it: (5,) and (3, 4)
    sh += std::to_string(shape[i]) + (shape.size() == 1 ? "," : i + 1 < shape.size() ? ", " : "");
  sh += ")";
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + sh + ", }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string f("\x93NUMPY\x01\x00", 8);
  const uint16_t len = uint16_t(header.size());
  f.append(reinterpret_cast<const char*>(&len), 2);
  return f + header + data;
}

}  // namespace

// Raw ids as a NumPy unicode array ('<Un', UTF-32LE). Ids are UTF-8 (the loaders check).
std::string npy_strings(const std::vector<std::string>& ids) {
  std::vector<std::u32string> wide;
  size_t width = 1;
  for (const std::string& s : ids) {
    std::u32string w;
    for (size_t i = 0; i < s.size();) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      const int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
      char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
      for (int j = 1; j < n && i + size_t(j) < s.size(); ++j) cp = (cp << 6) | (static_cast<unsigned char>(s[i + size_t(j)]) & 0x3F);
      w += cp;
      i += size_t(n);
    }
    width = std::max(width, w.size());
    wide.push_back(std::move(w));
  }
  std::string data;
  data.reserve(wide.size() * width * 4);
  for (const std::u32string& w : wide) {
    for (size_t j = 0; j < width; ++j) {
      const char32_t cp = j < w.size() ? w[j] : 0;
      const uint32_t v = uint32_t(cp);
      data.append(reinterpret_cast<const char*>(&v), 4);
    }
  }
  return npy("<U" + std::to_string(width), {int64_t(ids.size())}, data);
}

std::string npy_floats(const std::vector<float>& v, const std::vector<int64_t>& shape) {
  return npy("<f4", shape, std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
}

}  // namespace convncf
