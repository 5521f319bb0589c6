// commands.hpp: the subcommands around a run folder (run_folder.hpp), and `info`.
#pragma once
#include <ostream>
#include <string>
#include <vector>

#include "convncf/config.hpp"

namespace convncf {

// `convncf train --resume=DIR [--epochs=N] [--threads=T] [--device=D] [--engine=E] [--precision=P]
// [--quiet] [--verbose] [--show_progress=B]`: the run's own configuration with those keys
// replaced. Other keys are refused (kExitUsage).
Config resume_config(const std::string& dir, const std::vector<std::string>& overrides);

// `convncf eval DIR [--KEY=VALUE ...]`: evaluates DIR's model.bin on DIR's data or another one,
// with any protocol; prints the metrics and one JSON line.
void run_eval(const std::string& dir, const std::vector<std::string>& overrides, std::ostream& out);

// `convncf recommend DIR --users=ID[,ID...] [--topk=K] [--format=table|jsonl] [--exclude=train|all|none]`
void run_recommend(const std::string& dir, const std::vector<std::string>& args, std::ostream& out);

// `convncf export DIR --out=FOLDER`: embeddings and id maps as .npy plus index.json.
void run_export(const std::string& dir, const std::vector<std::string>& args, std::ostream& out);

// `convncf info [--format=text|json]`: the machine and the engine `device: auto` would pick.
void run_info(const std::vector<std::string>& args, std::ostream& out);

}  // namespace convncf
