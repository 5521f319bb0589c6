// util.hpp: the small helpers every layer uses: file-system questions, paths, trimming, the
// FNV-1a hash of the project's file images and fingerprints.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace convncf {

bool path_exists(const std::string& p);  // anything at p (a broken link counts as nothing)
bool is_dir(const std::string& p);
bool is_file(const std::string& p);      // a regular file (or a link to one)
// dir + "/" + name, without doubling a trailing slash; name alone when dir is empty.
std::string join_path(const std::string& dir, const std::string& name);
// Creates the folder and its parents (0755); Error(kExitIo) naming the part that cannot be made.
// `created`, when given, gets each folder this call made, outermost first.
void make_dirs(const std::string& path, std::vector<std::string>* created = nullptr);
// s without leading and trailing white space (std::isspace).
std::string_view trim(std::string_view s);

// Memory the system can still give this process: MemAvailable plus SwapFree from /proc/meminfo;
// -1 when unknown.
int64_t available_memory_bytes();
// "812 MB", "4.4 TB": decimal units, 2 significant digits at least.
std::string bytes_text(double bytes);
// Error(kExitSoftware): "out of memory: WHAT needs SIZE; AVAILABLE is available ...". Thrown where
// a large allocation is known before it is made (or failed), so the message names it.
[[noreturn]] void throw_out_of_memory(const std::string& what, double bytes);

// 64-bit FNV-1a of n bytes, continuing from h.
uint64_t fnv1a(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull);

}  // namespace convncf
