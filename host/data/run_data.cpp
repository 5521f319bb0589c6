// run_data.cpp: options -> loaded, filtered, split data (see run_data.hpp).
#include "convncf/run_data.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "convncf/errors.hpp"
#include "convncf/util.hpp"

namespace convncf {

namespace {

// What is wrong with `path` when it is a symbolic link that leads nowhere ("is a symbolic link
// loop ...", "is a symbolic link to T, which does not exist"); empty when it is not one.
std::string broken_link(const std::string& path) {
  struct stat ls, st;
  if (lstat(path.c_str(), &ls) != 0 || !S_ISLNK(ls.st_mode)) return "";
  if (stat(path.c_str(), &st) == 0) return "";
  if (errno == ELOOP) return "is a symbolic link loop (too many levels of symbolic links)";
  char target[4096];
  const ssize_t n = readlink(path.c_str(), target, sizeof target - 1);
  const std::string to = n > 0 ? std::string(target, size_t(n)) : std::string("?");
  return "is a symbolic link to " + to + ", which does not exist";
}

void hash_csr(const Csr& c, uint64_t& h) {
  h = fnv1a(c.offsets.data(), c.offsets.size() * sizeof(int64_t), h);
  h = fnv1a(c.items.data(), c.items.size() * sizeof(int32_t), h);
}
}  // namespace

RunData load_run_data(const DataOptions& cfg) {
  RunData d;
  if (cfg.dataset == "synthetic") {
    d.data.inter = make_synthetic(cfg.seed);
    d.summary = "data: built-in synthetic set (seed " + std::to_string(cfg.seed) + ")";
  } else {
    // A path, or RecBole's DATA_PATH/NAME
    std::string path = cfg.dataset;
    if (!path_exists(path) && path_exists(join_path(cfg.data_path, cfg.dataset))) path = join_path(cfg.data_path, cfg.dataset);
    if (!path_exists(path)) {
      const std::string link = broken_link(cfg.dataset);  // a link is there but leads nowhere: say so
      if (!link.empty()) throw_no_input("dataset " + cfg.dataset + " " + link);
      if (!cfg.dataset.empty() && cfg.dataset[0] == '/') throw_no_input("dataset " + cfg.dataset + " does not exist");
      throw_no_input("dataset " + cfg.dataset + ": neither " + cfg.dataset + " nor " +
                     join_path(cfg.data_path, cfg.dataset) + " exists");
    }
    d.data = load_data(path, cfg.load);
    d.summary = "data: " + path + " (" + data_format_name(d.data.format) + "); " + d.data.report.summary();
  }
  d.users_loaded = d.data.inter.n_users();
  const FilterSpec& f = cfg.filters;
  if (!f.val_interval.empty() || !f.user_inter_num_interval.empty() || !f.item_inter_num_interval.empty()) {
    filter_interactions(d.data, f);
    d.summary += "; filters removed " + std::to_string(d.data.report.filtered) + " interactions";
  }
  const Interactions& in = d.data.inter;
  if (in.size() == 0) throw_data("dataset " + cfg.dataset + ": no interactions left after filtering");
  const SplitOptions& sp = cfg.split;
  if (!sp.file.empty()) {
    d.split = read_split(sp.file, in);
  } else if (!d.data.role.empty()) {
    d.split = split_from_roles(in, d.data.role);
  } else if (sp.method == "LS") {
    d.split = leave_one_out(in, sp.with_valid);
  } else {
    d.split = ratio_split(in, sp.ratios, sp.order, sp.seed);
  }
  d.summary += "\ndata: " + std::to_string(in.n_users()) + " users, " + std::to_string(in.n_items()) + " items, " +
               std::to_string(in.size()) + " interactions; split " + d.split.method + ": " +
               std::to_string(d.split.n_train) + " train, " + std::to_string(d.split.n_valid) + " valid, " +
               std::to_string(d.split.n_test) + " test";
  return d;
}

uint64_t data_fingerprint(const RunData& d) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const std::string& s : d.data.inter.users.raws()) h = fnv1a(s.data(), s.size() + 1, h);
  for (const std::string& s : d.data.inter.items.raws()) h = fnv1a(s.data(), s.size() + 1, h);
  hash_csr(d.split.train, h);
  hash_csr(d.split.valid, h);
  hash_csr(d.split.test, h);
  // Repeated pairs (rm_dup_inter: keep) hide in the CSRs: their rows per part count too. Data
  // without repeats keeps the fingerprint it always had, so older checkpoints still resume.
  const Split& s = d.split;
  if (s.n_train != int64_t(s.train.items.size()) || s.n_valid != int64_t(s.valid.items.size()) ||
      s.n_test != int64_t(s.test.items.size())) {
    for (int64_t n : {s.n_train, s.n_valid, s.n_test}) h = fnv1a(&n, sizeof n, h);
    h = fnv1a(s.train_user.data(), s.train_user.size() * sizeof(int32_t), h);
    h = fnv1a(s.train_item.data(), s.train_item.size() * sizeof(int32_t), h);
  }
  return h;
}

std::string why_no_held_out(const RunData& d, const SplitOptions& sp, bool test) {
  const Interactions& in = d.data.inter;
  const Csr& held = test ? d.split.test : d.split.valid;
  const char* kind = test ? "test" : "validation";
  int32_t with_held = 0;
  for (int32_t u = 0; u < held.n_rows(); ++u) with_held += held.degree(u) > 0;
  std::vector<int64_t> rows(size_t(in.n_users()), 0);
  for (int32_t u : in.user) ++rows[size_t(u)];
  const int64_t single = std::count(rows.begin(), rows.end(), int64_t{1});
  std::string s = std::to_string(d.users_loaded) + " users in the data, " + std::to_string(in.n_users()) +
                  " after the filters, " + std::to_string(with_held) + " with a " + kind +
                  " interaction after the split (" + d.split.method + ")";
  std::vector<std::string> why;
  const double share = sp.ratios.size() == 3 ? sp.ratios[test ? 2 : 1] : sp.ratios.size() == 2 && test ? sp.ratios[1] : 0;
  if (!sp.file.empty()) {
    why.push_back("the split file " + sp.file + " marks no interaction as " + kind);
  } else if (!d.data.role.empty()) {
    why.push_back(std::string("the data files give no ") + kind + " split");
    if (d.data.report.users_without_train > 0)
      why.push_back(std::to_string(d.data.report.users_without_train) +
                    " users had test lines but no training interaction and were dropped when loading");
  } else if (sp.method == "RS" && !(share > 0)) {
    why.push_back(std::string("the ") + kind + " share of the split is 0");
  } else if (sp.method == "LS" && !test && !sp.with_valid) {
    why.push_back("leave-one-out test_only makes no validation part");
  } else if (single > 0) {
    why.push_back((single == in.n_users() ? "all " : "") + std::to_string(single) +
                  (single == in.n_users() ? "" : " of them") +
                  " have a single interaction, which the split keeps for training");
  }
  for (const std::string& w : why) s += "; " + w;
  return s;
}

}  // namespace convncf
