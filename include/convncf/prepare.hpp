// prepare.hpp: from a configuration to the data a run works on: load (any format of
// formats.hpp, or the built-in synthetic set), filter, split. train, eval and recommend all go
// through prepare_data, so a run folder's config.yaml rebuilds exactly the run's data.
#pragma once
#include <cstdint>
#include <string>

#include "convncf/config.hpp"
#include "convncf/dataset.hpp"
#include "convncf/formats.hpp"
#include "convncf/model_io.hpp"

namespace convncf {

struct PreparedData {
  LoadedData data;       // interactions after filtering, id maps, file negatives
  Split split;
  std::string summary;   // what was loaded and how it was split, for the log
};

LoadOptions load_options(const Config& cfg);

// Throws kExitNoInput (missing dataset), kExitData (bad data), kExitUsage (bad split options).
PreparedData prepare_data(const Config& cfg);

// Hash of the id maps and the split: a checkpoint made on other data is refused.
uint64_t data_fingerprint(const PreparedData& d);

// The model's parameters re-indexed to `d`'s id maps, by raw id. Throws kExitData naming the
// first user or item of the data the model does not know.
Params<float> params_for_data(const ModelFile& m, const PreparedData& d, const std::string& name);

}  // namespace convncf
