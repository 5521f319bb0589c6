// fuzz_atomic.cpp: parse_atomic on arbitrary text. Byte 0 picks options: bits 0-3 give k
// (dup rule k / 5 % 3; k odd: comma separator; k & 2: load_col without rating), the rest is
// the file. Run: fuzz/run_fuzz.sh DIR SECONDS fuzz_atomic
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const int k = data[0] & 15;
  convncf::LoadOptions opt;
  opt.dup_rule = fuzz::dup_rule(data[0]);
  if (k & 1) opt.field_separator = ",";
  if (k & 2) opt.load_col = {"user_id", "item_id", "timestamp"};
  fuzz::guarded([&] {
    convncf::LoadedData d;
    convncf::parse_atomic(text, "fuzz.inter", opt, d);
    fuzz::finish_and_check(d, opt);
  });
  return 0;
}
