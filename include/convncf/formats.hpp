// formats.hpp: every interaction-file format users bring, recognized from the path or forced
// by the data_format key, and the filters RecBole applies after loading.
//
//   atomic     RecBole atomic .inter: header of `name:type` fields (token, float, token_seq,
//              float_seq), any column order, extra columns ignored, tab-separated by default
//   ncf        NAME.train.rating, NAME.test.rating, NAME.test.negative (NCF / ConvNCF code):
//              `user<TAB>item[<TAB>rating[<TAB>time]]`; negatives `(user,item)<TAB>neg<TAB>...`
//   ngcf       train.txt and test.txt of NGCF / LightGCN: `user item item ...` per line
//   ml100k     MovieLens u.data: `user<TAB>item<TAB>rating<TAB>time`, no header
//   ml1m       MovieLens ratings.dat: `user::item::rating::time`, no header
//   mlcsv      MovieLens ratings.csv: header `userId,movieId,rating,timestamp`
//   csv        plain CSV/TSV: first line names the columns; user/item/rating/time columns named
//              by USER_ID_FIELD, ITEM_ID_FIELD, RATING_FIELD, TIME_FIELD; separator by
//              field_separator (default: tab for .tsv, comma otherwise)
//
// Every loader streams each file once, accepts CRLF line ends, a UTF-8 byte-order mark and a
// missing final newline, and refuses bad input with Error(kExitData) naming the file, the line,
// the offending text and what was expected (kExitNoInput when a file is missing). Ids are
// strings: a NUL byte or invalid UTF-8 in an id is refused.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "convncf/dataset.hpp"

namespace convncf {

enum class DataFormat { Auto, Atomic, Ncf, Ngcf, Ml100k, Ml1m, MlCsv, Csv };
DataFormat parse_data_format(const std::string& s);  // throws kExitUsage on an unknown name
const char* data_format_name(DataFormat f);

// Duplicate (user, item) interactions (RecBole's rm_dup_inter).
enum class DupRule { First, Last, Keep };

struct LoadOptions {
  DataFormat format = DataFormat::Auto;
  std::string field_separator;           // empty: the format's own
  std::string user_field = "user_id";    // USER_ID_FIELD
  std::string item_field = "item_id";    // ITEM_ID_FIELD
  std::string rating_field = "rating";   // RATING_FIELD
  std::string time_field = "timestamp";  // TIME_FIELD
  std::vector<std::string> load_col;     // RecBole load_col {inter: [...]}; empty: every column
  DupRule dup_rule = DupRule::First;     // rm_dup_inter
  // RecBole's benchmark_filename: the suffixes of NAME.<suffix>.inter in the dataset folder, the
  // training, validation and test parts in that order (three), read as the split; empty: none.
  std::vector<std::string> benchmark;
};

// Negatives fixed by a .test.negative file: one query per line, in file order.
struct FileNegatives {
  std::vector<int32_t> user;       // (L,)
  std::vector<int32_t> positive;   // (L,) the test item of that line
  std::vector<int64_t> offsets;    // (L+1,)
  std::vector<int32_t> negatives;  // file order within a line
  bool empty() const { return user.empty(); }
};

// Flaws real public files have: counted, reported, handled by the rule in the comment.
struct LoadReport {
  std::vector<std::string> files;  // files read
  int64_t lines = 0;               // data lines read (headers and blank lines excluded)
  int64_t duplicates = 0;          // duplicate (user, item): removed per rm_dup_inter
  int64_t test_in_negatives = 0;   // a test item among its own negatives: dropped from the list
  int64_t negatives_in_train = 0;  // a negative the user interacted with in training: dropped
  int64_t users_without_train = 0; // users only in test files: their test lines are dropped
  int64_t filtered = 0;            // interactions removed by filter_interactions
  std::string summary() const;     // one line for the loading summary, flaws named only if > 0
};

enum Role : uint8_t { kRoleTrain = 0, kRoleValid = 1, kRoleTest = 2 };

struct LoadedData {
  Interactions inter;          // ratings in inter.rating when the source has them
  std::vector<uint8_t> role;   // empty: the files do not split the data; else (N,) Role
  FileNegatives negatives;     // from .test.negative; empty otherwise
  DataFormat format = DataFormat::Auto;  // the format actually read
  LoadReport report;
};

// Recognizes the format (unless forced) from `path`, a file or a folder:
//   folder with NAME.train.rating + NAME.test.rating (+ NAME.test.negative) -> ncf
//   folder with train.txt + test.txt -> ngcf;  folder holding BASENAME.inter -> atomic
//   folder with u.data / ratings.dat / ratings.csv -> ml100k / ml1m / mlcsv
//   file *.inter -> atomic; u.data -> ml100k; *.dat -> ml1m; ratings.csv -> mlcsv;
//   *.train.rating -> ncf (its siblings); other .csv/.tsv/.txt -> csv
// With opt.benchmark (RecBole's benchmark_filename) the path is the folder NAME/ (or a file in it)
// and its NAME.<suffix>.inter files are read as atomic files whose parts are the split.
// Throws kExitNoInput when nothing is there, kExitUsage when nothing is recognized.
LoadedData load_data(const std::string& path, const LoadOptions& opt);

// In-memory parsers, one per format, used by load_data and by the fuzz targets. `name` is the
// file name used in messages. They append to `out` (ids shared across the files of a dataset).
// parse_delimited uses `role` for ncf only (the other formats do not split the data);
// parse_ncf_negatives matches its lines to the rows of role kRoleTest already in `out`.
void parse_atomic(std::string_view text, const std::string& name, const LoadOptions& opt,
                  LoadedData& out);
void parse_delimited(std::string_view text, const std::string& name, DataFormat format,
                     const LoadOptions& opt, uint8_t role, LoadedData& out);  // ncf rating, ml*, csv
void parse_ngcf(std::string_view text, const std::string& name, uint8_t role, LoadedData& out);
void parse_ncf_negatives(std::string_view text, const std::string& name, LoadedData& out);
// The whole-dataset steps load_data runs after the parsers: duplicates by opt.dup_rule (pairs
// within one role), then for split data the users without training rows and the negatives'
// flaws (LoadReport). A caller of the parse_* functions calls it once, after the last file.
void finish_load(LoadedData& data, const LoadOptions& opt);

// Offending text as messages show it: quoted, control bytes (and bytes >= 0x80 unless the text
// is UTF-8) escaped, cut at 200 bytes.
std::string shown_text(std::string_view s);

// RecBole's filters, in RecBole's order: rating interval (val_interval on RATING_FIELD, e.g.
// "[3,inf)"), then user and item interaction-count intervals (user_inter_num_interval,
// item_inter_num_interval, e.g. "[5,inf)"), repeated until stable. Empty string: no filter.
// Ids are re-densified (first-seen order kept); FileNegatives and roles follow.
struct FilterSpec {
  std::string val_interval;
  std::string user_inter_num_interval;
  std::string item_inter_num_interval;
};
void filter_interactions(LoadedData& data, const FilterSpec& spec);

}  // namespace convncf
