// test_data.cpp: the .inter loader (good files and every refusal), the synthetic generator,
// the leave-one-out split with timestamp ties, and the samplers.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "convncf/dataset.hpp"
#include "convncf/errors.hpp"
#include "convncf/rng.hpp"

#ifndef CONVNCF_SHARED_DIR
#define CONVNCF_SHARED_DIR "/work/shared"
#endif

using namespace convncf;

namespace {

std::string write_tmp(const std::string& name, const std::string& text) {
  const std::string p = ::testing::TempDir() + "/convncf_data_" + name;
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << text;
  return p;
}

// Loads and expects a failure with `code` whose message holds every needle.
void expect_refused(const std::string& name, const std::string& text, int code,
                    std::vector<std::string> needles) {
  const std::string p = write_tmp(name, text);
  try {
    load_inter_file(p);
    ADD_FAILURE() << name << ": accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    needles.push_back(p);
    for (const std::string& n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << "'" << n << "' not in: " << e.what();
  }
}

}  // namespace

TEST(InterLoader, ReadsColumnsInAnyOrderWithCrlfBomAndNoFinalNewline) {
  const std::string p = write_tmp("good.inter",
                                   "\xEF\xBB\xBFrating:float\ttimestamp:float\titem_id:token\tuser_id:token\r\n"
                                   "5\t300\tA\tu1\r\n"
                                   "3\t100\tB\tu2\r\n"
                                   "\r\n"
                                   "1\t200\tA\tu2\r\n"
                                   "4\t400\tB\tu1");
  const Interactions d = load_inter_file(p);
  ASSERT_EQ(d.size(), 4);
  EXPECT_EQ(d.n_users(), 2);
  EXPECT_EQ(d.n_items(), 2);
  EXPECT_EQ(d.users.raw(d.user[0]), "u1");
  EXPECT_EQ(d.items.raw(d.item[1]), "B");
  EXPECT_EQ(d.time[3], 400.0);
  EXPECT_EQ(d.users.find("u2"), 1);
  EXPECT_EQ(d.users.find("nobody"), -1);
}

TEST(InterLoader, DuplicatesKeepTheFirst) {
  const Interactions d = load_inter_file(write_tmp("dup.inter", "user_id:token\titem_id:token\n1\t2\n1\t2\n1\t3\n"));
  EXPECT_EQ(d.size(), 2);
  EXPECT_EQ(d.duplicates_removed, 1);
  EXPECT_EQ(d.time[1], 1.0);  // no timestamp column: row order
}

TEST(InterLoader, RefusesMalformedFilesNamingLineAndText) {
  const std::string h = "user_id:token\titem_id:token\ttimestamp:float\n";
  expect_refused("cols.inter", h + "1\t2\t5\n1\t3\n", kExitData, {":3:", "expected 3 tab-separated fields", "\"1\\t3\""});
  expect_refused("num.inter", h + "1\t2\tyesterday\n", kExitData, {":2:", "expected a number", "yesterday"});
  expect_refused("inf.inter", h + "1\t2\tinf\n", kExitData, {":2:", "inf"});
  expect_refused("notype.inter", "user_id\titem_id:token\n1\t2\n", kExitData, {":1:", "name:type", "user_id"});
  expect_refused("badtype.inter", "user_id:token\titem_id:int\n1\t2\n", kExitData, {":1:", "unknown type", "int"});
  expect_refused("nouser.inter", "uid:token\titem_id:token\n1\t2\n", kExitData, {":1:", "user field"});
  expect_refused("noitem.inter", "user_id:token\tiid:token\n1\t2\n", kExitData, {":1:", "item field"});
  expect_refused("emptyid.inter", h + "\t2\t5\n", kExitData, {":2:", "empty user_id"});
  expect_refused("empty.inter", "", kExitData, {"empty file"});
  expect_refused("header_only.inter", h, kExitData, {"no interactions"});
  expect_refused("nul.inter", h + std::string("1\t2\0x\t5\n", 7), kExitData, {":2:", "NUL"});
  try {
    load_inter_file("/nonexistent/dir/x.inter");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitNoInput);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/x.inter"), std::string::npos);
  }
}

TEST(InterLoader, RealMl100k) {
  const std::string p = std::string(CONVNCF_SHARED_DIR) + "/datasets/ml-100k/ml-100k.inter";
  if (!std::ifstream(p).good()) GTEST_SKIP() << "ml-100k not present at " << p;
  const Interactions d = load_inter_file(p);
  EXPECT_EQ(d.n_users(), 943);
  EXPECT_EQ(d.n_items(), 1682);
  EXPECT_EQ(d.size(), 100000);
  const Split s = leave_one_out(d);
  EXPECT_EQ(std::count_if(s.test_item.begin(), s.test_item.end(), [](int32_t i) { return i >= 0; }), 943);
  EXPECT_EQ(int64_t(s.train_user.size()), 100000 - 2 * 943);
}

TEST(Synthetic, DeterministicSizedLongTailed) {
  const Interactions a = make_synthetic(1), b = make_synthetic(1), c = make_synthetic(2);
  EXPECT_EQ(a.user, b.user);
  EXPECT_EQ(a.item, b.item);
  EXPECT_EQ(a.time, b.time);
  EXPECT_NE(a.item, c.item);
  EXPECT_EQ(a.n_users(), 1000);
  EXPECT_EQ(a.n_items(), 1700);
  EXPECT_NEAR(double(a.size()), 100000.0, 5000.0);
  std::vector<int64_t> per_user(1000, 0), per_item(1700, 0);
  std::set<std::pair<int32_t, int32_t>> pairs;
  for (int64_t i = 0; i < a.size(); ++i) {
    ++per_user[size_t(a.user[size_t(i)])];
    ++per_item[size_t(a.item[size_t(i)])];
    pairs.insert({a.user[size_t(i)], a.item[size_t(i)]});
  }
  EXPECT_EQ(int64_t(pairs.size()), a.size()) << "duplicate interactions";
  EXPECT_GE(*std::min_element(per_user.begin(), per_user.end()), 20);
  std::sort(per_item.rbegin(), per_item.rend());
  int64_t top = 0;
  for (int i = 0; i < 170; ++i) top += per_item[size_t(i)];
  EXPECT_GT(double(top) / double(a.size()), 0.3) << "the top 10% of items should hold a large share";
}

TEST(LeaveOneOut, LatestIsTestTiesByFileOrder) {
  Interactions d;
  auto add = [&](const char* u, const char* i, double t) {
    d.user.push_back(d.users.get_or_add(u));
    d.item.push_back(d.items.get_or_add(i));
    d.time.push_back(t);
  };
  add("a", "x", 5);
  add("a", "y", 9);
  add("a", "z", 9);  // tie with y: the later line is later, so z is the test item
  add("a", "w", 1);
  add("b", "x", 3);
  add("b", "y", 2);  // two interactions: test x, train y, no valid
  add("c", "z", 7);  // one: train only
  const Split s = leave_one_out(d);
  const int32_t x = 0, y = 1, z = 2, w = 3;
  EXPECT_EQ(s.test_item, (std::vector<int32_t>{z, x, -1}));
  EXPECT_EQ(s.valid_item, (std::vector<int32_t>{y, -1, -1}));
  EXPECT_EQ(std::vector<int32_t>(s.train.row(0), s.train.row(0) + s.train.degree(0)), (std::vector<int32_t>{x, w}));
  EXPECT_EQ(s.train.degree(1), 1);
  EXPECT_EQ(s.train.row(1)[0], y);
  EXPECT_EQ(s.train.degree(2), 1);
  EXPECT_EQ(s.all.degree(0), 4);
  EXPECT_TRUE(s.all.contains(0, z));
  EXPECT_FALSE(s.train.contains(0, z));
  EXPECT_EQ(s.item_train_count, (std::vector<int64_t>{1, 1, 1, 1}));
  EXPECT_EQ(s.train_user, (std::vector<int32_t>{0, 0, 1, 2}));
}

TEST(Sampling, NthAbsentItemMatchesBruteForce) {
  Rng rng(3, 3);
  for (int trial = 0; trial < 200; ++trial) {
    const int32_t n = 1 + int32_t(rng.index(40));
    std::vector<int32_t> present;
    for (int32_t i = 0; i < n; ++i)
      if (rng.uniform() < 0.4) present.push_back(i);
    std::vector<int32_t> absent;
    for (int32_t i = 0; i < n; ++i)
      if (!std::binary_search(present.begin(), present.end(), i)) absent.push_back(i);
    for (size_t r = 0; r < absent.size(); ++r)
      ASSERT_EQ(nth_absent_item(present.data(), int64_t(present.size()), int64_t(r)), absent[r]);
  }
}

TEST(Sampling, NegativesAreAbsentAndUniform) {
  const std::vector<int32_t> present{0, 2, 3, 7};
  const int32_t n_items = 10;
  std::map<int32_t, int> counts;
  const int draws = 60000;
  for (int i = 0; i < draws; ++i) ++counts[sample_negative(present.data(), 4, n_items, rng_hash(5, 1, uint64_t(i)))];
  EXPECT_EQ(counts.size(), 6u);
  for (auto [item, c] : counts) {
    EXPECT_FALSE(std::binary_search(present.begin(), present.end(), item)) << item;
    EXPECT_NEAR(double(c) / draws, 1.0 / 6, 0.01) << item;
  }
}

TEST(Sampling, EvalCandidatesDistinctAbsentSortedCappedDeterministic) {
  const Interactions d = make_synthetic(4);
  const Split s = leave_one_out(d);
  const EvalCandidates a = sample_eval_candidates(s, s.test_item, 99, 1, kStreamEvalTest);
  const EvalCandidates b = sample_eval_candidates(s, s.test_item, 99, 1, kStreamEvalTest);
  const EvalCandidates c = sample_eval_candidates(s, s.test_item, 99, 2, kStreamEvalTest);
  EXPECT_EQ(a.negatives, b.negatives);
  EXPECT_NE(a.negatives, c.negatives);
  ASSERT_EQ(a.user.size(), 1000u);
  for (size_t k = 0; k < a.user.size(); ++k) {
    const int32_t u = a.user[k];
    const auto first = a.negatives.begin() + a.offsets[k], last = a.negatives.begin() + a.offsets[k + 1];
    EXPECT_EQ(last - first, 99);
    EXPECT_TRUE(std::is_sorted(first, last));
    EXPECT_EQ(std::adjacent_find(first, last), last);
    for (auto it = first; it != last; ++it) ASSERT_FALSE(s.all.contains(u, *it));
  }
  // a catalogue with fewer items than asked: every absent item, once
  Interactions tiny;
  for (const char* i : {"1", "2", "3", "4", "5"}) tiny.items.get_or_add(i);
  tiny.users.get_or_add("u");
  for (int32_t i : {0, 1, 2}) {
    tiny.user.push_back(0);
    tiny.item.push_back(i);
    tiny.time.push_back(i);
  }
  const Split ts = leave_one_out(tiny);
  const EvalCandidates tc = sample_eval_candidates(ts, ts.test_item, 999, 1, kStreamEvalTest);
  EXPECT_EQ(tc.negatives, (std::vector<int32_t>{3, 4}));
}
