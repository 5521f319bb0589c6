// test_dataset.cpp: the data module (host/dataset.cpp): the synthetic generator (seeded, sized,
// long-tailed, with a planted structure that item-kNN finds and popularity does not), the
// leave-one-out split with timestamp ties worked out by hand, RecBole's ratio split, split files,
// and the samplers against brute force. The real ML-100K file is split when the shared folder
// has it (tests/test_paths.hpp says where it is looked for), else skipped. The file formats are tested in test_formats.cpp.
#include <gtest/gtest.h>
#include <stdlib.h>  // mkdtemp (POSIX)

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "convncf/dataset.hpp"
#include "convncf/errors.hpp"
#include "convncf/evaluate.hpp"
#include "convncf/formats.hpp"
#include "convncf/rng.hpp"
#include "test_paths.hpp"

using namespace convncf;

namespace {

// Interactions built by hand: rows of (raw user, raw item, time).
struct Row {
  std::string user;
  std::string item;
  double time;
};
Interactions make_interactions(const std::vector<Row>& rows) {
  Interactions d;
  d.name = "hand";
  for (const Row& r : rows) {
    d.user.push_back(d.users.get_or_add(r.user));
    d.item.push_back(d.items.get_or_add(r.item));
    d.time.push_back(r.time);
  }
  return d;
}

std::vector<int32_t> csr_row(const Csr& c, int32_t u) {
  return std::vector<int32_t>(c.row(u), c.row(u) + c.degree(u));
}

// A random strictly increasing subset of [0, n_items), each item kept with probability p.
std::vector<int32_t> random_sorted(Rng& rng, int32_t n_items, double p) {
  std::vector<int32_t> v;
  for (int32_t i = 0; i < n_items; ++i)
    if (rng.uniform() < p) v.push_back(i);
  return v;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// IdMap, Csr

TEST(IdMap, DenseInFirstSeenOrder) {
  IdMap m;
  EXPECT_EQ(m.get_or_add("42"), 0);
  EXPECT_EQ(m.get_or_add("7"), 1);
  EXPECT_EQ(m.get_or_add("42"), 0);
  EXPECT_EQ(m.get_or_add("a b"), 2);
  EXPECT_EQ(m.size(), 3);
  EXPECT_EQ(m.find("7"), 1);
  EXPECT_EQ(m.find("8"), -1);
  EXPECT_EQ(m.raw(2), "a b");
  EXPECT_EQ(m.raws(), (std::vector<std::string>{"42", "7", "a b"}));
}

TEST(Csr, ContainsBySearchingTheRow) {
  Csr c;
  c.offsets = {0, 3, 3, 5};
  c.items = {1, 4, 9, 0, 9};
  EXPECT_EQ(c.n_rows(), 3);
  for (int32_t i = 0; i < 10; ++i) {
    EXPECT_EQ(c.contains(0, i), i == 1 || i == 4 || i == 9) << i;
    EXPECT_FALSE(c.contains(1, i)) << i;
    EXPECT_EQ(c.contains(2, i), i == 0 || i == 9) << i;
  }
}

// ---------------------------------------------------------------------------------------------
// .inter loader: accepted files

namespace {
// The single held-out item of each user in a leave-one-out part, -1 where there is none.
std::vector<int32_t> one_per_user(const Csr& c) {
  std::vector<int32_t> out;
  for (int32_t u = 0; u < c.n_rows(); ++u) {
    EXPECT_LE(c.degree(u), 1);
    out.push_back(c.degree(u) ? c.row(u)[0] : -1);
  }
  return out;
}
}  // namespace

TEST(LeaveOneOut, RealMl100k) {
  std::string why;
  const std::string path = test::ml100k_path(&why);
  if (path.empty()) GTEST_SKIP() << why;
  const Interactions d = load_data(path, LoadOptions{}).inter;
  EXPECT_EQ(d.n_users(), 943);
  EXPECT_EQ(d.n_items(), 1682);
  EXPECT_EQ(d.size(), 100000);
  EXPECT_EQ(d.duplicates_removed, 0);
  EXPECT_EQ(d.name, "ml-100k.inter");
  const Split s = leave_one_out(d);
  const auto count_set = [](const std::vector<int32_t>& v) {
    return std::count_if(v.begin(), v.end(), [](int32_t i) { return i >= 0; });
  };
  EXPECT_EQ(count_set(one_per_user(s.test)), 943);
  EXPECT_EQ(count_set(one_per_user(s.valid)), 943);  // every ML-100K user has >= 20 ratings
  EXPECT_EQ(s.train_user.size(), size_t{100000 - 2 * 943});
}

// ---------------------------------------------------------------------------------------------
// Synthetic data

TEST(Synthetic, SameSeedSameDataOtherSeedOtherData) {
  const Interactions a = make_synthetic(7), b = make_synthetic(7), c = make_synthetic(8);
  EXPECT_EQ(a.user, b.user);
  EXPECT_EQ(a.item, b.item);
  EXPECT_EQ(a.time, b.time);
  EXPECT_NE(a.item, c.item);
  EXPECT_EQ(a.name, "synthetic");
}

TEST(Synthetic, SizeMinPerUserAndLongTail) {
  const SyntheticSpec spec;
  const Interactions d = make_synthetic(1, spec);
  ASSERT_EQ(d.n_users(), 1000);
  ASSERT_EQ(d.n_items(), 1700);
  EXPECT_EQ(d.users.raw(0), "1");
  EXPECT_EQ(d.users.raw(999), "1000");
  EXPECT_EQ(d.items.raw(1699), "1700");
  EXPECT_NEAR(double(d.size()), 100000.0, 2000.0);
  EXPECT_EQ(d.duplicates_removed, 0);

  std::vector<int64_t> per_user(1000, 0), per_item(1700, 0);
  std::set<std::pair<int32_t, int32_t>> pairs;
  for (int64_t r = 0; r < d.size(); ++r) {
    const size_t k = static_cast<size_t>(r);
    ++per_user[static_cast<size_t>(d.user[k])];
    ++per_item[static_cast<size_t>(d.item[k])];
    EXPECT_TRUE(pairs.emplace(d.user[k], d.item[k]).second) << "repeated pair at row " << r;
    // Rows go user by user at increasing times.
    if (r > 0) {
      EXPECT_GE(d.user[k], d.user[k - 1]) << r;
      if (d.user[k] == d.user[k - 1]) {
        EXPECT_GT(d.time[k], d.time[k - 1]) << r;
      }
    }
  }
  const auto [lo, hi] = std::minmax_element(per_user.begin(), per_user.end());
  EXPECT_GE(*lo, spec.min_per_user);
  EXPECT_LT(*hi, spec.n_items / 2);
  std::vector<int64_t> sorted_users = per_user;
  std::sort(sorted_users.begin(), sorted_users.end());
  EXPECT_GT(*hi, 4 * sorted_users[500]) << "per-user counts are not long-tailed";

  // Long-tailed popularity: the top 10% of items hold a large share (ML-100K: 43%), yet most
  // items are seen by someone.
  std::sort(per_item.rbegin(), per_item.rend());
  int64_t top = 0;
  for (size_t i = 0; i < 170; ++i) top += per_item[i];
  const double share = double(top) / double(d.size());
  EXPECT_GT(share, 0.25);
  EXPECT_LT(share, 0.6);
  EXPECT_GT(std::count_if(per_item.begin(), per_item.end(), [](int64_t c) { return c > 0; }), 1500);
}

TEST(Synthetic, SmallSpecAndRefusals) {
  SyntheticSpec spec;
  spec.n_users = 5;
  spec.n_items = 12;
  spec.n_interactions = 1000;  // more than the cap allows: every user gets the cap
  spec.min_per_user = 3;
  const Interactions d = make_synthetic(3, spec);
  EXPECT_EQ(d.n_users(), 5);
  EXPECT_EQ(d.n_items(), 12);
  EXPECT_EQ(d.size(), 5 * 5);  // cap (12 - 1) / 2 = 5 per user
  spec.min_per_user = 13;
  EXPECT_THROW(make_synthetic(3, spec), Error);
}

// The aim of the generator: structure that a model can learn beats popularity on held-out
// items, and popularity is still far better than chance. Item-kNN (cosine co-occurrence) is a
// cheap stand-in for a learned model. HR@10 among 99 sampled negatives, on the test items.
TEST(Synthetic, PlantedStructureBeatsPopularityBeatsChance) {
  const Split s = leave_one_out(make_synthetic(42));
  const EvalSet c = make_eval_set(s, true, "uni99", 42, kStreamEvalTest, nullptr);
  const size_t n_items = static_cast<size_t>(s.n_items);
  std::vector<float> co(n_items * n_items, 0.0f);  // (I, I) co-occurrence in training
  for (int32_t u = 0; u < s.n_users; ++u) {
    const int32_t* row = s.train.row(u);
    for (int64_t a = 0; a < s.train.degree(u); ++a)
      for (int64_t b = 0; b < s.train.degree(u); ++b)
        if (a != b) co[size_t(row[a]) * n_items + size_t(row[b])] += 1.0f;
  }
  const auto pop = [&](int32_t, int32_t i) { return double(s.item_train_count[size_t(i)]); };
  const auto knn = [&](int32_t u, int32_t i) {
    double sum = 0;
    for (int64_t a = 0; a < s.train.degree(u); ++a) {
      const int32_t j = s.train.row(u)[a];
      sum += co[size_t(i) * n_items + size_t(j)] / std::sqrt((s.item_train_count[size_t(i)] + 1.0) *
                                                             (s.item_train_count[size_t(j)] + 1.0));
    }
    return sum;
  };
  const auto hit_rate = [&](auto score) {
    int64_t hits = 0;
    for (size_t k = 0; k < c.user.size(); ++k) {
      const double p = score(c.user[k], c.positives[size_t(c.pos_offsets[k])]);
      int64_t above = 0;  // ties count against the positive
      for (int64_t j = c.neg_offsets[k]; j < c.neg_offsets[k + 1]; ++j)
        above += score(c.user[k], c.negatives[size_t(j)]) >= p;
      hits += above < 10;
    }
    return double(hits) / double(c.user.size());
  };
  const double hr_pop = hit_rate(pop), hr_knn = hit_rate(knn);
  std::printf("synthetic HR@10 (99 negatives): popularity %.3f, item-kNN %.3f, chance 0.100\n",
              hr_pop, hr_knn);
  EXPECT_GT(hr_pop, 0.25);
  EXPECT_GT(hr_knn, hr_pop + 0.15);
}

// ---------------------------------------------------------------------------------------------
// Leave-one-out

TEST(LeaveOneOut, HandWorkedSplitWithTimestampTies) {
  // User a: times 5, 1, 5, 3, 9 -> order i1(1) i3(3) i0(5) i2(5, later line) i4(9): test i4,
  //   valid i2 (tie with i0 broken by file order), train {i0, i1, i3}.
  // User b: all at time 2 -> file order i1 i5 i0: test i0, valid i5, train {i1}.
  // User c: two rows -> test the later (i2), train {i3}, no valid.
  // User d: one row -> train only.
  // User e: latest tie at the end: i3(4), i5(4) -> test i5 (later line), train {i3}.
  const Interactions d = make_interactions({
      {"a", "i0", 5},
      {"b", "i1", 2},
      {"a", "i1", 1},
      {"c", "i3", 1},
      {"a", "i2", 5},
      {"b", "i5", 2},
      {"a", "i3", 3},
      {"d", "i4", 0},
      {"c", "i2", 2},
      {"a", "i4", 9},
      {"b", "i0", 2},
      {"e", "i3", 4},
      {"e", "i5", 4},
  });
  // Dense ids in first-seen order: users a0 b1 c2 d3 e4; items i0:0 i1:1 i3:2 i2:3 i5:4 i4:5.
  ASSERT_EQ(d.items.raws(), (std::vector<std::string>{"i0", "i1", "i3", "i2", "i5", "i4"}));
  const int32_t i0 = 0, i1 = 1, i3 = 2, i2 = 3, i5 = 4, i4 = 5;
  const Split s = leave_one_out(d);
  EXPECT_EQ(s.n_users, 5);
  EXPECT_EQ(s.n_items, 6);
  EXPECT_EQ(one_per_user(s.test), (std::vector<int32_t>{i4, i0, i2, -1, i5}));
  EXPECT_EQ(one_per_user(s.valid), (std::vector<int32_t>{i2, i5, -1, -1, -1}));
  EXPECT_EQ(s.method, "leave-one-out");
  // test_only (RecBole's LS test_only): the validation items go back to training
  const Split t = leave_one_out(d, false);
  EXPECT_EQ(one_per_user(t.test), one_per_user(s.test));
  EXPECT_TRUE(t.valid.items.empty());
  EXPECT_EQ(csr_row(t.train, 0), (std::vector<int32_t>{i0, i1, i3, i2}));
  EXPECT_EQ(s.train.offsets, (std::vector<int64_t>{0, 3, 4, 5, 6, 7}));
  EXPECT_EQ(s.train.items, (std::vector<int32_t>{i0, i1, i3, i1, i3, i4, i3}));
  EXPECT_EQ(s.all.offsets, (std::vector<int64_t>{0, 5, 8, 10, 11, 13}));
  EXPECT_EQ(csr_row(s.all, 0), (std::vector<int32_t>{i0, i1, i3, i2, i4}));  // ids 0 1 2 3 5
  EXPECT_EQ(csr_row(s.all, 1), (std::vector<int32_t>{i0, i1, i5}));
  EXPECT_EQ(csr_row(s.all, 2), (std::vector<int32_t>{i3, i2}));
  EXPECT_EQ(csr_row(s.all, 4), (std::vector<int32_t>{i3, i5}));
  // Training positives user by user, then by item id: exactly the train CSR.
  EXPECT_EQ(s.train_user, (std::vector<int32_t>{0, 0, 0, 1, 2, 3, 4}));
  EXPECT_EQ(s.train_item, s.train.items);
  EXPECT_EQ(s.item_train_count, (std::vector<int64_t>{1, 2, 3, 0, 0, 1}));
  EXPECT_TRUE(s.all.contains(0, i2));
  EXPECT_FALSE(s.train.contains(0, i2));
}

TEST(LeaveOneOut, EveryRowLandsInExactlyOnePart) {
  const Interactions d = make_synthetic(5);
  const Split s = leave_one_out(d);
  int64_t held = 0;
  for (int32_t u = 0; u < s.n_users; ++u) {
    std::vector<int32_t> parts = csr_row(s.train, u);
    for (const Csr* c : {&s.valid, &s.test})
      for (int64_t j = 0; j < c->degree(u); ++j) parts.push_back(c->row(u)[j]), ++held;
    std::sort(parts.begin(), parts.end());
    ASSERT_EQ(parts, csr_row(s.all, u)) << "user " << u;
    ASSERT_TRUE(std::is_sorted(s.train.row(u), s.train.row(u) + s.train.degree(u)));
  }
  EXPECT_EQ(int64_t(s.train_user.size()) + held, d.size());
  EXPECT_EQ(held, 2 * 1000);
}

TEST(LeaveOneOut, RepeatedPairsKeptAsPositivesButNotInTheCsr) {
  // rm_dup_inter: keep leaves repeated pairs; the samplers need strictly increasing rows.
  const Interactions d = make_interactions({{"a", "x", 1}, {"a", "y", 2}, {"a", "x", 3}, {"a", "z", 4}, {"a", "x", 0}});
  const Split s = leave_one_out(d);  // by time: x(0) x(1) y(2) x(3) z(4): test z, valid x
  EXPECT_EQ(csr_row(s.train, 0), (std::vector<int32_t>{0, 1}));  // x, y once each
  EXPECT_EQ(s.train_item, (std::vector<int32_t>{0, 0, 1}));      // x twice as a positive
  EXPECT_EQ(csr_row(s.all, 0), (std::vector<int32_t>{0, 1, 2}));
}

// ---------------------------------------------------------------------------------------------
// Ratio split (RecBole's RS) and split files

TEST(RatioSplit, RecBoleSizesPerUser) {
  // RecBole's _calcu_split_ids for [0.8, 0.1, 0.1]: n=10 -> 8/1/1; n=5 -> floor gives 5/0/0,
  // then each part with share in (0,1) takes one from training: 3/1/1; n=2 -> 0/0 floors, test
  // (0.2) takes one: 1/0/1 and training (1 left) stops the loop; n=1 -> 1/0/0.
  std::vector<Row> rows;
  auto add = [&rows](const char* u, int n) {
    for (int i = 0; i < n; ++i) rows.push_back({u, "i" + std::to_string(i), double(i)});
  };
  add("ten", 10);
  add("five", 5);
  add("two", 2);
  add("one", 1);
  const Interactions d = make_interactions(rows);
  for (SplitOrder order : {SplitOrder::Random, SplitOrder::Time}) {
    const Split s = ratio_split(d, {0.8, 0.1, 0.1}, order, 7);
    const int64_t want[4][3] = {{8, 1, 1}, {3, 1, 1}, {1, 0, 1}, {1, 0, 0}};
    for (int32_t u = 0; u < 4; ++u) {
      EXPECT_EQ(s.train.degree(u), want[u][0]) << u;
      EXPECT_EQ(s.valid.degree(u), want[u][1]) << u;
      EXPECT_EQ(s.test.degree(u), want[u][2]) << u;
    }
    if (order == SplitOrder::Time) {  // by time: the latest go to test, then valid
      EXPECT_EQ(csr_row(s.test, 0), (std::vector<int32_t>{9}));
      EXPECT_EQ(csr_row(s.valid, 0), (std::vector<int32_t>{8}));
      EXPECT_EQ(s.method, "ratio 0.8/0.1/0.1 TO");
    }
  }
  // two parts: train/test; ratios are normalized
  const Split t = ratio_split(d, {4, 1}, SplitOrder::Time, 7);
  EXPECT_EQ(t.test.degree(0), 2);
  EXPECT_TRUE(t.valid.items.empty());
  EXPECT_THROW(ratio_split(d, {1}, SplitOrder::Time, 7), Error);
  EXPECT_THROW(ratio_split(d, {0, 0, 0}, SplitOrder::Time, 7), Error);
}

TEST(RatioSplit, RandomOrderIsSeededAndPerUser) {
  const Interactions d = make_synthetic(3);
  const Split a = ratio_split(d, {0.8, 0.1, 0.1}, SplitOrder::Random, 1);
  const Split b = ratio_split(d, {0.8, 0.1, 0.1}, SplitOrder::Random, 1);
  const Split c = ratio_split(d, {0.8, 0.1, 0.1}, SplitOrder::Random, 2);
  EXPECT_EQ(a.test.items, b.test.items);
  EXPECT_EQ(a.valid.items, b.valid.items);
  EXPECT_NE(a.test.items, c.test.items);
  int64_t total = 0;
  for (const Csr* p : {&a.train, &a.valid, &a.test}) total += int64_t(p->items.size());
  EXPECT_EQ(total, d.size());
}

TEST(SplitFile, WrittenAndReadBackIdentically) {
  const Interactions d = make_synthetic(4);
  const Split s = ratio_split(d, {0.8, 0.1, 0.1}, SplitOrder::Random, 9);
  const std::string path = ::testing::TempDir() + "/convncf_split_test.tsv";
  write_split(path, d, s);
  const Split r = read_split(path, d);
  EXPECT_EQ(r.train.items, s.train.items);
  EXPECT_EQ(r.train.offsets, s.train.offsets);
  EXPECT_EQ(r.valid.items, s.valid.items);
  EXPECT_EQ(r.test.items, s.test.items);
  EXPECT_EQ(r.train_user, s.train_user);
  EXPECT_EQ(r.train_item, s.train_item);
  // a split of other data is refused with the file and the id named
  const Interactions other = make_interactions({{"nobody", "x", 1}});
  try {
    read_split(path, other);
    ADD_FAILURE() << "read_split accepted a split of other data";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitData);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("is not in the dataset"), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
}

// rm_dup_inter: keep leaves repeated (user, item) pairs, and a repeated pair may land in several
// parts. split.tsv holds one line per interaction, so reading it back gives the same split,
// duplicates included.
TEST(SplitFile, RepeatedPairsReadBackInTheirOwnParts) {
  std::vector<Row> rows;
  for (int u = 0; u < 40; ++u)
    for (int k = 0; k < 10; ++k) rows.push_back({"u" + std::to_string(u), "i" + std::to_string((u + k * k) % 6), double(k)});
  const Interactions d = make_interactions(rows);
  const std::string path = ::testing::TempDir() + "/convncf_split_dup_test.tsv";
  auto sorted_pairs = [](const Split& s) {
    std::vector<std::pair<int32_t, int32_t>> p;
    for (size_t k = 0; k < s.train_user.size(); ++k) p.emplace_back(s.train_user[k], s.train_item[k]);
    std::sort(p.begin(), p.end());
    return p;
  };
  const std::vector<Split> splits = {ratio_split(d, {0.8, 0.1, 0.1}, SplitOrder::Random, 3),
                                     ratio_split(d, {0.6, 0.2, 0.2}, SplitOrder::Time, 3), leave_one_out(d)};
  int shared_pairs = 0;  // pairs in training and held out at once: the case a file of unique pairs loses
  for (const Split& s : splits) {
    for (int32_t u = 0; u < s.n_users; ++u)
      for (int64_t j = 0; j < s.test.degree(u); ++j) shared_pairs += s.train.contains(u, s.test.row(u)[j]);
    write_split(path, d, s);
    const Split r = read_split(path, d);
    EXPECT_EQ(sorted_pairs(r), sorted_pairs(s)) << s.method;
    EXPECT_EQ(r.item_train_count, s.item_train_count) << s.method;
    EXPECT_EQ(r.train.items, s.train.items) << s.method;
    EXPECT_EQ(r.valid.items, s.valid.items) << s.method;
    EXPECT_EQ(r.valid.offsets, s.valid.offsets) << s.method;
    EXPECT_EQ(r.test.items, s.test.items) << s.method;
    EXPECT_EQ(r.test.offsets, s.test.offsets) << s.method;
  }
  EXPECT_GT(shared_pairs, 0) << "the data must put some repeated pair in two parts";
  std::remove(path.c_str());
}

// ---------------------------------------------------------------------------------------------
// Samplers

TEST(Sampling, NthAbsentItemExhaustiveAgainstBruteForce) {
  Rng rng(11, kStreamSynthetic);
  int64_t checked = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const int32_t n_items = 1 + int32_t(rng.index(40));
    const std::vector<int32_t> sorted = random_sorted(rng, n_items, rng.uniform());
    std::vector<int32_t> absent;
    for (int32_t i = 0; i < n_items; ++i)
      if (!std::binary_search(sorted.begin(), sorted.end(), i)) absent.push_back(i);
    for (size_t r = 0; r < absent.size(); ++r, ++checked)
      ASSERT_EQ(nth_absent_item(sorted.data(), int64_t(sorted.size()), int64_t(r)), absent[r])
          << "trial " << trial << " r " << r;
  }
  EXPECT_GT(checked, 2000);
}

TEST(Sampling, NegativeIsAbsentAndRoughlyUniform) {
  Rng rng(12, kStreamSynthetic);
  const int32_t n_items = 100;
  std::vector<int32_t> sorted = random_sorted(rng, n_items, 0.3);
  const int64_t deg = int64_t(sorted.size()), n_absent = n_items - deg;
  const int64_t draws = 1000 * n_absent;
  std::vector<int64_t> hits(n_items, 0);
  for (int64_t k = 0; k < draws; ++k) {
    const int32_t i =
        sample_negative(sorted.data(), deg, n_items, rng_hash(12, kStreamNegative, uint64_t(k)));
    ASSERT_GE(i, 0);
    ASSERT_LT(i, n_items);
    ASSERT_FALSE(std::binary_search(sorted.begin(), sorted.end(), i)) << i;
    ++hits[size_t(i)];
  }
  // Pearson chi-square over the absent items: mean n_absent - 1, sd sqrt(2 (n_absent - 1)).
  double chi2 = 0;
  for (int32_t i = 0; i < n_items; ++i) {
    if (std::binary_search(sorted.begin(), sorted.end(), i)) continue;
    const double diff = double(hits[size_t(i)]) - 1000.0;
    chi2 += diff * diff / 1000.0;
  }
  const double dof = double(n_absent - 1);
  EXPECT_LT(chi2, dof + 6.0 * std::sqrt(2.0 * dof)) << "chi-square " << chi2 << ", dof " << dof;
  EXPECT_GT(chi2, 0.0);

  // Edges: an empty row, and a row with a single absent item.
  EXPECT_EQ(sample_negative(nullptr, 0, 1, 123), 0);
  std::vector<int32_t> all_but_7;
  for (int32_t i = 0; i < 20; ++i)
    if (i != 7) all_but_7.push_back(i);
  for (uint64_t k = 0; k < 50; ++k)
    EXPECT_EQ(sample_negative(all_but_7.data(), 19, 20, rng_hash(1, 2, k)), 7);
}

