// early_stopping.hpp: RecBole's early_stopping (trainer utils), bigger is better. A value >= the
// best so far is a gain (a tie counts as a gain, and moves the best epoch to the later one); after
// more than `stopping_step` validations in a row without a gain, training stops. stopping_step 0
// never stops.
#pragma once

namespace convncf {

struct EarlyStopping {
  double best_value = -1e300;
  int best_epoch = 0;            // 0: never validated
  int evals_without_gain = 0;

  // Records the validation value of `epoch`; returns true when training should stop.
  // `gained` says whether this epoch is the new best.
  bool update(double value, int epoch, int stopping_step, bool* gained) {
    *gained = value >= best_value;
    if (*gained) {
      best_value = value;
      best_epoch = epoch;
      evals_without_gain = 0;
      return false;
    }
    return stopping_step > 0 && ++evals_without_gain > stopping_step;
  }
};

}  // namespace convncf
