// dataset.cpp: id maps, the built-in synthetic data, the RecBole .inter loader, the
// leave-one-out split and the samplers (see dataset.hpp). Tested by tests/test_dataset.cpp.
#include "convncf/dataset.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>
#include <unordered_set>

#include "convncf/errors.hpp"
#include "convncf/rng.hpp"

namespace convncf {

int32_t IdMap::get_or_add(std::string_view raw) {
  std::string key(raw);
  auto it = m_index.find(key);
  if (it != m_index.end()) return it->second;
  const int32_t id = int32_t(m_raw.size());
  m_index.emplace(key, id);
  m_raw.push_back(std::move(key));
  return id;
}

int32_t IdMap::find(std::string_view raw) const {
  auto it = m_index.find(std::string(raw));
  return it == m_index.end() ? -1 : it->second;
}

bool Csr::contains(int32_t u, int32_t item) const {
  const int32_t* b = row(u);
  return std::binary_search(b, b + degree(u), item);
}

// ---------------------------------------------------------------------------------------------
// Synthetic data: user and item factors N(0,1) of size `rank`; a Zipf popularity prior over a
// random permutation of items; each user draws a long-tailed number of distinct items with
// probability proportional to exp(scale * <u,v> / sqrt(rank)) * popularity (Gumbel top-k).
Interactions make_synthetic(uint64_t seed, const SyntheticSpec& spec) {
  Rng rng(seed, kStreamSynthetic);
  const int32_t U = spec.n_users, I = spec.n_items, R = spec.rank;
  std::vector<double> uf(size_t(U) * R), vf(size_t(I) * R);
  for (double& x : uf) x = rng.normal();
  for (double& x : vf) x = rng.normal();
  std::vector<int32_t> perm(static_cast<size_t>(I));
  std::iota(perm.begin(), perm.end(), 0);
  for (int32_t i = I - 1; i > 0; --i) std::swap(perm[size_t(i)], perm[rng.index(uint32_t(i + 1))]);
  std::vector<double> log_pop(static_cast<size_t>(I));
  for (int32_t r = 0; r < I; ++r) log_pop[size_t(perm[size_t(r)])] = -spec.popularity_exponent * std::log(double(r) + 1.0);
  // per-user counts: min + lognormal tail, scaled to the target total, capped below I/2
  std::vector<double> raw(static_cast<size_t>(U));
  double raw_sum = 0;
  for (double& x : raw) {
    x = std::exp(1.0 * rng.normal());
    raw_sum += x;
  }
  const double extra_total = double(spec.n_interactions) - double(spec.min_per_user) * U;
  const int32_t cap = std::max(spec.min_per_user, I / 2);
  Interactions d;
  d.name = "synthetic";
  for (int32_t i = 0; i < I; ++i) d.items.get_or_add(std::to_string(i + 1));
  const double inv_sqrt_r = 1.0 / std::sqrt(double(R));
  std::vector<std::pair<double, int32_t>> keys(static_cast<size_t>(I));
  for (int32_t u = 0; u < U; ++u) {
    d.users.get_or_add(std::to_string(u + 1));
    int32_t n = spec.min_per_user + int32_t(std::llround(std::max(0.0, extra_total) * raw[size_t(u)] / raw_sum));
    n = std::min(n, cap);
    const double* a = uf.data() + size_t(u) * R;
    for (int32_t i = 0; i < I; ++i) {
      const double* b = vf.data() + size_t(i) * R;
      double dot = 0;
      for (int32_t k = 0; k < R; ++k) dot += a[k] * b[k];
      double uu = rng.uniform();
      if (uu < 1e-300) uu = 1e-300;
      const double gumbel = -std::log(-std::log(uu));
      keys[size_t(i)] = {spec.preference_scale * dot * inv_sqrt_r + log_pop[size_t(i)] + gumbel, i};
    }
    std::partial_sort(keys.begin(), keys.begin() + n, keys.end(),
                      [](const auto& x, const auto& y) { return x.first > y.first || (x.first == y.first && x.second < y.second); });
    // the chosen items in a random order, at increasing timestamps
    std::vector<int32_t> chosen(static_cast<size_t>(n));
    for (int32_t j = 0; j < n; ++j) chosen[size_t(j)] = keys[size_t(j)].second;
    for (int32_t j = n - 1; j > 0; --j) std::swap(chosen[size_t(j)], chosen[rng.index(uint32_t(j + 1))]);
    double t = 8.8e8 + 1e7 * rng.uniform();
    for (int32_t j = 0; j < n; ++j) {
      t += 1.0 + std::floor(86400.0 * rng.uniform());
      d.user.push_back(u);
      d.item.push_back(chosen[size_t(j)]);
      d.time.push_back(t);
    }
  }
  return d;
}

// ---------------------------------------------------------------------------------------------
namespace {

std::string shown(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 120)) {
    if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (static_cast<unsigned char>(c) < 0x20) out += "\\x" + std::to_string(int(c));
    else out += c;
  }
  if (s.size() > 120) out += "...";
  return out + "\"";
}

}  // namespace

Interactions load_inter_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_no_input("cannot open " + path + ": " + std::strerror(errno));
  const std::string name = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  auto fail = [&](int64_t line, const std::string& what) -> void {
    throw_data(path + ":" + std::to_string(line) + ": " + what);
  };
  std::string line;
  int64_t line_no = 0;
  // header
  bool have_header = false;
  while (!have_header && std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
    if (line.empty()) continue;
    have_header = true;
  }
  if (!have_header) throw_data(path + ": empty file: expected a header of name:type fields");
  const int64_t header_line = line_no;
  std::vector<std::string> names, types;
  {
    size_t b = 0;
    for (;;) {
      const size_t e = line.find('\t', b);
      const std::string f = line.substr(b, e == std::string::npos ? std::string::npos : e - b);
      const size_t colon = f.rfind(':');
      if (colon == std::string::npos || colon == 0 || colon + 1 == f.size())
        fail(header_line, "header field " + shown(f) + " is not of the form name:type (e.g. user_id:token)");
      names.push_back(f.substr(0, colon));
      types.push_back(f.substr(colon + 1));
      const std::string& t = types.back();
      if (t != "token" && t != "float" && t != "token_seq" && t != "float_seq")
        fail(header_line, "header field " + shown(f) + " has unknown type '" + t + "' (expected token, float, token_seq or float_seq)");
      if (e == std::string::npos) break;
      b = e + 1;
    }
  }
  auto find_field = [&](std::initializer_list<const char*> cands) -> int {
    for (const char* c : cands)
      for (size_t i = 0; i < names.size(); ++i)
        if (names[i] == c) return int(i);
    return -1;
  };
  const int fu = find_field({"user_id", "user"}), fi = find_field({"item_id", "item"}),
            ft = find_field({"timestamp"});
  if (fu < 0 || fi < 0)
    fail(header_line, std::string("header names no ") + (fu < 0 ? "user field (user_id:token)" : "item field (item_id:token)") +
                          ": " + shown(line));
  if (types[size_t(fu)] != "token" || types[size_t(fi)] != "token")
    fail(header_line, "the user and item fields must have type token");
  if (ft >= 0 && types[size_t(ft)] != "float") fail(header_line, "the timestamp field must have type float");
  std::string expected;
  for (size_t i = 0; i < names.size(); ++i) expected += (i ? ", " : "") + names[i] + ":" + types[i];
  const size_t n_fields = names.size();

  Interactions d;
  d.name = name;
  std::unordered_set<uint64_t> seen;
  std::vector<std::string_view> fields;
  fields.reserve(n_fields);
  int64_t row = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line.find('\0') != std::string::npos) fail(line_no, "NUL byte in line " + shown(line));
    fields.clear();
    std::string_view sv(line);
    size_t b = 0;
    for (;;) {
      const size_t e = sv.find('\t', b);
      fields.push_back(sv.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b));
      if (e == std::string_view::npos) break;
      b = e + 1;
    }
    if (fields.size() != n_fields)
      fail(line_no, "expected " + std::to_string(n_fields) + " tab-separated fields (" + expected + "), found " +
                        std::to_string(fields.size()) + ": " + shown(line));
    const std::string_view su = fields[size_t(fu)], si = fields[size_t(fi)];
    if (su.empty()) fail(line_no, "empty " + names[size_t(fu)] + " in " + shown(line));
    if (si.empty()) fail(line_no, "empty " + names[size_t(fi)] + " in " + shown(line));
    double t = double(row);
    if (ft >= 0) {
      const std::string tf(fields[size_t(ft)]);
      char* end = nullptr;
      errno = 0;
      t = std::strtod(tf.c_str(), &end);
      if (tf.empty() || end != tf.c_str() + tf.size() || !std::isfinite(t))
        fail(line_no, "expected a number for " + names[size_t(ft)] + ", found " + shown(tf));
    }
    const int32_t u = d.users.get_or_add(su), i = d.items.get_or_add(si);
    if (!seen.insert((uint64_t(uint32_t(u)) << 32) | uint32_t(i)).second) {
      ++d.duplicates_removed;  // keep the first occurrence
      continue;
    }
    d.user.push_back(u);
    d.item.push_back(i);
    d.time.push_back(t);
    ++row;
  }
  if (in.bad()) throw_io("cannot read " + path + ": " + std::strerror(errno));
  if (d.user.empty()) throw_data(path + ": no interactions after the header");
  return d;
}

// ---------------------------------------------------------------------------------------------
Split leave_one_out(const Interactions& data) {
  Split s;
  s.n_users = data.n_users();
  s.n_items = data.n_items();
  const int64_t N = data.size();
  // rows per user, ordered by (time, file order)
  std::vector<int64_t> order(static_cast<size_t>(N));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    if (data.user[size_t(a)] != data.user[size_t(b)]) return data.user[size_t(a)] < data.user[size_t(b)];
    return data.time[size_t(a)] < data.time[size_t(b)];
  });
  s.valid_item.assign(size_t(s.n_users), -1);
  s.test_item.assign(size_t(s.n_users), -1);
  s.item_train_count.assign(size_t(s.n_items), 0);
  s.train.offsets.assign(size_t(s.n_users) + 1, 0);
  s.all.offsets.assign(size_t(s.n_users) + 1, 0);
  int64_t b = 0;
  for (int32_t u = 0; u < s.n_users; ++u) {
    int64_t e = b;
    while (e < N && data.user[size_t(order[size_t(e)])] == u) ++e;
    const int64_t n = e - b;
    int64_t n_train = n;
    if (n >= 2) {
      s.test_item[size_t(u)] = data.item[size_t(order[size_t(e - 1)])];
      --n_train;
    }
    if (n >= 3) {
      s.valid_item[size_t(u)] = data.item[size_t(order[size_t(e - 2)])];
      --n_train;
    }
    std::vector<int32_t> tr, all;
    for (int64_t j = b; j < e; ++j) {
      const int32_t it = data.item[size_t(order[size_t(j)])];
      all.push_back(it);
      if (j - b < n_train) tr.push_back(it);
    }
    std::sort(tr.begin(), tr.end());
    std::sort(all.begin(), all.end());
    for (int32_t it : tr) {
      s.train.items.push_back(it);
      s.train_user.push_back(u);
      s.train_item.push_back(it);
      ++s.item_train_count[size_t(it)];
    }
    s.all.items.insert(s.all.items.end(), all.begin(), all.end());
    s.train.offsets[size_t(u) + 1] = int64_t(s.train.items.size());
    s.all.offsets[size_t(u) + 1] = int64_t(s.all.items.size());
    b = e;
  }
  return s;
}

int32_t sample_negative(const int32_t* sorted, int64_t deg, int32_t n_items, uint64_t bits) {
  const int64_t r = uniform_index(bits, uint32_t(n_items - deg));
  return nth_absent_item(sorted, deg, r);
}

EvalCandidates sample_eval_candidates(const Split& split, const std::vector<int32_t>& held_out, int32_t n,
                                      uint64_t seed, uint64_t stream) {
  EvalCandidates c;
  c.offsets.push_back(0);
  std::vector<int64_t> picked;
  for (int32_t u = 0; u < split.n_users; ++u) {
    if (held_out[size_t(u)] < 0) continue;
    const int64_t deg = split.all.degree(u);
    const int64_t avail = int64_t(split.n_items) - deg;
    const int64_t m = std::min<int64_t>(n, std::max<int64_t>(avail, 0));
    // Floyd's algorithm: m distinct ranks in [0, avail), each draw keyed by (user, draw index)
    picked.clear();
    std::unordered_set<int64_t> set;
    for (int64_t j = avail - m; j < avail; ++j) {
      const uint64_t bits = rng_hash(seed, stream, (uint64_t(u) << 32) + uint64_t(j - (avail - m)));
      const int64_t t = int64_t(uniform_index(bits, uint32_t(j + 1)));
      const int64_t v = set.count(t) ? j : t;
      set.insert(v);
      picked.push_back(v);
    }
    std::sort(picked.begin(), picked.end());
    c.user.push_back(u);
    c.positive.push_back(held_out[size_t(u)]);
    for (int64_t r : picked) c.negatives.push_back(nth_absent_item(split.all.row(u), deg, r));
    c.offsets.push_back(int64_t(c.negatives.size()));
  }
  return c;
}

}  // namespace convncf
