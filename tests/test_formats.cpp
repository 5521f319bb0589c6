// test_formats.cpp: the loaders of formats.hpp on small hand-written files: each format, the
// recognition of formats from paths, every refusal (code, file, line, offending text), the
// flaws real files have, the streamed path against the in-memory one, and RecBole's filters on
// a hand-worked example. ML-100K from the shared folder when it is there.
// Run: ctest --test-dir build -R Formats
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "convncf/errors.hpp"
#include "convncf/formats.hpp"
#include "test_paths.hpp"

using namespace convncf;
namespace fs = std::filesystem;

namespace {

// A fresh folder per test under the GoogleTest temp dir.
std::string fresh_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string dir = ::testing::TempDir() + "/convncf_formats_" + std::to_string(getpid()) +
                          "_" + info->test_suite_name() + "_" + info->name();
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string write(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  return path;
}

// The raw ids of the rows, "user:item" each, in row order.
std::vector<std::string> pairs(const Interactions& in) {
  std::vector<std::string> out;
  for (size_t r = 0; r < in.user.size(); ++r)
    out.push_back(in.users.raw(in.user[r]) + ":" + in.items.raw(in.item[r]));
  return out;
}

// Runs f, which must throw Error with `code` and a message holding every one of `parts`.
void expect_error(const std::function<void()>& f, int code, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "expected Error(" << code << "), nothing was thrown";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.code(), code) << msg;
    for (const std::string& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "no '" << p << "' in: " << msg;
  }
}

// Loads `text` written to dir/name with the options given.
LoadedData load_text(const std::string& dir, const std::string& name, const std::string& text,
                     const LoadOptions& opt = {}) {
  return load_data(write(dir + "/" + name, text), opt);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Atomic .inter

TEST(FormatsAtomic, AnyColumnOrderExtraColumnsRatingAndTime) {
  const std::string dir = fresh_dir();
  const LoadedData d = load_text(
      dir, "x.inter",
      "rating:float\titem_id:token\ttags:token_seq\tuser_id:token\ttimestamp:float\tw:float\n"
      "4\ti1\ta b\tu1\t100\t0.5\n"
      "3.5\ti2\t\tu2\t50\t\n"
      "1\ti1\tc\tu2\t70\t1e3\n");
  EXPECT_EQ(d.format, DataFormat::Atomic);
  EXPECT_EQ(d.inter.name, "x.inter");
  EXPECT_EQ(pairs(d.inter), (std::vector<std::string>{"u1:i1", "u2:i2", "u2:i1"}));
  EXPECT_EQ(d.inter.n_users(), 2);
  EXPECT_EQ(d.inter.n_items(), 2);
  EXPECT_EQ(d.inter.rating, (std::vector<float>{4.0f, 3.5f, 1.0f}));
  EXPECT_EQ(d.inter.time, (std::vector<double>{100, 50, 70}));
  EXPECT_TRUE(d.role.empty());
  EXPECT_TRUE(d.negatives.empty());
  EXPECT_EQ(d.report.lines, 3);
}

TEST(FormatsAtomic, WithoutTimeColumnTimeIsFileOrder) {
  const std::string dir = fresh_dir();
  const LoadedData d =
      load_text(dir, "x.inter", "user_id:token\titem_id:token\n1\t2\n1\t3\n\n2\t2\n");
  EXPECT_EQ(d.inter.time, (std::vector<double>{0, 1, 2}));
  EXPECT_TRUE(d.inter.rating.empty());
}

TEST(FormatsAtomic, FieldOptionsSeparatorAndLoadCol) {
  const std::string dir = fresh_dir();
  LoadOptions opt;
  opt.field_separator = ",";
  opt.user_field = "uid";
  opt.item_field = "iid";
  opt.rating_field = "score";
  opt.time_field = "ts";
  const std::string text =
      "ts:float,iid:token,uid:token,score:float,junk:float\n5,a,x,2,notanumber\n6,b,x,3,\n";
  opt.load_col = {"uid", "iid", "ts"};  // score and junk not loaded: junk is not even checked
  LoadedData d = load_text(dir, "x.inter", text, opt);
  EXPECT_EQ(pairs(d.inter), (std::vector<std::string>{"x:a", "x:b"}));
  EXPECT_TRUE(d.inter.rating.empty());
  EXPECT_EQ(d.inter.time, (std::vector<double>{5, 6}));
  opt.load_col = {"uid", "iid", "score"};
  d = load_text(dir, "x.inter", text, opt);
  EXPECT_EQ(d.inter.rating, (std::vector<float>{2, 3}));
  EXPECT_EQ(d.inter.time, (std::vector<double>{0, 1}));  // ts not loaded: file order
  opt.load_col.clear();  // every column: junk is a float column and must hold numbers
  expect_error([&] { load_text(dir, "x.inter", text, opt); }, kExitData,
               {"x.inter:2:", "notanumber", "junk:float"});
  opt.load_col = {"iid", "ts"};
  expect_error([&] { load_text(dir, "x.inter", text, opt); }, kExitUsage, {"load_col", "uid"});
}

TEST(FormatsAtomic, RefusesBadHeaders) {
  const std::string dir = fresh_dir();
  const auto bad = [&](const std::string& text, std::vector<std::string> parts) {
    parts.insert(parts.begin(), "x.inter:");
    expect_error([&] { load_text(dir, "x.inter", text); }, kExitData, parts);
  };
  bad("user_id:token\tmovie:token\n1\t2\n", {":1:", "no item field", "item_id:token"});
  bad("uid:token\titem_id:token\n1\t2\n", {":1:", "no user field", "user_id:token"});
  bad("user_id\titem_id:token\n1\t2\n", {":1:", "\"user_id\"", "name:type"});
  bad("user_id:token\titem_id:tokn\n1\t2\n", {":1:", "unknown type", "\"tokn\""});
  bad("user_id:float\titem_id:token\n1\t2\n", {":1:", "must have type token"});
  bad("user_id:token\titem_id:token\trating:token\n1\t2\t3\n", {":1:", "rating", "float"});
  bad("", {":1:", "empty file"});
  bad("\n\n", {":2:", "empty file"});
  bad("user_id:token\titem_id:token\n\n", {":2:", "no interactions"});
}

TEST(FormatsAtomic, RefusesBadLinesNamingFileLineAndText) {
  const std::string dir = fresh_dir();
  const std::string head =
      "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t3\t4\n";
  const auto bad = [&](const std::string& line, std::vector<std::string> parts) {
    parts.insert(parts.begin(), "x.inter:3:");
    expect_error([&] { load_text(dir, "x.inter", head + line); }, kExitData, parts);
  };
  bad("1\t3\t4\n", {"expected 4 fields", "found 3", "1\\t3\\t4"});
  bad("1\t3\t4\t5\t6\n", {"expected 4 fields", "found 5"});
  bad("1\t3\tgood\t5\n", {"rating", "\"good\"", "number"});
  bad("1\t3\t4\t12:00\n", {"timestamp", "\"12:00\""});
  bad("1\t3\t4\t nan\n", {"timestamp", "\" nan\""});
  bad("1\t3\t4\tinf\n", {"timestamp", "\"inf\""});
  bad("1\t3\t4\t0x10\n", {"timestamp", "\"0x10\""});
  bad("1\t\t4\t5\n", {"empty item_id"});
  bad(std::string("1\t3\0x\t4\t5\n", 10), {"NUL byte", "3\\x00x"});
  bad("1\t\xE9t\xE9\t4\t5\n", {"invalid UTF-8", "\\xe9t\\xe9"});
  bad("1\t\xC0\xAF\t4\t5\n", {"invalid UTF-8"});  // overlong '/'
  // valid UTF-8 is an id like any other
  const LoadedData d = load_text(dir, "x.inter", head + "1\t\xC3\xA9t\xC3\xA9\t4\t5\n");
  EXPECT_EQ(d.inter.items.raw(1), "\xC3\xA9t\xC3\xA9");
}

TEST(FormatsAtomic, AcceptsCrlfBomNoFinalNewlineAndBlankLines) {
  const std::string dir = fresh_dir();
  const LoadedData d =
      load_text(dir, "x.inter",
                "\xEF\xBB\xBFuser_id:token\titem_id:token\ttimestamp:float\r\n\r\n1\t2\t10\r\n"
                "  \t \n1\t3\t11\r\n2\t2\t12");
  EXPECT_EQ(pairs(d.inter), (std::vector<std::string>{"1:2", "1:3", "2:2"}));
  EXPECT_EQ(d.inter.time, (std::vector<double>{10, 11, 12}));
  EXPECT_EQ(d.report.lines, 3);
}

TEST(FormatsAtomic, DuplicatesFollowTheRule) {
  const std::string dir = fresh_dir();
  // (1,2) three times: times 50, 90, 90; the second 90 is the later line.
  const std::string text =
      "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
      "1\t2\t1\t50\n1\t3\t5\t60\n1\t2\t2\t90\n2\t2\t5\t10\n1\t2\t3\t90\n";
  LoadOptions opt;
  LoadedData d = load_text(dir, "x.inter", text, opt);
  EXPECT_EQ(d.report.duplicates, 2);
  EXPECT_EQ(d.inter.duplicates_removed, 2);
  EXPECT_EQ(d.inter.rating, (std::vector<float>{1, 5, 5}));  // first kept
  opt.dup_rule = DupRule::Last;
  d = load_text(dir, "x.inter", text, opt);
  EXPECT_EQ(d.inter.rating, (std::vector<float>{5, 5, 3}));  // latest time, later line on ties
  EXPECT_EQ(pairs(d.inter), (std::vector<std::string>{"1:3", "2:2", "1:2"}));
  opt.dup_rule = DupRule::Keep;
  d = load_text(dir, "x.inter", text, opt);
  EXPECT_EQ(d.report.duplicates, 2);
  EXPECT_EQ(d.inter.size(), 5);
  EXPECT_NE(d.report.summary().find("2 duplicate"), std::string::npos) << d.report.summary();
}

TEST(FormatsAtomic, StreamedFileEqualsInMemoryParseAcrossBlocks) {
  // ~6 MB, more than one 4 MiB block: lines cut at the block edge must come out whole.
  const std::string dir = fresh_dir();
  std::string text = "user_id:token\titem_id:token\trating:float\ttimestamp:float\r\n";
  for (int k = 0; k < 200000; ++k)
    text += "user" + std::to_string(k % 997) + "\titem" + std::to_string((k * 7919) % 1499) + "\t" +
            std::to_string(k % 5 + 1) + "\t" + std::to_string(1000000 + k) +
            (k % 3 ? "\n" : "\r\n");
  ASSERT_GT(text.size(), size_t(5) << 20);
  const LoadedData streamed = load_text(dir, "big.inter", text);
  LoadedData mem;
  parse_atomic(text, "big.inter", {}, mem);
  finish_load(mem, {});
  EXPECT_EQ(streamed.inter.user, mem.inter.user);
  EXPECT_EQ(streamed.inter.item, mem.inter.item);
  EXPECT_EQ(streamed.inter.rating, mem.inter.rating);
  EXPECT_EQ(streamed.inter.time, mem.inter.time);
  EXPECT_EQ(streamed.inter.users.raws(), mem.inter.users.raws());
  EXPECT_EQ(streamed.report.lines, 200000);
  EXPECT_EQ(streamed.report.duplicates, mem.report.duplicates);
  EXPECT_EQ(streamed.inter.size() + streamed.report.duplicates, 200000);
}

TEST(FormatsAtomic, LongIdsAndManyIdsMapBothWays) {
  // Ids longer than the loader's inline key (19 bytes) and more ids than its first table holds.
  std::string text = "user_id:token\titem_id:token\n";
  std::vector<std::string> want;
  for (int k = 0; k < 6000; ++k) {
    const std::string user = "a-user-id-longer-than-nineteen-bytes-" + std::to_string(k % 3000);
    const std::string item = std::to_string(k % 2500);
    text += user + "\t" + item + "\n";
    want.push_back(user + ":" + item);
  }
  LoadedData d;
  parse_atomic(text, "long.inter", {}, d);
  EXPECT_EQ(pairs(d.inter), want);
  EXPECT_EQ(d.inter.n_users(), 3000);
  EXPECT_EQ(d.inter.n_items(), 2500);
  for (int32_t u = 0; u < d.inter.n_users(); ++u)
    EXPECT_EQ(d.inter.users.find(d.inter.users.raw(u)), u);
  // a second file of the same dataset reuses the ids
  parse_delimited("user_id\titem_id\na-user-id-longer-than-nineteen-bytes-7\t42\n", "more.tsv",
                  DataFormat::Csv, {}, kRoleTrain, d);
  EXPECT_EQ(d.inter.n_users(), 3000);
  EXPECT_EQ(d.inter.user.back(), 7);
  EXPECT_EQ(d.inter.item.back(), 42);
}

// ---------------------------------------------------------------------------------------------
// NCF trio

namespace {
void write_ncf(const std::string& dir, const std::string& train, const std::string& test,
               const std::string& neg) {
  write(dir + "/d.train.rating", train);
  write(dir + "/d.test.rating", test);
  if (!neg.empty()) write(dir + "/d.test.negative", neg);
}
}  // namespace

// RecBole's benchmark_filename: NAME.<suffix>.inter files are the split, in the order given.
TEST(FormatsAtomic, BenchmarkFilesAreTheSplit) {
  const std::string root = fresh_dir(), dir = root + "/bm";
  fs::create_directories(dir);
  const std::string head = "user_id:token\titem_id:token\ttimestamp:float\n";
  write(dir + "/bm.train.inter", head + "u1\ti1\t1\nu1\ti2\t2\nu2\ti1\t3\nu1\ti1\t4\n");
  write(dir + "/bm.valid.inter", head + "u1\ti3\t5\n");
  write(dir + "/bm.test.inter", head + "u2\ti3\t6\nu1\ti4\t7\nu3\ti1\t8\n");
  write(dir + "/bm.inter", head + "x\ty\t1\n");  // the unsplit file is not read
  LoadOptions opt;
  opt.benchmark = {"train", "valid", "test"};
  for (const std::string& path : {dir, dir + "/", dir + "/bm.train.inter"}) {
    SCOPED_TRACE(path);
    const LoadedData d = load_data(path, opt);
    EXPECT_EQ(d.format, DataFormat::Atomic);
    EXPECT_EQ(d.inter.name, "bm");
    // the duplicate (u1, i1) in training follows rm_dup_inter; u3 has no training row: dropped
    EXPECT_EQ(pairs(d.inter), (std::vector<std::string>{"u1:i1", "u1:i2", "u2:i1", "u1:i3", "u2:i3", "u1:i4"}));
    EXPECT_EQ(d.role, (std::vector<uint8_t>{kRoleTrain, kRoleTrain, kRoleTrain, kRoleValid, kRoleTest, kRoleTest}));
    EXPECT_EQ(d.report.duplicates, 1);
    EXPECT_EQ(d.report.users_without_train, 1);
    EXPECT_EQ(d.report.files.size(), 3u);
    const Split s = split_from_roles(d.inter, d.role);
    EXPECT_EQ(s.train_user.size(), 3u);
    EXPECT_EQ(s.valid.items.size(), 1u);
    EXPECT_EQ(s.test.items.size(), 2u);
  }
  // other suffixes, in another order: the first file is training whatever its name
  opt.benchmark = {"test", "valid", "train"};
  const LoadedData r = load_data(dir, opt);
  EXPECT_EQ(r.role.front(), kRoleTrain);
  EXPECT_EQ(pairs(r.inter).front(), "u2:i3");
  // a missing part, a forced other format, a wrong count
  opt.benchmark = {"train", "dev", "test"};
  expect_error([&] { load_data(dir, opt); }, kExitNoInput, {dir + "/bm.dev.inter", "benchmark_filename"});
  opt.benchmark = {"train", "valid", "test"};
  opt.format = DataFormat::Csv;
  expect_error([&] { load_data(dir, opt); }, kExitUsage, {"benchmark_filename", "data_format is csv"});
  opt.format = DataFormat::Auto;
  opt.benchmark = {"train", "test"};
  expect_error([&] { load_data(dir, opt); }, kExitUsage, {"benchmark_filename needs three"});
  // each part is checked like any atomic file, naming it
  opt.benchmark = {"train", "valid", "test"};
  write(dir + "/bm.valid.inter", head + "u1\ti3\n");
  expect_error([&] { load_data(dir, opt); }, kExitData, {"bm.valid.inter:2:", "expected 3 fields"});
}

TEST(FormatsNcf, LoadsTrainTestAndNegatives) {
  const std::string dir = fresh_dir();
  write_ncf(dir, "0\t10\t5\t100\n0\t11\t4\t101\n1\t10\t3\t102\n", "0\t12\t5\t200\n1\t11\t1\t201\n",
            "(0,12)\t20\t21\t22\n(1,11)\t21\t12\n");
  const LoadedData d = load_data(dir, {});
  EXPECT_EQ(d.format, DataFormat::Ncf);
  EXPECT_EQ(d.inter.name, "d");
  EXPECT_EQ(pairs(d.inter), (std::vector<std::string>{"0:10", "0:11", "1:10", "0:12", "1:11"}));
  EXPECT_EQ(d.role,
            (std::vector<uint8_t>{kRoleTrain, kRoleTrain, kRoleTrain, kRoleTest, kRoleTest}));
  EXPECT_EQ(d.inter.rating, (std::vector<float>{5, 4, 3, 5, 1}));
  EXPECT_EQ(d.inter.time, (std::vector<double>{100, 101, 102, 200, 201}));
  // items only in the negatives file join the item map
  EXPECT_EQ(d.inter.items.raws(), (std::vector<std::string>{"10", "11", "12", "20", "21", "22"}));
  const FileNegatives& fn = d.negatives;
  ASSERT_EQ(fn.user.size(), 2u);
  EXPECT_EQ(fn.user, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(fn.positive, (std::vector<int32_t>{2, 1}));
  EXPECT_EQ(fn.offsets, (std::vector<int64_t>{0, 3, 5}));
  EXPECT_EQ(fn.negatives, (std::vector<int32_t>{3, 4, 5, 4, 2}));
  EXPECT_EQ(d.report.files.size(), 3u);
  EXPECT_EQ(d.report.lines, 7);
  // the same from the file name, and with the format forced
  EXPECT_EQ(load_data(dir + "/d.train.rating", {}).negatives.negatives, fn.negatives);
  LoadOptions opt;
  opt.format = DataFormat::Ncf;
  EXPECT_EQ(load_data(dir, opt).inter.size(), 5);
}

TEST(FormatsNcf, TwoColumnFilesAndMissingNegatives) {
  const std::string dir = fresh_dir();
  write_ncf(dir, "a\tx\na\ty\nb\tx\n", "a\tz\nb\ty\n", "");
  const LoadedData d = load_data(dir, {});
  EXPECT_TRUE(d.inter.rating.empty());
  EXPECT_EQ(d.inter.time, (std::vector<double>{0, 1, 2, 3, 4}));  // file order, test after train
  EXPECT_TRUE(d.negatives.empty());
}

TEST(FormatsNcf, FlawsAreCountedAndHandled) {
  const std::string dir = fresh_dir();
  // user 2 has no training line: its test line and negatives line go. Line 1 of the negatives
  // lists its own test item 12 and the training item 11 of user 0.
  write_ncf(dir, "0\t10\n0\t11\n1\t10\n1\t10\n", "0\t12\n2\t10\n1\t11\n",
            "(0,12)\t12\t11\t20\n(2,10)\t20\n(1,11)\t20\t10\n");
  const LoadedData d = load_data(dir, {});
  EXPECT_EQ(d.report.duplicates, 1);
  EXPECT_EQ(d.report.users_without_train, 1);
  EXPECT_EQ(d.report.test_in_negatives, 1);
  EXPECT_EQ(d.report.negatives_in_train, 2);
  EXPECT_EQ(d.inter.users.raws(), (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(pairs(d.inter), (std::vector<std::string>{"0:10", "0:11", "1:10", "0:12", "1:11"}));
  const FileNegatives& fn = d.negatives;
  EXPECT_EQ(fn.user, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(fn.offsets, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(d.inter.items.raw(fn.negatives[0]), "20");
  EXPECT_EQ(d.inter.items.raw(fn.negatives[1]), "20");
  const std::string s = d.report.summary();
  for (const char* part : {"1 duplicate", "1 test items among", "2 negatives the user trained on",
                           "1 users without training", "d.test.negative"})
    EXPECT_NE(s.find(part), std::string::npos) << part << " not in: " << s;
}

TEST(FormatsNcf, RefusesNegativesThatDoNotMatchTheTestFile) {
  const std::string dir = fresh_dir();
  const std::string train = "0\t10\n1\t10\n", test = "0\t12\n1\t11\n";
  write_ncf(dir, train, test, "(0,12)\t20\n(1,12)\t20\n");
  expect_error([&] { load_data(dir, {}); }, kExitData, {"d.test.negative:2:", "(1,12)", "(1,11)"});
  write_ncf(dir, train, test, "(0,12)\t20\n");
  expect_error([&] { load_data(dir, {}); }, kExitData,
               {"d.test.negative:1:", "1 lines", "expected 2"});
  write_ncf(dir, train, test, "(0,12)\t20\n(1,11)\t20\n\n(1,11)\t21\n");
  expect_error([&] { load_data(dir, {}); }, kExitData,
               {"d.test.negative:4:", "(1,11)", "has 2 interactions"});
  write_ncf(dir, train, test, "0,12\t20\n(1,11)\t20\n");
  expect_error([&] { load_data(dir, {}); }, kExitData,
               {"d.test.negative:1:", "\"0,12\"", "(user,item)"});
  write_ncf(dir, train, test, "\n");
  expect_error([&] { load_data(dir, {}); }, kExitData, {"d.test.negative:1:", "empty file"});
}

TEST(FormatsNcf, RefusesBadRatingLines) {
  const std::string dir = fresh_dir();
  write_ncf(dir, "0\t10\t5\t100\n0\t11\t4\n", "0\t12\n", "");
  expect_error([&] { load_data(dir, {}); }, kExitData,
               {"d.train.rating:2:", "expected 4", "0\\t11\\t4"});
  write_ncf(dir, "0\t10\t5\t100\n0\t11\tx\t7\n", "0\t12\n", "");
  expect_error([&] { load_data(dir, {}); }, kExitData, {"d.train.rating:2:", "rating", "\"x\""});
  write_ncf(dir, "0\t10\n", "", "");
  expect_error([&] { load_data(dir, {}); }, kExitData, {"d.test.rating:1:", "empty file"});
  fs::remove(dir + "/d.test.rating");
  LoadOptions opt;
  opt.format = DataFormat::Ncf;
  expect_error([&] { load_data(dir + "/d.train.rating", opt); }, kExitNoInput, {"d.test.rating"});
}

// ---------------------------------------------------------------------------------------------
// NGCF / LightGCN

TEST(FormatsNgcf, LoadsTrainAndTestLists) {
  const std::string dir = fresh_dir();
  write(dir + "/train.txt", "0 5 6 7\n1 5\n2\n3  8\t9 \n");
  write(dir + "/test.txt", "0 8\n1\n3 5\n");
  const LoadedData d = load_data(dir, {});
  EXPECT_EQ(d.format, DataFormat::Ngcf);
  EXPECT_EQ(pairs(d.inter),
            (std::vector<std::string>{"0:5", "0:6", "0:7", "1:5", "3:8", "3:9", "0:8", "3:5"}));
  EXPECT_EQ(d.role, (std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 2, 2}));
  EXPECT_EQ(d.inter.time, (std::vector<double>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(d.inter.users.raws(),
            (std::vector<std::string>{"0", "1", "3"}));  // user 2 has no items
  EXPECT_EQ(d.report.lines, 7);
  EXPECT_EQ(load_data(dir + "/train.txt", {}).inter.size(),
            8);  // the pair from the train file's name
}

TEST(FormatsNgcf, RefusesBadInput) {
  const std::string dir = fresh_dir();
  write(dir + "/train.txt", "0 5\n1 \xFF\n");
  write(dir + "/test.txt", "0 6\n");
  expect_error([&] { load_data(dir, {}); }, kExitData, {"train.txt:2:", "invalid UTF-8", "\\xff"});
  write(dir + "/train.txt", "0 5\n");
  write(dir + "/test.txt", "0\n1\n");
  expect_error([&] { load_data(dir, {}); }, kExitData, {"test.txt:2:", "no interactions"});
  fs::remove(dir + "/test.txt");
  LoadOptions opt;
  opt.format = DataFormat::Ngcf;
  expect_error([&] { load_data(dir, opt); }, kExitNoInput, {"test.txt"});
}

// ---------------------------------------------------------------------------------------------
// MovieLens and plain CSV/TSV

TEST(FormatsMovieLens, UDataRatingsDatRatingsCsv) {
  const std::string dir = fresh_dir();
  LoadedData d = load_text(dir, "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n");
  EXPECT_EQ(d.format, DataFormat::Ml100k);
  EXPECT_EQ(pairs(d.inter), (std::vector<std::string>{"196:242", "186:302"}));
  EXPECT_EQ(d.inter.time[1], 891717742.0);
  d = load_text(dir, "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n");
  EXPECT_EQ(d.format, DataFormat::Ml1m);
  EXPECT_EQ(d.inter.rating, (std::vector<float>{5, 3}));
  d = load_text(dir, "ratings.csv",
                "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n");
  EXPECT_EQ(d.format, DataFormat::MlCsv);
  EXPECT_EQ(d.inter.rating, (std::vector<float>{4.0f, 4.5f}));
  expect_error([&] { load_text(dir, "u.data", "196\t242\t3\t881250949\n186\t302\t3\n"); },
               kExitData, {"u.data:2:", "expected 4 fields", "186\\t302\\t3"});
  expect_error([&] { load_text(dir, "ratings.dat", "1::1193::five::978300760\n"); }, kExitData,
               {"ratings.dat:1:", "\"five\""});
  expect_error([&] { load_text(dir, "ratings.csv", "user,movieId,rating\n1,2,3\n"); }, kExitData,
               {"ratings.csv:1:", "no user field", "userId"});
}

TEST(FormatsCsv, HeaderNamesColumnsSeparatorByNameOrOption) {
  const std::string dir = fresh_dir();
  LoadedData d = load_text(dir, "a.csv", "timestamp,item_id,x,user_id\n7,i,q,u\n8,j,q,u\n");
  EXPECT_EQ(d.format, DataFormat::Csv);
  EXPECT_EQ(pairs(d.inter), (std::vector<std::string>{"u:i", "u:j"}));
  EXPECT_EQ(d.inter.time, (std::vector<double>{7, 8}));
  EXPECT_TRUE(d.inter.rating.empty());
  d = load_text(dir, "a.tsv", "user_id\titem_id\trating\nu\ti\t2\n");
  EXPECT_EQ(d.inter.rating, (std::vector<float>{2}));
  LoadOptions opt;
  opt.field_separator = ";";
  opt.user_field = "who";
  opt.item_field = "what";
  d = load_text(dir, "a.txt", "who;what\nu;i\n", opt);
  EXPECT_EQ(pairs(d.inter), (std::vector<std::string>{"u:i"}));
  expect_error([&] { load_text(dir, "b.csv", "user_id,item\n1,2\n"); }, kExitData,
               {"b.csv:1:", "no item field", "item_id"});
  expect_error([&] { load_text(dir, "b.csv", "user_id,item_id\n1,2\n1,2,3\n"); }, kExitData,
               {"b.csv:3:", "expected 2 fields", "1,2,3"});
  expect_error([&] { load_text(dir, "b.csv", "user_id,item_id,timestamp\n1,2,yesterday\n"); },
               kExitData, {"b.csv:2:", "\"yesterday\""});
  expect_error([&] { load_text(dir, "b.csv", "user_id,item_id\n"); }, kExitData,
               {"b.csv:1:", "no interactions"});
}

// ---------------------------------------------------------------------------------------------
// Recognition

TEST(FormatsRecognition, FoldersAndFileNames) {
  const std::string root = fresh_dir();
  const auto folder = [&](const std::string& name) {
    fs::create_directories(root + "/" + name);
    return root + "/" + name;
  };
  std::string d = folder("ml-100k");
  write(d + "/ml-100k.inter", "user_id:token\titem_id:token\n1\t2\n");
  write(d + "/notes.txt", "hello\n");
  EXPECT_EQ(load_data(d, {}).format, DataFormat::Atomic);
  d = folder("ml100k");
  write(d + "/u.data", "1\t2\t3\t4\n");
  write(d + "/u.item", "whatever\n");
  EXPECT_EQ(load_data(d, {}).format, DataFormat::Ml100k);
  d = folder("ml1m");
  write(d + "/ratings.dat", "1::2::3::4\n");
  EXPECT_EQ(load_data(d, {}).format, DataFormat::Ml1m);
  EXPECT_EQ(load_data(d + "/ratings.dat", {}).format, DataFormat::Ml1m);
  d = folder("mlcsv");
  write(d + "/ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n");
  EXPECT_EQ(load_data(d, {}).format, DataFormat::MlCsv);
  write(d + "/other.csv", "user_id,item_id\n1,2\n");
  EXPECT_EQ(load_data(d + "/other.csv", {}).format, DataFormat::Csv);

  // missing, empty, unrecognized
  expect_error([&] { load_data(root + "/nope", {}); }, kExitNoInput, {"nope"});
  d = folder("empty");
  expect_error([&] { load_data(d, {}); }, kExitNoInput, {"empty"});
  write(d + "/readme.md", "x\n");
  expect_error([&] { load_data(d, {}); }, kExitUsage, {"cannot tell the format"});
  expect_error([&] { load_data(d + "/readme.md", {}); }, kExitUsage, {"readme.md"});
  // forced formats
  LoadOptions opt;
  opt.format = DataFormat::Atomic;
  expect_error([&] { load_data(d, opt); }, kExitNoInput, {"empty.inter"});
  opt.format = DataFormat::Csv;
  expect_error([&] { load_data(d, opt); }, kExitUsage, {"needs a file"});
  opt.format = DataFormat::Ml100k;
  write(d + "/data.tsv", "1\t2\t3\t4\n");
  EXPECT_EQ(load_data(d + "/data.tsv", opt).format, DataFormat::Ml100k);
}

TEST(FormatsRecognition, FormatNames) {
  for (DataFormat f : {DataFormat::Auto, DataFormat::Atomic, DataFormat::Ncf, DataFormat::Ngcf,
                       DataFormat::Ml100k, DataFormat::Ml1m, DataFormat::MlCsv, DataFormat::Csv})
    EXPECT_EQ(parse_data_format(data_format_name(f)), f);
  expect_error([] { parse_data_format("parquet"); }, kExitUsage, {"parquet"});
}

// ---------------------------------------------------------------------------------------------
// Filters

namespace {
LoadedData atomic_rows(const std::string& rows) {
  LoadedData d;
  parse_atomic("user_id:token\titem_id:token\trating:float\n" + rows, "f.inter", {}, d);
  finish_load(d, {});
  return d;
}
}  // namespace

TEST(FormatsFilter, RepeatsCountFiltersUntilStable) {
  // Round 1 bans user d (1 row) and, with val_interval, the 1-star row a:w; round 2 bans item z
  // (now 1 row); round 3 bans user c (now 1 row); then every count is 2.
  LoadedData d = atomic_rows(
      "e\tq\t1\na\tw\t1\na\tx\t5\na\ty\t4\nb\tx\t5\nb\ty\t3\nc\tx\t4\nc\tz\t5\nd\tz\t5\n");
  filter_interactions(d, {"[3,inf)", "[2,inf)", "[2,inf)"});
  EXPECT_EQ(pairs(d.inter), (std::vector<std::string>{"a:x", "a:y", "b:x", "b:y"}));
  EXPECT_EQ(d.inter.users.raws(), (std::vector<std::string>{"a", "b"}));  // first-seen order, dense
  EXPECT_EQ(d.inter.items.raws(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(d.inter.user, (std::vector<int32_t>{0, 0, 1, 1}));
  EXPECT_EQ(d.inter.rating, (std::vector<float>{5, 4, 5, 3}));
  EXPECT_EQ(d.report.filtered, 5);
  EXPECT_NE(d.report.summary().find("5 interactions filtered"), std::string::npos);
}

TEST(FormatsFilter, IntervalsAndRefusals) {
  LoadedData d = atomic_rows("a\tx\t1\na\ty\t3\na\tz\t5\n");
  filter_interactions(d, {"(1,5)", "", ""});
  EXPECT_EQ(pairs(d.inter), (std::vector<std::string>{"a:y"}));
  d = atomic_rows("a\tx\t1\na\ty\t3\na\tz\t5\n");
  filter_interactions(d, {"[0,1];[5,5]", "", "[0,1]"});
  EXPECT_EQ(pairs(d.inter), (std::vector<std::string>{"a:x", "a:z"}));
  d = atomic_rows("a\tx\t1\n");
  filter_interactions(d, {"", "", ""});
  EXPECT_EQ(d.inter.size(), 1);
  for (const char* bad : {"[3,inf", "3,5", "[5,3]", "[a,5]", "[1,2,3]", "(,5]"})
    expect_error([&] { filter_interactions(d, {bad, "", ""}); }, kExitUsage, {"val_interval", bad});
  expect_error(
      [&] {
        filter_interactions(d, {"", "[x,1]", ""});
      },
      kExitUsage, {"user_inter_num_interval"});
  LoadedData no_rating;
  parse_atomic("user_id:token\titem_id:token\n1\t2\n", "n.inter", {}, no_rating);
  expect_error(
      [&] {
        filter_interactions(no_rating, {"[3,inf)", "", ""});
      },
      kExitUsage, {"no rating"});
}

TEST(FormatsFilter, RolesAndNegativesFollow) {
  LoadedData d;
  parse_delimited("0\t10\n0\t11\n1\t10\n1\t11\n2\t13\n", "d.train.rating", DataFormat::Ncf, {},
                  kRoleTrain, d);
  parse_delimited("0\t12\n1\t12\n2\t12\n", "d.test.rating", DataFormat::Ncf, {}, kRoleTest, d);
  parse_ncf_negatives("(0,12)\t13\t20\n(1,12)\t20\t13\n(2,12)\t20\n", "d.test.negative", d);
  finish_load(d, {});
  // Users need 3 rows: user 2 and its rows go, and with them item 13 (only user 2 had it). Item
  // 20 never had a row (only negatives name it): it stays; 13 leaves the negatives lines.
  filter_interactions(d, {"", "[3,inf)", ""});
  EXPECT_EQ(pairs(d.inter),
            (std::vector<std::string>{"0:10", "0:11", "1:10", "1:11", "0:12", "1:12"}));
  EXPECT_EQ(d.role, (std::vector<uint8_t>{0, 0, 0, 0, 2, 2}));
  EXPECT_EQ(d.report.filtered, 2);
  EXPECT_EQ(d.inter.items.raws(),
            (std::vector<std::string>{"10", "11", "12", "20"}));  // 13 removed, 20 kept
  const FileNegatives& fn = d.negatives;
  EXPECT_EQ(fn.user, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(fn.positive, (std::vector<int32_t>{2, 2}));
  EXPECT_EQ(fn.offsets, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(fn.negatives, (std::vector<int32_t>{3, 3}));
}

// ---------------------------------------------------------------------------------------------
// ML-100K from the shared folder

TEST(FormatsAtomic, SharedMl100k) {
  std::string why;
  const std::string path = convncf::test::ml100k_path(&why);
  if (path.empty()) GTEST_SKIP() << why;
  const LoadedData d = load_data(path, {});
  EXPECT_EQ(d.inter.n_users(), 943);
  EXPECT_EQ(d.inter.n_items(), 1682);
  EXPECT_EQ(d.inter.size(), 100000);
  EXPECT_EQ(d.inter.rating.size(), 100000u);
  EXPECT_EQ(d.report.duplicates, 0);
  // the folder too (RecBole's DATA_PATH/NAME/NAME.inter)
  EXPECT_EQ(load_data(fs::path(path).parent_path().string(), {}).inter.size(), 100000);
}
