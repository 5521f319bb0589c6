// fuzz_ncf_negatives.cpp: parse_ncf_negatives after the ncf rating files it belongs to. The
// input is train.rating, form feed, test.rating, form feed, test.negative.
// Run: fuzz/run_fuzz.sh DIR SECONDS fuzz_ncf_negatives
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using convncf::DataFormat;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto p = fuzz::parts(text, 3);
  if (p.size() < 3) return 0;
  fuzz::guarded([&] {
    convncf::LoadedData d;
    convncf::parse_delimited(p[0], "d.train.rating", DataFormat::Ncf, {}, convncf::kRoleTrain, d);
    convncf::parse_delimited(p[1], "d.test.rating", DataFormat::Ncf, {}, convncf::kRoleTest, d);
    convncf::parse_ncf_negatives(p[2], "d.test.negative", d);
    fuzz::finish_and_check(d, {});
  });
  return 0;
}
