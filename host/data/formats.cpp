// formats.cpp: everything declared in formats.hpp: one parser per interaction-file format, the
// recognition of a dataset's format from its path, the whole-dataset steps after parsing
// (duplicates, the flaws of pre-split files) and RecBole's filters.
// Test: ctest --test-dir build -R Formats (tests/test_formats.cpp). Fuzz: fuzz/run_fuzz.sh DIR S
// (ctest -R Fuzz). Speed: build/bench/bench_load.
//
// One line splitter serves files and memory: stream_lines reads a file in 4 MiB blocks and hands
// each block to feed_lines (the unfinished last line is carried into the next block); parse_*
// hand it the whole text. A format is a line handler, a class with operator()(line, line_no) and
// finish(last_line_no). Fields are string_views into the block, numbers go through
// std::from_chars, ids go through a flat cache in front of IdMap (IdCache): nothing is allocated
// per line once the vectors are warm.
//
// Rules that formats.hpp leaves open, decided here:
//   - A line of only spaces and tabs is blank (skipped, like an empty one).
//   - No time column: a row's time is its index in the dataset (file order, across files).
//   - The rating column exists only if every file of the dataset has one.
//   - Duplicates are (user, item) pairs within one role: a pre-split pair in both train and
//     test is not a duplicate (the files say so on purpose or by mistake; neither is ours to fix).
//   - In parse_delimited `role` applies to ncf only; the other formats do not split the data.
//   - filter_interactions drops negatives naming a removed item, and negatives lines whose
//     (user, test item) row was removed; neither is counted apart (report.filtered counts rows).
#include "convncf/formats.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <unordered_set>
#include <utility>

#include "convncf/errors.hpp"
#include "convncf/util.hpp"
#include "convncf/rng.hpp"

namespace convncf {

namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Messages and small checks

// The offending text as it appears in a message: quoted, tabs and control bytes escaped (bytes
// >= 0x80 too when the text is not UTF-8), cut at 200 bytes so a binary file does not flood
// the terminal.
bool valid_utf8(std::string_view s);

std::string shown(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  constexpr size_t kMaxShown = 200;
  const bool escape_high = !valid_utf8(s.substr(0, kMaxShown));
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
    } else if (b < 0x20 || b == 0x7f || (b >= 0x80 && escape_high)) {
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

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* const end = p + s.size();
  while (p < end) {
    const unsigned c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n;  // continuation bytes
    uint32_t cp, least;
    if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F, least = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F, least = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07, least = 0x10000;
    } else {
      return false;
    }
    if (end - p <= n) return false;
    for (int k = 1; k <= n; ++k) {
      if ((p[k] & 0xC0) != 0x80) return false;
      cp = cp << 6 | (p[k] & 0x3Fu);
    }
    // overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8
    if (cp < least || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    p += n + 1;
  }
  return true;
}

// The whole field must be a finite number: no blanks, no hex, no inf/nan ('+' is allowed).
bool parse_number(std::string_view s, double& v) {
  const char* b = s.data();
  const char* const e = b + s.size();
  if (b != e && *b == '+' && ++b != e && (*b == '+' || *b == '-')) return false;
  if (b == e) return false;
  const auto r = std::from_chars(b, e, v);
  return r.ec == std::errc() && r.ptr == e && std::isfinite(v);
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string base_name(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path.substr(path.find_last_of('/') + 1);  // npos + 1 == 0: the whole path
}

bool is_blank(std::string_view line) {
  for (char c : line)
    if (c != ' ' && c != '\t') return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Lines: one splitter for files and memory

struct LineState {
  int64_t line_no = 0;  // the last line handed out, 1-based
};

// Hands each complete line of `block` (without its '\n', a trailing '\r', or a byte-order mark
// on line 1) to on_line(line, line_no), blank lines skipped; with `at_end` the last line too,
// even without a final newline. Returns the bytes consumed: the rest is an unfinished line.
template <class OnLine>
size_t feed_lines(std::string_view block, bool at_end, LineState& st, OnLine& on_line) {
  size_t pos = 0;
  while (pos < block.size()) {
    const void* nl = std::memchr(block.data() + pos, '\n', block.size() - pos);
    if (!nl && !at_end) break;
    const size_t end = nl ? size_t(static_cast<const char*>(nl) - block.data()) : block.size();
    std::string_view line = block.substr(pos, end - pos);
    pos = nl ? end + 1 : end;
    if (++st.line_no == 1 && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!is_blank(line)) on_line(line, st.line_no);
  }
  return pos;
}

template <class OnLine>
void stream_lines(const std::string& path, LineState& st, OnLine& on_line) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw_no_input("cannot open " + path + ": " + std::strerror(errno));
  std::vector<char> buf(size_t{4} << 20);
  size_t have = 0;  // bytes in buf: the carried unfinished line, then the new block
  for (;;) {
    if (have == buf.size()) buf.resize(buf.size() * 2);  // one line longer than the buffer
    have += std::fread(buf.data() + have, 1, buf.size() - have, f.get());
    if (std::ferror(f.get())) throw_no_input("cannot read " + path + ": " + std::strerror(errno));
    const bool at_end = std::feof(f.get()) != 0;
    const size_t used = feed_lines(std::string_view(buf.data(), have), at_end, st, on_line);
    if (at_end) return;
    std::memmove(buf.data(), buf.data() + used, have - used);
    have -= used;
  }
}

template <class Parser>
void run_text(std::string_view text, Parser& p) {
  LineState st;
  feed_lines(text, true, st, p);
  p.finish(st.line_no);
}

template <class Parser>
void run_file(const std::string& path, Parser& p) {
  LineState st;
  stream_lines(path, st, p);
  p.finish(st.line_no);
}

// Splits `line` at every `sep` into `out`: cleared, capacity kept, so no allocation once warm.
void split_fields(std::string_view line, std::string_view sep, std::vector<std::string_view>& out) {
  out.clear();
  if (sep.size() == 1) {
    const char* const base = line.data();
    size_t b = 0;
    for (;;) {
      const void* hit = b < line.size() ? std::memchr(base + b, sep[0], line.size() - b) : nullptr;
      if (!hit) break;
      const size_t e = size_t(static_cast<const char*>(hit) - base);
      out.push_back(line.substr(b, e - b));
      b = e + 1;
    }
    out.push_back(line.substr(b));
    return;
  }
  size_t b = 0;
  for (size_t e; (e = line.find(sep, b)) != std::string_view::npos; b = e + sep.size())
    out.push_back(line.substr(b, e - b));
  out.push_back(line.substr(b));
}

// Splits at runs of spaces and tabs (NGCF's `user item item ...`).
void split_blanks(std::string_view line, std::vector<std::string_view>& out) {
  out.clear();
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const size_t b = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > b) out.push_back(line.substr(b, i - b));
  }
}

std::string shown_separator(std::string_view sep) {
  return sep == "\t" ? "tab" : sep == "," ? "comma" : sep == " " ? "space" : shown(sep);
}

// ---------------------------------------------------------------------------------------------
// IdCache: a flat open-addressing table in front of an IdMap, for the loaders' hot path.
// IdMap's std::unordered_map (its layout is in dataset.hpp) costs about three dependent cache
// misses a lookup (bucket, node before, node): two thirds of the load time on a 10M-line file.
// Here a lookup is one 32-byte slot holding the hash, the index and, for ids up to 19 bytes, the
// id itself; longer ids are compared against IdMap::raw. Misses go to IdMap, which stays the
// owner of the ids and their order.

uint64_t hash_id(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = splitmix64(h ^ w);
  }
  uint64_t w = 0;
  if (i < s.size()) std::memcpy(&w, s.data() + i, s.size() - i);
  return splitmix64(h ^ w);
}

class IdCache {
 public:
  explicit IdCache(IdMap& map) : m_map(map) {
    size_t n = 1024;
    while (n < size_t(map.size()) * 2) n *= 2;
    m_slots.assign(n, Slot{});
    for (int32_t i = 0; i < map.size(); ++i) insert(map.raw(i), hash_id(map.raw(i)), i);
  }

  // Starts loading the slot of an id hashed `h`, so the miss overlaps the rest of the line.
  void prefetch(uint64_t h) const { __builtin_prefetch(&m_slots[h & (m_slots.size() - 1)]); }

  int32_t get_or_add(std::string_view raw, uint64_t h) {
    const size_t mask = m_slots.size() - 1;
    for (size_t s = h & mask;; s = (s + 1) & mask) {
      const Slot& slot = m_slots[s];
      if (slot.index < 0) break;
      if (slot.hash == h && matches(slot, raw)) return slot.index;
    }
    const int32_t index = m_map.get_or_add(raw);
    insert(raw, h, index);
    return index;
  }

 private:
  static constexpr uint8_t kLong = 255;  // len of a slot whose id is not inline
  struct Slot {
    uint64_t hash = 0;
    int32_t index = -1;  // -1: empty
    uint8_t len = 0;
    char key[19] = {};
  };

  bool matches(const Slot& slot, std::string_view raw) const {
    if (slot.len == kLong) return m_map.raw(slot.index) == raw;
    return slot.len == raw.size() && std::memcmp(slot.key, raw.data(), raw.size()) == 0;
  }

  void insert(std::string_view raw, uint64_t h, int32_t index) {
    if ((m_used + 1) * 2 > m_slots.size()) grow();
    const size_t mask = m_slots.size() - 1;
    size_t s = h & mask;
    while (m_slots[s].index >= 0) s = (s + 1) & mask;
    Slot& slot = m_slots[s];
    slot.hash = h;
    slot.index = index;
    slot.len = raw.size() <= sizeof slot.key ? uint8_t(raw.size()) : kLong;
    if (slot.len != kLong) std::memcpy(slot.key, raw.data(), raw.size());
    ++m_used;
  }

  void grow() {
    std::vector<Slot> old(m_slots.size() * 2);
    old.swap(m_slots);
    const size_t mask = m_slots.size() - 1;
    for (const Slot& slot : old) {
      if (slot.index < 0) continue;
      size_t s = slot.hash & mask;
      while (m_slots[s].index >= 0) s = (s + 1) & mask;
      m_slots[s] = slot;
    }
  }

  IdMap& m_map;
  std::vector<Slot> m_slots;
  size_t m_used = 0;
};

// ---------------------------------------------------------------------------------------------
// What every parser shares: the output, the file name for messages, the rows it added.

class Sink {
 public:
  Sink(LoadedData& out, const std::string& name, bool with_role, uint8_t role)
      : m_out(out),
        m_name(name),
        m_with_role(with_role),
        m_role(role),
        m_users(out.inter.users),
        m_items(out.inter.items) {
    out.report.files.push_back(name);
    const size_t n = out.inter.user.size();
    if (out.inter.item.size() != n || out.inter.time.size() != n ||
        (!out.role.empty() && out.role.size() != n) || (n > 0 && out.role.empty() == with_role))
      throw_internal(name + ": the files of one dataset must all be split (ncf, ngcf) or none");
  }

  [[noreturn]] void fail(int64_t line_no, const std::string& what) const {
    throw_data(m_name + ":" + std::to_string(line_no) + ": " + what);
  }

  // A data line: counted, and refused when it holds a NUL byte.
  void data_line(std::string_view line, int64_t line_no) {
    check_nul(line, line_no);
    ++m_out.report.lines;
  }
  void check_nul(std::string_view line, int64_t line_no) const {
    if (std::memchr(line.data(), '\0', line.size()) != nullptr)
      fail(line_no, "NUL byte in " + shown(line) + ": expected text (is the file UTF-16?)");
  }

  void check_id(std::string_view raw, const std::string& field, std::string_view line,
                int64_t line_no) const {
    if (raw.empty()) fail(line_no, "empty " + field + ": expected an id in " + shown(line));
    for (char c : raw)
      if (static_cast<unsigned char>(c) >= 0x80) {
        if (!valid_utf8(raw))
          fail(line_no, "invalid UTF-8 in " + field + " " + shown(raw) +
                            ": expected UTF-8 text (is the file Latin-1?) in " + shown(line));
        break;
      }
  }

  double number(std::string_view s, const std::string& field, std::string_view line,
                int64_t line_no) const {
    double v;
    if (!parse_number(s, v))
      fail(line_no,
           "expected a number for " + field + ", found " + shown(s) + " in " + shown(line));
    return v;
  }

  // Hashes a line's ids and starts loading their slots; add() uses the hashes.
  void prefetch(std::string_view user, std::string_view item) {
    m_user_hash = hash_id(user);
    m_item_hash = hash_id(item);
    m_users.prefetch(m_user_hash);
    m_items.prefetch(m_item_hash);
  }

  // One row; the ids must have passed check_id and prefetch. No time: the row's index.
  void add(std::string_view user, std::string_view item, bool has_rating, float rating,
           bool has_time, double time) {
    Interactions& in = m_out.inter;
    const size_t n = in.user.size();
    // The rating column exists only while every row has one: a row without drops it for good.
    if (has_rating) {
      if (in.rating.size() == n) in.rating.push_back(rating);
    } else if (!in.rating.empty()) {
      std::vector<float>().swap(in.rating);
    }
    in.user.push_back(m_users.get_or_add(user, m_user_hash));
    in.item.push_back(m_items.get_or_add(item, m_item_hash));
    in.time.push_back(has_time ? time : double(n));
    if (m_with_role) m_out.role.push_back(m_role);
    ++m_added;
  }

  LoadedData& out() { return m_out; }
  const std::string& name() const { return m_name; }
  int64_t added() const { return m_added; }

 private:
  LoadedData& m_out;
  const std::string& m_name;
  bool m_with_role;
  uint8_t m_role;
  IdCache m_users, m_items;
  uint64_t m_user_hash = 0, m_item_hash = 0;
  int64_t m_added = 0;
};

bool wanted(const std::vector<std::string>& load_col, const std::string& name) {
  return load_col.empty() || std::find(load_col.begin(), load_col.end(), name) != load_col.end();
}

void check_load_col(const LoadOptions& opt) {
  for (const std::string* f : {&opt.user_field, &opt.item_field})
    if (!wanted(opt.load_col, *f))
      throw_usage("load_col {inter: [...]} must include the user and item fields ('" +
                  opt.user_field + "', '" + opt.item_field + "'): '" + *f + "' is missing");
}

// ---------------------------------------------------------------------------------------------
// RecBole atomic .inter

bool is_known_type(std::string_view type) {
  return type == "token" || type == "float" || type == "token_seq" || type == "float_seq";
}

class AtomicParser {
 public:
  // with_role: one part of a pre-split dataset (benchmark_filename), its rows of `role`
  AtomicParser(LoadedData& out, const std::string& name, const LoadOptions& opt, bool with_role = false,
               uint8_t role = kRoleTrain)
      : m_sink(out, name, with_role, role),
        m_opt(opt),
        m_sep(opt.field_separator.empty() ? std::string("\t") : opt.field_separator) {
    check_load_col(opt);
    out.format = DataFormat::Atomic;
  }

  void operator()(std::string_view line, int64_t line_no) {
    if (m_header_line == 0) return header(line, line_no);
    m_sink.data_line(line, line_no);
    split_fields(line, m_sep, m_fields);
    if (m_fields.size() != m_names.size())
      m_sink.fail(line_no, "expected " + std::to_string(m_names.size()) + " fields separated by " +
                               shown_separator(m_sep) + " (" + m_expected + "), found " +
                               std::to_string(m_fields.size()) + ": " + shown(line));
    m_sink.prefetch(m_fields[m_user], m_fields[m_item]);
    // Other kept float columns: a number or empty (a missing value, as RecBole reads it).
    for (size_t c : m_float_cols) {
      double v;
      if (!m_fields[c].empty() && !parse_number(m_fields[c], v))
        m_sink.number(m_fields[c], m_full[c], line, line_no);
    }
    for (size_t c : m_float_seq_cols) {
      split_fields(m_fields[c], " ", m_seq);
      for (std::string_view s : m_seq) {
        double v;
        if (!s.empty() && !parse_number(s, v)) m_sink.number(s, m_full[c], line, line_no);
      }
    }
    const std::string_view user = m_fields[m_user], item = m_fields[m_item];
    m_sink.check_id(user, m_full[m_user], line, line_no);
    m_sink.check_id(item, m_full[m_item], line, line_no);
    double rating = 0, time = 0;
    if (m_rating >= 0) rating = rating_value(m_fields[size_t(m_rating)], line, line_no);
    if (m_time >= 0)
      time = m_sink.number(m_fields[size_t(m_time)], m_full[size_t(m_time)], line, line_no);
    m_sink.add(user, item, m_rating >= 0, float(rating), m_time >= 0, time);
  }

  void finish(int64_t last_line_no) {
    if (m_header_line == 0)
      m_sink.fail(
          std::max<int64_t>(last_line_no, 1),
          "empty file: expected a header line of name:type fields separated by " +
              shown_separator(m_sep) +
              " (e.g. \"user_id:token\\titem_id:token\\ttimestamp:float\"), found end of file");
    if (m_sink.added() == 0)
      m_sink.fail(last_line_no, "no interactions: expected at least one line after the header " +
                                    shown(m_header) + ", found end of file");
  }

 private:
  double rating_value(std::string_view s, std::string_view line, int64_t line_no) const {
    const double v = m_sink.number(s, m_full[size_t(m_rating)], line, line_no);
    if (!std::isfinite(float(v)))
      m_sink.fail(line_no, "rating " + shown(s) + " does not fit a float in " + shown(line));
    return v;
  }

  void header(std::string_view line, int64_t line_no) {
    m_sink.check_nul(line, line_no);
    m_header_line = line_no;
    m_header = std::string(line);
    split_fields(line, m_sep, m_fields);
    std::vector<std::string> types;
    for (std::string_view field : m_fields) {
      const size_t colon = field.find(':');
      if (colon == std::string_view::npos || colon == 0)
        m_sink.fail(line_no,
                    "header field " + shown(field) +
                        " is not name:type: expected e.g. \"user_id:token\" (types: token, float, "
                        "token_seq, float_seq) in header " +
                        shown(line));
      const std::string_view type = field.substr(colon + 1);
      if (!is_known_type(type))
        m_sink.fail(line_no, "header field " + shown(field) + " has unknown type " + shown(type) +
                                 ": expected token, float, token_seq or float_seq");
      m_names.emplace_back(field.substr(0, colon));
      types.emplace_back(type);
      m_full.emplace_back(field);
      m_expected += (m_expected.empty() ? "" : ", ") + m_full.back();
    }
    const auto find = [&](const std::string& want) -> int64_t {
      if (!wanted(m_opt.load_col, want)) return -1;
      for (size_t i = 0; i < m_names.size(); ++i)
        if (m_names[i] == want) return int64_t(i);
      return -1;
    };
    const int64_t user = find(m_opt.user_field), item = find(m_opt.item_field);
    if (user < 0)
      m_sink.fail(line_no, "header names no user field: expected " +
                               shown(m_opt.user_field + ":token") + " (USER_ID_FIELD) in " +
                               shown(line));
    if (item < 0)
      m_sink.fail(line_no, "header names no item field: expected " +
                               shown(m_opt.item_field + ":token") + " (ITEM_ID_FIELD) in " +
                               shown(line));
    m_user = size_t(user), m_item = size_t(item);
    m_rating = find(m_opt.rating_field);
    m_time = find(m_opt.time_field);
    const auto require = [&](int64_t f, const char* type) {
      if (f >= 0 && types[size_t(f)] != type)
        m_sink.fail(line_no, "header field " + shown(m_full[size_t(f)]) + " must have type " +
                                 type + ": expected " + shown(m_names[size_t(f)] + ":" + type));
    };
    require(user, "token");
    require(item, "token");
    require(m_rating, "float");
    require(m_time, "float");
    for (size_t i = 0; i < m_names.size(); ++i) {
      if (int64_t(i) == m_rating || int64_t(i) == m_time || !wanted(m_opt.load_col, m_names[i]))
        continue;
      if (types[i] == "float") m_float_cols.push_back(i);
      if (types[i] == "float_seq") m_float_seq_cols.push_back(i);
    }
  }

  Sink m_sink;
  const LoadOptions& m_opt;
  std::string m_sep;
  int64_t m_header_line = 0;
  std::string m_header, m_expected;
  std::vector<std::string> m_names, m_full;  // "user_id", "user_id:token"
  size_t m_user = 0, m_item = 0;
  int64_t m_rating = -1, m_time = -1;
  std::vector<size_t> m_float_cols, m_float_seq_cols;
  std::vector<std::string_view> m_fields, m_seq;
};

// ---------------------------------------------------------------------------------------------
// Delimited: NCF .rating, MovieLens u.data / ratings.dat / ratings.csv, plain CSV/TSV

class DelimitedParser {
 public:
  DelimitedParser(LoadedData& out, const std::string& name, DataFormat format,
                  const LoadOptions& opt, uint8_t role)
      : m_sink(out, name, format == DataFormat::Ncf, role), m_format(format), m_opt(opt) {
    out.format = format;
    switch (format) {
      case DataFormat::Ncf:
        m_sep = "\t", m_min = 2, m_max = 4;
        break;
      case DataFormat::Ml100k:
        m_sep = "\t", m_min = m_max = 4;
        break;
      case DataFormat::Ml1m:
        m_sep = "::", m_min = m_max = 4;
        break;
      case DataFormat::MlCsv:
        m_sep = ",", m_has_header = true;
        break;
      case DataFormat::Csv:
        m_sep = ends_with(name, ".tsv") ? "\t" : ",", m_has_header = true;
        check_load_col(opt);
        break;
      default:
        throw_internal("parse_delimited: " + std::string(data_format_name(format)) +
                       " is not delimited");
    }
    if (!opt.field_separator.empty()) m_sep = opt.field_separator;
    if (!m_has_header) {
      m_names = {"user", "item", "rating", "timestamp"};
      m_user = 0, m_item = 1, m_rating = 2, m_time = 3;
    }
  }

  void operator()(std::string_view line, int64_t line_no) {
    if (m_has_header && m_header_line == 0) return header(line, line_no);
    m_sink.data_line(line, line_no);
    split_fields(line, m_sep, m_fields);
    const size_t n = m_fields.size();
    if (n < m_min || n > m_max || (m_first_n && n != m_first_n)) {
      std::string want = m_first_n ? std::to_string(m_first_n) + " (as on line " +
                                         std::to_string(m_first_line) + ")"
                         : m_min == m_max ? std::to_string(m_min)
                                          : std::to_string(m_min) + " to " + std::to_string(m_max);
      std::string cols;
      for (size_t i = 0; i < m_names.size() && i < std::max(m_min, m_first_n ? m_first_n : m_max);
           ++i)
        cols += (i ? ", " : "") + m_names[i];
      m_sink.fail(line_no, "expected " + want + " fields separated by " + shown_separator(m_sep) +
                               " (" + cols + "), found " + std::to_string(n) + ": " + shown(line));
    }
    if (m_format == DataFormat::Ncf && !m_first_n) m_first_n = n, m_first_line = line_no;
    const std::string_view user = m_fields[m_user], item = m_fields[m_item];
    m_sink.prefetch(user, item);
    m_sink.check_id(user, m_names[m_user], line, line_no);
    m_sink.check_id(item, m_names[m_item], line, line_no);
    const bool has_rating = m_rating >= 0 && size_t(m_rating) < n,
               has_time = m_time >= 0 && size_t(m_time) < n;
    double rating = 0, time = 0;
    if (has_rating) {
      rating = m_sink.number(m_fields[size_t(m_rating)], m_names[size_t(m_rating)], line, line_no);
      if (!std::isfinite(float(rating)))
        m_sink.fail(line_no, "rating " + shown(m_fields[size_t(m_rating)]) +
                                 " does not fit a float in " + shown(line));
    }
    if (has_time)
      time = m_sink.number(m_fields[size_t(m_time)], m_names[size_t(m_time)], line, line_no);
    m_sink.add(user, item, has_rating, float(rating), has_time, time);
  }

  void finish(int64_t last_line_no) {
    if (m_sink.added() > 0) return;
    if (m_has_header && m_header_line == 0)
      m_sink.fail(std::max<int64_t>(last_line_no, 1),
                  "empty file: expected a header line naming the columns (" + expected_header() +
                      "), found end of file");
    if (m_has_header)
      m_sink.fail(last_line_no, "no interactions: expected at least one line after the header " +
                                    shown(m_header) + ", found end of file");
    m_sink.fail(std::max<int64_t>(last_line_no, 1),
                "empty file: expected lines of user" +
                    std::string(m_sep == "\t" ? "<TAB>" : m_sep) + "item" +
                    (m_max > 2 ? "..." : "") + ", found no interactions");
  }

 private:
  std::string expected_header() const {
    if (m_format == DataFormat::MlCsv) return "userId,movieId,rating,timestamp";
    return m_opt.user_field + ", " + m_opt.item_field + " and optionally " + m_opt.rating_field +
           ", " + m_opt.time_field + ", separated by " + shown_separator(m_sep);
  }

  void header(std::string_view line, int64_t line_no) {
    m_sink.check_nul(line, line_no);
    m_header_line = line_no;
    m_header = std::string(line);
    split_fields(line, m_sep, m_fields);
    for (std::string_view f : m_fields) m_names.emplace_back(f);
    m_min = m_max = m_names.size();
    const bool ml = m_format == DataFormat::MlCsv;
    const auto find = [&](const std::string& want, bool needed) -> int64_t {
      if (!ml && !needed && !wanted(m_opt.load_col, want)) return -1;
      for (size_t i = 0; i < m_names.size(); ++i)
        if (m_names[i] == want) return int64_t(i);
      return -1;
    };
    const std::string user_name = ml ? "userId" : m_opt.user_field,
                      item_name = ml ? "movieId" : m_opt.item_field;
    const int64_t user = find(user_name, true), item = find(item_name, true);
    if (user < 0)
      m_sink.fail(line_no, "header names no user field: expected a column " + shown(user_name) +
                               (ml ? "" : " (USER_ID_FIELD)") + " in " + shown(line) +
                               " (columns separated by " + shown_separator(m_sep) + ")");
    if (item < 0)
      m_sink.fail(line_no, "header names no item field: expected a column " + shown(item_name) +
                               (ml ? "" : " (ITEM_ID_FIELD)") + " in " + shown(line) +
                               " (columns separated by " + shown_separator(m_sep) + ")");
    m_user = size_t(user), m_item = size_t(item);
    m_rating = find(ml ? "rating" : m_opt.rating_field, false);
    m_time = find(ml ? "timestamp" : m_opt.time_field, false);
  }

  Sink m_sink;
  DataFormat m_format;
  const LoadOptions& m_opt;
  std::string m_sep;
  bool m_has_header = false;
  int64_t m_header_line = 0;
  std::string m_header;
  size_t m_min = 0, m_max = 0;
  size_t m_first_n = 0;  // ncf: the column count of the first data line, which every line keeps
  int64_t m_first_line = 0;
  std::vector<std::string> m_names;
  size_t m_user = 0, m_item = 1;
  int64_t m_rating = -1, m_time = -1;
  std::vector<std::string_view> m_fields;
};

// ---------------------------------------------------------------------------------------------
// NGCF / LightGCN train.txt, test.txt

class NgcfParser {
 public:
  NgcfParser(LoadedData& out, const std::string& name, uint8_t role)
      : m_sink(out, name, true, role) {
    out.format = DataFormat::Ngcf;
  }

  void operator()(std::string_view line, int64_t line_no) {
    m_sink.data_line(line, line_no);
    split_blanks(line, m_fields);
    for (size_t k = 0; k < m_fields.size(); ++k)
      m_sink.check_id(m_fields[k], k ? m_item : m_user, line, line_no);
    for (size_t k = 1; k < m_fields.size(); ++k) {
      m_sink.prefetch(m_fields[0], m_fields[k]);
      m_sink.add(m_fields[0], m_fields[k], false, 0, false, 0);
    }
  }

  void finish(int64_t last_line_no) {
    if (m_sink.added() == 0)
      m_sink.fail(std::max<int64_t>(last_line_no, 1),
                  std::string(last_line_no == 0 ? "empty file" : "no interactions") +
                      ": expected lines of `user item item ...` separated by spaces, found " +
                      (last_line_no == 0 ? "end of file" : "no line with an item"));
  }

 private:
  Sink m_sink;
  const std::string m_user = "user", m_item = "item";
  std::vector<std::string_view> m_fields;
};

// ---------------------------------------------------------------------------------------------
// NCF .test.negative: line k belongs to the k-th interaction of the test file

class NegativesParser {
 public:
  NegativesParser(LoadedData& out, const std::string& name)
      : m_out(out), m_name(name), m_items(out.inter.items) {
    out.report.files.push_back(name);
    for (size_t r = 0; r < out.role.size(); ++r)
      if (out.role[r] == kRoleTest) m_test_rows.push_back(r);
    FileNegatives& fn = out.negatives;
    if (fn.offsets.empty()) fn.offsets.push_back(0);
  }

  void operator()(std::string_view line, int64_t line_no) {
    if (std::memchr(line.data(), '\0', line.size()) != nullptr)
      fail(line_no, "NUL byte in " + shown(line) + ": expected text (is the file UTF-16?)");
    ++m_out.report.lines;
    const size_t k = m_lines++;
    if (k >= m_test_rows.size())
      fail(line_no,
           "line " + shown(line.substr(0, 40)) + " has no test line to match: the test file has " +
               std::to_string(m_test_rows.size()) +
               " interactions, expected one negatives line per test interaction, in its order");
    split_fields(line, "\t", m_fields);
    const std::string_view pair = m_fields[0];
    const size_t comma = pair.find(',');
    if (pair.size() < 5 || pair.front() != '(' || pair.back() != ')' ||
        comma == std::string_view::npos)
      fail(line_no, "expected \"(user,item)\" then tab-separated negative items, found " +
                        shown(pair) + " in " + shown(line));
    const std::string_view user = pair.substr(1, comma - 1),
                           item = pair.substr(comma + 1, pair.size() - comma - 2);
    const Interactions& in = m_out.inter;
    const size_t r = m_test_rows[k];
    const std::string& want_user = in.users.raw(in.user[r]);
    const std::string& want_item = in.items.raw(in.item[r]);
    if (user != want_user || item != want_item)
      fail(line_no, "(user,item) " + shown(pair) + " differs from test interaction " +
                        std::to_string(k + 1) + ", " +
                        shown("(" + want_user + "," + want_item + ")") +
                        ": expected the negatives in the test file's order");
    FileNegatives& fn = m_out.negatives;
    for (size_t f = 1; f < m_fields.size(); ++f) {
      const std::string_view neg = m_fields[f];
      if (neg.empty()) continue;  // doubled or trailing tabs
      check_id(neg, line, line_no);
      fn.negatives.push_back(m_items.get_or_add(neg, hash_id(neg)));
    }
    fn.user.push_back(in.user[r]);
    fn.positive.push_back(in.item[r]);
    fn.offsets.push_back(int64_t(fn.negatives.size()));
  }

  void finish(int64_t last_line_no) {
    if (m_lines != m_test_rows.size())
      fail(std::max<int64_t>(last_line_no, 1),
           (m_lines == 0 ? std::string("empty file") : std::to_string(m_lines) + " lines") +
               ": expected " + std::to_string(m_test_rows.size()) + ", one per test interaction");
  }

 private:
  [[noreturn]] void fail(int64_t line_no, const std::string& what) const {
    throw_data(m_name + ":" + std::to_string(line_no) + ": " + what);
  }
  void check_id(std::string_view id, std::string_view line, int64_t line_no) const {
    for (char c : id)
      if (static_cast<unsigned char>(c) >= 0x80) {
        if (!valid_utf8(id))
          fail(line_no, "invalid UTF-8 in negative item " + shown(id) +
                            ": expected UTF-8 text in " + shown(line));
        break;
      }
  }

  LoadedData& m_out;
  const std::string& m_name;
  IdCache m_items;
  std::vector<size_t> m_test_rows;  // rows of role test, in file order
  size_t m_lines = 0;
  std::vector<std::string_view> m_fields;
};

// ---------------------------------------------------------------------------------------------
// Whole-dataset steps

// Row indices grouped by user (counting sort, file order kept within a user); start has
// n_users + 1 entries.
std::vector<int64_t> rows_by_user(const Interactions& in, std::vector<int64_t>& start) {
  start.assign(size_t(in.n_users()) + 1, 0);
  for (int32_t u : in.user) ++start[size_t(u) + 1];
  for (size_t u = 1; u < start.size(); ++u) start[u] += start[u - 1];
  std::vector<int64_t> order(in.user.size());
  std::vector<int64_t> next(start.begin(), start.end() - 1);
  for (size_t r = 0; r < in.user.size(); ++r)
    order[size_t(next[size_t(in.user[r])]++)] = int64_t(r);
  return order;
}

// Keeps the rows marked in `keep`, in order, in every per-row column.
void keep_rows(LoadedData& d, const std::vector<uint8_t>& keep) {
  Interactions& in = d.inter;
  const size_t n = in.user.size();
  const bool rating = in.rating.size() == n, role = d.role.size() == n;
  size_t w = 0;
  for (size_t r = 0; r < n; ++r) {
    if (!keep[r]) continue;
    in.user[w] = in.user[r];
    in.item[w] = in.item[r];
    in.time[w] = in.time[r];
    if (rating) in.rating[w] = in.rating[r];
    if (role) d.role[w] = d.role[r];
    ++w;
  }
  in.user.resize(w);
  in.item.resize(w);
  in.time.resize(w);
  if (rating) in.rating.resize(w);
  if (role) d.role.resize(w);
}

// Rebuilds `map` over the indices marked in `keep`, old order kept; returns old -> new (-1: gone).
std::vector<int32_t> densify(IdMap& map, const std::vector<uint8_t>& keep) {
  IdMap fresh;
  std::vector<int32_t> to(size_t(map.size()), -1);
  for (int32_t i = 0; i < map.size(); ++i)
    if (keep[size_t(i)]) to[size_t(i)] = fresh.get_or_add(map.raw(i));
  map = std::move(fresh);
  return to;
}

// Keeps the negatives lines marked in `keep_line`; remaps users and items (items mapped to -1
// are dropped from their line). Empty maps mean "unchanged".
void rebuild_negatives(FileNegatives& fn, const std::vector<uint8_t>& keep_line,
                       const std::vector<int32_t>& user_to, const std::vector<int32_t>& item_to) {
  FileNegatives out;
  out.offsets.push_back(0);
  const auto map = [](const std::vector<int32_t>& to, int32_t x) {
    return to.empty() ? x : to[size_t(x)];
  };
  for (size_t l = 0; l < fn.user.size(); ++l) {
    if (!keep_line[l]) continue;
    out.user.push_back(map(user_to, fn.user[l]));
    out.positive.push_back(map(item_to, fn.positive[l]));
    for (int64_t j = fn.offsets[l]; j < fn.offsets[l + 1]; ++j) {
      const int32_t it = map(item_to, fn.negatives[size_t(j)]);
      if (it >= 0) out.negatives.push_back(it);
    }
    out.offsets.push_back(int64_t(out.negatives.size()));
  }
  fn = std::move(out);
}

// rm_dup_inter over (user, item) pairs within a role: groups found by a counting sort on the
// user and a small sort per user, which beats one global sort on large files.
void remove_duplicates(LoadedData& d, DupRule rule) {
  Interactions& in = d.inter;
  const size_t n = in.user.size();
  std::vector<int64_t> start;
  const std::vector<int64_t> order = rows_by_user(in, start);
  std::vector<uint8_t> keep(n, 1);
  std::vector<std::pair<uint64_t, int64_t>> key;  // ((item << 8) | role, row)
  int64_t dups = 0;
  for (size_t u = 0; u + 1 < start.size(); ++u) {
    key.clear();
    for (int64_t k = start[u]; k < start[u + 1]; ++k) {
      const size_t r = size_t(order[size_t(k)]);
      key.emplace_back(uint64_t(uint32_t(in.item[r])) << 8 | (d.role.empty() ? 0u : d.role[r]),
                       int64_t(r));
    }
    std::sort(key.begin(), key.end());
    for (size_t a = 0, b; a < key.size(); a = b) {
      for (b = a + 1; b < key.size() && key[b].first == key[a].first;) ++b;
      if (b - a == 1) continue;
      dups += int64_t(b - a - 1);
      if (rule == DupRule::Keep) continue;
      size_t best = a;            // First: the earliest row (rows ascend within a group)
      if (rule == DupRule::Last)  // the latest time; ties: the later line
        for (size_t c = a + 1; c < b; ++c)
          if (in.time[size_t(key[c].second)] >= in.time[size_t(key[best].second)]) best = c;
      for (size_t c = a; c < b; ++c)
        if (c != best) keep[size_t(key[c].second)] = 0;
    }
  }
  d.report.duplicates += dups;
  if (rule != DupRule::Keep && dups > 0) {
    keep_rows(d, keep);
    in.duplicates_removed += dups;
  }
}

// Pre-split data: a user with no training row cannot be trained or ranked, so their other rows
// and negatives lines go, and the user map is re-densified.
void drop_users_without_train(LoadedData& d) {
  Interactions& in = d.inter;
  const size_t n_users = size_t(in.n_users());
  std::vector<uint8_t> has_row(n_users, 0), has_train(n_users, 0);
  for (size_t r = 0; r < in.user.size(); ++r) {
    has_row[size_t(in.user[r])] = 1;
    if (d.role[r] == kRoleTrain) has_train[size_t(in.user[r])] = 1;
  }
  int64_t dropped = 0;
  for (size_t u = 0; u < n_users; ++u) dropped += has_row[u] && !has_train[u];
  if (dropped == 0) return;
  d.report.users_without_train += dropped;
  std::vector<uint8_t> keep(in.user.size());
  for (size_t r = 0; r < keep.size(); ++r) keep[r] = has_train[size_t(in.user[r])];
  keep_rows(d, keep);
  const std::vector<int32_t> to = densify(in.users, has_train);
  for (int32_t& u : in.user) u = to[size_t(u)];
  std::vector<uint8_t> keep_line(d.negatives.user.size());
  for (size_t l = 0; l < keep_line.size(); ++l)
    keep_line[l] = has_train[size_t(d.negatives.user[l])];
  rebuild_negatives(d.negatives, keep_line, to, {});
}

// A test item among its own negatives, or a negative the user trained on: dropped, counted.
void clean_negatives(LoadedData& d) {
  FileNegatives& fn = d.negatives;
  const Interactions& in = d.inter;
  // Sorted training items per user (every row counts as training when the data is not split).
  std::vector<int64_t> off(size_t(in.n_users()) + 1, 0);
  const auto is_train = [&](size_t r) { return d.role.empty() || d.role[r] == kRoleTrain; };
  for (size_t r = 0; r < in.user.size(); ++r) off[size_t(in.user[r]) + 1] += is_train(r);
  for (size_t u = 1; u < off.size(); ++u) off[u] += off[u - 1];
  std::vector<int32_t> items(size_t(off.back()));
  std::vector<int64_t> next(off.begin(), off.end() - 1);
  for (size_t r = 0; r < in.user.size(); ++r)
    if (is_train(r)) items[size_t(next[size_t(in.user[r])]++)] = in.item[r];
  for (size_t u = 0; u + 1 < off.size(); ++u)
    std::sort(items.begin() + off[u], items.begin() + off[u + 1]);

  size_t w = 0;
  int64_t begin = 0;
  for (size_t l = 0; l < fn.user.size(); ++l) {
    const auto b = items.begin() + off[size_t(fn.user[l])],
               e = items.begin() + off[size_t(fn.user[l]) + 1];
    const int64_t end = fn.offsets[l + 1];
    for (int64_t j = begin; j < end; ++j) {
      const int32_t it = fn.negatives[size_t(j)];
      if (it == fn.positive[l]) {
        ++d.report.test_in_negatives;
      } else if (std::binary_search(b, e, it)) {
        ++d.report.negatives_in_train;
      } else {
        fn.negatives[w++] = it;
      }
    }
    begin = end;
    fn.offsets[l + 1] = int64_t(w);
  }
  fn.negatives.resize(w);
}

// ---------------------------------------------------------------------------------------------
// Intervals of RecBole's filters: "[3,inf)", "(0,5]", unions joined by ';'

struct Interval {
  double lo, hi;
  bool lo_closed, hi_closed;
  bool contains(double x) const {
    return (lo_closed ? x >= lo : x > lo) && (hi_closed ? x <= hi : x < hi);
  }
};

std::vector<Interval> parse_intervals(const std::string& text, const char* key) {
  std::vector<Interval> out;
  if (trim(text).empty()) return out;
  const auto bad = [&](std::string_view part) {
    throw_usage(std::string(key) + ": malformed interval " + shown(part) + " in " + shown(text) +
                ": expected e.g. \"[3,inf)\", \"(0,5]\" or \"[1,2];[4,5]\"");
  };
  const auto bound = [&](std::string_view s, std::string_view part) {
    s = trim(s);
    if (s == "inf" || s == "+inf") return HUGE_VAL;
    if (s == "-inf") return -HUGE_VAL;
    double v;
    if (!parse_number(s, v)) bad(part);
    return v;
  };
  std::vector<std::string_view> parts, ends;
  split_fields(text, ";", parts);
  for (std::string_view raw : parts) {
    const std::string_view part = trim(raw);
    if (part.size() < 5 || (part.front() != '[' && part.front() != '(') ||
        (part.back() != ']' && part.back() != ')'))
      bad(part);
    split_fields(part.substr(1, part.size() - 2), ",", ends);
    if (ends.size() != 2) bad(part);
    const Interval iv{bound(ends[0], part), bound(ends[1], part), part.front() == '[',
                      part.back() == ']'};
    if (iv.lo > iv.hi) bad(part);
    out.push_back(iv);
  }
  return out;
}

bool in_any(const std::vector<Interval>& v, double x) {
  for (const Interval& iv : v)
    if (iv.contains(x)) return true;
  return false;
}

// ---------------------------------------------------------------------------------------------
// Recognition: what to read for a path

enum class Kind { Atomic, Delimited, Ngcf, Negatives };
struct Part {
  std::string path;
  Kind kind;
  uint8_t role;
};
struct Plan {
  DataFormat format = DataFormat::Auto;
  std::string name;
  std::vector<Part> parts;
  bool split = false;  // the files give the roles
};

std::string dir_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash + 1);
}

void require_file(const std::string& path, const std::string& why) {
  if (!is_file(path)) throw_no_input(path + " does not exist or is not a file: " + why);
}

// NAME.train.rating + NAME.test.rating (+ NAME.test.negative), `prefix` = DIR/NAME.
Plan ncf_plan(const std::string& prefix) {
  Plan p;
  p.format = DataFormat::Ncf;
  p.name = base_name(prefix);
  p.split = true;
  require_file(prefix + ".train.rating", "ncf needs NAME.train.rating and NAME.test.rating");
  require_file(prefix + ".test.rating", "ncf needs NAME.train.rating and NAME.test.rating");
  p.parts.push_back({prefix + ".train.rating", Kind::Delimited, kRoleTrain});
  p.parts.push_back({prefix + ".test.rating", Kind::Delimited, kRoleTest});
  if (is_file(prefix + ".test.negative"))
    p.parts.push_back({prefix + ".test.negative", Kind::Negatives, kRoleTest});
  return p;
}

Plan ngcf_plan(const std::string& dir) {
  Plan p;
  p.format = DataFormat::Ngcf;
  p.name = base_name(dir);
  p.split = true;
  require_file(join_path(dir, "train.txt"), "ngcf needs train.txt and test.txt");
  require_file(join_path(dir, "test.txt"), "ngcf needs train.txt and test.txt");
  p.parts.push_back({join_path(dir, "train.txt"), Kind::Ngcf, kRoleTrain});
  p.parts.push_back({join_path(dir, "test.txt"), Kind::Ngcf, kRoleTest});
  return p;
}

Plan one_file(DataFormat f, const std::string& path) {
  require_file(path, std::string(data_format_name(f)) + " data");
  Plan p;
  p.format = f;
  p.name = base_name(path);
  p.parts.push_back({path,
                     f == DataFormat::Atomic ? Kind::Atomic
                     : f == DataFormat::Ngcf ? Kind::Ngcf
                                             : Kind::Delimited,
                     kRoleTrain});
  return p;
}

Plan plan_folder(const std::string& dir, DataFormat forced) {
  std::vector<std::string> names, ncf, inter;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    names.push_back(n);
    if (ends_with(n, ".train.rating")) ncf.push_back(n.substr(0, n.size() - 13));
    if (ends_with(n, ".inter")) inter.push_back(n);
  }
  if (ec) throw_no_input("cannot list folder " + dir + ": " + ec.message());
  const auto has = [&](const std::string& n) {
    return std::find(names.begin(), names.end(), n) != names.end();
  };
  ncf.erase(std::remove_if(ncf.begin(), ncf.end(),
                           [&](const std::string& s) { return !has(s + ".test.rating"); }),
            ncf.end());
  const std::string base = base_name(dir);
  const auto atomic_file = [&]() -> std::string {
    if (has(base + ".inter")) return join_path(dir, base + ".inter");
    if (inter.size() == 1) return join_path(dir, inter[0]);
    return {};
  };
  const auto ncf_one = [&]() {
    if (ncf.size() > 1)
      throw_usage("folder " + dir + " holds several ncf datasets (" + ncf[0] + ", " + ncf[1] +
                  "): name one file, e.g. " + join_path(dir, ncf[0] + ".train.rating"));
    return ncf_plan(join_path(dir, ncf[0]));
  };
  switch (forced) {
    case DataFormat::Ncf:
      if (ncf.empty())
        throw_no_input("folder " + dir +
                       " has no NAME.train.rating with its NAME.test.rating (ncf)");
      return ncf_one();
    case DataFormat::Ngcf:
      return ngcf_plan(dir);
    case DataFormat::Atomic: {
      const std::string f = atomic_file();
      if (f.empty()) throw_no_input("folder " + dir + " has no " + base + ".inter (atomic)");
      return one_file(forced, f);
    }
    case DataFormat::Ml100k:
      return one_file(forced, join_path(dir, "u.data"));
    case DataFormat::Ml1m:
      return one_file(forced, join_path(dir, "ratings.dat"));
    case DataFormat::MlCsv:
      return one_file(forced, join_path(dir, "ratings.csv"));
    case DataFormat::Csv:
      throw_usage("data_format csv needs a file, not the folder " + dir);
    case DataFormat::Auto:
      break;
  }
  if (!ncf.empty()) return ncf_one();
  if (has("train.txt") && has("test.txt")) return ngcf_plan(dir);
  if (!atomic_file().empty()) return one_file(DataFormat::Atomic, atomic_file());
  if (has("u.data")) return one_file(DataFormat::Ml100k, join_path(dir, "u.data"));
  if (has("ratings.dat")) return one_file(DataFormat::Ml1m, join_path(dir, "ratings.dat"));
  if (has("ratings.csv")) return one_file(DataFormat::MlCsv, join_path(dir, "ratings.csv"));
  const std::string what =
      "expected NAME.train.rating + NAME.test.rating (ncf), train.txt + test.txt (ngcf), " + base +
      ".inter (atomic), u.data, ratings.dat or ratings.csv; or set data_format";
  if (names.empty()) throw_no_input("folder " + dir + " is empty: " + what);
  throw_usage("cannot tell the format of the data in folder " + dir + ": " + what);
}

// RecBole's benchmark_filename: DIR/NAME.<suffix>.inter for the three suffixes, NAME the folder's
// name (RecBole's dataset name); a file given is taken for its folder.
Plan benchmark_plan(const std::string& path, bool is_folder, const LoadOptions& opt) {
  if (opt.benchmark.size() != 3)
    throw_usage("benchmark_filename needs three suffixes (train, valid, test), found " +
                std::to_string(opt.benchmark.size()));
  if (opt.format != DataFormat::Auto && opt.format != DataFormat::Atomic)
    throw_usage(std::string("benchmark_filename names RecBole atomic files (NAME.<suffix>.inter), but data_format is ") +
                data_format_name(opt.format));
  std::string dir = is_folder ? path : dir_of(path);
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  Plan p;
  p.format = DataFormat::Atomic;
  p.name = base_name(dir);
  p.split = true;
  const uint8_t roles[3] = {kRoleTrain, kRoleValid, kRoleTest};
  for (size_t k = 0; k < 3; ++k) {
    const std::string f = join_path(dir, p.name + "." + opt.benchmark[k] + ".inter");
    require_file(f, "benchmark_filename [" + opt.benchmark[0] + ", " + opt.benchmark[1] + ", " + opt.benchmark[2] +
                        "] reads " + p.name + ".<suffix>.inter from " + dir);
    p.parts.push_back({f, Kind::Atomic, roles[k]});
  }
  return p;
}

Plan plan_file(const std::string& path, DataFormat forced) {
  const std::string name = base_name(path);
  std::string ncf_prefix;
  for (const char* suffix : {".train.rating", ".test.rating", ".test.negative"})
    if (ends_with(name, suffix)) ncf_prefix = path.substr(0, path.size() - std::strlen(suffix));
  const bool ngcf_pair = name == "train.txt" && is_file(join_path(dir_of(path), "test.txt"));
  DataFormat f = forced;
  if (f == DataFormat::Auto) {
    if (ends_with(name, ".inter"))
      f = DataFormat::Atomic;
    else if (name == "u.data")
      f = DataFormat::Ml100k;
    else if (ends_with(name, ".dat"))
      f = DataFormat::Ml1m;
    else if (name == "ratings.csv")
      f = DataFormat::MlCsv;
    else if (!ncf_prefix.empty())
      f = DataFormat::Ncf;
    else if (ngcf_pair)
      f = DataFormat::Ngcf;
    else if (ends_with(name, ".csv") || ends_with(name, ".tsv") || ends_with(name, ".txt"))
      f = DataFormat::Csv;
    else
      throw_usage("cannot tell the format of " + path +
                  " from its name: expected *.inter, u.data, *.dat, ratings.csv, *.train.rating, "
                  ".csv, .tsv "
                  "or .txt; or set data_format");
  }
  if (f == DataFormat::Ncf) {
    if (ncf_prefix.empty())
      throw_usage("data_format ncf: " + path + " is not NAME.train.rating (or NAME.test.rating)");
    return ncf_plan(ncf_prefix);
  }
  if (f == DataFormat::Ngcf && ngcf_pair) return ngcf_plan(dir_of(path));
  return one_file(f, path);
}

}  // namespace

std::string shown_text(std::string_view s) { return shown(s); }

// ---------------------------------------------------------------------------------------------
// Public interface

DataFormat parse_data_format(const std::string& s) {
  static const std::pair<const char*, DataFormat> kNames[] = {
      {"auto", DataFormat::Auto},     {"atomic", DataFormat::Atomic},
      {"inter", DataFormat::Atomic},  {"ncf", DataFormat::Ncf},
      {"ngcf", DataFormat::Ngcf},     {"lightgcn", DataFormat::Ngcf},
      {"ml100k", DataFormat::Ml100k}, {"ml1m", DataFormat::Ml1m},
      {"mlcsv", DataFormat::MlCsv},   {"csv", DataFormat::Csv},
      {"tsv", DataFormat::Csv}};
  for (const auto& [name, f] : kNames)
    if (s == name) return f;
  throw_usage("data_format " + shown(s) +
              " is not one of auto, atomic, ncf, ngcf, ml100k, ml1m, mlcsv, csv");
}

const char* data_format_name(DataFormat f) {
  switch (f) {
    case DataFormat::Auto:
      return "auto";
    case DataFormat::Atomic:
      return "atomic";
    case DataFormat::Ncf:
      return "ncf";
    case DataFormat::Ngcf:
      return "ngcf";
    case DataFormat::Ml100k:
      return "ml100k";
    case DataFormat::Ml1m:
      return "ml1m";
    case DataFormat::MlCsv:
      return "mlcsv";
    case DataFormat::Csv:
      return "csv";
  }
  return "?";
}

std::string LoadReport::summary() const {
  std::string s = std::to_string(lines) + (lines == 1 ? " line" : " lines");
  for (size_t k = 0; k < files.size(); ++k) s += (k ? ", " : " in ") + base_name(files[k]);
  const auto flaw = [&s](int64_t n, const char* what) {
    if (n > 0) s += "; " + std::to_string(n) + " " + what;
  };
  flaw(duplicates, "duplicate (user, item) interactions (rm_dup_inter)");
  flaw(test_in_negatives, "test items among their own negatives dropped");
  flaw(negatives_in_train, "negatives the user trained on dropped");
  flaw(users_without_train, "users without training interactions dropped");
  flaw(filtered, "interactions filtered out");
  return s;
}

void parse_atomic(std::string_view text, const std::string& name, const LoadOptions& opt,
                  LoadedData& out) {
  AtomicParser p(out, name, opt);
  run_text(text, p);
}

void parse_delimited(std::string_view text, const std::string& name, DataFormat format,
                     const LoadOptions& opt, uint8_t role, LoadedData& out) {
  DelimitedParser p(out, name, format, opt, role);
  run_text(text, p);
}

void parse_ngcf(std::string_view text, const std::string& name, uint8_t role, LoadedData& out) {
  NgcfParser p(out, name, role);
  run_text(text, p);
}

void parse_ncf_negatives(std::string_view text, const std::string& name, LoadedData& out) {
  NegativesParser p(out, name);
  run_text(text, p);
}

void finish_load(LoadedData& d, const LoadOptions& opt) {
  const size_t n = d.inter.user.size();
  if (d.inter.item.size() != n || d.inter.time.size() != n ||
      (!d.role.empty() && d.role.size() != n) ||
      (!d.inter.rating.empty() && d.inter.rating.size() != n))
    throw_internal("finish_load: per-row columns differ in length");
  remove_duplicates(d, opt.dup_rule);
  if (!d.role.empty()) drop_users_without_train(d);
  if (!d.negatives.empty()) clean_negatives(d);
}

LoadedData load_data(const std::string& path, const LoadOptions& opt) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw_no_input("dataset " + path + " does not exist");
  const Plan plan = !opt.benchmark.empty() ? benchmark_plan(path, fs::is_directory(st), opt)
                    : fs::is_directory(st)    ? plan_folder(path, opt.format)
                                              : plan_file(path, opt.format);
  LoadedData d;
  for (const Part& part : plan.parts) {
    if (part.kind == Kind::Atomic) {
      AtomicParser p(d, part.path, opt, plan.split, part.role);
      run_file(part.path, p);
    } else if (part.kind == Kind::Delimited) {
      DelimitedParser p(d, part.path, plan.format, opt, part.role);
      run_file(part.path, p);
    } else if (part.kind == Kind::Ngcf) {
      NgcfParser p(d, part.path, part.role);
      run_file(part.path, p);
    } else {
      NegativesParser p(d, part.path);
      run_file(part.path, p);
    }
  }
  if (!plan.split) d.role.clear();  // one ngcf file given alone: not a split
  d.format = plan.format;
  d.inter.name = plan.name;
  finish_load(d, opt);
  return d;
}

void filter_interactions(LoadedData& d, const FilterSpec& spec) {
  const std::vector<Interval> val = parse_intervals(spec.val_interval, "val_interval");
  const std::vector<Interval> user_iv =
      parse_intervals(spec.user_inter_num_interval, "user_inter_num_interval");
  const std::vector<Interval> item_iv =
      parse_intervals(spec.item_inter_num_interval, "item_inter_num_interval");
  Interactions& in = d.inter;
  const size_t n = in.user.size();
  if (!val.empty() && in.rating.size() != n)
    throw_usage("val_interval " + shown(spec.val_interval) +
                ": the data has no rating column to filter on");
  const size_t n_users = size_t(in.n_users()), n_items = size_t(in.n_items());

  std::vector<uint8_t> keep(n, 1);
  if (!val.empty())
    for (size_t r = 0; r < n; ++r) keep[r] = in_any(val, in.rating[r]);
  // RecBole's _filter_by_inter_num: ban users and items outside their count intervals at once,
  // drop their rows, count again, until nothing is banned. Ids without rows are never banned.
  if (!user_iv.empty() || !item_iv.empty()) {
    std::vector<int64_t> user_count(n_users), item_count(n_items);
    for (;;) {
      std::fill(user_count.begin(), user_count.end(), 0);
      std::fill(item_count.begin(), item_count.end(), 0);
      for (size_t r = 0; r < n; ++r)
        if (keep[r]) ++user_count[size_t(in.user[r])], ++item_count[size_t(in.item[r])];
      bool changed = false;
      for (size_t r = 0; r < n; ++r) {
        if (!keep[r]) continue;
        const bool ban_user =
            !user_iv.empty() && !in_any(user_iv, double(user_count[size_t(in.user[r])]));
        const bool ban_item =
            !item_iv.empty() && !in_any(item_iv, double(item_count[size_t(in.item[r])]));
        if (ban_user || ban_item) keep[r] = 0, changed = true;
      }
      if (!changed) break;
    }
  }
  size_t kept = 0;
  for (uint8_t k : keep) kept += k;
  if (kept == n) return;
  d.report.filtered += int64_t(n - kept);

  std::vector<uint8_t> item_had_rows(n_items, 0);
  for (int32_t i : in.item) item_had_rows[size_t(i)] = 1;
  keep_rows(d, keep);
  std::vector<uint8_t> user_keep(n_users, 0), item_keep(n_items, 0);
  for (size_t r = 0; r < in.user.size(); ++r)
    user_keep[size_t(in.user[r])] = 1, item_keep[size_t(in.item[r])] = 1;

  // Negatives lines follow their test row; items that never had rows (named only by negatives)
  // stay.
  FileNegatives& fn = d.negatives;
  std::vector<uint8_t> keep_line(fn.user.size(), 0);
  if (!fn.empty()) {
    std::unordered_set<uint64_t> test_pairs;
    for (size_t r = 0; r < in.user.size(); ++r)
      if (d.role.empty() || d.role[r] == kRoleTest)
        test_pairs.insert(uint64_t(uint32_t(in.user[r])) << 32 | uint32_t(in.item[r]));
    for (size_t l = 0; l < fn.user.size(); ++l) {
      keep_line[l] =
          test_pairs.count(uint64_t(uint32_t(fn.user[l])) << 32 | uint32_t(fn.positive[l])) > 0;
      if (!keep_line[l]) continue;
      for (int64_t j = fn.offsets[l]; j < fn.offsets[l + 1]; ++j) {
        const size_t it = size_t(fn.negatives[size_t(j)]);
        if (!item_had_rows[it]) item_keep[it] = 1;
      }
    }
  }
  const std::vector<int32_t> user_to = densify(in.users, user_keep);
  const std::vector<int32_t> item_to = densify(in.items, item_keep);
  for (int32_t& u : in.user) u = user_to[size_t(u)];
  for (int32_t& i : in.item) i = item_to[size_t(i)];
  if (!fn.empty()) rebuild_negatives(fn, keep_line, user_to, item_to);
}

}  // namespace convncf
