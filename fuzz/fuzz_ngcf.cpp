// fuzz_ngcf.cpp: parse_ngcf on arbitrary text: train.txt, form feed, test.txt (test optional).
// Run: fuzz/run_fuzz.sh DIR SECONDS fuzz_ngcf
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  fuzz::guarded([&] {
    convncf::LoadedData d;
    const auto p = fuzz::parts(text, 2);
    convncf::parse_ngcf(p[0], "train.txt", convncf::kRoleTrain, d);
    if (p.size() > 1) convncf::parse_ngcf(p[1], "test.txt", convncf::kRoleTest, d);
    fuzz::finish_and_check(d, {});
  });
  return 0;
}
