// run_folder.cpp: the run folder and its contract (see run_folder.hpp).
//
// The lock is flock(2) on run.lock, held through one open file description for the process's
// life: the kernel drops it when the process ends however it ends, so no lock is ever stale and
// nothing has to be cleaned up after kill -9. Others ask whether it is held through /proc/locks
// (never by taking it, which could make a starting run lose its claim), falling back to a
// shared non-blocking try where /proc/locks cannot be read.
#include "convncf/run_folder.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <sstream>

#include "convncf/config.hpp"
#include "convncf/errors.hpp"
#include "convncf/util.hpp"

namespace convncf {

namespace {

const char* const kLockFile = "run.lock";
// The files of a run, in the order the done line names them.
const char* const kResultFiles[] = {"config.yaml", "split.tsv", "metrics.jsonl", "model.bin", "checkpoint.bin",
                                    "pretrain.bin"};

// The stage a metrics.jsonl line belongs to: its leading "stage" key, "main" for the lines of
// versions that wrote none.
std::string stage_of(const std::string& line) {
  static const std::string key = "{\"stage\":\"";
  if (line.compare(0, key.size(), key) != 0) return "main";
  const size_t end = line.find('"', key.size());
  return end == std::string::npos ? "" : line.substr(key.size(), end - key.size());
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string joined(const std::vector<std::string>& names, size_t at_most = 5) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < at_most; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > at_most) s += " and " + std::to_string(names.size() - at_most) + " more";
  return s;
}

// The pid holding a flock on the file `st` describes, from /proc/locks; 0 when none is listed,
// -1 when /proc/locks cannot be read.
long flock_holder(const struct stat& st) {
  std::ifstream in("/proc/locks");
  if (!in) return -1;
  std::string line;
  while (std::getline(in, line)) {
    // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (blocked waiters have "->" after the id)
    std::istringstream f(line);
    std::string id, type, mode, access, pid, where;
    f >> id >> type;
    if (type == "->") f >> type;
    if (type != "FLOCK" || !(f >> mode >> access >> pid >> where)) continue;
    unsigned maj = 0, min = 0;
    unsigned long long ino = 0;
    if (std::sscanf(where.c_str(), "%x:%x:%llu", &maj, &min, &ino) != 3) continue;
    if (ino == static_cast<unsigned long long>(st.st_ino) && maj == major(st.st_dev) && min == minor(st.st_dev))
      return std::strtol(pid.c_str(), nullptr, 10);
  }
  return 0;
}

// "pid N" as the holder wrote it into run.lock; 0 when unreadable.
long pid_in_lock_file(const std::string& path) {
  long pid = 0;
  std::sscanf(read_text(path).c_str(), "pid %ld", &pid);
  return pid;
}

[[noreturn]] void throw_busy(const std::string& dir, long pid) {
  throw Error(kExitBusy, "run folder " + dir + " is in use by another convncf process" +
                             (pid > 0 ? " (pid " + std::to_string(pid) + ")" : std::string()) + ", which holds " +
                             join_path(dir, kLockFile) +
                             " until it ends; wait for it to end, or use another folder");
}

// A new training may take `dir` (as inspected in `st`) only when it is empty or holds an earlier
// stopped attempt of the same run; everything else is refused here, before anything is written.
void refuse_unless_ours(const std::string& dir, const FolderState& st, const std::string& config_yaml,
                        bool only_others_files = false) {
  if (!st.foreign.empty() || (st.has_run_data() && !st.lock_file)) {
    std::vector<std::string> theirs = st.foreign;
    if (!st.lock_file)  // no convncf run claimed it: its files with run names are someone else's too
      for (const char* f : kResultFiles)
        if (path_exists(join_path(dir, f))) theirs.push_back(f);
    std::sort(theirs.begin(), theirs.end());
    throw_usage("run folder " + dir + " holds files this run did not write (" + joined(theirs) +
                "); a training writes only into a new or empty folder, or one holding an earlier stopped attempt of "
                "the same run: choose another --out" +
                (!st.lock_file && st.config && (st.checkpoint || st.metrics)
                     ? " (a run folder of a convncf older than run.lock continues with train --resume=" + dir + ")"
                     : std::string()));
  }
  if (only_others_files) return;
  if (st.finished)
    throw_usage("run folder " + dir + " already holds a finished run (its test result is in metrics.jsonl): choose "
                "another --out, or continue that run with train --resume=" + dir + " --epochs=N");
  if (!st.has_run_data()) return;
  if (!st.config)
    throw_usage("run folder " + dir + " holds parts of a run but no config.yaml, so it cannot be continued: choose "
                "another --out");
  std::string line;
  if (!same_run_settings(config_yaml, read_text(join_path(dir, "config.yaml")), &line)) {
    throw_usage("run folder " + dir + " holds another run, stopped before it finished (its config.yaml has '" + line +
                "'): continue that run with train --resume=" + dir + ", or choose another --out");
  }
}

}  // namespace

FolderState inspect_folder(const std::string& dir) {
  FolderState st;
  DIR* d = opendir(dir.c_str());
  if (!d) return st;
  st.exists = true;
  while (const dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string base = name;
    const bool tmp = base.size() > 4 && base.compare(base.size() - 4, 4, ".tmp") == 0;
    if (tmp) base.erase(base.size() - 4);
    bool* flag = base == "config.yaml" ? &st.config : base == "split.tsv" ? &st.split
                 : base == "metrics.jsonl" ? &st.metrics : base == "model.bin" ? &st.model
                 : base == "checkpoint.bin" ? &st.checkpoint : base == "pretrain.bin" ? &st.pretrain : nullptr;
    if (base == kLockFile && !tmp) st.lock_file = true;
    else if (!flag) st.foreign.push_back(name);
    else if (!tmp) *flag = true;  // a .tmp is a write a kill interrupted: removed when claimed
  }
  closedir(d);
  std::sort(st.foreign.begin(), st.foreign.end());
  if (st.metrics) {
    std::ifstream in(join_path(dir, "metrics.jsonl"));
    std::string line;
    while (std::getline(in, line)) {
      if (in.eof()) break;  // no newline after it: a line cut short by a kill
      if (line.find("\"event\":\"test\"") == std::string::npos) continue;
      (stage_of(line) == "pretrain" ? st.pretrain_done : st.finished) = true;
    }
  }
  return st;
}

bool folder_in_use(const std::string& dir, long* pid) {
  if (pid) *pid = 0;
  const std::string lock = join_path(dir, kLockFile);
  struct stat st;
  if (stat(lock.c_str(), &st) != 0) return false;
  long holder = flock_holder(st);
  if (holder < 0) {  // no /proc/locks: a shared try, released at once
    const int fd = open(lock.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool busy = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    holder = busy ? pid_in_lock_file(lock) : 0;
    if (busy && pid) *pid = holder;
    return busy;
  }
  if (holder > 0 && pid) *pid = holder;
  return holder > 0;
}

int hold_run_lock(const std::string& dir) {
  const std::string p = join_path(dir, kLockFile);
  const int fd = open(p.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return -1;
    throw_io("cannot open " + p + ": " + std::strerror(errno));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    close(fd);
    if (e != EWOULDBLOCK) throw_io("cannot lock " + p + ": " + std::strerror(e));
    struct stat st;
    long pid = stat(p.c_str(), &st) == 0 ? flock_holder(st) : 0;
    if (pid <= 0) pid = pid_in_lock_file(p);
    throw_busy(dir, pid);
  }
  return fd;
}

RunFolder::RunFolder(std::string dir, std::vector<std::string> created)
    : m_dir(std::move(dir)), m_created(std::move(created)) {}

RunFolder::RunFolder(RunFolder&& o) noexcept
    : m_dir(std::move(o.m_dir)),
      m_created(std::move(o.m_created)),
      m_lock_fd(o.m_lock_fd),
      m_lock_created(o.m_lock_created),
      m_fresh(o.m_fresh),
      m_earlier(o.m_earlier),
      m_kept(o.m_kept),
      m_state(std::move(o.m_state)),
      m_metrics(std::move(o.m_metrics)) {
  o.m_lock_fd = -1;
  o.m_created.clear();
  o.m_kept = true;
}

RunFolder::~RunFolder() {
  if (m_metrics.is_open()) m_metrics.close();
  if (!m_kept) {
    if (m_fresh)
      for (const char* f : kResultFiles) {
        std::remove(path(f).c_str());
        std::remove((path(f) + ".tmp").c_str());
      }
    if ((m_fresh || m_lock_created) && m_lock_fd >= 0) std::remove(path(kLockFile).c_str());
  }
  if (m_lock_fd >= 0) close(m_lock_fd);  // releases the lock
  if (!m_kept)
    for (auto it = m_created.rbegin(); it != m_created.rend(); ++it) rmdir(it->c_str());  // only if empty
}

void RunFolder::lock() {
  const std::string p = path(kLockFile);
  int fd = open(p.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd >= 0) m_lock_created = true;
  else if (errno == EEXIST) fd = open(p.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw_io("cannot open " + p + ": " + std::strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    close(fd);
    m_lock_created = false;  // another process holds it: it is theirs now
    if (e != EWOULDBLOCK) throw_io("cannot lock " + p + ": " + std::strerror(e));
    struct stat st;
    long pid = stat(p.c_str(), &st) == 0 ? flock_holder(st) : 0;
    if (pid <= 0) pid = pid_in_lock_file(p);
    throw_busy(m_dir, pid);
  }
  m_lock_fd = fd;
  const std::string text = "pid " + std::to_string(getpid()) + "\n";
  if (ftruncate(fd, 0) != 0 || pwrite(fd, text.data(), text.size(), 0) != ssize_t(text.size()))
    throw_io("cannot write " + p + ": " + std::strerror(errno));
}

RunFolder RunFolder::claim_new(const std::string& out, ModelKind model, const std::string& config_yaml) {
  std::vector<std::string> created;
  std::string dir = out;
  if (dir.empty()) {
    char stamp[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
    make_dirs("runs", &created);
    const std::string base = std::string("runs/") + model_name(model) + "-" + stamp;
    for (int n = 1;; ++n) {  // mkdir is the claim: two runs in the same second get two folders
      dir = n == 1 ? base : base + "-" + std::to_string(n);
      if (mkdir(dir.c_str(), 0755) == 0) break;
      if (errno != EEXIST) throw_io("cannot create folder " + dir + ": " + std::strerror(errno));
    }
    created.push_back(dir);
  } else if (path_exists(dir)) {
    if (!is_dir(dir)) throw_usage("--out " + dir + " is a file, not a folder");
    // before touching anything (not even run.lock): files no run of this tool wrote there
    refuse_unless_ours(dir, inspect_folder(dir), config_yaml, /*only_others_files=*/true);
  } else {
    make_dirs(dir, &created);
  }
  RunFolder f(dir, std::move(created));
  f.lock();
  f.m_state = inspect_folder(dir);  // again, under the lock: another process may have been quicker
  refuse_unless_ours(dir, f.m_state, config_yaml);
  f.m_earlier = f.m_state.has_run_data();
  f.m_fresh = !f.m_earlier;
  for (const char* file : kResultFiles) std::remove((f.path(file) + ".tmp").c_str());
  return f;
}

RunFolder RunFolder::claim_resume(const std::string& dir) {
  RunFolder f(dir, {});
  f.lock();
  f.m_state = inspect_folder(dir);
  for (const char* file : kResultFiles) std::remove((f.path(file) + ".tmp").c_str());
  return f;
}

std::string RunFolder::result_files() const {
  std::string s;
  for (const char* f : kResultFiles)
    if (path_exists(path(f))) s += (s.empty() ? "" : ",") + std::string(f);
  return s;
}

void RunFolder::write_config(const std::string& yaml) const { write_file_atomic(path("config.yaml"), yaml); }

void RunFolder::write_split(const Interactions& data, const Split& split, bool keep_existing) const {
  if (keep_existing && path_exists(path("split.tsv"))) return;
  convncf::write_split(path("split.tsv"), data, split);
}

void RunFolder::open_metrics(const std::string& stage, int epochs_kept, bool keep_pretrain) {
  const std::string file = path("metrics.jsonl");
  std::string kept;
  if (epochs_kept > 0 || keep_pretrain) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
      if (in.eof()) break;  // no newline after it: a line cut short by a kill
      const std::string of = stage_of(line);
      if (keep_pretrain && of == "pretrain") {  // the finished MF-BPR stage, its test line included
        kept += line + "\n";
        continue;
      }
      const size_t at = line.find("\"event\":\"epoch\",\"epoch\":");
      if (of != stage || at == std::string::npos) continue;  // test lines are written again at the end
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

void RunFolder::save_model(const ModelFile& m, const char* file) const { convncf::save_model(path(file), m); }

void RunFolder::save_checkpoint(const Checkpoint& c) {
  convncf::save_checkpoint(path("checkpoint.bin"), c);
  m_kept = true;
}

}  // namespace convncf
