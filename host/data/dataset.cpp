// dataset.cpp: everything declared in dataset.hpp: the id map, the built-in synthetic data, the
// splits (leave-one-out, ratio, from the files' roles, split files) and the training-negative
// sampler. The file formats are in formats.cpp.
// Test: tests/test_dataset.cpp (g++ ... host/dataset.cpp tests/test_dataset.cpp -lgtest
// -lgtest_main, or ctest -R 'InterLoader|Synthetic|LeaveOneOut|Sampling|EvalCandidates').
//
// Every random draw goes through convncf::Rng / rng_hash (rng.hpp), never std:: distributions,
// whose output differs between standard libraries: a seed names the same data everywhere.
#include "convncf/dataset.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <numeric>
#include <unordered_map>
#include <utility>

#include "convncf/errors.hpp"
#include "convncf/formats.hpp"
#include "convncf/rng.hpp"
#include "convncf/sampling.hpp"

namespace convncf {

// ---------------------------------------------------------------------------------------------
// IdMap

// C++17 unordered_map has no heterogeneous lookup, so a lookup copies the view into a key. The
// key is one reused per-thread buffer: a hit allocates nothing, even for ids longer than the
// small-string buffer (Yelp's 22-byte ids, hashes). The map's layout lives in dataset.hpp.
namespace {
const std::string& lookup_key(std::string_view raw) {
  thread_local std::string key;
  key.assign(raw.data(), raw.size());
  return key;
}
}  // namespace

int32_t IdMap::get_or_add(std::string_view raw) {
  const std::string& key = lookup_key(raw);
  const auto it = m_index.find(key);
  if (it != m_index.end()) return it->second;
  const int32_t index = static_cast<int32_t>(m_raw.size());
  m_index.emplace(key, index);
  m_raw.push_back(key);
  return index;
}

int32_t IdMap::find(std::string_view raw) const {
  const auto it = m_index.find(lookup_key(raw));
  return it == m_index.end() ? -1 : it->second;
}

bool Csr::contains(int32_t u, int32_t item) const {
  const int32_t* begin = row(u);
  return std::binary_search(begin, begin + degree(u), item);
}

// ---------------------------------------------------------------------------------------------
// Synthetic data
//
// A planted low-rank preference model with a long-tailed popularity prior, about the size of
// MovieLens-100K, so that the whole pipeline can run (and be tested) without any file:
//   - user factors p_u and item factors q_i, N(0, 1) of size `rank`;
//   - a Zipf popularity prior over a random permutation of the items:
//     log pop_i = -popularity_exponent * log(rank_i + 1);
//   - per-user counts min_per_user + a lognormal share of the rest, water-filled under a cap
//     of n_items / 2 so that the total hits n_interactions exactly (when that is feasible);
//   - each user's items drawn without replacement with probability proportional to
//     exp(preference_scale * <p_u, q_i> / sqrt(rank) + log pop_i), by Gumbel-top-k;
//   - the items in a random order at increasing integer timestamps (around 8.8e8 s, as in
//     ML-100K), so that the held-out item is an exchangeable draw, not the least preferred one.
// With the defaults a learned low-rank model clearly beats popularity on held-out items, and
// popularity is still far better than random (see the report in tests/test_dataset.cpp).

namespace {

// Per-user interaction counts: real targets min + s * weight_u capped at `cap`, where s solves
// sum = total by bisection (the cap makes the sum piecewise linear in s), then rounded through
// the running sum so that the integers add up to round(total) and each stays in [min, cap].
std::vector<int32_t> synthetic_counts(const std::vector<double>& weight, int32_t min_count,
                                      int32_t cap, double total) {
  const size_t n_users = weight.size();
  auto sum_at = [&](double s) {
    double sum = 0.0;
    for (double w : weight) sum += std::min(double(cap), min_count + s * w);
    return sum;
  };
  double lo = 0.0, hi = 1.0;
  while (sum_at(hi) < total && hi < 1e300) hi *= 2.0;  // every weight > 0, so this ends
  for (int iter = 0; iter < 200 && sum_at(lo) < total; ++iter) {
    const double mid = 0.5 * (lo + hi);
    (sum_at(mid) < total ? lo : hi) = mid;
  }
  const double s = sum_at(lo) >= total ? lo : hi;
  std::vector<int32_t> count(n_users);
  double running = 0.0;
  int64_t assigned = 0;
  for (size_t u = 0; u < n_users; ++u) {
    running += std::min(double(cap), min_count + s * weight[u]);
    const int64_t upto = std::llround(running);
    count[u] = static_cast<int32_t>(std::clamp<int64_t>(upto - assigned, min_count, cap));
    assigned += count[u];
  }
  return count;
}

}  // namespace

Interactions make_synthetic(uint64_t seed, const SyntheticSpec& spec) {
  if (spec.n_users <= 0 || spec.n_items <= 0 || spec.rank <= 0 || spec.min_per_user < 1 ||
      spec.min_per_user > spec.n_items)
    throw_usage(
        "synthetic data: need n_users > 0, n_items > 0, rank > 0 and 1 <= min_per_user "
        "<= n_items (got " +
        std::to_string(spec.n_users) + " users, " + std::to_string(spec.n_items) + " items, rank " +
        std::to_string(spec.rank) + ", min_per_user " + std::to_string(spec.min_per_user) + ")");
  const size_t n_users = static_cast<size_t>(spec.n_users);
  const size_t n_items = static_cast<size_t>(spec.n_items);
  const size_t rank = static_cast<size_t>(spec.rank);
  Rng rng(seed, kStreamSynthetic);

  std::vector<double> user_factor(n_users * rank), item_factor(n_items * rank);  // (U, R), (I, R)
  for (double& x : user_factor) x = rng.normal();
  for (double& x : item_factor) x = rng.normal();

  // Popularity rank i -> item perm[i] (Fisher-Yates), so popular items are not the low ids.
  std::vector<int32_t> perm(n_items);
  std::iota(perm.begin(), perm.end(), 0);
  for (size_t i = n_items - 1; i > 0; --i)
    std::swap(perm[i], perm[rng.index(static_cast<uint32_t>(i + 1))]);
  std::vector<double> log_pop(n_items);
  for (size_t r = 0; r < n_items; ++r)
    log_pop[static_cast<size_t>(perm[r])] = -spec.popularity_exponent * std::log(double(r) + 1.0);

  // Long-tailed per-user counts (lognormal weights, sigma 1), as in ML-100K where the median
  // user has ~65 ratings and the busiest ~740.
  std::vector<double> weight(n_users);
  for (double& w : weight) w = std::exp(rng.normal());
  const int32_t cap = std::max(spec.min_per_user, (spec.n_items - 1) / 2);
  const std::vector<int32_t> count =
      synthetic_counts(weight, spec.min_per_user, cap, double(spec.n_interactions));
  const int64_t total = std::accumulate(count.begin(), count.end(), int64_t{0});

  Interactions data;
  data.name = "synthetic";
  for (size_t u = 0; u < n_users; ++u) data.users.get_or_add(std::to_string(u + 1));
  for (size_t i = 0; i < n_items; ++i) data.items.get_or_add(std::to_string(i + 1));
  data.user.reserve(static_cast<size_t>(total));
  data.item.reserve(static_cast<size_t>(total));
  data.time.reserve(static_cast<size_t>(total));

  const double logit_scale = spec.preference_scale / std::sqrt(double(rank));
  std::vector<std::pair<double, int32_t>> key(n_items);  // (Gumbel-perturbed logit, item)
  std::vector<int32_t> chosen;
  // Strict total order (ties by item id), so the chosen set does not depend on the sort.
  const auto larger = [](const std::pair<double, int32_t>& a, const std::pair<double, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  for (size_t u = 0; u < n_users; ++u) {
    const double* p = user_factor.data() + u * rank;
    for (size_t i = 0; i < n_items; ++i) {
      const double* q = item_factor.data() + i * rank;
      double dot = 0.0;
      for (size_t k = 0; k < rank; ++k) dot += p[k] * q[k];
      const double uniform = std::max(rng.uniform(), 1e-300);  // log(0) guard
      const double gumbel = -std::log(-std::log(uniform));
      key[i] = {logit_scale * dot + log_pop[i] + gumbel, static_cast<int32_t>(i)};
    }
    const size_t n = static_cast<size_t>(count[u]);
    std::nth_element(key.begin(), key.begin() + static_cast<std::ptrdiff_t>(n - 1), key.end(),
                     larger);
    chosen.resize(n);
    for (size_t j = 0; j < n; ++j) chosen[j] = key[j].second;
    // nth_element leaves the first n in an unspecified order: fix it, then shuffle with our Rng.
    std::sort(chosen.begin(), chosen.end());
    for (size_t j = n - 1; j > 0; --j)
      std::swap(chosen[j], chosen[rng.index(static_cast<uint32_t>(j + 1))]);
    // Integer-valued seconds, so a written .inter file reads back exactly.
    double t = 8.8e8 + std::floor(1.5e7 * rng.uniform());
    for (size_t j = 0; j < n; ++j) {
      t += 1.0 + std::floor(86400.0 * rng.uniform());
      data.user.push_back(static_cast<int32_t>(u));
      data.item.push_back(chosen[j]);
      data.time.push_back(t);
    }
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// Splits: each splitter assigns every row a role; build_split turns roles into the CSRs.

namespace {

void check_rows(const Interactions& data, const char* who) {
  const size_t n_rows = data.user.size();
  if (data.item.size() != n_rows || data.time.size() != n_rows)
    throw_internal(std::string(who) + ": user, item and time columns differ in length");
  for (size_t r = 0; r < n_rows; ++r) {
    const int32_t u = data.user[r], i = data.item[r];
    if (u < 0 || u >= data.n_users() || i < 0 || i >= data.n_items())
      throw_internal(std::string(who) + ": row " + std::to_string(r) + " has user " +
                     std::to_string(u) + ", item " + std::to_string(i) + " outside the id maps");
  }
}

// Row indices grouped by user (counting sort, file order kept within a user); start has
// n_users + 1 entries. With by_time, each user's rows are then stably sorted by time, so ties
// stay in file order (the later line is the later interaction).
std::vector<int64_t> rows_by_user(const Interactions& data, bool by_time, std::vector<int64_t>& start) {
  const size_t n_rows = data.user.size(), n_u = static_cast<size_t>(data.n_users());
  start.assign(n_u + 1, 0);
  for (size_t r = 0; r < n_rows; ++r) ++start[static_cast<size_t>(data.user[r]) + 1];
  std::partial_sum(start.begin(), start.end(), start.begin());
  std::vector<int64_t> order(n_rows);
  std::vector<int64_t> next(start.begin(), start.end() - 1);
  for (size_t r = 0; r < n_rows; ++r)
    order[static_cast<size_t>(next[static_cast<size_t>(data.user[r])]++)] = int64_t(r);
  if (by_time)
    for (size_t u = 0; u < n_u; ++u)
      std::stable_sort(order.begin() + start[u], order.begin() + start[u + 1],
                       [&data](int64_t a, int64_t b) {
                         return data.time[static_cast<size_t>(a)] < data.time[static_cast<size_t>(b)];
                       });
  return order;
}

// CSR of the rows with role `want` (or every row when want < 0), sorted and unique per user.
Csr csr_of(const Interactions& data, const std::vector<uint8_t>& role, int want) {
  const size_t n_u = static_cast<size_t>(data.n_users());
  Csr c;
  c.offsets.assign(n_u + 1, 0);
  for (size_t r = 0; r < data.user.size(); ++r)
    if (want < 0 || role[r] == want) ++c.offsets[static_cast<size_t>(data.user[r]) + 1];
  std::partial_sum(c.offsets.begin(), c.offsets.end(), c.offsets.begin());
  c.items.resize(static_cast<size_t>(c.offsets.back()));
  std::vector<int64_t> next(c.offsets.begin(), c.offsets.end() - 1);
  for (size_t r = 0; r < data.user.size(); ++r)
    if (want < 0 || role[r] == want)
      c.items[static_cast<size_t>(next[static_cast<size_t>(data.user[r])]++)] = data.item[r];
  // Sort and drop repeats (rm_dup_inter: keep leaves repeated pairs); the samplers need
  // strictly increasing rows.
  int64_t w = 0;
  for (size_t u = 0; u < n_u; ++u) {
    const auto b = c.items.begin() + c.offsets[u], e = c.items.begin() + c.offsets[u + 1];
    std::sort(b, e);
    const auto last = std::unique(b, e);
    c.offsets[u] = w;
    for (auto it = b; it != last; ++it) c.items[static_cast<size_t>(w++)] = *it;
  }
  c.offsets[n_u] = w;
  c.items.resize(static_cast<size_t>(w));
  return c;
}

Split build_split(const Interactions& data, const std::vector<uint8_t>& role, std::string method) {
  Split split;
  split.n_users = data.n_users();
  split.n_items = data.n_items();
  split.method = std::move(method);
  split.train = csr_of(data, role, kRoleTrain);
  split.valid = csr_of(data, role, kRoleValid);
  split.test = csr_of(data, role, kRoleTest);
  split.all = csr_of(data, role, -1);
  split.role = role;
  for (uint8_t r : role) ++(r == kRoleTrain ? split.n_train : r == kRoleValid ? split.n_valid : split.n_test);
  // Training positives in a fixed order: user by user, then by item id. Repeated pairs (kept
  // by rm_dup_inter: keep) stay repeated here, as RecBole trains on each interaction.
  std::vector<int64_t> start;
  const std::vector<int64_t> order = rows_by_user(data, false, start);
  std::vector<std::pair<int32_t, int32_t>> pos;
  for (int64_t r : order)
    if (role[static_cast<size_t>(r)] == kRoleTrain)
      pos.emplace_back(data.user[static_cast<size_t>(r)], data.item[static_cast<size_t>(r)]);
  std::stable_sort(pos.begin(), pos.end());
  split.train_user.reserve(pos.size());
  split.train_item.reserve(pos.size());
  split.item_train_count.assign(static_cast<size_t>(split.n_items), 0);
  for (const auto& [u, i] : pos) {
    split.train_user.push_back(u);
    split.train_item.push_back(i);
    ++split.item_train_count[static_cast<size_t>(i)];
  }
  return split;
}

}  // namespace

Split leave_one_out(const Interactions& data, bool with_valid) {
  check_rows(data, "leave_one_out");
  std::vector<int64_t> start;
  const std::vector<int64_t> order = rows_by_user(data, true, start);
  std::vector<uint8_t> role(data.user.size(), kRoleTrain);
  for (size_t u = 0; u + 1 < start.size(); ++u) {
    const int64_t n = start[u + 1] - start[u];
    if (n >= 2) role[static_cast<size_t>(order[static_cast<size_t>(start[u + 1] - 1)])] = kRoleTest;
    if (n >= 3 && with_valid) role[static_cast<size_t>(order[static_cast<size_t>(start[u + 1] - 2)])] = kRoleValid;
  }
  return build_split(data, role, with_valid ? "leave-one-out" : "leave-one-out, test only");
}

// RecBole's split_by_ratio with group_by user (sizes as in _calcu_split_ids below). RecBole
// shuffles with PyTorch's generator, so a seed here does not pick RecBole's exact split.
Split ratio_split(const Interactions& data, const std::vector<double>& ratios, SplitOrder order_kind,
                  uint64_t seed) {
  check_rows(data, "ratio_split");
  if (ratios.size() < 2 || ratios.size() > 3)
    throw_usage("eval_args split RS needs 2 or 3 ratios like [0.8, 0.1, 0.1]");
  double total = 0;
  for (double r : ratios) {
    if (!(r >= 0) || !std::isfinite(r)) throw_usage("eval_args split RS: ratios must be numbers >= 0");
    total += r;
  }
  if (!(total > 0)) throw_usage("eval_args split RS: the ratios sum to 0");
  std::vector<int64_t> start;
  std::vector<int64_t> order = rows_by_user(data, order_kind == SplitOrder::Time, start);
  std::vector<uint8_t> role(data.user.size(), kRoleTrain);
  const uint8_t part_role[3] = {kRoleTrain, uint8_t(ratios.size() == 3 ? kRoleValid : kRoleTest),
                                kRoleTest};
  for (size_t u = 0; u + 1 < start.size(); ++u) {
    const auto b = order.begin() + start[u];
    const int64_t n = start[u + 1] - start[u];
    if (order_kind == SplitOrder::Random) {  // Fisher-Yates on the user's own stream
      for (int64_t i = n - 1; i > 0; --i) {
        const uint64_t bits = rng_hash(seed, kStreamSplit, (uint64_t(u) << 32) | uint64_t(i));
        std::swap(b[i], b[uniform_index(bits, static_cast<uint32_t>(i + 1))]);
      }
    }
    // RecBole's _calcu_split_ids: floor shares, the rest to training; then, from the last part
    // back, a part whose share is in (0, 1) takes one interaction from training while training
    // keeps more than one.
    const size_t P = ratios.size();
    std::vector<int64_t> size(P);
    size[0] = n;
    for (size_t k = 1; k < P; ++k) {
      size[k] = static_cast<int64_t>(std::floor(ratios[k] / total * double(n)));
      size[0] -= size[k];
    }
    for (size_t k = P - 1; k >= 1; --k) {
      if (size[0] <= 1) break;
      const double share = ratios[k] / total * double(n);
      if (share > 0 && share < 1) {
        ++size[k];
        --size[0];
      }
    }
    int64_t at = 0;
    for (size_t k = 0; k < ratios.size(); ++k)
      for (int64_t j = 0; j < size[k]; ++j) role[static_cast<size_t>(b[at++])] = part_role[k];
  }
  char buf[96];
  std::string shares;
  for (double r : ratios) {
    std::snprintf(buf, sizeof buf, "%s%g", shares.empty() ? "" : "/", r / total);
    shares += buf;
  }
  return build_split(data, role, "ratio " + shares + (order_kind == SplitOrder::Random ? " RO" : " TO"));
}

Split split_from_roles(const Interactions& data, const std::vector<uint8_t>& role) {
  check_rows(data, "split_from_roles");
  if (role.size() != data.user.size()) throw_internal("split_from_roles: one role per row expected");
  for (uint8_t r : role)
    if (r > kRoleTest) throw_internal("split_from_roles: role out of range");
  return build_split(data, role, "as the files give it");
}

void write_split(const std::string& path, const Interactions& data, const Split& split) {
  if (split.role.size() != data.user.size()) throw_internal("write_split: the split has no part for every interaction");
  // Per user, train then valid then test, items ascending; a repeated pair once per row.
  std::vector<int64_t> start;
  const std::vector<int64_t> order = rows_by_user(data, false, start);
  std::string text = "# convncf split: " + split.method + "\nuser\titem\tpart\n";
  const char* names[3] = {"train", "valid", "test"};
  std::vector<std::pair<uint8_t, int32_t>> rows;
  for (size_t u = 0; u + 1 < start.size(); ++u) {
    rows.clear();
    for (int64_t k = start[u]; k < start[u + 1]; ++k) {
      const size_t r = static_cast<size_t>(order[static_cast<size_t>(k)]);
      rows.emplace_back(split.role[r], data.item[r]);
    }
    std::sort(rows.begin(), rows.end());
    for (const auto& [part, item] : rows)
      text += data.users.raw(int32_t(u)) + "\t" + data.items.raw(item) + "\t" + names[part] + "\n";
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    f.flush();
    if (!f) throw_io("cannot write " + tmp + ": " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw_io("cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
}

Split read_split(const std::string& path, const Interactions& data) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_no_input("split file " + path + " does not exist or cannot be read");
  // Each (user, item) of the data gets the parts the file names, one per row of the pair in the
  // data (or one for all of them); every data pair must be named. The usual pair is listed once
  // and costs one map entry; the parts of a pair listed several times are kept apart.
  std::unordered_map<uint64_t, uint8_t> first;                // the part named first
  std::unordered_map<uint64_t, std::vector<uint8_t>> several;  // every part, for pairs listed more than once
  std::string line;
  int64_t line_no = 0;
  bool header = false;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (!header) {
      if (line != "user\titem\tpart") throw_data(path + ":" + std::to_string(line_no) + ": expected the header 'user<TAB>item<TAB>part'");
      header = true;
      continue;
    }
    const size_t a = line.find('\t'), b = a == std::string::npos ? a : line.find('\t', a + 1);
    if (b == std::string::npos || line.find('\t', b + 1) != std::string::npos)
      throw_data(path + ":" + std::to_string(line_no) + ": expected 3 tab-separated columns, got " + shown_text(line));
    const int32_t u = data.users.find(std::string_view(line).substr(0, a));
    const int32_t i = data.items.find(std::string_view(line).substr(a + 1, b - a - 1));
    const std::string name = line.substr(b + 1);
    const uint8_t r = name == "train" ? kRoleTrain : name == "valid" ? kRoleValid
                    : name == "test" ? kRoleTest : 255;
    if (u < 0 || i < 0)
      throw_data(path + ":" + std::to_string(line_no) + ": " + (u < 0 ? "user " : "item ") +
                 shown_text(u < 0 ? line.substr(0, a) : line.substr(a + 1, b - a - 1)) +
                 " is not in the dataset: the split was made for other data");
    if (r == 255) throw_data(path + ":" + std::to_string(line_no) + ": expected train, valid or test, got " + shown_text(name));
    const uint64_t key = uint64_t(uint32_t(u)) << 32 | uint32_t(i);
    const auto [it, added] = first.emplace(key, r);
    if (added) continue;
    std::vector<uint8_t>& parts = several[key];
    if (parts.empty()) parts.push_back(it->second);
    parts.push_back(r);
  }
  if (!header) throw_data(path + ": empty split file");
  std::unordered_map<uint64_t, int64_t> rows_of;  // rows per pair, for the pairs listed several times
  for (size_t r = 0; r < data.user.size(); ++r) {
    const uint64_t key = uint64_t(uint32_t(data.user[r])) << 32 | uint32_t(data.item[r]);
    if (several.count(key)) ++rows_of[key];
  }
  std::unordered_map<uint64_t, size_t> used;
  std::vector<uint8_t> role(data.user.size());
  constexpr uint8_t kFound = 0x80;  // marks the pairs of `first` the data has
  for (size_t r = 0; r < data.user.size(); ++r) {
    const uint64_t key = uint64_t(uint32_t(data.user[r])) << 32 | uint32_t(data.item[r]);
    auto pair = [&] { return "(" + data.users.raw(data.user[r]) + ", " + data.items.raw(data.item[r]) + ")"; };
    const auto it = first.find(key);
    if (it == first.end())
      throw_data(path + ": the interaction " + pair() + " is not in the split: the split was made for other data");
    it->second |= kFound;
    const auto many = several.find(key);
    if (many == several.end()) {
      role[r] = it->second & uint8_t(~kFound);
      continue;
    }
    size_t& k = used[key];
    if (k == 0 && int64_t(many->second.size()) != rows_of[key])
      throw_data(path + ": the interaction " + pair() + " is listed " + std::to_string(many->second.size()) +
                 " times, but the data has it " + std::to_string(rows_of[key]) +
                 " times: the split was made for other data or another rm_dup_inter");
    role[r] = many->second[k++];
  }
  for (const auto& [key, part] : first)
    if (!(part & kFound))
      throw_data(path + ": the split lists (" + data.users.raw(int32_t(key >> 32)) + ", " +
                 data.items.raw(int32_t(key & 0xffffffffu)) +
                 "), an interaction the data does not have: the split was made for other data");
  Split s = build_split(data, role, "read from " + path);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Samplers

int32_t sample_negative(const int32_t* sorted, int64_t deg, int32_t n_items, uint64_t bits) {
  const int64_t r = uniform_index(bits, static_cast<uint32_t>(n_items - deg));
  return nth_absent_item(sorted, deg, r);  // the device sampler's own search
}

}  // namespace convncf
