// launch_checks.cpp: the helpers of the launchers' argument checks (launch_checks.hpp).
#include "convncf/launch_checks.hpp"

#include <string>

#include "convncf/errors.hpp"

namespace convncf {
namespace detail {

void check_batch(const char* fn, int64_t B_cap, int64_t n_valid) {
  // 2^40 triples keeps every (3, B_cap, E) offset far inside int64 for E <= 2^20.
  if (B_cap < 0 || B_cap > (int64_t{1} << 40) || n_valid < 0 || n_valid > B_cap)
    throw_internal(std::string(fn) + ": bad batch B_cap=" + std::to_string(B_cap) + " n_valid=" +
                   std::to_string(n_valid) + " (expected 0 <= n_valid <= B_cap <= 2^40)");
}

void check_E(const char* fn, int E, int max_E) {
  if (E < 1 || E > max_E)
    throw_internal(std::string(fn) + ": bad embedding size E=" + std::to_string(E) +
                   " (expected 1 <= E <= " + std::to_string(max_E) + ")");
}

void check_pointers(const char* fn, std::initializer_list<const void*> ptrs) {
  int k = 0;
  for (const void* p : ptrs) {
    if (!p)
      throw_internal(std::string(fn) + ": pointer argument " + std::to_string(k) + " is null");
    ++k;
  }
}

}  // namespace detail
}  // namespace convncf
