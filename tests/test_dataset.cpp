// test_dataset.cpp: the data module (host/dataset.cpp): the .inter loader on hand-written files
// and every refusal (code, file, line and offending text), the synthetic generator (seeded,
// sized, long-tailed, with a planted structure that item-kNN finds and popularity does not),
// the leave-one-out split with timestamp ties worked out by hand, and the samplers against
// brute force. The real ML-100K file is read when the shared folder has it, else skipped.
// Run alone (from the repository root):
//   g++ -std=c++17 -O2 -Iinclude host/dataset.cpp tests/test_dataset.cpp -lgtest -lgtest_main
//       -pthread -o /tmp/test_dataset && /tmp/test_dataset
#ifndef CONVNCF_SHARED_DIR
#define CONVNCF_SHARED_DIR "/work/shared"
#endif

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
#include "convncf/rng.hpp"

using namespace convncf;

namespace {

// A fresh directory per test process, so parallel ctest runs never share files.
const std::string& temp_dir() {
  static const std::string dir = [] {
    std::string pattern = ::testing::TempDir();
    if (pattern.empty() || pattern.back() != '/') pattern += '/';
    pattern += "convncf_dataset_XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed: " << pattern;
    return pattern;
  }();
  return dir;
}

// Writes `text` byte for byte (binary: CRLF and BOM stay as written) and returns the path.
std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = temp_dir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  EXPECT_TRUE(out.good()) << path;
  return path;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Loads `text` as file `name` and expects a refusal with `code` whose message holds the path,
// "path:line:" and every needle; returns the message for further checks.
std::string expect_refused(const std::string& name, const std::string& text, int code, int line,
                           const std::vector<std::string>& needles) {
  const std::string path = write_file(name, text);
  try {
    load_inter_file(path);
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.code(), code) << what;
    EXPECT_TRUE(contains(what, path + ":" + std::to_string(line) + ": ")) << what;
    for (const std::string& n : needles) EXPECT_TRUE(contains(what, n)) << n << " not in: " << what;
    return what;
  }
  ADD_FAILURE() << name << " was accepted";
  return "";
}

// Interactions built by hand: rows of (raw user, raw item, time).
struct Row {
  const char* user;
  const char* item;
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

TEST(InterLoader, ReadsAnyColumnOrderExtraColumnsCrlfBomNoFinalNewline) {
  // BOM, CRLF, an empty line (skipped), the fields in an unusual order with extra columns of
  // every type, and no newline after the last line.
  const std::string text =
      "\xEF\xBB\xBF"
      "rating:float\titem_id:token\ttags:token_seq\ttimestamp:float\tuser_id:token\tw:float_seq\r\n"
      "5\ti10\ta b\t881250949\tu1\t1 2\r\n"
      "\r\n"
      "3\ti20\t\t881250950.5\tu2\t\r\n"
      "1\ti10\tc\t-7\tu2\t3\r\n"
      "4\ti30\td\t1e3\tu1\t4";
  const std::string path = write_file("good.inter", text);
  const Interactions d = load_inter_file(path);
  EXPECT_EQ(d.name, "good.inter");
  EXPECT_EQ(d.users.raws(), (std::vector<std::string>{"u1", "u2"}));
  EXPECT_EQ(d.items.raws(), (std::vector<std::string>{"i10", "i20", "i30"}));
  EXPECT_EQ(d.user, (std::vector<int32_t>{0, 1, 1, 0}));
  EXPECT_EQ(d.item, (std::vector<int32_t>{0, 1, 0, 2}));
  EXPECT_EQ(d.time, (std::vector<double>{881250949.0, 881250950.5, -7.0, 1000.0}));
  EXPECT_EQ(d.duplicates_removed, 0);
  EXPECT_EQ(d.size(), 4);
}

TEST(InterLoader, FallbackFieldNamesAndFileOrderTime) {
  // user/item when user_id/item_id are absent; without timestamp, time is the data line index.
  const Interactions d =
      load_inter_file(write_file("plain.inter", "item:token\tuser:token\nA\tx\nB\tx\n\nA\ty\n"));
  EXPECT_EQ(d.users.raws(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(d.items.raws(), (std::vector<std::string>{"A", "B"}));
  EXPECT_EQ(d.user, (std::vector<int32_t>{0, 0, 1}));
  EXPECT_EQ(d.item, (std::vector<int32_t>{0, 1, 0}));
  EXPECT_EQ(d.time, (std::vector<double>{0.0, 1.0, 2.0}));
}

TEST(InterLoader, UserIdWinsOverUser) {
  const Interactions d = load_inter_file(
      write_file("both.inter", "user:token\tuser_id:token\titem_id:token\nA\t1\tz\nB\t2\tz\n"));
  EXPECT_EQ(d.users.raws(), (std::vector<std::string>{"1", "2"}));
}

TEST(InterLoader, DuplicatePairsKeepTheFirst) {
  const Interactions d =
      load_inter_file(write_file("dup.inter",
                                 "user_id:token\titem_id:token\ttimestamp:"
                                 "float\n1\t2\t30\n1\t3\t10\n1\t2\t5\n4\t2\t1\n1\t2\t9\n"));
  EXPECT_EQ(d.duplicates_removed, 2);
  EXPECT_EQ(d.user, (std::vector<int32_t>{0, 0, 1}));
  EXPECT_EQ(d.item, (std::vector<int32_t>{0, 1, 0}));
  EXPECT_EQ(d.time, (std::vector<double>{30.0, 10.0, 1.0}));
  // Without a timestamp field the time is the kept row's index, duplicates skipped.
  const Interactions e =
      load_inter_file(write_file("dup2.inter", "user_id:token\titem_id:token\n1\t2\n1\t2\n1\t3\n"));
  EXPECT_EQ(e.duplicates_removed, 1);
  EXPECT_EQ(e.time, (std::vector<double>{0.0, 1.0}));
}

// ---------------------------------------------------------------------------------------------
// .inter loader: refusals name the file, the 1-based line, the offending text and what was expected

TEST(InterLoader, RejectsWrongColumnCount) {
  std::string text = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n";
  for (int line = 2; line <= 16; ++line) text += "1\t" + std::to_string(line) + "\t3\t100\n";
  text += "1\t2\t3\n";
  const std::string what = expect_refused("data.inter", text, kExitData, 17, {});
  // The whole message, as documented.
  EXPECT_EQ(what, temp_dir() +
                      "/data.inter:17: expected 4 tab-separated fields (user_id:token, "
                      "item_id:token, rating:float, timestamp:float), found 3: "
                      "\"1\\t2\\t3\"");
  expect_refused("toomany.inter", "user_id:token\titem_id:token\n1\t2\n3\t4\t5\n", kExitData, 3,
                 {"expected 2 tab-separated fields", "found 3", "\"3\\t4\\t5\""});
}

TEST(InterLoader, RejectsHeaderFieldWithoutType) {
  expect_refused("notype.inter", "user_id:token\titem_id\ttimestamp:float\n1\t2\t3\n", kExitData, 1,
                 {"\"item_id\"", "name:type"});
  expect_refused("noname.inter", "user_id:token\t:float\titem_id:token\n1\t2\t3\n", kExitData, 1,
                 {"\":float\"", "name:type"});
}

TEST(InterLoader, RejectsHeaderWithoutUserOrItem) {
  expect_refused("nouser.inter", "uid:token\titem_id:token\n1\t2\n", kExitData, 1,
                 {"no user field", "user_id:token", "\"uid:token\\titem_id:token\""});
  expect_refused("noitem.inter", "user_id:token\tmovie:token\n1\t2\n", kExitData, 1,
                 {"no item field", "item_id:token", "\"user_id:token\\tmovie:token\""});
}

TEST(InterLoader, RejectsUnknownAndWrongTypes) {
  expect_refused("unknown.inter", "user_id:token\titem_id:token\trating:int\n1\t2\t3\n", kExitData,
                 1, {"\"rating:int\"", "\"int\"", "token, float, token_seq or float_seq"});
  expect_refused("usertype.inter", "user_id:float\titem_id:token\n1\t2\n", kExitData, 1,
                 {"\"user_id:float\"", "must have type token"});
  expect_refused("timetype.inter", "user_id:token\titem_id:token\ttimestamp:token\n1\t2\t3\n",
                 kExitData, 1, {"\"timestamp:token\"", "must have type float"});
}

TEST(InterLoader, RejectsNonNumericTimestamp) {
  const std::string header = "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t5\n";
  const std::vector<std::string> bad = {"abc", "12x", "", " 12", "12 ", "inf", "nan", "1e999"};
  for (const std::string& t : bad) {
    SCOPED_TRACE("timestamp \"" + t + "\"");
    expect_refused("time.inter", header + "\n3\t4\t" + t + "\n", kExitData, 4,
                   {"expected a number (finite) for timestamp:float", "\"" + t + "\"",
                    "\"3\\t4\\t" + t + "\""});
  }
  // The blank case: strtod would skip the tab and read the next field's number.
  expect_refused("timemid.inter", "user_id:token\ttimestamp:float\titem_id:token\n1\t\t7\n",
                 kExitData, 2, {"found \"\"", "\"1\\t\\t7\""});
}

TEST(InterLoader, RejectsEmptyUserOrItemId) {
  const std::string header = "user_id:token\titem_id:token\ttimestamp:float\r\n1\t2\t5\r\n";
  expect_refused("emptyuser.inter", header + "\t4\t6\r\n", kExitData, 3,
                 {"empty user_id", "\"\\t4\\t6\""});
  expect_refused("emptyitem.inter", header + "1\t2\t5\r\n3\t\t6", kExitData, 4,
                 {"empty item_id", "\"3\\t\\t6\""});
}

TEST(InterLoader, RejectsFileWithoutInteractions) {
  expect_refused("headeronly.inter", "user_id:token\titem_id:token\n\n", kExitData, 2,
                 {"no interactions", "at least one line", "\"user_id:token\\titem_id:token\""});
  expect_refused("empty.inter", "", kExitData, 1,
                 {"empty file", "expected a header", "end of file"});
  expect_refused("bomonly.inter", "\xEF\xBB\xBF\r\n", kExitData, 1, {"expected a header"});
}

TEST(InterLoader, RejectsNulBytes) {
  // A UTF-16 file, or a binary one, has NUL bytes: refuse rather than make ids of them.
  expect_refused("nul.inter", "user_id:token\titem_id:token\n1\t2\n" + std::string("3\t\0x\n", 5),
                 kExitData, 3, {"NUL byte", "\"3\\t\\x00x\""});
}

TEST(InterLoader, MissingFileIsNoInput) {
  const std::string path = temp_dir() + "/does_not_exist.inter";
  try {
    load_inter_file(path);
    ADD_FAILURE() << "accepted a missing file";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitNoInput);
    EXPECT_TRUE(contains(e.what(), "cannot open " + path + ": ")) << e.what();
  }
}

TEST(InterLoader, ReadsRealMl100kAndSplitsIt) {
  const std::string path = std::string(CONVNCF_SHARED_DIR) + "/datasets/ml-100k/ml-100k.inter";
  if (!std::ifstream(path)) GTEST_SKIP() << "no " << path << " (the shared datasets folder)";
  const Interactions d = load_inter_file(path);
  EXPECT_EQ(d.n_users(), 943);
  EXPECT_EQ(d.n_items(), 1682);
  EXPECT_EQ(d.size(), 100000);
  EXPECT_EQ(d.duplicates_removed, 0);
  EXPECT_EQ(d.name, "ml-100k.inter");
  const Split s = leave_one_out(d);
  const auto count_set = [](const std::vector<int32_t>& v) {
    return std::count_if(v.begin(), v.end(), [](int32_t i) { return i >= 0; });
  };
  EXPECT_EQ(count_set(s.test_item), 943);
  EXPECT_EQ(count_set(s.valid_item), 943);  // every ML-100K user has >= 20 ratings
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
  const EvalCandidates c = sample_eval_candidates(s, s.test_item, 99, 42, kStreamEvalTest);
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
      const double p = score(c.user[k], c.positive[k]);
      int64_t above = 0;  // ties count against the positive
      for (int64_t j = c.offsets[k]; j < c.offsets[k + 1]; ++j)
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
  EXPECT_EQ(s.test_item, (std::vector<int32_t>{i4, i0, i2, -1, i5}));
  EXPECT_EQ(s.valid_item, (std::vector<int32_t>{i2, i5, -1, -1, -1}));
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
    for (int32_t h : {s.valid_item[size_t(u)], s.test_item[size_t(u)]})
      if (h >= 0) parts.push_back(h), ++held;
    std::sort(parts.begin(), parts.end());
    ASSERT_EQ(parts, csr_row(s.all, u)) << "user " << u;
    ASSERT_TRUE(std::is_sorted(s.train.row(u), s.train.row(u) + s.train.degree(u)));
  }
  EXPECT_EQ(int64_t(s.train_user.size()) + held, d.size());
  EXPECT_EQ(held, 2 * 1000);
}

TEST(LeaveOneOut, RejectsRepeatedPair) {
  const Interactions d = make_interactions({{"a", "x", 1}, {"a", "y", 2}, {"a", "x", 3}});
  EXPECT_THROW(leave_one_out(d), Error);
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

namespace {

// A small split with a user who saw every item, one who saw all but two, held-out items, and a
// user without any held-out item.
Split candidate_split() {
  std::vector<Row> rows;
  static const char* kItems[] = {"0",  "1",  "2",  "3",  "4",  "5",  "6",  "7",  "8",  "9",
                                 "10", "11", "12", "13", "14", "15", "16", "17", "18", "19"};
  for (int i = 0; i < 20; ++i) rows.push_back({"full", kItems[i], double(i)});
  for (int i = 0; i < 18; ++i) rows.push_back({"nearly", kItems[i], double(i)});
  for (int i = 3; i < 8; ++i) rows.push_back({"some", kItems[i], double(i)});
  rows.push_back({"single", "9", 0.0});  // one row: train only, never evaluated
  for (int i = 10; i < 14; ++i) rows.push_back({"other", kItems[i], double(-i)});
  return leave_one_out(make_interactions(rows));
}

}  // namespace

TEST(EvalCandidates, DistinctAbsentSortedAndCapped) {
  const Split s = candidate_split();
  const int32_t n = 6;
  const EvalCandidates c = sample_eval_candidates(s, s.test_item, n, 99, kStreamEvalTest);
  // "single" (user 3) has no test item; the rest are listed in increasing user order.
  EXPECT_EQ(c.user, (std::vector<int32_t>{0, 1, 2, 4}));
  ASSERT_EQ(c.positive.size(), c.user.size());
  ASSERT_EQ(c.offsets.size(), c.user.size() + 1);
  EXPECT_EQ(c.offsets.front(), 0);
  EXPECT_EQ(size_t(c.offsets.back()), c.negatives.size());
  for (size_t k = 0; k < c.user.size(); ++k) {
    const int32_t u = c.user[k];
    EXPECT_EQ(c.positive[k], s.test_item[size_t(u)]);
    const int64_t avail = int64_t(s.n_items) - s.all.degree(u);
    const int64_t count = c.offsets[k + 1] - c.offsets[k];
    EXPECT_EQ(count, std::min<int64_t>(n, avail)) << "user " << u;
    const int32_t* neg = c.negatives.data() + c.offsets[k];
    EXPECT_TRUE(std::adjacent_find(neg, neg + count, std::greater_equal<int32_t>()) == neg + count)
        << "not strictly increasing for user " << u;
    for (int64_t j = 0; j < count; ++j) {
      EXPECT_GE(neg[j], 0);
      EXPECT_LT(neg[j], s.n_items);
      EXPECT_FALSE(s.all.contains(u, neg[j])) << "user " << u << " item " << neg[j];
      EXPECT_NE(neg[j], c.positive[k]);
    }
  }
  EXPECT_EQ(c.offsets[1] - c.offsets[0], 0);  // "full" saw everything: listed, no negatives
  // "nearly" has exactly two absent items (dense ids follow "full"'s rows: id = raw), both
  // returned.
  EXPECT_EQ(
      std::vector<int32_t>(c.negatives.begin() + c.offsets[1], c.negatives.begin() + c.offsets[2]),
      (std::vector<int32_t>{18, 19}));
}

TEST(EvalCandidates, DeterministicPerUserAndStream) {
  const Split s = leave_one_out(make_synthetic(9));
  const EvalCandidates a = sample_eval_candidates(s, s.test_item, 99, 5, kStreamEvalTest);
  const EvalCandidates b = sample_eval_candidates(s, s.test_item, 99, 5, kStreamEvalTest);
  const EvalCandidates v = sample_eval_candidates(s, s.test_item, 99, 5, kStreamEvalValid);
  const EvalCandidates o = sample_eval_candidates(s, s.test_item, 99, 6, kStreamEvalTest);
  EXPECT_EQ(a.negatives, b.negatives);
  EXPECT_EQ(a.offsets, b.offsets);
  EXPECT_NE(a.negatives, v.negatives);
  EXPECT_NE(a.negatives, o.negatives);
  ASSERT_EQ(a.user.size(), 1000u);
  EXPECT_EQ(a.negatives.size(), size_t{99 * 1000});
  // A user's candidates depend on that user alone: dropping every other user changes nothing.
  const int32_t u = 321;
  std::vector<int32_t> only_u(size_t(s.n_users), -1);
  only_u[size_t(u)] = s.test_item[size_t(u)];
  const EvalCandidates one = sample_eval_candidates(s, only_u, 99, 5, kStreamEvalTest);
  ASSERT_EQ(one.user, (std::vector<int32_t>{u}));
  EXPECT_EQ(one.negatives, std::vector<int32_t>(a.negatives.begin() + a.offsets[size_t(u)],
                                                a.negatives.begin() + a.offsets[size_t(u) + 1]));
}

TEST(EvalCandidates, RoughlyUniformOverAbsentItems) {
  // One user who saw 10 of 40 items; 20 of the 30 absent items drawn per seed. Each absent item
  // is drawn with probability 2/3 per seed; over 3000 seeds, about 2000 times each.
  std::vector<Row> rows;
  static const char* kItems[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
  for (int i = 0; i < 10; ++i) rows.push_back({"u", kItems[i], double(i)});
  Interactions d = make_interactions(rows);
  for (int i = 10; i < 40; ++i) d.items.get_or_add("x" + std::to_string(i));  // never seen
  const Split s = leave_one_out(d);
  std::vector<int64_t> hits(40, 0);
  for (uint64_t seed = 0; seed < 3000; ++seed) {
    const EvalCandidates c = sample_eval_candidates(s, s.test_item, 20, seed, kStreamEvalTest);
    ASSERT_EQ(c.negatives.size(), 20u);
    for (int32_t i : c.negatives) ++hits[size_t(i)];
  }
  for (int32_t i = 0; i < 10; ++i) EXPECT_EQ(hits[size_t(i)], 0) << i;
  // Binomial(3000, 2/3): sd ~26; 6 sd is a loose bound that a biased sampler still fails.
  for (int32_t i = 10; i < 40; ++i) EXPECT_NEAR(double(hits[size_t(i)]), 2000.0, 160.0) << i;
}
