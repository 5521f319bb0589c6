// train.hpp: the `convncf train` job and the other subcommands that work on a run folder.
//
// A run folder holds config.yaml (the effective configuration), split.tsv (the split, raw ids),
// metrics.jsonl (one JSON object per epoch, then the test result), model.bin (the best model so
// far) and checkpoint.bin (the latest state, written at the end of every epoch).
#pragma once
#include <ostream>
#include <string>
#include <vector>

#include "convncf/config.hpp"

namespace convncf {

// Trains as `cfg` says. With resume_dir set, continues that run from its checkpoint (or from the
// start when it has none yet) up to cfg.epochs.
void run_train(const Config& cfg, std::ostream& log, const std::string& resume_dir = "");

// `convncf train --resume=DIR [--epochs=N] [--threads=T] [--quiet] [--show_progress=B]`:
// the run's own configuration with those keys replaced. Other keys are refused (kExitUsage).
Config resume_config(const std::string& dir, const std::vector<std::string>& overrides);

// `convncf eval DIR [--KEY=VALUE ...]`: evaluates DIR's model.bin on DIR's data or another one,
// with any protocol; prints the metrics and one JSON line.
void run_eval(const std::string& dir, const std::vector<std::string>& overrides, std::ostream& out);

// `convncf recommend DIR --users=ID[,ID...] [--topk=K] [--format=table|jsonl] [--exclude=train|all]`
void run_recommend(const std::string& dir, const std::vector<std::string>& args, std::ostream& out);

// `convncf export DIR --out=FOLDER`: embeddings and id maps as .npy plus index.json.
void run_export(const std::string& dir, const std::vector<std::string>& args, std::ostream& out);

// `convncf info`: the machine and the engine `device: auto` would pick.
void run_info(std::ostream& out);

}  // namespace convncf
