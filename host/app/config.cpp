// config.cpp: the run configuration (see config.hpp): the key table, the preset table, the
// command-line parser, a small YAML-subset reader and the YAML writer.
// Tested by tests/test_config.cpp (preset defaults, precedence, every error path, the YAML
// reader's corner cases and the to_yaml -> --config round trip).
//
// Two tables drive everything, so help text, parsing, printing and defaults cannot drift apart:
//   key_table()        one KeySpec per key: how to parse, print and copy it, and what it means;
//   preset_defaults()  the defaults of a preset for a model (and the synthetic-data demo).
// No YAML library: the files hold RecBole-style settings (`key: value`, lists, and the nested
// maps RecBole uses: eval_args, load_col, val_interval, neg_sampling), and a small reader that
// rejects everything else with file:line is easier to trust than a dependency. Nested maps are
// flattened to dotted keys: `eval_args: {mode: full}` is the key eval_args.mode.
#include "convncf/config.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <sstream>

#include "convncf/errors.hpp"
#include "convncf/util.hpp"

namespace convncf {

namespace {
std::string trimmed(const std::string& s) { return std::string(trim(s)); }
}  // namespace


namespace {

// The built-in synthetic data set is small, so its demo run is short and evaluates every epoch;
// these apply only where the user did not set the key.
const char* const kSyntheticDataset = "synthetic";
constexpr int kSyntheticEpochs = 10;
constexpr int kSyntheticEvalStep = 5;
constexpr int kSyntheticPretrainEpochs = kSyntheticEpochs;

// A value as written: a scalar or a list of scalars (flow `[a, b]` or a YAML block list).
struct Value {
  bool is_list = false;
  bool is_null = false;  // YAML `key:` with nothing after it, or `~` / `null`
  std::string scalar;
  std::vector<std::string> items;
  std::string shown;  // as the user wrote it, for error messages
  std::string sub;    // the rest of a dotted key under a key that takes one (eval_args.split.RS)
};

// One key=value from a file (line > 0) or the command line (file empty).
struct Entry {
  std::string key;
  Value value;
  std::string file;
  int line = 0;
};

std::string where(const std::string& file, int line) {
  return file.empty() ? std::string() : file + ":" + std::to_string(line) + ": ";
}

// Thrown by the value parsers with what was expected; apply_entry adds key, value and origin.
struct BadValue {
  std::string expected;
};

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// ---- scalar parsers (strict: the whole text must be the number) ----

std::optional<int64_t> to_int64(const std::string& s) {
  const char* b = s.data();
  const char* e = b + s.size();
  if (b != e && *b == '+') ++b;  // from_chars takes '-' but not '+'
  int64_t v = 0;
  const auto r = std::from_chars(b, e, v);
  if (b == e || r.ec != std::errc() || r.ptr != e) return std::nullopt;
  return v;
}

std::optional<double> to_double(const std::string& s) {
  const char* b = s.data();
  const char* e = b + s.size();
  if (b != e && *b == '+') ++b;
  double v = 0;
  // from_chars, unlike strtod, ignores the C locale, so "0.5" reads the same everywhere
  const auto r = std::from_chars(b, e, v);
  if (b == e || r.ec != std::errc() || r.ptr != e || !std::isfinite(v)) return std::nullopt;
  return v;
}

const std::string& scalar_of(const Value& v, const std::string& expected) {
  if (v.is_list || v.is_null) throw BadValue{expected};
  return v.scalar;
}

// Digits with an optional sign: an integer, whatever its size.
bool integer_text(const std::string& s) {
  const size_t b = !s.empty() && (s[0] == '+' || s[0] == '-') ? 1 : 0;
  return s.size() > b && std::all_of(s.begin() + std::ptrdiff_t(b), s.end(),
                                     [](char c) { return c >= '0' && c <= '9'; });
}

// An integer in [lo, hi]; one beyond the range is told the range, anything else `expected`.
int64_t int_in(const Value& v, int64_t lo, int64_t hi, const std::string& expected) {
  const std::string& s = scalar_of(v, expected);
  const auto x = to_int64(s);
  if (x && *x >= lo && *x <= hi) return *x;
  if (integer_text(s) && (!x || *x > hi) && s[0] != '-')
    throw BadValue{"an integer from " + std::to_string(lo) + " to " + std::to_string(hi)};
  throw BadValue{expected};
}

// Any double for which ok(x) holds.
double double_if(const Value& v, const std::function<bool(double)>& ok, const std::string& expected) {
  const auto x = to_double(scalar_of(v, expected));
  if (!x || !ok(*x)) throw BadValue{expected};
  return *x;
}

bool bool_of(const Value& v) {
  const std::string s = lower(scalar_of(v, "true or false"));
  if (s == "true") return true;
  if (s == "false") return false;
  throw BadValue{"true or false"};
}

// A YAML null, also as written on the command line (~, null or nothing).
bool nullish(const Value& v) {
  return v.is_null || (!v.is_list && (v.scalar.empty() || v.scalar == "~" || lower(v.scalar) == "null"));
}

std::string string_of(const Value& v) {
  if (v.is_list) throw BadValue{"a string, not a list"};
  return v.is_null ? std::string() : v.scalar;
}

std::vector<int> int_list(const Value& v, bool scalar_ok, int lo, const std::string& expected) {
  std::vector<std::string> texts;
  if (v.is_list) texts = v.items;
  else if (scalar_ok && !v.is_null) texts = {v.scalar};
  else throw BadValue{expected};
  std::vector<int> out;
  for (const std::string& t : texts) {
    const auto x = to_int64(t);
    if (!x || *x < lo || *x > INT_MAX) throw BadValue{expected};
    out.push_back(int(*x));
  }
  return out;
}

std::vector<double> nonneg_double_list(const Value& v, const std::string& expected) {
  if (!v.is_list) throw BadValue{expected};
  std::vector<double> out;
  for (const std::string& t : v.items) {
    const auto x = to_double(t);
    if (!x || *x < 0) throw BadValue{expected};
    out.push_back(*x);
  }
  return out;
}

// ---- enums: names as accepted, printed as the first name ----

ModelKind model_of(const Value& v) {
  const std::string e = "ConvNCF, BPR (also MF, MF-BPR) or Pop";
  const std::string s = lower(scalar_of(v, e));
  if (s == "convncf") return ModelKind::ConvNCF;
  if (s == "bpr" || s == "mf" || s == "mf-bpr" || s == "mf_bpr") return ModelKind::BPR;
  if (s == "pop") return ModelKind::Pop;
  throw BadValue{e};
}
std::string text_of(ModelKind m) {
  return m == ModelKind::ConvNCF ? "ConvNCF" : m == ModelKind::BPR ? "BPR" : "Pop";
}

// Table-driven case-insensitive enum parse.
template <typename E>
E enum_of(const Value& v, std::initializer_list<std::pair<const char*, E>> names) {
  std::string e;
  for (const auto& n : names) e += (e.empty() ? "" : " | ") + std::string(n.first);
  const std::string s = lower(scalar_of(v, e));
  for (const auto& n : names)
    if (s == n.first) return n.second;
  throw BadValue{e};
}
std::string text_of(Preset p) { return p == Preset::RecBole ? "recbole" : "paper"; }
std::string text_of(Learner l) {
  return l == Learner::SGD ? "sgd" : l == Learner::Adagrad ? "adagrad" : "adam";
}
std::string text_of(RegType r) { return r == RegType::Norm ? "norm" : "squared"; }
std::string text_of(InitKind i) { return i == InitKind::PyTorch ? "pytorch" : "paper"; }
std::string text_of(Device d) {
  return d == Device::Auto ? "auto" : d == Device::Cpu ? "cpu" : "cuda";
}

// ---- printing (YAML; read back by the reader below, and plain enough for PyYAML) ----

std::string text_of(int64_t x) { return std::to_string(x); }
std::string text_of(int x) { return std::to_string(x); }
std::string text_of(uint64_t x) { return std::to_string(x); }
std::string text_of(bool b) { return b ? "true" : "false"; }

// Shortest text that reads back to the same double (to_chars' guarantee). PyYAML reads
// "1e-10" as a string, so exponent forms get a ".0" mantissa as yaml.dump writes them.
std::string text_of(double x) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, x);
  std::string s(buf, r.ptr);
  const size_t e = s.find('e');
  if (e != std::string::npos && s.find('.') == std::string::npos) s.insert(e, ".0");
  return s;
}

template <typename T>
std::string list_text(const std::vector<T>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + text_of(v[i]);
  return s + "]";
}
std::string text_of(const std::vector<int>& v) { return list_text(v); }
std::string text_of(const std::vector<double>& v) { return list_text(v); }
std::string text_of(const std::vector<std::string>& v);

// Whether a YAML reader would not read `s` back as this exact plain string.
bool needs_quotes(const std::string& s) {
  if (s.empty() || s != trimmed(s)) return true;
  if (std::string("[]{}#&*!|>'\"%@`,?:-~").find(s[0]) != std::string::npos) return true;
  if (s.find(": ") != std::string::npos || s.find(" #") != std::string::npos || s.back() == ':')
    return true;
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  const std::string l = lower(s);
  for (const char* w : {"true", "false", "null", "yes", "no", "on", "off"})
    if (l == w) return true;
  return to_double(s).has_value() || to_int64(s).has_value();
}

std::string text_of(const std::string& s) {
  if (!needs_quotes(s)) return s;
  std::string q = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') q += std::string("\\") + c;
    else if (c == '\n') q += "\\n";
    else if (c == '\t') q += "\\t";
    else if (c == '\r') q += "\\r";
    else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      q += buf;
    } else q += c;
  }
  return q + "\"";
}

// ---- the key table ----

struct KeySpec {
  std::string name;
  std::string meaning;
  bool takes_raw_string;  // on the command line the value is taken verbatim (paths, names)
  bool takes_sub = false; // the key is a map: NAME.SUB entries reach parse with Value::sub
  std::function<void(Config&, const Value&)> parse;
  std::function<std::string(const Config&)> print;
  std::function<void(Config&, const Config&)> copy;
};

// A key stored in member `m`: parse with `parse`, print with text_of, copy by assignment.
template <typename T>
KeySpec field(const char* name, T Config::*m, std::function<T(const Value&)> parse,
              const char* meaning, bool raw_string = false) {
  return KeySpec{name,
                 meaning,
                 raw_string,
                 false,
                 [m, parse](Config& c, const Value& v) { c.*m = parse(v); },
                 [m](const Config& c) { return text_of(c.*m); },
                 [m](Config& d, const Config& s) { d.*m = s.*m; }};
}

std::function<int(const Value&)> int_at_least(int lo) {
  return [lo](const Value& v) {
    return int(int_in(v, lo, INT_MAX, lo == 0 ? "an integer >= 0" : "an integer >= " + std::to_string(lo)));
  };
}
std::function<int64_t(const Value&)> int64_positive() {
  return [](const Value& v) { return int_in(v, 1, std::numeric_limits<int64_t>::max(), "an integer > 0"); };
}
std::function<double(const Value&)> positive_double() {
  return [](const Value& v) { return double_if(v, [](double x) { return x > 0; }, "a number > 0"); };
}
std::function<double(const Value&)> nonneg_double() {
  return [](const Value& v) { return double_if(v, [](double x) { return x >= 0; }, "a number >= 0"); };
}
std::function<std::vector<int>(const Value&)> positive_int_list(const std::string& example) {
  return [example](const Value& v) { return int_list(v, false, 1, "a list of integers > 0 like " + example); };
}

// eval_mode: "uniN", N in 1..INT32_MAX (candidate lists are indexed with int32).
std::optional<int64_t> uni_negatives(const std::string& mode) {
  const std::string s = lower(mode);
  if (s.size() < 4 || s.compare(0, 3, "uni") != 0) return std::nullopt;
  const std::string n = s.substr(3);
  if (!std::all_of(n.begin(), n.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
    return std::nullopt;
  const auto x = to_int64(n);
  if (!x || *x < 1 || *x > INT32_MAX) return std::nullopt;
  return x;
}

// An evaluation mode: full, uniN, popN (N a positive integer) or file; normalized.
std::string mode_of(const std::string& text) {
  const std::string e = "full, uniN, popN (N a positive integer, e.g. uni999) or file";
  const std::string s = lower(text);
  if (s == "full" || s == "file") return s;
  const std::string kind = s.substr(0, 3);
  if (kind != "uni" && kind != "pop") throw BadValue{e};
  const auto n = uni_negatives("uni" + s.substr(3));
  if (!n) throw BadValue{e};
  return kind + std::to_string(*n);  // no leading zeros
}

// eval_args.mode: one mode for both, or {valid: MODE, test: MODE}.
void parse_eval_mode(Config& c, const Value& v) {
  if (v.sub.empty()) {
    c.eval_mode_valid = c.eval_mode_test = mode_of(scalar_of(v, "a mode"));
    if (c.eval_mode_test == "file") c.eval_mode_valid = "full";  // the file's negatives are the test's only
  } else if (v.sub == "valid") {
    c.eval_mode_valid = mode_of(scalar_of(v, "a mode"));
  } else if (v.sub == "test") {
    c.eval_mode_test = mode_of(scalar_of(v, "a mode"));
  } else {
    throw BadValue{"full, uniN, popN or file, or a map {valid: MODE, test: MODE}"};
  }
  if (c.eval_mode_valid == "file") throw BadValue{"a mode other than file for validation (the .test.negative file holds test negatives only)"};
}
std::string print_eval_mode(const Config& c) {
  if (c.eval_mode_valid == c.eval_mode_test) return c.eval_mode_test;
  return "{valid: " + c.eval_mode_valid + ", test: " + c.eval_mode_test + "}";
}

// eval_args.split: {RS: [train, valid, test]} or {LS: valid_and_test | test_only}.
void parse_split(Config& c, const Value& v) {
  const std::string e = "{RS: [0.8, 0.1, 0.1]} or {LS: valid_and_test} (or LS: test_only)";
  if (v.sub == "RS") {
    std::vector<double> r = nonneg_double_list(v, "a list of 2 or 3 numbers >= 0 like [0.8, 0.1, 0.1]");
    double sum = 0;
    for (double x : r) sum += x;
    if (r.size() < 2 || r.size() > 3 || !(sum > 0)) throw BadValue{"a list of 2 or 3 numbers >= 0 like [0.8, 0.1, 0.1], not all 0"};
    c.split = "RS";
    c.split_ratios = r;
  } else if (v.sub == "LS") {
    const std::string s = lower(scalar_of(v, e));
    if (s != "valid_and_test" && s != "test_only") throw BadValue{"valid_and_test or test_only"};
    c.split = "LS";
    c.split_ls = s;
  } else {
    throw BadValue{e};
  }
}
std::string print_split(const Config& c) {
  return c.split == "RS" ? "{RS: " + text_of(c.split_ratios) + "}" : "{LS: " + c.split_ls + "}";
}

// RecBole's interval strings: "[a,b]", "(a,b)", "[a,inf)" ... on the number line.
std::string interval_of(const Value& v) {
  const std::string e = "an interval like \"[3,inf)\" or \"(0,5]\", or null";
  if (nullish(v)) return "";
  std::string s = scalar_of(v, e);
  s.erase(std::remove(s.begin(), s.end(), ' '), s.end());
  if (s.size() < 5 || (s[0] != '[' && s[0] != '(') || (s.back() != ']' && s.back() != ')')) throw BadValue{e};
  const size_t comma = s.find(',');
  if (comma == std::string::npos) throw BadValue{e};
  auto bound = [&](const std::string& t) {
    const std::string l = lower(t);
    if (l == "inf" || l == "+inf" || l == "-inf") return;
    if (!to_double(t)) throw BadValue{e};
  };
  bound(s.substr(1, comma - 1));
  bound(s.substr(comma + 1, s.size() - comma - 2));
  return s;
}

std::vector<std::string> string_list(const Value& v) {
  if (v.is_null) return {};
  if (!v.is_list) return {v.scalar};
  return v.items;
}
std::string text_of(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + text_of(v[i]);
  return s + "]";
}

std::string parse_valid_metric(const Value& v) {
  const std::string e = "auc or NAME@K with NAME in hit, ndcg, mrr, recall, precision and K > 0, e.g. mrr@10";
  const std::string s = lower(scalar_of(v, e));
  if (s == "auc") return s;
  const size_t at = s.find('@');
  if (at == std::string::npos) throw BadValue{e};
  const std::string name = s.substr(0, at), k = s.substr(at + 1);
  const bool name_ok = name == "hit" || name == "ndcg" || name == "mrr" || name == "recall" || name == "precision";
  const auto kv = to_int64(k);
  if (!name_ok || !kv || *kv < 1 || *kv > INT_MAX || k[0] == '+') throw BadValue{e};
  return name + "@" + std::to_string(*kv);
}

std::string parse_train_method(const Value& v) {
  const std::string e = "no_pretrain | after_pretrain";
  const std::string s = lower(scalar_of(v, e));
  if (s != "no_pretrain" && s != "after_pretrain") throw BadValue{e};
  return s;
}

const std::vector<KeySpec>& key_table() {
  static const std::vector<KeySpec> table = [] {
    std::vector<KeySpec> t;
    // model
    t.push_back(field<ModelKind>("model", &Config::model, model_of,
        "model to train: ConvNCF, BPR (MF-BPR, its usual pretraining) or Pop (popularity) "
        "(RecBole: model name)"));
    t.push_back(field<Preset>("preset", &Config::preset,
        [](const Value& v) { return enum_of<Preset>(v, {{"recbole", Preset::RecBole}, {"paper", Preset::Paper}}); },
        "defaults for unset keys: recbole (RecBole's ConvNCF.yaml) or paper (the official TF code); "
        "read first from all sources"));
    t.push_back(field<int>("embedding_size", &Config::embedding_size, int_at_least(1),
        "size E of user and item embeddings; the interaction map is E x E (RecBole: embedding_size)"));
    t.push_back(field<std::vector<int>>("cnn_channels", &Config::cnn_channels, positive_int_list("[1, 32, 32, 32, 32]"),
        "channels per feature map, input first (1); one more entry than cnn_kernels (RecBole: cnn_channels)"));
    t.push_back(field<std::vector<int>>("cnn_kernels", &Config::cnn_kernels, positive_int_list("[4, 4, 2, 2]"),
        "kernel size of each conv layer (RecBole: cnn_kernels)"));
    t.push_back(field<std::vector<int>>("cnn_strides", &Config::cnn_strides, positive_int_list("[4, 4, 2, 2]"),
        "stride of each conv layer, equal to its kernel (RecBole: cnn_strides)"));
    t.push_back(field<double>("dropout_prob", &Config::dropout_prob,
        [](const Value& v) { return double_if(v, [](double x) { return x >= 0 && x < 1; }, "a number in [0, 1)"); },
        "dropout before the output layer, training only (RecBole: dropout_prob)"));
    t.push_back(field<InitKind>("init", &Config::init,
        [](const Value& v) { return enum_of<InitKind>(v, {{"pytorch", InitKind::PyTorch}, {"paper", InitKind::Paper}}); },
        "initialization: pytorch (RecBole's PyTorch defaults) or paper (truncated normals of the official code)"));
    // loss
    t.push_back(field<std::vector<double>>("reg_weights", &Config::reg_weights,
        [](const Value& v) { return nonneg_double_list(v, "a list of numbers >= 0 like [0.1, 0.1]"); },
        "regularization: norm [embeddings, network] (RecBole: reg_weights); squared [l1, l2, l3] of the paper; "
        "BPR: [0] under recbole, [0.01] under paper (one weight: MF-BPR has no network)"));
    t.push_back(field<RegType>("reg_type", &Config::reg_type,
        [](const Value& v) { return enum_of<RegType>(v, {{"norm", RegType::Norm}, {"squared", RegType::Squared}}); },
        "norm: RecBole's whole-table Frobenius norms; squared: the paper's squared norms of batch rows"));
    // optimization
    t.push_back(field<Learner>("learner", &Config::learner,
        [](const Value& v) {
          return enum_of<Learner>(v, {{"sgd", Learner::SGD}, {"adagrad", Learner::Adagrad}, {"adam", Learner::Adam}});
        },
        "optimizer: sgd | adagrad | adam (RecBole: learner)"));
    t.push_back(field<double>("learning_rate", &Config::learning_rate, positive_double(),
        "step size of the network, and of the embeddings unless embedding_learning_rate is set "
        "(RecBole: learning_rate)"));
    t.push_back(field<double>("embedding_learning_rate", &Config::embedding_learning_rate,
        [](const Value& v) {
          return double_if(v, [](double x) { return x != 0; }, "a number > 0, or < 0 for 'same as learning_rate'");
        },
        "step size of the embeddings; < 0: same as learning_rate (the paper uses two optimizers)"));
    t.push_back(field<double>("weight_decay", &Config::weight_decay, nonneg_double(),
        "L2 penalty added to every gradient, PyTorch style (RecBole: weight_decay)"));
    t.push_back(field<double>("adagrad_initial_accumulator", &Config::adagrad_initial_accumulator, nonneg_double(),
        "Adagrad's starting accumulator: 0 in PyTorch, 0.1 in TensorFlow"));
    t.push_back(field<double>("adagrad_eps", &Config::adagrad_eps, nonneg_double(),
        "Adagrad's epsilon: 1e-10 in PyTorch, 0 in TensorFlow"));
    t.push_back(field<int>("warmup_epochs", &Config::warmup_epochs, int_at_least(0),
        "first epochs trained by Adagrad(warmup_learning_rate) without regularization, as the official code"));
    t.push_back(field<double>("warmup_learning_rate", &Config::warmup_learning_rate, positive_double(),
        "step size of the warm-up epochs"));
    t.push_back(field<int64_t>("train_batch_size", &Config::train_batch_size, int64_positive(),
        "(user, positive, negative) triples per step (RecBole: train_batch_size)"));
    t.push_back(field<bool>("drop_last_batch", &Config::drop_last_batch, bool_of,
        "drop each epoch's last partial batch, as the official code"));
    t.push_back(field<std::string>("train_neg_sample_args.distribution", &Config::neg_distribution,
        [](const Value& v) {
          const std::string e = "uniform or popularity (distribution none, training without negatives, is not "
                                "supported: ConvNCF and BPR train on (user, positive, negative) triples)";
          if (nullish(v)) throw BadValue{e};
          return enum_of<std::string>(v, {{"uniform", "uniform"}, {"popularity", "popularity"}});
        },
        "where training negatives come from: uniform over the items the user has not trained on, or popularity "
        "(in proportion to count^alpha, counted over all interactions of the split as RecBole counts them) "
        "(RecBole: train_neg_sample_args distribution; neg_sampling: {uniform: N} is the older form)"));
    t.push_back(field<int>("train_neg_sample_args.sample_num", &Config::neg_sample_num,
        [](const Value& v) { return int(int_in(v, 1, 1 << 20, "an integer >= 1 (sample_num none is not supported)")); },
        "negatives per positive: each positive makes this many triples, and a batch holds "
        "max(train_batch_size / sample_num, 1) positives, as RecBole's TrainDataLoader (RecBole: sample_num)"));
    t.push_back(field<double>("train_neg_sample_args.alpha", &Config::neg_alpha,
        [](const Value& v) { return double_if(v, [](double x) { return std::fabs(x) <= 16; }, "a number in [-16, 16]"); },
        "popularity: the exponent of the counts (RecBole: alpha)"));
    t.push_back(field<bool>("train_neg_sample_args.dynamic", &Config::neg_dynamic, bool_of,
        "each negative is the highest-scoring of candidate_num drawn candidates under the current model "
        "(RecBole's dynamic negative sampling; the CPU engine only) (RecBole: dynamic)"));
    t.push_back(field<int>("train_neg_sample_args.candidate_num", &Config::neg_candidate_num, int_at_least(0),
        "candidates per negative when dynamic (RecBole: candidate_num)"));
    t.push_back(field<int>("epochs", &Config::epochs, int_at_least(0),
        "training epochs (RecBole: epochs); 10 on the built-in synthetic data; BPR under paper: 500"));
    t.push_back(field<uint64_t>("seed", &Config::seed,
        [](const Value& v) {
          const std::string e = "an integer >= 0";
          const std::string& s = scalar_of(v, e);
          uint64_t x = 0;
          const auto r = std::from_chars(s.data(), s.data() + s.size(), x);
          if (!s.empty() && r.ec == std::errc::result_out_of_range && r.ptr == s.data() + s.size())
            throw BadValue{"an integer from 0 to " + std::to_string(std::numeric_limits<uint64_t>::max())};
          if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size()) throw BadValue{e};
          return x;
        },
        "random seed of initialization, sampling and dropout (RecBole: seed)"));
    t.push_back(field<std::string>("train_method", &Config::train_method, parse_train_method,
        "no_pretrain, or after_pretrain: start from pre_model_path's MF-BPR embeddings (RecBole: train_method)"));
    t.push_back(field<std::string>("pre_model_path", &Config::pre_model_path, string_of,
        "run folder of an MF-BPR training (model: BPR) for after_pretrain (RecBole: pre_model_path); "
        "empty: the run trains its MF-BPR stage first", true));
    t.push_back(field<int>("pretrain_epochs", &Config::pretrain_epochs, int_at_least(0),
        "after_pretrain without pre_model_path: epochs of the MF-BPR stage (MF-BPR's preset epochs; "
        "4 on the built-in synthetic data)"));
    t.push_back(field<double>("pretrain_learning_rate", &Config::pretrain_learning_rate, positive_double(),
        "after_pretrain without pre_model_path: learning rate of the MF-BPR stage, embeddings included "
        "(MF-BPR's preset learning_rate)"));
    // evaluation
    t.push_back(KeySpec{"eval_args.split",
        "RS: ratio split per user [train, valid, test] | LS: leave-one-out (valid_and_test or test_only) "
        "(RecBole: eval_args split)", false, true, parse_split, print_split,
        [](Config& d, const Config& s) { d.split = s.split; d.split_ratios = s.split_ratios; d.split_ls = s.split_ls; }});
    t.push_back(field<std::string>("eval_args.order", &Config::split_order,
        [](const Value& v) {
          const std::string u = scalar_of(v, "RO or TO");
          if (u != "RO" && u != "TO" && u != "ro" && u != "to") throw BadValue{"RO (random) or TO (by time)"};
          return std::string(u == "ro" ? "RO" : u == "to" ? "TO" : u);
        },
        "order before splitting: RO random (seeded), TO by time, ties in file order (RecBole: eval_args order)"));
    t.push_back(field<std::string>("eval_args.group_by", &Config::group_by,
        [](const Value& v) {
          if (lower(scalar_of(v, "user")) != "user") throw BadValue{"user (splits are per user)"};
          return std::string("user");
        },
        "splits are made per user (RecBole: eval_args group_by)"));
    t.push_back(KeySpec{"eval_args.mode",
        "full: rank every item, training items masked | uniN / popN: N sampled negatives per held-out item, "
        "uniform or by popularity | file: the .test.negative file's (test; validation then full); or {valid: MODE, test: MODE} "
        "(RecBole: eval_args mode; eval_mode is a short name for it)", false, true, parse_eval_mode, print_eval_mode,
        [](Config& d, const Config& s) { d.eval_mode_valid = s.eval_mode_valid; d.eval_mode_test = s.eval_mode_test; }});
    t.push_back(field<std::string>("split_file", &Config::split_file, string_of,
        "read the split from this file (a run's split.tsv) instead of making one", true));
    t.push_back(KeySpec{"benchmark_filename",
        "RecBole's pre-split atomic files NAME.<suffix>.inter, e.g. [train, valid, test]: read as the split "
        "(no filters, as in RecBole); null: one NAME.inter, split by eval_args (RecBole: benchmark_filename)",
        false, false,
        [](Config& c, const Value& v) {
          const std::string e = "a list of three file suffixes [train, valid, test] (NAME.<suffix>.inter in the dataset "
                                "folder: the training, validation and test interactions, in that order), or null";
          if (nullish(v)) { c.benchmark_filename.clear(); return; }
          if (!v.is_list || v.items.size() != 3) throw BadValue{e};
          for (const std::string& s : v.items)
            if (s.empty() || s.find('/') != std::string::npos) throw BadValue{e};
          c.benchmark_filename = v.items;
        },
        [](const Config& c) { return c.benchmark_filename.empty() ? std::string("~") : text_of(c.benchmark_filename); },
        [](Config& d, const Config& s) { d.benchmark_filename = s.benchmark_filename; }});
    t.push_back(field<int64_t>("eval_batch_size", &Config::eval_batch_size, int64_positive(),
        "users per evaluation block x items scored at once is bounded by this many pairs (RecBole: eval_batch_size)"));
    t.push_back(field<int>("eval_step", &Config::eval_step, int_at_least(1),
        "validate every this many epochs (RecBole: eval_step); 1 on the built-in synthetic data"));
    t.push_back(field<int>("stopping_step", &Config::stopping_step, int_at_least(0),
        "stop after this many validations without improvement; 0: never (RecBole: stopping_step)"));
    t.push_back(field<std::string>("valid_metric", &Config::valid_metric, parse_valid_metric,
        "metric that picks the best epoch: hit|ndcg|mrr|recall|precision@K or auc, K in topk "
        "(RecBole: valid_metric)"));
    t.push_back(field<std::vector<int>>("topk", &Config::topk,
        [](const Value& v) { return int_list(v, true, 1, "an integer > 0 or a list of them like [5, 10, 20]"); },
        "cut-offs K of the reported metrics (RecBole: topk)"));
    t.push_back(field<std::vector<std::string>>("metrics", &Config::metrics,
        [](const Value& v) {
          std::vector<std::string> out;
          for (const std::string& m : string_list(v)) {
            const std::string l = lower(m);
            if (l != "hit" && l != "recall" && l != "precision" && l != "ndcg" && l != "mrr" && l != "auc")
              throw BadValue{"a list of Hit, Recall, Precision, NDCG, MRR, AUC"};
            out.push_back(l);
          }
          if (out.empty()) throw BadValue{"a non-empty list of Hit, Recall, Precision, NDCG, MRR, AUC"};
          return out;
        },
        "metrics printed at each evaluation (all are computed and written to metrics.jsonl) (RecBole: metrics)"));
    // data
    t.push_back(field<std::string>("dataset", &Config::dataset, string_of,
        "synthetic (built in), a data file or folder in any format of data_format, or a NAME under data_path "
        "(RecBole: dataset)", true));
    t.push_back(field<std::string>("data_path", &Config::data_path, string_of,
        "where a dataset given by NAME is looked up: DATA_PATH/NAME/ (RecBole: data_path)", true));
    t.push_back(field<std::string>("data_format", &Config::data_format,
        [](const Value& v) {
          return enum_of<std::string>(v, {{"auto", "auto"}, {"atomic", "atomic"}, {"ncf", "ncf"}, {"ngcf", "ngcf"},
                                          {"ml100k", "ml100k"}, {"ml1m", "ml1m"}, {"mlcsv", "mlcsv"}, {"csv", "csv"}});
        },
        "format of dataset: auto (from the file names), atomic, ncf, ngcf, ml100k, ml1m, mlcsv, csv"));
    t.push_back(field<std::string>("field_separator", &Config::field_separator, string_of,
        "column separator; empty: the format's own (RecBole: field_separator)", true));
    t.push_back(field<std::string>("USER_ID_FIELD", &Config::user_id_field, string_of, "user column (RecBole: USER_ID_FIELD)", true));
    t.push_back(field<std::string>("ITEM_ID_FIELD", &Config::item_id_field, string_of, "item column (RecBole: ITEM_ID_FIELD)", true));
    t.push_back(field<std::string>("RATING_FIELD", &Config::rating_field, string_of, "rating column (RecBole: RATING_FIELD)", true));
    t.push_back(field<std::string>("TIME_FIELD", &Config::time_field, string_of, "time column (RecBole: TIME_FIELD)", true));
    t.push_back(KeySpec{"load_col", "columns of the .inter file to load, {inter: [user_id, item_id, ...]}; "
        "null: all (RecBole: load_col)", false, true,
        [](Config& c, const Value& v) {
          if (v.sub.empty() && nullish(v)) { c.load_col.clear(); return; }
          if (v.sub == "inter") { c.load_col = string_list(v); return; }
          if (v.sub.empty()) throw BadValue{"a map {inter: [user_id, item_id, ...]}"};
          c.ignored_keys.insert("load_col." + v.sub);  // user/item feature files are not read
        },
        [](const Config& c) { return c.load_col.empty() ? std::string("~") : "{inter: " + text_of(c.load_col) + "}"; },
        [](Config& d, const Config& s) { d.load_col = s.load_col; }});
    t.push_back(field<std::string>("rm_dup_inter", &Config::rm_dup_inter,
        [](const Value& v) {
          if (v.is_null) return std::string("keep");  // RecBole's ~ keeps duplicates
          return enum_of<std::string>(v, {{"first", "first"}, {"last", "last"}, {"keep", "keep"}});
        },
        "duplicate (user, item) interactions: keep the first, the last (latest), or keep (all; RecBole's ~) "
        "(RecBole: rm_dup_inter)"));
    t.push_back(KeySpec{"val_interval", "keep interactions whose RATING is in an interval, {rating: \"[3,inf)\"}; "
        "null: all (RecBole: val_interval)", false, true,
        [](Config& c, const Value& v) {
          if (v.sub.empty() && nullish(v)) { c.val_interval.clear(); return; }
          if (v.sub.empty()) throw BadValue{"a map {FIELD: \"[low,high]\"} like {rating: \"[3,inf)\"}"};
          c.val_interval_field = v.sub;
          c.val_interval = interval_of(v);
        },
        [](const Config& c) { return c.val_interval.empty() ? std::string("~") : "{" + c.val_interval_field + ": \"" + c.val_interval + "\"}"; },
        [](Config& d, const Config& s) { d.val_interval = s.val_interval; d.val_interval_field = s.val_interval_field; }});
    t.push_back(field<std::string>("user_inter_num_interval", &Config::user_inter_num_interval, interval_of,
        "keep users whose interaction count is in this interval, like \"[5,inf)\"; null: all "
        "(RecBole: user_inter_num_interval)"));
    t.push_back(field<std::string>("item_inter_num_interval", &Config::item_inter_num_interval, interval_of,
        "keep items whose interaction count is in this interval; null: all (RecBole: item_inter_num_interval)"));
    // run
    t.push_back(field<Device>("device", &Config::device,
        [](const Value& v) {
          return enum_of<Device>(v, {{"auto", Device::Auto}, {"cpu", Device::Cpu}, {"cuda", Device::Cuda}});
        },
        "engine: auto (GPU if usable), cpu or cuda (RecBole: use_gpu)"));
    t.push_back(field<std::string>("engine", &Config::engine,
        [](const Value& v) { return enum_of<std::string>(v, {{"cudnn", "cudnn"}, {"fused", "fused"}}); },
        "cuda device: cudnn (layer by layer through cuDNN, maps in GPU memory) or fused (one kernel per "
        "pair runs the whole tower in shared memory; precision applies). The CPU engine ignores it"));
    t.push_back(field<std::string>("precision", &Config::precision,
        [](const Value& v) {
          return enum_of<std::string>(v, {{"fp32", "fp32"}, {"tf32", "tf32"}, {"bf16", "bf16"}});
        },
        "fused engine: input format of the products of conv layers 2..L: fp32, tf32 or bf16 (FP32 "
        "accumulation, FP32 master weights); layer 1 and everything else stay FP32. tf32 and bf16 need "
        "engine fused"));
    t.push_back(field<std::string>("sparse_grad", &Config::sparse_grad,
        [](const Value& v) {
          return enum_of<std::string>(v, {{"deterministic", "deterministic"}, {"fast", "fast"}});
        },
        "cuda engine: how a batch's embedding-row gradients are combined: deterministic (CUB sort and "
        "segmented sum, bit-reproducible) or fast (atomics; the last bits vary run to run)"));
    t.push_back(field<std::string>("embedding_update", &Config::embedding_update,
        [](const Value& v) { return enum_of<std::string>(v, {{"dense", "dense"}, {"lazy", "lazy"}}); },
        "cuda engine, Adam: dense (every embedding row's moments decay every step, as PyTorch) or lazy "
        "(only the batch's rows; needs a regularizer that touches only those rows). SGD and Adagrad: "
        "the same result either way"));
    t.push_back(field<bool>("verbose", &Config::verbose, bool_of,
        "also print engine details: the cuDNN execution plans chosen, memory sizes; also written as a bare --verbose"));
    t.push_back(field<std::string>("out", &Config::out, string_of,
        "run folder: new, empty, or an earlier stopped attempt of the same run; empty: runs/<model>-<timestamp> "
        "(RecBole: checkpoint_dir)", true));
    t.push_back(field<int>("threads", &Config::threads, int_at_least(0),
        "CPU threads; 0: OpenMP's default"));
    t.push_back(field<bool>("quiet", &Config::quiet, bool_of,
        "print only errors and warnings; also written as a bare --quiet"));
    t.push_back(field<bool>("show_progress", &Config::show_progress, bool_of,
        "a live progress line on a terminal (RecBole: show_progress)"));
    return t;
  }();
  return table;
}

const KeySpec* find_key(const std::string& name) {
  for (const KeySpec& k : key_table())
    if (k.name == name) return &k;
  return nullptr;
}

// The one preset table: struct defaults are recbole's; the paper column and the per-model and
// synthetic-data adjustments are written here and nowhere else.
Config preset_defaults(Preset preset, ModelKind model, bool synthetic) {
  Config c;  // recbole, as written in config.hpp
  c.preset = preset;
  c.model = model;
  if (preset == Preset::Paper) {
    c.cnn_channels = {1, 32, 32, 32, 32, 32, 32};
    c.cnn_kernels = {2, 2, 2, 2, 2, 2};
    c.cnn_strides = {2, 2, 2, 2, 2, 2};
    c.dropout_prob = 0.0;
    c.init = InitKind::Paper;
    c.reg_type = RegType::Squared;
    c.reg_weights = {0.01, 10, 1};
    c.learner = Learner::Adagrad;
    c.learning_rate = 0.05;
    c.embedding_learning_rate = 0.05;
    c.adagrad_initial_accumulator = 0.1;  // TensorFlow's Adagrad
    c.adagrad_eps = 0.0;
    c.warmup_epochs = 1;
    c.warmup_learning_rate = 0.01;
    c.train_batch_size = 512;
    c.drop_last_batch = true;
    c.epochs = 1500;
    c.eval_step = 100;
    c.stopping_step = 0;
    c.valid_metric = "ndcg@10";
    c.topk = {5, 10, 20};
    c.metrics = {"hit", "ndcg", "auc"};
    // the paper's protocol: leave-one-out by time, 999 sampled negatives
    c.split = "LS";
    c.split_ls = "valid_and_test";
    c.split_order = "TO";
    c.eval_mode_valid = c.eval_mode_test = "uni999";
    c.pretrain_epochs = 500;  // MF_BPR.py's
    c.pretrain_learning_rate = 0.05;
    if (model == ModelKind::BPR) {
      c.reg_weights = {0.01};  // MF_BPR.py: lambda on the batch's embedding rows only
      c.epochs = 500;
      c.warmup_epochs = 0;  // MF_BPR.py trains with one optimizer from the first epoch
    }
  } else if (model == ModelKind::BPR) {
    c.reg_weights = {0.0};  // RecBole's BPR has no regularization term (one weight: the embeddings')
  }
  if (synthetic) {
    c.epochs = kSyntheticEpochs;
    c.eval_step = kSyntheticEvalStep;
    c.pretrain_epochs = kSyntheticPretrainEpochs;
    // The README's main job: ConvNCF as the paper trains it, from MF-BPR embeddings trained in
    // the same run (README "Results on the synthetic data" says why it is not RecBole's
    // no_pretrain here).
    if (model == ModelKind::ConvNCF) c.train_method = "after_pretrain";
  }
  return c;
}

// ---- the YAML-subset reader ----

[[noreturn]] void yaml_error(const std::string& file, int line, const std::string& msg) {
  throw_usage(file + ":" + std::to_string(line) + ": " + msg);
}

// Reads a quoted scalar starting at s[i] (a quote); leaves i after the closing quote.
// Returns false with `err` set on a malformed one.
bool read_quoted(const std::string& s, size_t& i, std::string& out, std::string& err) {
  const char q = s[i++];
  out.clear();
  while (i < s.size()) {
    const char c = s[i++];
    if (q == '\'') {
      if (c != '\'') out += c;
      else if (i < s.size() && s[i] == '\'') out += '\'', ++i;  // '' is an escaped quote
      else return true;
    } else if (c == '"') {
      return true;
    } else if (c != '\\') {
      out += c;
    } else {
      if (i >= s.size()) break;
      const char e = s[i++];
      switch (e) {
        case '\\': out += '\\'; break;
        case '"': out += '"'; break;
        case '/': out += '/'; break;
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '0': out += '\0'; break;
        case 'x': {
          unsigned v = 0;
          const auto r = i + 2 <= s.size() ? std::from_chars(s.data() + i, s.data() + i + 2, v, 16)
                                           : std::from_chars_result{nullptr, std::errc::invalid_argument};
          if (r.ec != std::errc() || r.ptr != s.data() + i + 2) {
            err = "bad \\x escape in a double-quoted string";
            return false;
          }
          out += char(v);
          i += 2;
          break;
        }
        default:
          err = std::string("unknown escape \\") + e + " in a double-quoted string (use single quotes for backslashes)";
          return false;
      }
    }
  }
  err = "unterminated quoted string";
  return false;
}

// True when the rest of s from i is blank or a comment.
bool rest_is_blank(const std::string& s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return i == s.size() || s[i] == '#';
}

// A plain scalar ends at a comment: '#' after whitespace.
std::string plain_until_comment(const std::string& s, size_t i) {
  size_t e = i;
  while (e < s.size() && !(s[e] == '#' && e > i && (s[e - 1] == ' ' || s[e - 1] == '\t'))) ++e;
  return trimmed(s.substr(i, e - i));
}

// Parses a flow list "[a, 'b', c]" on one line, starting at s[i] == '['; leaves i after ']'.
bool read_flow_list(const std::string& s, size_t& i, std::vector<std::string>& items, std::string& err) {
  ++i;  // '['
  items.clear();
  bool expect_item = true;  // at the start or after a comma
  while (true) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    if (i >= s.size() || s[i] == '#') {
      err = "unterminated list: a flow list must close with ']' on the same line";
      return false;
    }
    const char c = s[i];
    if (c == ']') {
      if (expect_item && !items.empty()) {
        err = "empty item in a list";
        return false;
      }
      ++i;
      return true;
    }
    if (c == ',') {
      err = "empty item in a list";
      return false;
    }
    if (!expect_item) {
      err = "expected ',' or ']' in a list";
      return false;
    }
    if (c == '[' || c == '{') {
      err = "nested lists and mappings are not supported";
      return false;
    }
    std::string item;
    if (c == '\'' || c == '"') {
      if (!read_quoted(s, i, item, err)) return false;
    } else {
      const size_t b = i;
      while (i < s.size() && s[i] != ',' && s[i] != ']' && s[i] != '[' && s[i] != '{' && s[i] != '}' &&
             !(s[i] == '#' && (s[i - 1] == ' ' || s[i - 1] == '\t')))
        ++i;
      item = trimmed(s.substr(b, i - b));
    }
    items.push_back(item);
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    if (i < s.size() && s[i] == ',') {
      ++i;
      expect_item = true;
    } else {
      expect_item = false;
    }
  }
}

std::string shown_list(const std::vector<std::string>& items) {
  std::string s = "[";
  for (size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + items[i];
  return s + "]";
}

// A flow map "{a: 1, b: [2, 3], c: {d: x}}" starting at s[i] == '{', flattened to dotted keys
// under `prefix` ("eval_args." ...) into `out`; leaves i after '}'.
bool read_flow_map(const std::string& s, size_t& i, const std::string& prefix,
                   std::vector<std::pair<std::string, Value>>& out, std::string& err, int depth = 0) {
  if (depth > 4) {
    err = "mappings nested too deeply";
    return false;
  }
  ++i;  // '{'
  bool first = true;
  while (true) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    if (i >= s.size() || s[i] == '#') {
      err = "unterminated mapping: a flow mapping must close with '}' on the same line";
      return false;
    }
    if (s[i] == '}') {
      if (!first) {
        err = "empty entry in a mapping";
        return false;
      }
      ++i;
      return true;
    }
    std::string key;
    if (s[i] == '\'' || s[i] == '"') {
      if (!read_quoted(s, i, key, err)) return false;
    } else {
      const size_t b = i;
      while (i < s.size() && s[i] != ':' && s[i] != ',' && s[i] != '}' && s[i] != '{' && s[i] != '[') ++i;
      key = trimmed(s.substr(b, i - b));
    }
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    if (key.empty() || i >= s.size() || s[i] != ':') {
      err = "expected 'key: value' in a mapping";
      return false;
    }
    ++i;
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    Value v;
    if (i < s.size() && s[i] == '{') {
      if (!read_flow_map(s, i, prefix + key + ".", out, err, depth + 1)) return false;
    } else {
      if (i < s.size() && s[i] == '[') {
        if (!read_flow_list(s, i, v.items, err)) return false;
        v.is_list = true;
        v.shown = shown_list(v.items);
      } else if (i < s.size() && (s[i] == '\'' || s[i] == '"')) {
        if (!read_quoted(s, i, v.scalar, err)) return false;
        v.shown = v.scalar;
      } else {
        const size_t b = i;
        while (i < s.size() && s[i] != ',' && s[i] != '}') ++i;
        v.scalar = trimmed(s.substr(b, i - b));
        if (v.scalar.empty() || v.scalar == "~" || lower(v.scalar) == "null") {
          v.is_null = true;
          v.scalar.clear();
        }
        v.shown = v.scalar;
      }
      out.emplace_back(prefix + key, v);
    }
    first = false;
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    if (i < s.size() && s[i] == ',') {
      ++i;
      continue;
    }
    if (i < s.size() && s[i] == '}') {
      ++i;
      return true;
    }
    err = "expected ',' or '}' in a mapping";
    return false;
  }
}

// The value after "key:" or "- " in a file. Empty text (or only a comment) gives a null value.
// Returns false with err set when the value is something this subset does not read.
bool read_yaml_value(const std::string& s, size_t i, bool in_list_item, Value& v, std::string& err) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  v = Value{};
  if (rest_is_blank(s, i)) {
    v.is_null = true;
    return true;
  }
  const char c = s[i];
  if (c == '\'' || c == '"') {
    if (!read_quoted(s, i, v.scalar, err)) return false;
    if (!rest_is_blank(s, i)) {
      err = "unexpected text after a quoted string";
      return false;
    }
    v.shown = v.scalar;
    return true;
  }
  if (c == '[') {
    if (in_list_item) {
      err = "nested lists are not supported";
      return false;
    }
    if (!read_flow_list(s, i, v.items, err)) return false;
    if (!rest_is_blank(s, i)) {
      err = "unexpected text after a list";
      return false;
    }
    v.is_list = true;
    v.shown = shown_list(v.items);
    return true;
  }
  if (c == '{') {
    err = "nested mappings are not supported";
    return false;
  }
  if (c == '|' || c == '>') {
    err = "block scalars (| and >) are not supported";
    return false;
  }
  if (c == '&' || c == '*' || c == '!' || c == '%' || c == '@' || c == '`') {
    err = std::string("'") + c + "' (anchors, aliases, tags and reserved characters) is not supported";
    return false;
  }
  if (c == '-' && (i + 1 == s.size() || s[i + 1] == ' ')) {
    err = in_list_item ? "nested lists are not supported" : "a list must start on its own line under 'key:'";
    return false;
  }
  v.scalar = plain_until_comment(s, i);
  if (v.scalar.find(": ") != std::string::npos || v.scalar.back() == ':') {
    err = "nested mappings are not supported";
    return false;
  }
  if (v.scalar == "~" || v.scalar == "null" || v.scalar == "Null" || v.scalar == "NULL") {
    v.is_null = true;
    v.scalar.clear();
  }
  v.shown = v.scalar;
  return true;
}

bool is_key_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
}

std::string canonical_key(const std::string& key);

// The keys of one file, by canonical dotted name: a second setting of one is refused with both
// lines (a YAML loader would keep the last silently).
class SeenKeys {
 public:
  explicit SeenKeys(const std::string& path) : m_path(path) {}
  void add(const std::string& key, int line) {
    const auto [it, added] = m_first.emplace(canonical_key(key), std::make_pair(line, key));
    if (added) return;
    yaml_error(m_path, line, "key '" + key + "' is set twice in this file (first at line " +
                                 std::to_string(it->second.first) +
                                 (it->second.second != key ? " as '" + it->second.second + "'" : std::string()) + ")");
  }

 private:
  std::string m_path;
  std::map<std::string, std::pair<int, std::string>> m_first;
};

std::vector<Entry> read_yaml_file(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) throw_no_input("config file " + path + " does not exist");
  if (S_ISDIR(st.st_mode)) throw_no_input("config file " + path + " is a folder, not a YAML file");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw_no_input("config file " + path + " cannot be read");
  std::stringstream buf;
  buf << f.rdbuf();
  std::string text = buf.str();
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);  // UTF-8 byte order mark

  std::vector<Entry> out;
  // A `key:` with nothing after it opens a block list or a nested map, or is null.
  int open = -1;         // index in `out` of that entry, -1 when none
  int open_indent = 0;   // its indentation
  int item_indent = -1;  // indentation of its items once the first is seen
  // Open maps: (indentation of their keys, dotted prefix); the top level is (0, "").
  std::vector<std::pair<int, std::string>> maps{{0, ""}};
  SeenKeys seen(path);
  // One document (RecBole's yaml.load reads one): an optional '---' before it, an optional '...'
  // after it, nothing else.
  bool started = false, content = false;
  int ended_at = 0;
  std::istringstream in(text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF files
    size_t indent = 0;
    while (indent < line.size() && line[indent] == ' ') ++indent;
    if (indent < line.size() && line[indent] == '\t') {
      if (rest_is_blank(line, indent)) continue;
      yaml_error(path, n, "tab in indentation (YAML indents with spaces)");
    }
    if (rest_is_blank(line, indent)) continue;
    const std::string body = line.substr(indent);
    const bool is_item = body[0] == '-' && (body.size() == 1 || body[1] == ' ' || body[1] == '\t');
    if (indent == 0 && body.compare(0, 3, "---") == 0 && rest_is_blank(body, 3)) {
      if (started || content || ended_at)
        yaml_error(path, n, "a second YAML document ('---'): RecBole reads one document per file; put the settings "
                            "in one, or pass each file as its own --config");
      started = true;
      continue;
    }
    if (indent == 0 && body.compare(0, 3, "...") == 0 && rest_is_blank(body, 3)) {
      ended_at = n;
      continue;
    }
    if (ended_at)
      yaml_error(path, n, "text after the end of the YAML document ('...' at line " + std::to_string(ended_at) + ")");
    content = true;
    if (is_item) {
      if (open < 0) yaml_error(path, n, "list item without a 'key:' line above it");
      if (int(indent) < open_indent) yaml_error(path, n, "list item indented less than its key");
      if (item_indent >= 0 && int(indent) != item_indent)
        yaml_error(path, n, "list item indented differently from the one above");
      item_indent = int(indent);
      Value item;
      std::string err;
      if (!read_yaml_value(body, 1, true, item, err)) yaml_error(path, n, err);
      if (item.is_null) yaml_error(path, n, "empty list item");
      Value& v = out[size_t(open)].value;
      v.is_list = true;
      v.is_null = false;
      v.items.push_back(item.scalar);
      v.shown = shown_list(v.items);
      continue;
    }
    if (open >= 0 && item_indent < 0 && int(indent) > open_indent) {
      // the null `key:` above opens a nested map
      maps.emplace_back(int(indent), out[size_t(open)].key + ".");
      out.erase(out.begin() + open);
    } else {
      while (maps.size() > 1 && int(indent) < maps.back().first) maps.pop_back();
      if (int(indent) != maps.back().first)
        yaml_error(path, n, "unexpected indentation (keys of one map must line up)");
    }
    open = -1;
    item_indent = -1;
    size_t k = 0;
    while (k < body.size() && is_key_char(body[k])) ++k;
    const bool colon_ok = k > 0 && k < body.size() && body[k] == ':' &&
                          (k + 1 == body.size() || body[k + 1] == ' ' || body[k + 1] == '\t');
    if (!colon_ok) yaml_error(path, n, "expected 'key: value'");
    const std::string key = maps.back().second + body.substr(0, k);
    seen.add(key, n);
    std::string err;
    size_t v0 = k + 1;
    while (v0 < body.size() && (body[v0] == ' ' || body[v0] == '\t')) ++v0;
    if (v0 < body.size() && body[v0] == '{') {
      std::vector<std::pair<std::string, Value>> flat;
      if (!read_flow_map(body, v0, key + ".", flat, err) ) yaml_error(path, n, err);
      if (!rest_is_blank(body, v0)) yaml_error(path, n, "unexpected text after a mapping");
      for (auto& [fk, fv] : flat) {
        seen.add(fk, n);
        out.push_back(Entry{fk, fv, path, n});
      }
      continue;
    }
    Entry e;
    e.key = key;
    e.file = path;
    e.line = n;
    if (!read_yaml_value(body, k + 1, false, e.value, err)) yaml_error(path, n, err);
    if (e.value.is_null) {
      open = int(out.size());
      open_indent = int(indent);
    }
    out.push_back(e);
  }
  return out;
}

// Value of a --KEY=VALUE: lists in YAML flow style; a quoted value (if the shell kept the
// quotes) is unquoted; '#' is text here, not a comment.
Value cli_value(const std::string& raw, bool takes_raw_string) {
  Value v;
  v.shown = raw;
  if (takes_raw_string) {
    v.scalar = raw;
    return v;
  }
  const std::string s = trimmed(raw);
  size_t i = 0;
  std::string err;
  if (!s.empty() && s[0] == '[') {
    // Text that is not a list stays text, as RecBole's command line keeps what it cannot eval:
    // an interval like [5,inf) is read by the interval keys, and every list key rejects it with
    // its own "expected ..." text, so the message says what this key takes.
    if (!read_flow_list(s, i, v.items, err) || i != s.size()) {
      v.items.clear();
      v.scalar = s;
      return v;
    }
    v.is_list = true;
    return v;
  }
  if (s.size() >= 2 && (s[0] == '\'' || s[0] == '"') && s.back() == s[0]) {
    if (read_quoted(s, i, v.scalar, err) && i == s.size()) return v;
  }
  v.scalar = s;
  return v;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// Other names of keys: RecBole's ConvNCF.yaml writes `dropout`, and eval_mode is ours.
std::string canonical_key(const std::string& key) {
  if (key == "dropout") return "dropout_prob";
  if (key == "eval_mode") return "eval_args.mode";
  if (key.compare(0, 10, "eval_mode.") == 0) return "eval_args.mode." + key.substr(10);
  return key;
}

// RecBole keys that mean nothing here: accepted and named in one warning. Where a value would
// change what RecBole computes in a way this tool does not, `check` refuses it.
struct IgnoredKey {
  const char* name;
  std::function<void(const Entry&)> check;  // may be empty
};
const std::vector<IgnoredKey>& ignored_recbole_keys() {
  auto must = [](const char* want, const char* why) {
    return [want, why](const Entry& e) {
      const std::string v = lower(e.value.is_null ? "~" : e.value.is_list ? e.value.shown : e.value.scalar);
      if (v != want)
        throw_usage(where(e.file, e.line) + "key '" + e.key + "' = '" + e.value.shown + "' is not supported: " + why);
    };
  };
  static const std::vector<IgnoredKey> keys = {
      {"gpu_id", {}}, {"use_gpu", {}}, {"state", {}}, {"reproducibility", {}}, {"checkpoint_dir", {}},
      {"save_dataset", {}}, {"dataset_save_path", {}}, {"save_dataloaders", {}}, {"dataloaders_save_path", {}},
      {"log_wandb", {}}, {"wandb_project", {}}, {"loss_decimal_place", {}}, {"metric_decimal_place", {}},
      {"require_pow", {}}, {"repeatable", {}}, {"worker", {}}, {"shuffle", {}}, {"nproc", {}}, {"world_size", {}},
      {"offset", {}}, {"ip", {}}, {"port", {}}, {"enable_amp", {}}, {"enable_scaler", {}}, {"transform", {}},
      {"seq_len", {}}, {"LABEL_FIELD", {}}, {"threshold", {}}, {"NEG_PREFIX", {}}, {"ITEM_LIST_LENGTH_FIELD", {}},
      {"LIST_SUFFIX", {}}, {"MAX_ITEM_LIST_LENGTH", {}}, {"POSITION_FIELD", {}}, {"HEAD_ENTITY_ID_FIELD", {}},
      {"TAIL_ENTITY_ID_FIELD", {}}, {"RELATION_ID_FIELD", {}}, {"ENTITY_ID_FIELD", {}}, {"kg_reverse_r", {}},
      {"entity_kg_num_interval", {}}, {"relation_kg_num_interval", {}}, {"unload_col", {}}, {"unused_col", {}},
      {"additional_feat_suffix", {}}, {"filter_inter_by_user_or_item", {}}, {"alias_of_user_id", {}},
      {"alias_of_item_id", {}}, {"alias_of_entity_id", {}}, {"alias_of_relation_id", {}}, {"preload_weight", {}},
      {"normalize_field", {}}, {"normalize_all", {}}, {"discretization", {}},
      {"seq_separator", {}}, {"numerical_features", {}}, {"single_spec", {}}, {"local_rank", {}},
      {"group_offset", {}},
      {"clip_grad_norm", must("~", "gradients are not clipped here")},
      {"valid_metric_bigger", must("true", "every metric here is better when bigger")},
  };
  return keys;
}

// The key spec of a (canonical) name: exact, or NAME.SUB under a key that takes one.
const KeySpec* resolve_key(const std::string& key, std::string* sub) {
  if (const KeySpec* s = find_key(key)) return s;
  for (size_t dot = key.rfind('.'); dot != std::string::npos && dot > 0; dot = key.rfind('.', dot - 1)) {
    const KeySpec* s = find_key(key.substr(0, dot));
    if (s && s->takes_sub) {
      if (sub) *sub = key.substr(dot + 1);
      return s;
    }
  }
  return nullptr;
}

void apply_entry(Config& cfg, const Entry& e);

// RecBole's older neg_sampling: {uniform: N} or {popularity: N} is train_neg_sample_args with
// that distribution and sample_num N; null (no negatives) is refused, as distribution none is.
void apply_neg_sampling(Config& cfg, const Entry& e) {
  const std::string sub = e.key.size() > 13 ? e.key.substr(13) : std::string();
  if (e.value.is_null && sub.empty())
    throw_usage(where(e.file, e.line) + "key 'neg_sampling' = null (no negatives) is not supported: ConvNCF and BPR "
                "train on (user, positive, negative) triples; write neg_sampling: {uniform: 1}");
  if (sub != "uniform" && sub != "popularity")
    throw_usage(where(e.file, e.line) + "bad key '" + e.key + "': neg_sampling takes {uniform: N} or {popularity: N} "
                "(train_neg_sample_args' distribution and sample_num)");
  Entry d = e, n = e;
  d.key = "train_neg_sample_args.distribution";
  d.value = Value{};
  d.value.scalar = d.value.shown = sub;
  n.key = "train_neg_sample_args.sample_num";
  apply_entry(cfg, d);
  apply_entry(cfg, n);
}

void apply_entry(Config& cfg, const Entry& e) {
  const std::string at = where(e.file, e.line);
  if (e.key == "neg_sampling" || e.key.compare(0, 13, "neg_sampling.") == 0) return apply_neg_sampling(cfg, e);
  if (e.key == "train_neg_sample_args" && (nullish(e.value) || lower(e.value.scalar) == "none"))
    throw_usage(at + "key 'train_neg_sample_args' = null (no negatives) is not supported: ConvNCF and BPR train on "
                "(user, positive, negative) triples");
  const std::string key = canonical_key(e.key);
  Value value = e.value;
  const KeySpec* spec = resolve_key(key, &value.sub);
  if (!spec) {
    const std::string top = key.substr(0, key.find('.'));
    for (const IgnoredKey& k : ignored_recbole_keys())
      if (top == k.name) {
        if (k.check) k.check(e);
        cfg.ignored_keys.insert(top);
        return;
      }
    // `eval_args:` with nothing under it
    if (e.value.is_null)
      for (const KeySpec& k : key_table())
        if (k.name.compare(0, key.size() + 1, key + ".") == 0) return;
    if (e.key == "config" || e.key == "config_files")
      throw_usage(at + "a config file cannot name another; pass each as --config=FILE");
    const std::string near = closest_key(e.key);
    std::string hint;
    // only a plausible typo is worth suggesting; a far "closest" key would mislead
    const size_t d_max = std::max<size_t>(2, e.key.size() / 2);
    if (edit_distance(e.key, near) <= d_max) hint = " (did you mean '" + near + "'?)";
    else hint = " (see 'convncf train --help' for the keys)";
    throw_usage(at + "unknown key '" + e.key + "'" + hint);
  }
  try {
    spec->parse(cfg, value);
  } catch (const BadValue& b) {
    throw_usage(at + "bad value '" + e.value.shown + "' for key '" + e.key + "': expected " + b.expected);
  }
  cfg.explicit_keys.insert(spec->name);
}

}  // namespace

// RecBole's run_recbole.py takes --model, --dataset and --config_files through argparse, which
// also reads them with the value as the next argument (`--model ConvNCF`, `-m ConvNCF`); every
// other key must be --KEY=VALUE, as RecBole's own command-line reader wants.
std::vector<std::string> joined_argparse_flags(const std::vector<std::string>& args) {
  static const std::pair<const char*, const char*> kFlags[] = {
      {"--model", "--model"}, {"-m", "--model"}, {"--dataset", "--dataset"}, {"-d", "--dataset"},
      {"--config_files", "--config_files"}};
  std::vector<std::string> out;
  for (size_t k = 0; k < args.size(); ++k) {
    const char* flag = nullptr;
    for (const auto& [name, full] : kFlags)
      if (args[k] == name) flag = full;
    if (flag && k + 1 < args.size() && args[k + 1].compare(0, 1, "-") != 0) {
      out.push_back(std::string(flag) + "=" + args[k + 1]);
      ++k;
    } else {
      out.push_back(args[k]);
    }
  }
  return out;
}

Config Config::from_args(const std::vector<std::string>& raw_args) {
  Config cfg;
  std::vector<Entry> cli;
  const std::vector<std::string> args = joined_argparse_flags(raw_args);
  for (const std::string& a : args) {
    if (a == "--quiet" || a == "--verbose") {  // the two flags that may stand alone
      Entry e;
      e.key = a.substr(2);
      e.value.scalar = e.value.shown = "true";
      cli.push_back(e);
      continue;
    }
    const size_t eq = a.find('=');
    if (a.compare(0, 2, "--") != 0 || eq == std::string::npos || eq == 2) {
      const bool bare_key = a.compare(0, 2, "--") == 0 && eq == std::string::npos && a.size() > 2;
      throw_usage("argument '" + a + "' is not of the form --KEY=VALUE" +
                  (bare_key ? " (write " + a + "=VALUE)" : std::string()));
    }
    const std::string key = a.substr(2, eq - 2), raw = a.substr(eq + 1);
    if (key == "config") {
      if (raw.empty()) throw_usage("--config= needs a file name");
      cfg.config_files.push_back(raw);
      continue;
    }
    if (key == "config_files") {  // RecBole's flag: file names separated by spaces
      std::istringstream names(raw);
      const size_t before = cfg.config_files.size();
      for (std::string f; names >> f;) cfg.config_files.push_back(f);
      if (cfg.config_files.size() == before)
        throw_usage("--config_files= needs file names separated by spaces, like --config_files=\"a.yaml b.yaml\"");
      continue;
    }
    if (!trimmed(raw).empty() && trimmed(raw)[0] == '{') {  // --eval_args="{mode: full, order: TO}"
      std::vector<std::pair<std::string, Value>> flat;
      std::string err;
      const std::string t = trimmed(raw);
      size_t i = 0;
      if (!read_flow_map(t, i, key + ".", flat, err) || i != t.size())
        throw_usage("bad value '" + raw + "' for key '" + key + "': " + (err.empty() ? "unexpected text after the mapping" : err));
      for (auto& [fk, fv] : flat) cli.push_back(Entry{fk, fv, "", 0});
      continue;
    }
    Entry e;
    e.key = key;
    const KeySpec* spec = resolve_key(canonical_key(key), nullptr);
    if (!spec) {  // apply_entry reports it; its value is not worth reading
      e.value.scalar = e.value.shown = raw;
      cli.push_back(e);
      continue;
    }
    e.value = cli_value(raw, spec->takes_raw_string);
    cli.push_back(e);
  }
  // Files first, in order, then the command line, in order: the last value of a key wins.
  std::vector<Entry> entries;
  for (const std::string& f : cfg.config_files) {
    std::vector<Entry> fe = read_yaml_file(f);
    entries.insert(entries.end(), fe.begin(), fe.end());
  }
  entries.insert(entries.end(), cli.begin(), cli.end());
  // Each explicit key lands on the struct defaults; apply_preset_defaults then fills only the
  // keys no source set, which is "preset first, explicit keys on top" whatever their order.
  for (const Entry& e : entries) apply_entry(cfg, e);
  cfg.apply_preset_defaults();
  if (cfg.train_method == "after_pretrain" && cfg.model != ModelKind::ConvNCF)
    throw_usage("train_method: after_pretrain starts ConvNCF from MF-BPR embeddings, but model is " +
                std::string(model_name(cfg.model)) + ": use model: ConvNCF, or train_method: no_pretrain");
  if (cfg.train_method != "after_pretrain" && !cfg.pre_model_path.empty())  // RecBole reads it only then
    throw_usage("pre_model_path is set (" + cfg.pre_model_path + ") but train_method is " + cfg.train_method +
                ": the pretrained embeddings are loaded only with train_method: after_pretrain; add "
                "--train_method=after_pretrain, or drop pre_model_path");
  return cfg;
}

void Config::apply_preset_defaults() {
  Config base = preset_defaults(preset, model, dataset == kSyntheticDataset);
  base.dataset = dataset;  // preset, model and dataset are inputs here, never overwritten
  for (const KeySpec& k : key_table())
    if (!explicit_keys.count(k.name)) k.copy(*this, base);
}

std::string Config::ignored_warning() const {
  if (ignored_keys.empty()) return "";
  std::string s = "warning: RecBole keys that mean nothing here, ignored:";
  for (const std::string& k : ignored_keys) s += " " + k;
  return s;
}

std::string Config::to_yaml() const {
  std::string s = "# convncf effective configuration; rerun it with --config=THIS_FILE\n";
  std::string group;  // dotted keys (eval_args.mode) print as a nested block map
  for (const KeySpec& k : key_table()) {
    const size_t dot = k.name.find('.');
    if (dot == std::string::npos) {
      group.clear();
      s += k.name + ": " + k.print(*this) + "\n";
      continue;
    }
    if (k.name.substr(0, dot) != group) {
      group = k.name.substr(0, dot);
      s += group + ":\n";
    }
    s += "  " + k.name.substr(dot + 1) + ": " + k.print(*this) + "\n";
  }
  return s;
}

const std::vector<KeyDoc>& config_keys() {
  static const std::vector<KeyDoc> docs = [] {
    // Defaults shown for ConvNCF on a real data set; the model and synthetic-data adjustments
    // are spelled out in the meanings of the keys they touch.
    const Config rb = preset_defaults(Preset::RecBole, ModelKind::ConvNCF, false);
    const Config pp = preset_defaults(Preset::Paper, ModelKind::ConvNCF, false);
    std::vector<KeyDoc> d;
    for (const KeySpec& k : key_table()) {
      std::string def_rb = k.print(rb), def_pp = k.print(pp);
      if (k.name == "preset") def_rb = def_pp = "recbole";  // the preset's own default
      d.push_back(KeyDoc{k.name, def_rb, def_pp, k.meaning});
    }
    return d;
  }();
  return docs;
}

const std::vector<std::string>& resumable_keys() {
  static const std::vector<std::string> keys = {"epochs", "threads", "device", "engine", "precision",
                                                "quiet", "verbose", "show_progress"};
  return keys;
}

std::string run_settings(const std::string& config_yaml) {
  std::istringstream in(config_yaml);
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.rfind("#", 0) == 0 || line.rfind("out:", 0) == 0) continue;
    bool resumable = false;
    for (const std::string& k : resumable_keys()) resumable = resumable || line.rfind(k + ":", 0) == 0;
    if (!resumable) kept += line + "\n";
  }
  return kept;
}

const std::vector<std::string>& added_keys() {
  static const std::vector<std::string> keys = {"pretrain_epochs", "pretrain_learning_rate"};
  return keys;
}

namespace {
// A run_settings() text as its top-level entries: a key's line and the indented lines under it.
std::vector<std::pair<std::string, std::string>> settings_entries(const std::string& settings) {
  std::vector<std::pair<std::string, std::string>> e;
  std::istringstream in(settings);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == ' ' && !e.empty()) {
      e.back().second += "\n" + line;
      continue;
    }
    e.emplace_back(line.substr(0, line.find(':')), line);
  }
  return e;
}
}  // namespace

bool same_run_settings(const std::string& mine, const std::string& theirs, std::string* their_line) {
  auto a = settings_entries(run_settings(mine)), b = settings_entries(run_settings(theirs));
  auto added = [](const std::string& k) {
    return std::find(added_keys().begin(), added_keys().end(), k) != added_keys().end();
  };
  auto has = [](const std::vector<std::pair<std::string, std::string>>& v, const std::string& k) {
    return std::any_of(v.begin(), v.end(), [&](const auto& x) { return x.first == k; });
  };
  a.erase(std::remove_if(a.begin(), a.end(), [&](const auto& x) { return added(x.first) && !has(b, x.first); }),
          a.end());
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    if (i < a.size() && i < b.size() && a[i] == b[i]) continue;
    if (their_line) {
      const std::string& t = i < b.size() ? b[i].second : a[i].second;
      *their_line = t.substr(0, t.find('\n'));
    }
    return false;
  }
  return true;
}

bool pretrains_in_run(const Config& cfg) {
  return cfg.model == ModelKind::ConvNCF && cfg.train_method == "after_pretrain" && cfg.pre_model_path.empty();
}

Config pretrain_config(const Config& cfg) {
  static const char* const model_keys[] = {"model", "cnn_channels", "cnn_kernels", "cnn_strides", "dropout_prob",
                                           "reg_type", "reg_weights", "learning_rate", "embedding_learning_rate",
                                           "warmup_epochs", "warmup_learning_rate", "epochs", "train_method",
                                           "pre_model_path"};
  Config s = cfg;
  s.model = ModelKind::BPR;
  for (const char* k : model_keys) s.explicit_keys.erase(k);
  s.apply_preset_defaults();
  s.train_method = "no_pretrain";
  s.pre_model_path.clear();
  s.epochs = cfg.pretrain_epochs;
  s.learning_rate = cfg.pretrain_learning_rate;
  s.embedding_learning_rate = -1.0;  // the same
  for (const char* k : {"model", "epochs", "learning_rate", "embedding_learning_rate"}) s.explicit_keys.insert(k);
  return s;
}

std::string closest_key(const std::string& key) {
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (const KeySpec& k : key_table()) {
    const size_t d = edit_distance(key, k.name);
    if (d < best_d) best_d = d, best = k.name;  // ties: the first in table order
  }
  return best;
}

}  // namespace convncf
