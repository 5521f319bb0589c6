// json_util.hpp (private to the library): JSON through nlohmann/json, as every line the tool
// writes for machines is built (metrics.jsonl, eval's line, recommend --format=jsonl, export's
// index.json). Numbers are written as the logs round them; a NaN or an infinity, which JSON cannot
// hold, is written as null.
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "convncf/evaluate.hpp"

namespace convncf {

using Json = nlohmann::ordered_json;  // keys in insertion order, as the README documents them

// v with `digits` significant digits (%.*g), integral values as integers; null when not finite.
inline Json json_number(double v, int digits = 10) {
  if (!std::isfinite(v)) return nullptr;
  char b[64];
  std::snprintf(b, sizeof b, "%.*g", digits, v);
  const double r = std::strtod(b, nullptr);
  if (r == std::floor(r) && std::fabs(r) < 1e15) return static_cast<long long>(r);
  return r;
}

// v with `decimals` decimals (%.*f); null when not finite.
inline Json json_fixed(double v, int decimals) {
  if (!std::isfinite(v)) return nullptr;
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return std::strtod(b, nullptr);
}

// {"hit@10":0.5,...}: the metrics in their order, 10 significant digits.
inline Json metrics_object(const Metrics& m) {
  Json o = Json::object();
  for (const auto& [name, value] : m) o[name] = json_number(value);
  return o;
}

}  // namespace convncf
