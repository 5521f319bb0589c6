// prepare.cpp: configuration -> loaded, filtered, split data (see prepare.hpp).
#include "convncf/prepare.hpp"

#include <sys/stat.h>

#include <algorithm>

#include "convncf/errors.hpp"

namespace convncf {

namespace {
bool exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}
std::string join(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}
void hash_csr(const Csr& c, uint64_t& h) {
  h = fnv1a(c.offsets.data(), c.offsets.size() * sizeof(int64_t), h);
  h = fnv1a(c.items.data(), c.items.size() * sizeof(int32_t), h);
}
}  // namespace

LoadOptions load_options(const Config& cfg) {
  LoadOptions o;
  o.format = parse_data_format(cfg.data_format);
  o.field_separator = cfg.field_separator;
  o.user_field = cfg.user_id_field;
  o.item_field = cfg.item_id_field;
  o.rating_field = cfg.rating_field;
  o.time_field = cfg.time_field;
  o.load_col = cfg.load_col;
  o.dup_rule = cfg.rm_dup_inter == "last" ? DupRule::Last : cfg.rm_dup_inter == "keep" ? DupRule::Keep : DupRule::First;
  return o;
}

PreparedData prepare_data(const Config& cfg) {
  PreparedData d;
  if (cfg.dataset == "synthetic") {
    d.data.inter = make_synthetic(cfg.seed);
    d.summary = "data: built-in synthetic set (seed " + std::to_string(cfg.seed) + ")";
  } else {
    // A path, or RecBole's DATA_PATH/NAME
    std::string path = cfg.dataset;
    if (!exists(path) && exists(join(cfg.data_path, cfg.dataset))) path = join(cfg.data_path, cfg.dataset);
    if (!exists(path))
      throw_no_input("dataset " + cfg.dataset + ": neither " + cfg.dataset + " nor " +
                     join(cfg.data_path, cfg.dataset) + " exists");
    d.data = load_data(path, load_options(cfg));
    d.summary = "data: " + path + " (" + data_format_name(d.data.format) + "); " + d.data.report.summary();
  }
  if (!cfg.val_interval.empty() && cfg.val_interval_field != cfg.rating_field)
    throw_usage("val_interval filters on '" + cfg.val_interval_field + "', but RATING_FIELD is '" +
                cfg.rating_field + "': only the rating column can be filtered");
  FilterSpec f{cfg.val_interval, cfg.user_inter_num_interval, cfg.item_inter_num_interval};
  if (!f.val_interval.empty() || !f.user_inter_num_interval.empty() || !f.item_inter_num_interval.empty()) {
    filter_interactions(d.data, f);
    d.summary += "; filters removed " + std::to_string(d.data.report.filtered) + " interactions";
  }
  const Interactions& in = d.data.inter;
  if (in.size() == 0) throw_data("dataset " + cfg.dataset + ": no interactions left after filtering");
  if (!cfg.split_file.empty()) {
    d.split = read_split(cfg.split_file, in);
  } else if (!d.data.role.empty()) {
    d.split = split_from_roles(in, d.data.role);
  } else if (cfg.split == "LS") {
    d.split = leave_one_out(in, cfg.split_ls == "valid_and_test");
  } else {
    d.split = ratio_split(in, cfg.split_ratios, cfg.split_order == "TO" ? SplitOrder::Time : SplitOrder::Random, cfg.seed);
  }
  d.summary += "\ndata: " + std::to_string(in.n_users()) + " users, " + std::to_string(in.n_items()) + " items, " +
               std::to_string(in.size()) + " interactions; split " + d.split.method + ": " +
               std::to_string(d.split.train_user.size()) + " train, " + std::to_string(d.split.valid.items.size()) +
               " valid, " + std::to_string(d.split.test.items.size()) + " test";
  return d;
}

uint64_t data_fingerprint(const PreparedData& d) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const std::string& s : d.data.inter.users.raws()) h = fnv1a(s.data(), s.size() + 1, h);
  for (const std::string& s : d.data.inter.items.raws()) h = fnv1a(s.data(), s.size() + 1, h);
  hash_csr(d.split.train, h);
  hash_csr(d.split.valid, h);
  hash_csr(d.split.test, h);
  return h;
}

Params<float> params_for_data(const ModelFile& m, const PreparedData& d, const std::string& name) {
  const Interactions& in = d.data.inter;
  Params<float> p;
  p.model = m.params.model;
  p.E = m.params.E;
  p.n_users = in.n_users();
  p.n_items = in.n_items();
  const size_t E = static_cast<size_t>(p.E);
  auto remap = [&](const IdMap& ids, const std::vector<std::string>& raw, const std::vector<float>& src,
                   std::vector<float>& dst, size_t width, const char* what) {
    IdMap index;
    for (const std::string& r : raw) index.get_or_add(r);
    dst.assign(static_cast<size_t>(ids.size()) * width, 0.0f);
    for (int32_t i = 0; i < ids.size(); ++i) {
      const int32_t j = index.find(ids.raw(i));
      if (j < 0)
        throw_data(name + ": the model has no " + what + " '" + ids.raw(i) + "' of this dataset: it was trained on other data");
      std::copy_n(src.begin() + static_cast<ptrdiff_t>(size_t(j) * width), width,
                  dst.begin() + static_cast<ptrdiff_t>(size_t(i) * width));
    }
  };
  if (p.model == ModelKind::Pop) {
    remap(in.items, m.item_ids, m.params.net, p.net, 1, "item");
    return p;
  }
  remap(in.users, m.user_ids, m.params.P, p.P, E, "user");
  remap(in.items, m.item_ids, m.params.Q, p.Q, E, "item");
  p.net = m.params.net;
  return p;
}

}  // namespace convncf
