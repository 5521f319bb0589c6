// test_paths.hpp: where a test finds the build's files (the convncf binary, kernel_resources.txt),
// the source tree (tools/, kernels/) and the datasets, resolved when the test runs, not when it
// is compiled: the build compiles in each path relative to the test binary's own folder
// (tests/CMakeLists.txt), and the binary finds that folder through /proc/self/exe. So a build
// folder moved together with its repository to another path (tools/gpu_check.sh runs a carried
// build at whatever path the GPU machine gives it) still finds everything. $CONVNCF_SOURCE_DIR, when
// set (gpu_check.sh sets it to the checkout it runs in), names the source tree instead, for a
// build folder that was not made inside its repository.
//   test::convncf_binary(), test::kernel_resources(), test::source_dir(), test::ml100k_path()
// The datasets: $CONVNCF_DATASETS if set (a folder holding ml-100k/ml-100k.inter), else the
// repository's ignored datasets/ folder if it has ml-100k, else ../shared/datasets beside the
// repository (README "Data").
#pragma once
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#ifndef CONVNCF_BINARY_REL
#define CONVNCF_BINARY_REL "../convncf"
#endif
#ifndef CONVNCF_KERNEL_RESOURCES_REL
#define CONVNCF_KERNEL_RESOURCES_REL "../kernel_resources.txt"
#endif
#ifndef CONVNCF_SOURCE_DIR_REL
#define CONVNCF_SOURCE_DIR_REL "../.."
#endif

namespace convncf {
namespace test {

// The folder of the running test binary (no trailing slash); "." if /proc/self/exe is unreadable.
inline const std::string& binary_dir() {
  static const std::string dir = [] {
    std::string buf(4096, '\0');
    const ssize_t n = readlink("/proc/self/exe", &buf[0], buf.size() - 1);
    if (n <= 0) return std::string(".");
    buf.resize(size_t(n));
    const size_t slash = buf.rfind('/');
    return slash == std::string::npos ? std::string(".") : buf.substr(0, slash == 0 ? 1 : slash);
  }();
  return dir;
}

inline std::string from_binary_dir(const char* rel) { return binary_dir() + "/" + rel; }

inline const std::string& convncf_binary() {
  static const std::string p = from_binary_dir(CONVNCF_BINARY_REL);
  return p;
}
inline const std::string& kernel_resources() {
  static const std::string p = from_binary_dir(CONVNCF_KERNEL_RESOURCES_REL);
  return p;
}
inline const std::string& source_dir() {
  static const std::string p = [] {
    const char* env = std::getenv("CONVNCF_SOURCE_DIR");
    return env && *env ? std::string(env) : from_binary_dir(CONVNCF_SOURCE_DIR_REL);
  }();
  return p;
}

// The path of ml-100k.inter (see the top comment), or "" with *why naming where it was looked
// for (a test skips with that).
inline std::string ml100k_path(std::string* why) {
  const std::string rel = "/ml-100k/ml-100k.inter";
  std::string looked;
  struct stat st;
  const char* env = std::getenv("CONVNCF_DATASETS");
  const std::string dirs[] = {env && *env ? std::string(env) : std::string(), source_dir() + "/datasets",
                              source_dir() + "/../shared/datasets"};
  for (const std::string& dir : dirs) {
    if (dir.empty()) continue;
    if (stat((dir + rel).c_str(), &st) == 0) return dir + rel;
    looked += (looked.empty() ? "" : ", ") + dir + rel;
    if (&dir == &dirs[0]) break;  // $CONVNCF_DATASETS, when set, is the only place looked at
  }
  if (why) *why = "no ml-100k.inter (looked for " + looked + "; README \"Data\")";
  return "";
}

}  // namespace test
}  // namespace convncf
