// test_nccl_gpu.cpp: finding and loading libnccl.so.2 (nccl.hpp). No GPU is needed to load the
// library and read its version, so these run wherever the CUDA engines are built; the collectives
// themselves run in GpuEngine.OneRankThroughNcclIsTheSingleGpuStep (a GPU) and on the emulated
// device's fake (EmulatedNccl.*).
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "convncf/nccl.hpp"

namespace {

using namespace convncf;

TEST(NcclLibrary, FoundWhereTheToolkitOrAWheelHasIt) {
  const NcclInfo& info = nccl_info();
  if (!info.found) GTEST_SKIP() << "no NCCL on this machine: " << info.why;
  EXPECT_EQ(info.version.rfind("2.", 0), 0u) << info.version;
  EXPECT_EQ(access(info.path.c_str(), R_OK), 0) << info.path;
  EXPECT_TRUE(info.why.empty()) << info.why;
  // the file found, probed alone, is the same library
  const NcclInfo again = nccl_probe(info.path);
  EXPECT_TRUE(again.found) << again.why;
  EXPECT_EQ(again.version, info.version);
}

TEST(NcclLibrary, ProbeNamesWhatIsWrong) {
  const NcclInfo missing = nccl_probe("/nonexistent/libnccl.so.2");
  EXPECT_FALSE(missing.found);
  EXPECT_NE(missing.why.find("/nonexistent/libnccl.so.2: not found"), std::string::npos)
      << missing.why;
  // a library that loads but is not NCCL: the C library this test runs with
  Dl_info where{};
  ASSERT_TRUE(dladdr(reinterpret_cast<void*>(&std::fclose), &where) && where.dli_fname);
  const NcclInfo libc = nccl_probe(where.dli_fname);
  EXPECT_FALSE(libc.found);
  EXPECT_NE(libc.why.find("has no ncclGetVersion"), std::string::npos) << libc.why;
}

TEST(NcclLibrary, ForcedOnlyByOne) {
  const char* before = std::getenv("CONVNCF_FORCE_NCCL");
  const std::string saved = before ? before : "";
  unsetenv("CONVNCF_FORCE_NCCL");
  EXPECT_FALSE(nccl_forced());
  setenv("CONVNCF_FORCE_NCCL", "0", 1);
  EXPECT_FALSE(nccl_forced());
  setenv("CONVNCF_FORCE_NCCL", "1", 1);
  EXPECT_TRUE(nccl_forced());
  if (before)
    setenv("CONVNCF_FORCE_NCCL", saved.c_str(), 1);
  else
    unsetenv("CONVNCF_FORCE_NCCL");
}

}  // namespace
