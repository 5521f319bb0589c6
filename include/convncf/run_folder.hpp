// run_folder.hpp: the run folder, the contract between a training run and everything that reads
// it later (eval, recommend, export, resume, tools/plot_run.py):
//   config.yaml     the effective configuration (written at the start)
//   split.tsv       the split, raw ids (written at the start; kept on resume)
//   metrics.jsonl   one JSON object per epoch, then the test result
//   model.bin       the best model so far
//   checkpoint.bin  the state at the end of the latest epoch
// Every file is written whole to a temporary file and renamed into place (write_file_atomic),
// and the end of an epoch writes its metrics line, then model.bin (if improved), then
// checkpoint.bin: a kill at any moment leaves a resumable folder (README "Runs that survive
// crashes").
#pragma once
#include <fstream>
#include <string>

#include "convncf/checkpoint.hpp"
#include "convncf/dataset.hpp"
#include "convncf/kinds.hpp"
#include "convncf/model_io.hpp"

namespace convncf {

class RunFolder {
 public:
  // A new run: `out` (refused, kExitUsage, when it already holds a run) or, when `out` is empty,
  // runs/<model>-<time>[-n]. Creates the folder.
  static RunFolder create(const std::string& out, ModelKind model);
  // The folder of a run being resumed (it exists): removes the temporary files of writes a kill
  // interrupted.
  static RunFolder reopen(const std::string& dir);

  const std::string& dir() const { return m_dir; }
  std::string path(const char* file) const { return m_dir + "/" + file; }

  void write_config(const std::string& yaml) const;
  // split.tsv, unless `keep_existing` and one is there already (a resumed run keeps its own).
  void write_split(const Interactions& data, const Split& split, bool keep_existing) const;
  // metrics.jsonl cut back to the epoch lines 1 .. epochs_kept (0: emptied), then opened for
  // appending. A kill may land after the line of an epoch whose checkpoint was not yet renamed
  // into place, or in the middle of a line: both are dropped.
  void open_metrics(int epochs_kept);
  void append_metrics(const std::string& json_line);  // one line, flushed
  void save_model(const ModelFile& m) const;
  void save_checkpoint(const Checkpoint& c) const;

 private:
  explicit RunFolder(std::string dir) : m_dir(std::move(dir)) {}
  std::string m_dir;
  std::ofstream m_metrics;
};

}  // namespace convncf
