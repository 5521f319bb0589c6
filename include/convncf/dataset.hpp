// dataset.hpp: interactions, id maps, the built-in synthetic data, the splits and the
// training-negative sampler. File formats: formats.hpp; evaluation candidates: evaluate.hpp.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "convncf/common.hpp"

namespace convncf {

// Raw ids (strings, as the user wrote them) <-> dense indices 0..n-1, in first-seen order.
class IdMap {
 public:
  int32_t get_or_add(std::string_view raw);
  int32_t find(std::string_view raw) const;  // -1 when absent
  const std::string& raw(int32_t index) const { return m_raw[static_cast<size_t>(index)]; }
  int32_t size() const { return static_cast<int32_t>(m_raw.size()); }
  const std::vector<std::string>& raws() const { return m_raw; }

 private:
  std::vector<std::string> m_raw;
  std::unordered_map<std::string, int32_t> m_index;
};

// All interactions of a dataset, in file order. One row per (user, item, time).
struct Interactions {
  std::vector<int32_t> user;  // (N,)
  std::vector<int32_t> item;  // (N,)
  std::vector<double> time;   // (N,)  timestamps; file order when the source has none
  std::vector<float> rating;  // (N,) or empty when the source has no rating column
  IdMap users, items;
  std::string name;           // "synthetic" or the file name
  int64_t duplicates_removed = 0;
  int32_t n_users() const { return users.size(); }
  int32_t n_items() const { return items.size(); }
  int64_t size() const { return static_cast<int64_t>(user.size()); }
};

// Planted low-rank preference model with long-tailed item popularity (see dataset.cpp).
struct SyntheticSpec {
  int32_t n_users = 1000;
  int32_t n_items = 1700;
  int64_t n_interactions = 100000;  // approximate target
  int32_t rank = 8;
  double popularity_exponent = 0.9;  // Zipf exponent of the item popularity prior
  double preference_scale = 2.5;     // weight of the low-rank term against popularity
  int32_t min_per_user = 20;
};
Interactions make_synthetic(uint64_t seed, const SyntheticSpec& spec = {});


// Sorted item lists per user (CSR).
struct Csr {
  std::vector<int64_t> offsets;  // (n_users + 1,)
  std::vector<int32_t> items;    // (nnz,) sorted ascending within each user
  int32_t n_rows() const { return static_cast<int32_t>(offsets.size()) - 1; }
  int64_t degree(int32_t u) const { return offsets[u + 1] - offsets[u]; }
  const int32_t* row(int32_t u) const { return items.data() + offsets[u]; }
  bool contains(int32_t u, int32_t item) const;
};

// A split of the interactions into training, validation and test items per user. Every
// splitter below returns one; they differ only in which interaction goes where.
struct Split {
  int32_t n_users = 0, n_items = 0;
  Csr train;                        // training items per user
  Csr valid;                        // validation items per user (rows may be empty)
  Csr test;                         // test items per user (rows may be empty)
  Csr all;                          // every interaction per user (train + valid + test)
  std::vector<int32_t> train_user;  // (T,) training positives in a fixed order
  std::vector<int32_t> train_item;  // (T,)
  std::vector<int64_t> item_train_count;  // (n_items,) popularity in the training set
  std::string method;               // "leave-one-out", "ratio 0.8/0.1/0.1 RO", "files", ...
  // The part of every interaction (row of the data), repeated (user, item) pairs included: the
  // CSRs above hold each pair once per part, these count every row.
  std::vector<uint8_t> role;        // (N,) kRoleTrain, kRoleValid or kRoleTest (formats.hpp)
  int64_t n_train = 0, n_valid = 0, n_test = 0;
};

// Leave-one-out on the latest timestamp, ties broken by file order (the later line is later).
// >= 3 interactions: latest = test, second latest = valid, the rest train.
// 2: latest = test, other train, no valid. 1: train only. Without valid (RecBole's LS
// test_only): latest = test for >= 2, the rest train.
Split leave_one_out(const Interactions& data, bool with_valid = true);

// RecBole's ratio split grouped by user (eval_args split RS): each user's interactions in
// random order (RO, seeded) or by time (TO, ties by file order) are cut by `ratios` (2 or 3
// numbers, normalized) with RecBole's rounding; the last part is test.
enum class SplitOrder { Random, Time };
Split ratio_split(const Interactions& data, const std::vector<double>& ratios, SplitOrder order,
                  uint64_t seed);

// The split the files give (ncf, ngcf): role[k] is kRoleTrain/kRoleValid/kRoleTest (formats.hpp).
Split split_from_roles(const Interactions& data, const std::vector<uint8_t>& role);

// A split written as text (one `user<TAB>item<TAB>train|valid|test` line per interaction, raw
// ids; a pair the data repeats has one line per row, in its own part) and read back, the same
// split: read_split refuses (kExitData) a file that names an unknown id, or lists a pair another
// number of times than the data has it (once is read as "every row of the pair in this part",
// as files of one line per pair write it).
void write_split(const std::string& path, const Interactions& data, const Split& split);
Split read_split(const std::string& path, const Interactions& data);

// The r-th item (0-based, ascending) that is NOT in the sorted list `sorted` (length deg),
// for r in [0, n_items - deg). Shared by the CPU sampler and the CUDA sampler.
CONVNCF_HD int32_t nth_absent_item(const int32_t* sorted, int64_t deg, int64_t r) {
  // smallest j with sorted[j] - j > r; answer r + j
  int64_t lo = 0, hi = deg;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (sorted[mid] - mid > r) hi = mid; else lo = mid + 1;
  }
  return static_cast<int32_t>(r + lo);
}

// One training negative for a user, uniform over the items absent from `sorted`
// (requires deg < n_items). `bits` is a random 64-bit draw.
int32_t sample_negative(const int32_t* sorted, int64_t deg, int32_t n_items, uint64_t bits);

}  // namespace convncf
