// run_data.hpp: the data a run works on, from its options: load (any format of formats.hpp, or the
// built-in synthetic set), filter (RecBole's filters), split (a split file, the files' own split,
// leave-one-out or a ratio split). train, eval and recommend all go through load_run_data, so a
// run folder's config.yaml rebuilds exactly the run's data.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "convncf/dataset.hpp"
#include "convncf/formats.hpp"

namespace convncf {

struct SplitOptions {
  std::string file;                            // a split.tsv to read back; empty: split here
  std::string method = "RS";                   // RS: ratio split | LS: leave-one-out by time
  std::vector<double> ratios{0.8, 0.1, 0.1};   // RS: train, valid, test shares
  bool with_valid = true;                      // LS: valid_and_test (true) | test_only
  SplitOrder order = SplitOrder::Random;       // RS: RO random (seeded) | TO by time
  uint64_t seed = 2020;
};

struct DataOptions {
  std::string dataset = "synthetic";  // "synthetic", a path, or a NAME under data_path
  std::string data_path = "dataset/";
  uint64_t seed = 2020;               // the synthetic set's
  LoadOptions load;
  FilterSpec filters;
  SplitOptions split;
};

struct RunData {
  LoadedData data;       // interactions after filtering, id maps, file negatives
  Split split;
  std::string summary;   // what was loaded and how it was split, for the log
  int32_t users_loaded = 0;  // users in the data before the filters
};

// Throws kExitNoInput (missing dataset), kExitData (bad data), kExitUsage (bad split options).
RunData load_run_data(const DataOptions& opts);

// Hash of the id maps and the split: a checkpoint made on other data is refused.
uint64_t data_fingerprint(const RunData& d);

// Why the split gives no held-out interaction of one kind (test = true: test), for messages:
// the users left at each step (loaded, filtered, with such an interaction after the split) and
// what made the split leave them none.
std::string why_no_held_out(const RunData& d, const SplitOptions& split, bool test);

}  // namespace convncf
