// bench_load.cpp: load_data (formats.hpp) on a generated 10-million-line RecBole .inter file.
//   build/bench/bench_load [--lines=N] [--users=U] [--items=I]
// Writes `user_id:token item_id:token rating:float timestamp:float` lines (users uniform, items
// skewed towards low ids like real popularity, ratings 1-5, increasing timestamps) to a fresh
// folder under $TMPDIR (or /tmp), times one load_data (the file is in the page cache: this is
// the parser, not the disk), prints lines/s and the peak RSS (getrusage ru_maxrss) before and
// after the load, then deletes the file. Last line: one JSON record.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "convncf/errors.hpp"
#include "convncf/formats.hpp"
#include "convncf/rng.hpp"

using namespace convncf;

namespace {

double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;  // Linux: KiB
}

long long flag(int argc, char** argv, const char* name, long long fallback) {
  const size_t n = std::strlen(name);
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], name, n) == 0 && argv[i][n] == '=')
      return std::atoll(argv[i] + n + 1);
  return fallback;
}

// Writes the file through one 1 MiB buffer; returns its size in bytes.
long long write_inter(const std::string& path, long long lines, uint32_t users, uint32_t items) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw_io("cannot write " + path);
  static char buf[1 << 20];
  size_t at = 0;
  long long bytes = 0;
  const auto put = [&](const char* s, size_t n) {
    if (at + n > sizeof buf) {
      bytes += std::fwrite(buf, 1, at, f);
      at = 0;
    }
    std::memcpy(buf + at, s, n);
    at += n;
  };
  const char* header = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n";
  put(header, std::strlen(header));
  Rng rng(2024, kStreamSynthetic);
  char line[96];
  for (long long k = 0; k < lines; ++k) {
    const double u01 = rng.uniform();
    const uint32_t user = rng.index(users) + 1, item = uint32_t(u01 * u01 * items) + 1;
    const int n = std::snprintf(line, sizeof line, "%u\t%u\t%u\t%lld\n", user, item,
                                1 + rng.index(5), 880000000LL + k);
    put(line, size_t(n));
  }
  bytes += std::fwrite(buf, 1, at, f);
  if (std::fclose(f) != 0) throw_io("cannot write " + path);
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  const long long lines = flag(argc, argv, "--lines", 10000000);
  const uint32_t users = uint32_t(flag(argc, argv, "--users", 100000));
  const uint32_t items = uint32_t(flag(argc, argv, "--items", 50000));
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/bench_load.XXXXXX";
  if (!mkdtemp(dir.data())) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string path = dir + "/bench.inter";
  int rc = 0;
  try {
    const long long bytes = write_inter(path, lines, users, items);
    const double rss_before = peak_rss_mib();
    const auto t0 = std::chrono::steady_clock::now();
    const LoadedData d = load_data(path, {});
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double rss_after = peak_rss_mib();
    std::printf(
        "file: %lld lines, %.1f MiB; loaded %lld interactions, %d users, %d items (%lld "
        "duplicates)\n",
        lines, double(bytes) / (1 << 20), (long long)d.inter.size(), d.inter.n_users(),
        d.inter.n_items(), (long long)d.report.duplicates);
    std::printf("load_data: %.2f s, %.2f M lines/s, %.0f MiB/s\n", s, double(lines) / s / 1e6,
                double(bytes) / (1 << 20) / s);
    std::printf("peak RSS: %.0f MiB before, %.0f MiB after\n", rss_before, rss_after);
    std::printf(
        "{\"bench\":\"load_atomic\",\"lines\":%lld,\"bytes\":%lld,\"seconds\":%.3f,\"lines_per_s\":"
        "%.0f,"
        "\"peak_rss_mib_before\":%.0f,\"peak_rss_mib_after\":%.0f}\n",
        lines, bytes, s, double(lines) / s, rss_before, rss_after);
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_load: %s\n", e.what());
    rc = 1;
  }
  std::remove(path.c_str());
  rmdir(dir.c_str());
  return rc;
}
