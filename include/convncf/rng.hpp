// rng.hpp: counter-based random numbers shared by the CPU engine and the CUDA kernels.
// Every draw is a pure function of (seed, stream, counter), so results do not depend on thread
// count or scheduling, and a GPU kernel can reproduce a CPU draw exactly.
#pragma once
#include <cmath>
#include <cstdint>

#include "convncf/common.hpp"

namespace convncf {

// Streams: one per purpose so that draws never collide.
enum RngStream : uint64_t {
  kStreamInit = 1,
  kStreamShuffle = 2,
  kStreamNegative = 3,
  kStreamDropout = 4,
  kStreamEvalValid = 5,
  kStreamEvalTest = 6,
  kStreamSynthetic = 7,
  kStreamSplit = 8,
};

CONVNCF_HD uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Hash of (seed, stream, counter): three rounds of splitmix64 mixing.
CONVNCF_HD uint64_t rng_hash(uint64_t seed, uint64_t stream, uint64_t counter) {
  return splitmix64(splitmix64(splitmix64(seed) ^ stream) ^ counter);
}

// Uniform integer in [0, n) (Lemire's multiply-shift; bias below n / 2^64).
CONVNCF_HD uint32_t uniform_index(uint64_t bits, uint32_t n) {
  return static_cast<uint32_t>(((bits >> 32) * static_cast<uint64_t>(n)) >> 32);
}

// Uniform double in [0, 1) from the top 53 bits.
CONVNCF_HD double uniform01(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

// A small sequential generator over the hash, for host-side loops (init, synthetic data).
class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream) : m_seed(seed), m_stream(stream) {}
  uint64_t next() { return rng_hash(m_seed, m_stream, m_counter++); }
  double uniform() { return uniform01(next()); }
  uint32_t index(uint32_t n) { return uniform_index(next(), n); }
  // Standard normal by Box-Muller (both values used, cached).
  double normal() {
    if (m_has_spare) {
      m_has_spare = false;
      return m_spare;
    }
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double t = 6.283185307179586476925 * u2;
    m_spare = r * std::sin(t);
    m_has_spare = true;
    return r * std::cos(t);
  }
  // Normal truncated to [-2 std, 2 std] by redrawing (TensorFlow's truncated_normal).
  double truncated_normal() {
    for (;;) {
      const double z = normal();
      if (z >= -2.0 && z <= 2.0) return z;
    }
  }

 private:
  uint64_t m_seed, m_stream, m_counter = 0;
  bool m_has_spare = false;
  double m_spare = 0.0;
};

}  // namespace convncf
