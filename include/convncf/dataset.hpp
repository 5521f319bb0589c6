// dataset.hpp: interactions, id maps, the built-in synthetic data, the .inter loader,
// the leave-one-out split, and the samplers for training and sampled evaluation.
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

// RecBole atomic .inter file: tab-separated, header of `name:type` fields. The user field is
// the first of user_id/user, the item field item_id/item, time timestamp (optional). Throws
// Error(kExitData) naming file, line and what was expected; kExitNoInput when missing.
// Duplicate (user, item) pairs keep the first occurrence (counted in duplicates_removed).
Interactions load_inter_file(const std::string& path);

// Sorted item lists per user (CSR).
struct Csr {
  std::vector<int64_t> offsets;  // (n_users + 1,)
  std::vector<int32_t> items;    // (nnz,) sorted ascending within each user
  int32_t n_rows() const { return static_cast<int32_t>(offsets.size()) - 1; }
  int64_t degree(int32_t u) const { return offsets[u + 1] - offsets[u]; }
  const int32_t* row(int32_t u) const { return items.data() + offsets[u]; }
  bool contains(int32_t u, int32_t item) const;
};

// Leave-one-out on the latest timestamp, ties broken by file order (the later line is later).
// >= 3 interactions: latest = test, second latest = valid, the rest train.
// 2: latest = test, other train, no valid. 1: train only.
struct Split {
  int32_t n_users = 0, n_items = 0;
  Csr train;                        // training items per user
  Csr all;                          // every interaction per user (train + valid + test)
  std::vector<int32_t> train_user;  // (T,) training positives in a fixed order
  std::vector<int32_t> train_item;  // (T,)
  std::vector<int32_t> valid_item;  // (n_users,) -1 where the user has none
  std::vector<int32_t> test_item;   // (n_users,) -1 where the user has none
  std::vector<int64_t> item_train_count;  // (n_items,) popularity in the training set
};
Split leave_one_out(const Interactions& data);

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

// Evaluation negatives: for each user with a held-out item, `n` distinct items the user never
// interacted with (split.all), fewer when fewer exist. Deterministic in (seed, stream).
struct EvalCandidates {
  std::vector<int32_t> user;       // (U',) users evaluated
  std::vector<int32_t> positive;   // (U',) held-out item
  std::vector<int64_t> offsets;    // (U'+1,) into negatives
  std::vector<int32_t> negatives;  // sorted within each user
};
EvalCandidates sample_eval_candidates(const Split& split, const std::vector<int32_t>& held_out,
                                      int32_t n, uint64_t seed, uint64_t stream);

}  // namespace convncf
