// fuzz_common.hpp: what the fuzz targets share: splitting one input into the files of a dataset,
// and the invariants every loaded (and then filtered) dataset must hold. A violated invariant, or
// an Error other than kExitData, aborts: libFuzzer reports it as a crash with the input.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string_view>
#include <tuple>
#include <vector>

#include "convncf/errors.hpp"
#include "convncf/formats.hpp"

namespace fuzz {

using namespace convncf;

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

// The input cut at form feeds into at most `n` parts (train, test, negatives).
inline std::vector<std::string_view> parts(std::string_view text, size_t n) {
  std::vector<std::string_view> out;
  while (out.size() + 1 < n) {
    const size_t ff = text.find('\f');
    if (ff == std::string_view::npos) break;
    out.push_back(text.substr(0, ff));
    text.remove_prefix(ff + 1);
  }
  out.push_back(text);
  return out;
}

// Options from one byte: bits 0-3 pick a variant k, the caller uses k; k / 5 % 3 is the dup rule.
inline DupRule dup_rule(uint8_t b) { return static_cast<DupRule>((b & 15) / 5 % 3); }

inline void check_map(const IdMap& m) {
  for (int32_t i = 0; i < m.size(); ++i) FUZZ_CHECK(m.find(m.raw(i)) == i);
}

inline void check(const LoadedData& d, DupRule rule) {
  const Interactions& in = d.inter;
  const size_t n = in.user.size();
  FUZZ_CHECK(in.item.size() == n && in.time.size() == n);
  FUZZ_CHECK(in.rating.empty() || in.rating.size() == n);
  FUZZ_CHECK(d.role.empty() || d.role.size() == n);
  check_map(in.users);
  check_map(in.items);
  std::vector<uint8_t> user_seen(size_t(in.n_users()), 0);
  std::set<std::tuple<int32_t, int32_t, int>> seen;
  for (size_t r = 0; r < n; ++r) {
    FUZZ_CHECK(in.user[r] >= 0 && in.user[r] < in.n_users());
    FUZZ_CHECK(in.item[r] >= 0 && in.item[r] < in.n_items());
    FUZZ_CHECK(std::isfinite(in.time[r]));
    if (!in.rating.empty()) FUZZ_CHECK(std::isfinite(in.rating[r]));
    if (!d.role.empty()) FUZZ_CHECK(d.role[r] <= kRoleTest);
    user_seen[size_t(in.user[r])] = 1;
    const bool fresh = seen.insert({in.user[r], in.item[r], d.role.empty() ? 0 : d.role[r]}).second;
    if (rule != DupRule::Keep) FUZZ_CHECK(fresh);
  }
  for (uint8_t s : user_seen) FUZZ_CHECK(s);  // every user has a row
  const FileNegatives& fn = d.negatives;
  if (fn.empty()) return;
  const size_t L = fn.user.size();
  FUZZ_CHECK(fn.positive.size() == L && fn.offsets.size() == L + 1 && fn.offsets[0] == 0);
  FUZZ_CHECK(fn.offsets[L] == int64_t(fn.negatives.size()));
  for (size_t l = 0; l < L; ++l) {
    FUZZ_CHECK(fn.offsets[l] <= fn.offsets[l + 1]);
    FUZZ_CHECK(fn.user[l] >= 0 && fn.user[l] < in.n_users());
    FUZZ_CHECK(fn.positive[l] >= 0 && fn.positive[l] < in.n_items());
    for (int64_t j = fn.offsets[l]; j < fn.offsets[l + 1]; ++j) {
      const int32_t it = fn.negatives[size_t(j)];
      FUZZ_CHECK(it >= 0 && it < in.n_items());
      FUZZ_CHECK(it != fn.positive[l]);
      FUZZ_CHECK(!seen.count({fn.user[l], it, kRoleTrain}));  // never a training item
    }
  }
}

// finish_load, the checks, then RecBole's filters and the checks again.
inline void finish_and_check(LoadedData& d, const LoadOptions& opt) {
  finish_load(d, opt);
  check(d, opt.dup_rule);
  (void)d.report.summary();
  const bool rated = !d.inter.rating.empty();
  filter_interactions(d, {rated ? "[2,4]" : "", "[2,inf)", "(0,3]"});
  check(d, opt.dup_rule);
}

// Runs `body`; an Error is fine only when it says the data is bad.
template <class Body>
void guarded(Body&& body) {
  try {
    body();
  } catch (const Error& e) {
    if (e.code() != kExitData) {
      std::fprintf(stderr, "unexpected Error %d: %s\n", e.code(), e.what());
      std::abort();
    }
  }
}

}  // namespace fuzz
