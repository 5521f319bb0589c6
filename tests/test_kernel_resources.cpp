// test_kernel_resources.cpp: runs everywhere (no GPU needed). Reads the ptxas resource report
// that the build writes for every kernel file (tools/kernel_resources.sh, target
// kernel_resources) and fails when a kernel marked CONVNCF_HOT_KERNEL or
// CONVNCF_TENSOR_CORE_KERNEL spills registers, or when a CONVNCF_TENSOR_CORE_KERNEL has no HMMA
// instruction in its SASS (skipped, with the reason, where the build found no cuobjdump).
#include <gtest/gtest.h>
#include <dirent.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "test_paths.hpp"


namespace {

struct Usage {
  long registers = -1, stack = -1, spill_stores = -1, spill_loads = -1;
  long hmma = -1;  // HMMA instructions in the SASS ("sass:" lines), -1 where not reported
};

// Mangled kernel name -> its usage, from ptxas's "Compiling entry function", "N bytes stack
// frame, S bytes spill stores, L bytes spill loads" and "Used R registers" lines.
std::map<std::string, Usage> parse_report(const std::string& text) {
  std::map<std::string, Usage> out;
  std::istringstream in(text);
  std::string line, current;
  while (std::getline(in, line)) {
    char name[4096];
    long n = 0;
    if (line.rfind("sass: ", 0) == 0 && std::sscanf(line.c_str(), "sass: %4095s HMMA %ld", name, &n) == 2) {
      out[name].hmma = n;
      continue;
    }
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

// The report's "sass: unavailable: WHY", or "".
std::string sass_unavailable(const std::string& text) {
  const std::string mark = "sass: unavailable: ";
  const size_t at = text.find(mark);
  if (at == std::string::npos) return "";
  return text.substr(at + mark.size(), text.find('\n', at) - at - mark.size());
}

// Names declared `MARK void NAME(` in kernels/*.cu (MARK: CONVNCF_HOT_KERNEL or
// CONVNCF_TENSOR_CORE_KERNEL).
std::vector<std::string> marked_kernels(const std::string& mark_name) {
  std::vector<std::string> names;
  const std::string dir = convncf::test::source_dir() + "/kernels";
  DIR* d = opendir(dir.c_str());
  if (!d) {
    ADD_FAILURE() << "cannot open " << dir << " (the source tree's kernels/)";
    return names;
  }
  while (dirent* e = readdir(d)) {
    const std::string f = e->d_name;
    if (f.size() < 3 || f.compare(f.size() - 3, 3, ".cu") != 0) continue;
    std::ifstream in(dir + "/" + f);
    std::string line;
    const std::string mark = mark_name + " void ";
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

std::vector<std::string> hot_kernels() {
  std::vector<std::string> names = marked_kernels("CONVNCF_HOT_KERNEL");
  for (const std::string& n : marked_kernels("CONVNCF_TENSOR_CORE_KERNEL")) names.push_back(n);
  return names;
}

std::string read_report() {
  std::ifstream f(convncf::test::kernel_resources());
  if (!f.good()) return "";
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

TEST(KernelResources, ReportParsesSassLines) {
  const auto r = parse_report("sass: _Z3fooPf HMMA 28\nsass: _Z3barPf HMMA 0\n");
  ASSERT_EQ(r.count("_Z3fooPf"), 1u);
  EXPECT_EQ(r.at("_Z3fooPf").hmma, 28);
  EXPECT_EQ(r.at("_Z3barPf").hmma, 0);
  EXPECT_EQ(sass_unavailable("x\nsass: unavailable: cuobjdump not found\n"), "cuobjdump not found");
  EXPECT_EQ(sass_unavailable("sass: _Z3fooPf HMMA 28\n"), "");
}

// Where cuobjdump is found: each kernel marked CONVNCF_TENSOR_CORE_KERNEL (every instantiation)
// has HMMA instructions in its sm_ARCH SASS.
TEST(KernelResources, TensorCoreKernelsUseHmma) {
  const std::string text = read_report();
  ASSERT_FALSE(text.empty()) << "no " << convncf::test::kernel_resources() << ": the build writes it (target kernel_resources)";
  const std::string why = sass_unavailable(text);
  if (!why.empty()) GTEST_SKIP() << "no SASS in the report: " << why;
  const auto report = parse_report(text);
  const std::vector<std::string> tc = marked_kernels("CONVNCF_TENSOR_CORE_KERNEL");
  ASSERT_FALSE(tc.empty()) << "no kernel is marked CONVNCF_TENSOR_CORE_KERNEL in kernels/*.cu";
  for (const std::string& name : tc) {
    int found = 0;
    for (const auto& [mangled, u] : report) {
      if (mangled.find(std::to_string(name.size()) + name) == std::string::npos) continue;
      ++found;
      std::printf("%s: %ld HMMA instructions\n", name.c_str(), u.hmma);
      EXPECT_GT(u.hmma, 0) << name << " (" << mangled << ") has no HMMA instruction in its SASS";
    }
    EXPECT_GT(found, 0) << "tensor-core kernel " << name << " is not in the report";
  }
}

TEST(KernelResources, NoSpillsInHotKernels) {
  const std::string text = read_report();
  ASSERT_FALSE(text.empty()) << "no " << convncf::test::kernel_resources() << ": the build writes it (target kernel_resources)";
  const auto report = parse_report(text);
  ASSERT_FALSE(report.empty()) << "the report names no kernel:\n" << text;
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
