// fuzz_delimited.cpp: parse_delimited on arbitrary text. Byte 0 picks the format (k % 5 of its
// low 4 bits: ncf, ml100k, ml1m, mlcsv, csv), the dup rule (k / 5 % 3) and, with bit 6, the name
// fuzz.tsv for csv. For ncf the rest is train, form feed, test. Run: fuzz/run_fuzz.sh DIR S
// fuzz_delimited
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using convncf::DataFormat;
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  static const DataFormat kFormats[] = {DataFormat::Ncf, DataFormat::Ml100k, DataFormat::Ml1m,
                                        DataFormat::MlCsv, DataFormat::Csv};
  const DataFormat format = kFormats[(data[0] & 15) % 5];
  convncf::LoadOptions opt;
  opt.dup_rule = fuzz::dup_rule(data[0]);
  fuzz::guarded([&] {
    convncf::LoadedData d;
    if (format == DataFormat::Ncf) {
      const auto p = fuzz::parts(text, 2);
      convncf::parse_delimited(p[0], "fuzz.train.rating", format, opt, convncf::kRoleTrain, d);
      if (p.size() > 1)
        convncf::parse_delimited(p[1], "fuzz.test.rating", format, opt, convncf::kRoleTest, d);
    } else {
      const std::string name = data[0] & 0x40 ? "fuzz.tsv" : "fuzz.csv";
      convncf::parse_delimited(text, name, format, opt, convncf::kRoleTrain, d);
    }
    fuzz::finish_and_check(d, opt);
  });
  return 0;
}
