// run_folder.hpp: the run folder, the contract between a training run and everything that reads
// it later (eval, recommend, export, resume, tools/plot_run.py):
//   run.lock        the lock: a run holds flock(LOCK_EX) on it from its start to its end, so the
//                   kernel frees it when the process ends, even by kill -9; its text is "pid N"
//   config.yaml     the effective configuration (written at the start)
//   split.tsv       the split, raw ids, one line per interaction (written at the start; kept on resume)
//   metrics.jsonl   one JSON object per epoch, then the test result, each with its "stage"
//   model.bin       the best model so far
//   checkpoint.bin  the state at the end of the latest epoch (of the stage being trained)
//   pretrain.bin    after_pretrain without pre_model_path: the MF-BPR stage's best model
// Ownership: a run writes only into a folder it holds the lock of, and only these files. A new
// training takes a folder that does not exist, is empty, or holds an earlier stopped attempt of
// the same run (same settings: then it continues it as --resume would); anything else is refused
// before anything is written (kExitUsage), and a folder whose lock another process holds is
// refused with kExitBusy. A new run that fails before its first checkpoint removes what it wrote
// (and the folders it made). Every file is written whole to a temporary file and renamed into
// place (write_file_atomic), and the end of an epoch writes its metrics line, then model.bin (if
// improved), then checkpoint.bin: a kill at any moment leaves a resumable folder (README "Runs
// that survive crashes").
#pragma once
#include <fstream>
#include <string>
#include <vector>

#include "convncf/checkpoint.hpp"
#include "convncf/dataset.hpp"
#include "convncf/kinds.hpp"
#include "convncf/model_io.hpp"

namespace convncf {

// What a folder holds, as the contract sees it.
struct FolderState {
  bool exists = false;
  std::vector<std::string> foreign;  // names no run writes
  bool lock_file = false;            // run.lock: a convncf run claimed the folder
  bool config = false, split = false, metrics = false, model = false, checkpoint = false, pretrain = false;
  bool finished = false;             // metrics.jsonl holds the (main stage's) test line: the run ended
  bool pretrain_done = false;        // metrics.jsonl holds the MF-BPR stage's test line
  bool has_run_data() const { return config || split || metrics || model || checkpoint || pretrain; }
};
FolderState inspect_folder(const std::string& dir);

// Whether a live process holds dir/run.lock (its pid in *pid, 0 when unknown). Looks, never
// locks (where /proc/locks can be read), so a run starting at that moment is not disturbed.
bool folder_in_use(const std::string& dir, long* pid = nullptr);

// Holds dir/run.lock, if the folder has one, while the returned descriptor is open (-1: no
// run.lock); Error(kExitBusy) when another process holds it. For a command that writes into a
// run's folder without being its run (export).
int hold_run_lock(const std::string& dir);

class RunFolder {
 public:
  // A new training's folder: `out`, or runs/<model>-<time>[-n] when empty. Takes the lock
  // before anything is loaded; refused as the header says. `config_yaml` is the run's
  // configuration, compared with an earlier attempt's config.yaml by run_settings().
  static RunFolder claim_new(const std::string& out, ModelKind model, const std::string& config_yaml);
  // The folder of a run being resumed (it exists and has a config.yaml): takes the lock.
  static RunFolder claim_resume(const std::string& dir);
  RunFolder(RunFolder&& o) noexcept;
  RunFolder& operator=(RunFolder&&) = delete;
  RunFolder(const RunFolder&) = delete;
  // A new run that was not kept (no checkpoint written, not finished) removes its files, its
  // lock file and the folders it made; otherwise only the lock is released.
  ~RunFolder();

  const std::string& dir() const { return m_dir; }
  std::string path(const char* file) const { return m_dir + "/" + file; }
  // claim_new found an earlier stopped attempt of the same run there (it continues it).
  bool earlier_attempt() const { return m_earlier; }
  // What the folder held when it was claimed.
  const FolderState& claimed_state() const { return m_state; }
  // The result files present now, comma-separated in the header's order ("config.yaml,...").
  std::string result_files() const;

  void write_config(const std::string& yaml) const;
  // split.tsv, unless `keep_existing` and one is there already (a resumed run keeps its own).
  void write_split(const Interactions& data, const Split& split, bool keep_existing) const;
  // metrics.jsonl cut back to the epoch lines 1 .. epochs_kept of `stage` ("pretrain" or
  // "main"; lines without a stage are "main"), after every line of the finished pretrain stage
  // when `keep_pretrain`, then opened for appending. A kill may land after the line of an epoch
  // whose checkpoint was not yet renamed into place, or in the middle of a line: both are dropped.
  void open_metrics(const std::string& stage, int epochs_kept, bool keep_pretrain = false);
  void append_metrics(const std::string& json_line);  // one line, flushed
  void save_model(const ModelFile& m, const char* file = "model.bin") const;
  // Also marks the folder kept: from the first checkpoint on it holds a resumable run.
  void save_checkpoint(const Checkpoint& c);
  // The run finished: never removed.
  void keep() { m_kept = true; }

 private:
  RunFolder(std::string dir, std::vector<std::string> created);
  void lock();
  std::string m_dir;
  std::vector<std::string> m_created;  // folders this process made, outermost first
  int m_lock_fd = -1;
  bool m_lock_created = false;  // run.lock did not exist before
  bool m_fresh = false;         // the folder held no run data: a failure removes everything
  bool m_earlier = false;
  bool m_kept = false;
  FolderState m_state;
  std::ofstream m_metrics;
};

}  // namespace convncf
