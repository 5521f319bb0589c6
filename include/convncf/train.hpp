// train.hpp: the `convncf train` job: data, split, model, the training loop over sparse
// user-item batches, validation, early stopping, the test on the best epoch, the run folder.
#pragma once
#include <ostream>

#include "convncf/config.hpp"

namespace convncf {

// Runs the job; progress goes to `log`. Throws convncf::Error with the documented exit code.
void run_train(const Config& cfg, std::ostream& log);

}  // namespace convncf
