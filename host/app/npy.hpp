// npy.hpp (private): .npy files (NumPy's format 1.0), as `convncf export` writes them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace convncf {

// A float32 array of the given shape ('<f4', C order).
std::string npy_floats(const std::vector<float>& v, const std::vector<int64_t>& shape);
// Strings (UTF-8 ids) as a NumPy unicode array ('<Un', UTF-32LE, n = the longest).
std::string npy_strings(const std::vector<std::string>& ids);

}  // namespace convncf
