// train.hpp: the `convncf train` job. The run folder it writes is described in run_folder.hpp.
#pragma once
#include <ostream>
#include <string>

#include "convncf/config.hpp"

namespace convncf {

// Trains as `cfg` says. With resume_dir set, continues that run from its checkpoint (or from the
// start when it has none yet) up to cfg.epochs.
void run_train(const Config& cfg, std::ostream& log, const std::string& resume_dir = "");

}  // namespace convncf
