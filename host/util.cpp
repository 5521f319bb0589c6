// util.cpp: the helpers of util.hpp.
#include "convncf/util.hpp"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "convncf/errors.hpp"

namespace convncf {

bool path_exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_file(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

void make_dirs(const std::string& path, std::vector<std::string>* created) {
  std::string cur;
  std::stringstream ss(path);
  std::string part;
  if (!path.empty() && path[0] == '/') cur = "/";
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    cur += part;
    if (mkdir(cur.c_str(), 0755) == 0) {
      if (created) created->push_back(cur);
    } else if (errno != EEXIST) {
      throw_io("cannot create folder " + cur + ": " + std::strerror(errno));
    }
    if (!is_dir(cur)) throw_io("cannot create folder " + cur + ": a file of that name exists");
    cur += '/';
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

int64_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kib = 0, total = 0;
  int found = 0;
  while (in >> key >> kib) {
    if (key == "MemAvailable:" || key == "SwapFree:") total += kib, ++found;
    in.ignore(1 << 10, '\n');
  }
  return found > 0 ? total * 1024 : -1;
}

std::string bytes_text(double bytes) {
  const char* units[] = {"bytes", "kB", "MB", "GB", "TB", "PB", "EB"};
  int u = 0;
  while (bytes >= 1000 && u < 6) bytes /= 1000, ++u;
  char b[32];
  std::snprintf(b, sizeof b, u == 0 ? "%.0f %s" : bytes < 10 ? "%.1f %s" : "%.0f %s", bytes, units[u]);
  return b;
}

void throw_out_of_memory(const std::string& what, double bytes) {
  const int64_t avail = available_memory_bytes();
  throw Error(kExitSoftware, "out of memory: " + what + " need " + bytes_text(bytes) + "; " +
                                 (avail >= 0 ? bytes_text(double(avail)) + " is available (MemAvailable + SwapFree)"
                                             : std::string("the memory available is unknown")));
}

uint64_t fnv1a(const void* data, size_t n, uint64_t h) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace convncf
