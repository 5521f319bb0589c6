// dataset.cpp: everything declared in dataset.hpp: the id map, the built-in synthetic data, the
// RecBole atomic .inter loader, the leave-one-out split, and the samplers for training negatives
// and sampled evaluation.
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
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <numeric>
#include <utility>

#include "convncf/errors.hpp"
#include "convncf/rng.hpp"

namespace convncf {

// ---------------------------------------------------------------------------------------------
// IdMap

int32_t IdMap::get_or_add(std::string_view raw) {
  // C++17 unordered_map has no heterogeneous lookup; ids are short, so the key stays in SSO.
  std::string key(raw);
  const auto it = m_index.find(key);
  if (it != m_index.end()) return it->second;
  const int32_t index = static_cast<int32_t>(m_raw.size());
  m_index.emplace(key, index);
  m_raw.push_back(std::move(key));
  return index;
}

int32_t IdMap::find(std::string_view raw) const {
  const auto it = m_index.find(std::string(raw));
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
// RecBole atomic .inter loader

namespace {

// The offending text as it appears in a message: quoted, tabs and control bytes escaped, cut
// at 200 bytes so that a binary file does not flood the terminal.
std::string quoted(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  constexpr size_t kMaxShown = 200;
  std::string out = "\"";
  for (char c : s.substr(0, kMaxShown)) {
    const unsigned char b = static_cast<unsigned char>(c);
    if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (b < 0x20 || b == 0x7f) {
      out += "\\x";
      out += kHex[b >> 4];
      out += kHex[b & 15];
    } else {
      out += c;
    }
  }
  if (s.size() > kMaxShown) out += "...";
  out += '"';
  return out;
}

bool is_known_type(std::string_view type) {
  return type == "token" || type == "float" || type == "token_seq" || type == "float_seq";
}

// Reads one line into `line` without its '\n' or a trailing '\r' (CRLF files); false at the end.
bool read_line(std::ifstream& in, std::string& line) {
  if (!std::getline(in, line)) return false;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return true;
}

// Keeps the first row of each (user, item) pair, as RecBole does. One sort of (pair, row) keys
// after the pass rather than a hash set during it: a third of the load time on ML-100K went to
// the set's probes and node allocations.
void remove_duplicate_pairs(Interactions& data) {
  const size_t n_rows = data.user.size();
  std::vector<std::pair<uint64_t, uint64_t>> key(n_rows);  // ((user << 32 | item), row)
  for (size_t r = 0; r < n_rows; ++r)
    key[r] = {uint64_t(uint32_t(data.user[r])) << 32 | uint32_t(data.item[r]), uint64_t{r}};
  std::sort(key.begin(), key.end());
  std::vector<uint8_t> drop(n_rows, 0);
  for (size_t k = 1; k < n_rows; ++k)
    if (key[k].first == key[k - 1].first) drop[key[k].second] = 1;  // a later row of the pair
  size_t kept = 0;
  for (size_t r = 0; r < n_rows; ++r) {
    if (drop[r]) continue;
    data.user[kept] = data.user[r];
    data.item[kept] = data.item[r];
    data.time[kept] = data.time[r];
    ++kept;
  }
  data.duplicates_removed = static_cast<int64_t>(n_rows - kept);
  data.user.resize(kept);
  data.item.resize(kept);
  data.time.resize(kept);
}

}  // namespace

Interactions load_inter_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_no_input("cannot open " + path + ": " + std::strerror(errno));
  const auto fail = [&path](int64_t line_no, const std::string& what) {
    throw_data(path + ":" + std::to_string(line_no) + ": " + what);
  };

  // Header: the first non-empty line; a UTF-8 byte-order mark is dropped from line 1.
  std::string line;
  line.reserve(256);
  int64_t line_no = 0;
  bool have_header = false;
  while (!have_header) {
    if (!read_line(in, line)) {
      if (in.bad()) throw_no_input("cannot read " + path + ": " + std::strerror(errno));
      fail(std::max<int64_t>(line_no, 1),
           "empty file: expected a header line of tab-separated name:type fields (e.g. "
           "\"user_id:token\\titem_id:token\\ttimestamp:float\"), found end of file");
    }
    ++line_no;
    if (line_no == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
    have_header = !line.empty();
  }
  const int64_t header_line = line_no;
  const std::string header = line;

  std::vector<std::string> names, types;
  for (size_t begin = 0;;) {
    const size_t end = std::min(header.find('\t', begin), header.size());
    const std::string_view field = std::string_view(header).substr(begin, end - begin);
    const size_t colon = field.find(':');
    if (colon == std::string_view::npos || colon == 0)
      fail(header_line, "header field " + quoted(field) +
                            " is not name:type: expected e.g. \"user_id:token\" (types: token, "
                            "float, token_seq, float_seq) in header " +
                            quoted(header));
    const std::string_view type = field.substr(colon + 1);
    if (!is_known_type(type))
      fail(header_line, "header field " + quoted(field) + " has unknown type " + quoted(type) +
                            ": expected token, float, token_seq or float_seq");
    names.emplace_back(field.substr(0, colon));
    types.emplace_back(type);
    if (end == header.size()) break;
    begin = end + 1;
  }
  const auto field_index = [&names](std::initializer_list<const char*> candidates) {
    for (const char* c : candidates)
      for (size_t i = 0; i < names.size(); ++i)
        if (names[i] == c) return static_cast<int64_t>(i);
    return int64_t{-1};
  };
  const int64_t user_field = field_index({"user_id", "user"});
  const int64_t item_field = field_index({"item_id", "item"});
  const int64_t time_field = field_index({"timestamp"});
  if (user_field < 0)
    fail(header_line,
         "header has no user field: expected user_id:token (or user:token) in " + quoted(header));
  if (item_field < 0)
    fail(header_line,
         "header has no item field: expected item_id:token (or item:token) in " + quoted(header));
  const auto require_type = [&](int64_t f, const char* type) {
    const size_t i = static_cast<size_t>(f);
    if (types[i] != type)
      fail(header_line, "header field " + quoted(names[i] + ":" + types[i]) + " must have type " +
                            type + ": expected " + quoted(names[i] + ":" + type));
  };
  require_type(user_field, "token");
  require_type(item_field, "token");
  if (time_field >= 0) require_type(time_field, "float");

  std::string expected_fields;  // "user_id:token, item_id:token, ..." for the column-count error
  for (size_t i = 0; i < names.size(); ++i)
    expected_fields += (i ? ", " : "") + names[i] + ":" + types[i];
  const int64_t n_fields = static_cast<int64_t>(names.size());

  Interactions data;
  data.name = path.substr(path.find_last_of('/') + 1);  // npos + 1 == 0: the whole path
  // One pass, one reused line buffer; fields are views into it, found by one scan per line.
  while (read_line(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    if (std::memchr(line.data(), '\0', line.size()) != nullptr)
      fail(line_no,
           "NUL byte in " + quoted(line) + ": expected tab-separated text (is the file UTF-16?)");
    std::string_view user_raw, item_raw, time_raw;
    int64_t n_found = 0;
    for (size_t begin = 0;; ++n_found) {
      const size_t end = std::min(line.find('\t', begin), line.size());
      const std::string_view field = std::string_view(line).substr(begin, end - begin);
      if (n_found == user_field) user_raw = field;
      if (n_found == item_field) item_raw = field;
      if (n_found == time_field) time_raw = field;
      if (end == line.size()) break;
      begin = end + 1;
    }
    ++n_found;
    if (n_found != n_fields)
      fail(line_no, "expected " + std::to_string(n_fields) + " tab-separated fields (" +
                        expected_fields + "), found " + std::to_string(n_found) + ": " +
                        quoted(line));
    if (user_raw.empty())
      fail(line_no, "empty " + names[size_t(user_field)] + ": expected a token in " + quoted(line));
    if (item_raw.empty())
      fail(line_no, "empty " + names[size_t(item_field)] + ": expected a token in " + quoted(line));
    double time = 0.0;  // without a timestamp field: the row's index, set after deduplication
    if (time_field >= 0) {
      // strtod stops at the tab or the string's NUL; the whole field must be the number, with
      // no leading blank (strtod would skip it, and even run on into the next field).
      char* end = nullptr;
      const char* begin = time_raw.data();
      if (!time_raw.empty() && !std::isspace(static_cast<unsigned char>(*begin)))
        time = std::strtod(begin, &end);
      if (end != begin + time_raw.size() || time_raw.empty() || !std::isfinite(time))
        fail(line_no, "expected a number (finite) for " + names[size_t(time_field)] +
                          ":float, found " + quoted(time_raw) + " in " + quoted(line));
    }
    data.user.push_back(data.users.get_or_add(user_raw));
    data.item.push_back(data.items.get_or_add(item_raw));
    data.time.push_back(time);
  }
  if (in.bad()) throw_no_input("cannot read " + path + ": " + std::strerror(errno));
  if (data.user.empty())
    fail(line_no, "no interactions: expected at least one line after the header " + quoted(header) +
                      ", found end of file");
  remove_duplicate_pairs(data);
  // No timestamp field: file order is the time order, so a kept row's index is its time.
  if (time_field < 0) std::iota(data.time.begin(), data.time.end(), 0.0);
  return data;
}

// ---------------------------------------------------------------------------------------------
// Leave-one-out split

Split leave_one_out(const Interactions& data) {
  const int32_t n_users = data.n_users(), n_items = data.n_items();
  const size_t n_rows = data.user.size();
  if (data.item.size() != n_rows || data.time.size() != n_rows)
    throw_internal("leave_one_out: user, item and time columns differ in length");
  const size_t n_u = static_cast<size_t>(n_users);

  // Rows grouped by user with a counting sort, which keeps file order within a user; then a
  // stable sort by time, so ties stay in file order (the later line is the later interaction).
  std::vector<int64_t> start(n_u + 1, 0);
  for (size_t r = 0; r < n_rows; ++r) {
    const int32_t u = data.user[r], i = data.item[r];
    if (u < 0 || u >= n_users || i < 0 || i >= n_items)
      throw_internal("leave_one_out: row " + std::to_string(r) + " has user " + std::to_string(u) +
                     ", item " + std::to_string(i) + " outside the id maps");
    ++start[static_cast<size_t>(u) + 1];
  }
  std::partial_sum(start.begin(), start.end(), start.begin());
  std::vector<int64_t> order(n_rows);
  {
    std::vector<int64_t> next(start.begin(), start.end() - 1);
    for (size_t r = 0; r < n_rows; ++r)
      order[static_cast<size_t>(next[static_cast<size_t>(data.user[r])]++)] = int64_t(r);
  }

  Split split;
  split.n_users = n_users;
  split.n_items = n_items;
  split.valid_item.assign(n_u, -1);
  split.test_item.assign(n_u, -1);
  split.item_train_count.assign(static_cast<size_t>(n_items), 0);
  split.all.offsets.assign(start.begin(), start.end());
  split.all.items.resize(n_rows);
  split.train.offsets.assign(n_u + 1, 0);
  split.train.items.reserve(n_rows);
  for (size_t u = 0; u < n_u; ++u) {
    const auto begin = order.begin() + start[u], end = order.begin() + start[u + 1];
    std::stable_sort(begin, end, [&data](int64_t a, int64_t b) {
      return data.time[static_cast<size_t>(a)] < data.time[static_cast<size_t>(b)];
    });
    const int64_t n = end - begin;
    const auto item_at = [&](int64_t k) { return data.item[static_cast<size_t>(begin[k])]; };
    if (n >= 2) split.test_item[u] = item_at(n - 1);
    if (n >= 3) split.valid_item[u] = item_at(n - 2);
    const int64_t n_train = n >= 3 ? n - 2 : n >= 2 ? n - 1 : n;

    int32_t* all_row = split.all.items.data() + start[u];
    for (int64_t k = 0; k < n; ++k) all_row[k] = item_at(k);
    const size_t train_begin = split.train.items.size();
    split.train.items.insert(split.train.items.end(), all_row, all_row + n_train);
    std::sort(all_row, all_row + n);
    std::sort(split.train.items.begin() + static_cast<std::ptrdiff_t>(train_begin),
              split.train.items.end());
    // The samplers rely on strictly increasing rows; the loader and the generator never
    // produce a repeated pair, but a hand-built Interactions might.
    const int32_t* repeat = std::adjacent_find(all_row, all_row + n);
    if (repeat != all_row + n)
      throw_data("leave_one_out: user " + data.users.raw(int32_t(u)) + " has item " +
                 data.items.raw(*repeat) + " more than once (expected distinct pairs)");
    split.train.offsets[u + 1] = static_cast<int64_t>(split.train.items.size());
  }

  // Training positives in a fixed order: user by user, then by item id (the train CSR).
  const size_t n_train_total = split.train.items.size();
  split.train_user.resize(n_train_total);
  split.train_item = split.train.items;
  for (size_t u = 0; u < n_u; ++u)
    std::fill(split.train_user.begin() + split.train.offsets[u],
              split.train_user.begin() + split.train.offsets[u + 1], static_cast<int32_t>(u));
  for (int32_t i : split.train_item) ++split.item_train_count[static_cast<size_t>(i)];
  return split;
}

// ---------------------------------------------------------------------------------------------
// Samplers

int32_t sample_negative(const int32_t* sorted, int64_t deg, int32_t n_items, uint64_t bits) {
  const int64_t r = uniform_index(bits, static_cast<uint32_t>(n_items - deg));
  return nth_absent_item(sorted, deg, r);
}

EvalCandidates sample_eval_candidates(const Split& split, const std::vector<int32_t>& held_out,
                                      int32_t n, uint64_t seed, uint64_t stream) {
  if (held_out.size() != static_cast<size_t>(split.n_users) || n < 0)
    throw_internal("sample_eval_candidates: held_out has " + std::to_string(held_out.size()) +
                   " entries for " + std::to_string(split.n_users) +
                   " users, n = " + std::to_string(n));
  EvalCandidates out;
  out.offsets.push_back(0);
  // Floyd's algorithm picks m distinct ranks in [0, avail) with exactly m draws; `marked`
  // (one flag per rank, cleared after each user) makes it O(m) even when m is close to avail.
  std::vector<uint8_t> marked(static_cast<size_t>(split.n_items), 0);
  std::vector<int64_t> ranks;
  for (int32_t u = 0; u < split.n_users; ++u) {
    if (held_out[static_cast<size_t>(u)] < 0) continue;
    const int64_t deg = split.all.degree(u);
    const int64_t avail = std::max<int64_t>(int64_t(split.n_items) - deg, 0);
    const int64_t m = std::min<int64_t>(n, avail);
    ranks.clear();
    for (int64_t j = avail - m; j < avail; ++j) {
      // Counter = (user, draw index): a user's candidates do not depend on any other user.
      const uint64_t draw = static_cast<uint64_t>(j - (avail - m));
      const uint64_t bits = rng_hash(seed, stream, uint64_t(uint32_t(u)) << 32 | draw);
      const int64_t t = uniform_index(bits, static_cast<uint32_t>(j + 1));
      const int64_t pick = marked[static_cast<size_t>(t)] ? j : t;
      marked[static_cast<size_t>(pick)] = 1;
      ranks.push_back(pick);
    }
    std::sort(ranks.begin(), ranks.end());
    out.user.push_back(u);
    out.positive.push_back(held_out[static_cast<size_t>(u)]);
    // Increasing ranks map to increasing items, so the negatives come out sorted.
    for (int64_t r : ranks) {
      marked[static_cast<size_t>(r)] = 0;
      out.negatives.push_back(nth_absent_item(split.all.row(u), deg, r));
    }
    out.offsets.push_back(static_cast<int64_t>(out.negatives.size()));
  }
  return out;
}

}  // namespace convncf
