// run_folder.cpp: the run folder (see run_folder.hpp).
#include "convncf/run_folder.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "convncf/errors.hpp"
#include "convncf/util.hpp"

namespace convncf {

RunFolder RunFolder::create(const std::string& out, ModelKind model) {
  std::string dir = out;
  if (dir.empty()) {
    char stamp[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
    const std::string base = std::string("runs/") + model_name(model) + "-" + stamp;
    dir = base;
    for (int n = 2; path_exists(dir); ++n) dir = base + "-" + std::to_string(n);
  } else if (path_exists(dir + "/metrics.jsonl") || path_exists(dir + "/model.bin")) {
    throw_usage("run folder " + dir + " already holds a run; choose another --out");
  }
  make_dirs(dir);
  return RunFolder(dir);
}

RunFolder RunFolder::reopen(const std::string& dir) {
  for (const char* f : {"checkpoint.bin", "model.bin", "metrics.jsonl", "config.yaml", "split.tsv"})
    std::remove((dir + "/" + f + ".tmp").c_str());
  return RunFolder(dir);
}

void RunFolder::write_config(const std::string& yaml) const { write_file_atomic(path("config.yaml"), yaml); }

void RunFolder::write_split(const Interactions& data, const Split& split, bool keep_existing) const {
  if (keep_existing && path_exists(path("split.tsv"))) return;
  convncf::write_split(path("split.tsv"), data, split);
}

void RunFolder::open_metrics(int epochs_kept) {
  const std::string file = path("metrics.jsonl");
  std::string kept;
  if (epochs_kept > 0) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
      if (in.eof()) break;  // no newline after it: a line cut short by a kill
      const size_t at = line.find("\"event\":\"epoch\",\"epoch\":");
      if (at == std::string::npos) continue;  // test lines are written again at the end
      const int e = std::atoi(line.c_str() + at + 24);
      if (e >= 1 && e <= epochs_kept) kept += line + "\n";
    }
  }
  write_file_atomic(file, kept);
  m_metrics.open(file, std::ios::app);
  if (!m_metrics) throw_io("cannot write " + file + ": " + std::strerror(errno));
}

void RunFolder::append_metrics(const std::string& json_line) {
  m_metrics << json_line << "\n" << std::flush;
  if (!m_metrics) throw_io("cannot write " + path("metrics.jsonl"));
}

void RunFolder::save_model(const ModelFile& m) const { convncf::save_model(path("model.bin"), m); }

void RunFolder::save_checkpoint(const Checkpoint& c) const { convncf::save_checkpoint(path("checkpoint.bin"), c); }

}  // namespace convncf
