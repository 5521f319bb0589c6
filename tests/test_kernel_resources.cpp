// test_kernel_resources.cpp: runs everywhere (no GPU needed). Reads the ptxas resource report
// that the build writes for every kernel file (tools/kernel_resources.sh, target
// kernel_resources) and fails when a kernel marked CONVNCF_HOT_KERNEL spills registers.
#include <gtest/gtest.h>
#include <dirent.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#ifndef CONVNCF_SOURCE_DIR
#define CONVNCF_SOURCE_DIR "."
#endif
#ifndef CONVNCF_KERNEL_RESOURCES
#define CONVNCF_KERNEL_RESOURCES "kernel_resources.txt"
#endif

namespace {

struct Usage {
  long registers = -1, stack = -1, spill_stores = -1, spill_loads = -1;
};

// Mangled kernel name -> its usage, from ptxas's "Compiling entry function", "N bytes stack
// frame, S bytes spill stores, L bytes spill loads" and "Used R registers" lines.
std::map<std::string, Usage> parse_report(const std::string& text) {
  std::map<std::string, Usage> out;
  std::istringstream in(text);
  std::string line, current;
  while (std::getline(in, line)) {
    const size_t entry = line.find("Compiling entry function '");
    if (entry != std::string::npos) {
      const size_t b = entry + 26, e = line.find('\'', b);
      current = line.substr(b, e - b);
      out[current];
      continue;
    }
    if (current.empty()) continue;
    Usage& u = out[current];
    long a = 0, b = 0, c = 0;
    if (std::sscanf(line.c_str(), " %ld bytes stack frame, %ld bytes spill stores, %ld bytes spill loads", &a, &b,
                    &c) == 3) {
      u.stack = a, u.spill_stores = b, u.spill_loads = c;
    }
    const size_t used = line.find("Used ");
    if (used != std::string::npos && std::sscanf(line.c_str() + used, "Used %ld registers", &a) == 1) u.registers = a;
  }
  return out;
}

// Names declared `CONVNCF_HOT_KERNEL void NAME(` in kernels/*.cu.
std::vector<std::string> hot_kernels() {
  std::vector<std::string> names;
  const std::string dir = std::string(CONVNCF_SOURCE_DIR) + "/kernels";
  DIR* d = opendir(dir.c_str());
  if (!d) return names;
  while (dirent* e = readdir(d)) {
    const std::string f = e->d_name;
    if (f.size() < 3 || f.compare(f.size() - 3, 3, ".cu") != 0) continue;
    std::ifstream in(dir + "/" + f);
    std::string line;
    const std::string mark = "CONVNCF_HOT_KERNEL void ";
    while (std::getline(in, line)) {
      const size_t at = line.find(mark);
      if (at == std::string::npos || line.find("#define") != std::string::npos) continue;
      const size_t b = at + mark.size();
      names.push_back(line.substr(b, line.find('(', b) - b));
    }
  }
  closedir(d);
  return names;
}

}  // namespace

TEST(KernelResources, ReportParsesPtxasLines) {
  const auto r = parse_report(
      "ptxas info    : Compiling entry function '_Z3fooPf' for 'sm_90'\n"
      "ptxas info    : Function properties for _Z3fooPf\n"
      "    16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n"
      "ptxas info    : Used 255 registers, used 1 barriers\n");
  ASSERT_EQ(r.count("_Z3fooPf"), 1u);
  EXPECT_EQ(r.at("_Z3fooPf").registers, 255);
  EXPECT_EQ(r.at("_Z3fooPf").stack, 16);
  EXPECT_EQ(r.at("_Z3fooPf").spill_stores, 8);
  EXPECT_EQ(r.at("_Z3fooPf").spill_loads, 4);
}

TEST(KernelResources, NoSpillsInHotKernels) {
  std::ifstream f(CONVNCF_KERNEL_RESOURCES);
  ASSERT_TRUE(f.good()) << "no " << CONVNCF_KERNEL_RESOURCES << ": the build writes it (target kernel_resources)";
  std::stringstream ss;
  ss << f.rdbuf();
  const auto report = parse_report(ss.str());
  ASSERT_FALSE(report.empty()) << "the report names no kernel:\n" << ss.str();
  const std::vector<std::string> hot = hot_kernels();
  ASSERT_FALSE(hot.empty()) << "no kernel is marked CONVNCF_HOT_KERNEL in kernels/*.cu";
  for (const std::string& name : hot) {
    int found = 0;
    for (const auto& [mangled, u] : report) {
      if (mangled.find(std::to_string(name.size()) + name) == std::string::npos) continue;
      ++found;
      std::printf("%s: %ld registers, %ld bytes stack, %ld/%ld bytes spill stores/loads\n", name.c_str(), u.registers,
                  u.stack, u.spill_stores, u.spill_loads);
      EXPECT_GE(u.registers, 0) << name << ": no register line in the report";
      EXPECT_EQ(u.spill_stores, 0) << name << " spills registers (stores)";
      EXPECT_EQ(u.spill_loads, 0) << name << " spills registers (loads)";
    }
    EXPECT_GT(found, 0) << "hot kernel " << name << " is not in the report";
  }
}
