// fp_env.cpp: FTZ and DAZ for the CPU engine's threads (fp_env.hpp).
#include "convncf/fp_env.hpp"

#include <atomic>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace convncf {
namespace {

std::atomic<bool> g_flush{true};

#if defined(__x86_64__) || defined(_M_X64)
// MXCSR: bit 15 flush-to-zero, bit 6 denormals-are-zero.
constexpr unsigned long kFlushBits = 0x8040u;
unsigned long read_mode() { return _mm_getcsr(); }
void write_mode(unsigned long m) { _mm_setcsr(static_cast<unsigned>(m)); }
#elif defined(__aarch64__)
// FPCR: bit 24 FZ flushes subnormal operands and results of single and double precision.
constexpr unsigned long kFlushBits = 1ul << 24;
unsigned long read_mode() {
  unsigned long m;
  __asm__ volatile("mrs %0, fpcr" : "=r"(m));
  return m;
}
void write_mode(unsigned long m) { __asm__ volatile("msr fpcr, %0" : : "r"(m)); }
#else
constexpr unsigned long kFlushBits = 0;
unsigned long read_mode() { return 0; }
void write_mode(unsigned long) {}
#endif

}  // namespace

void set_flush_denormals(bool on) { g_flush.store(on, std::memory_order_relaxed); }
bool flush_denormals_enabled() { return g_flush.load(std::memory_order_relaxed); }

bool flushing_denormals() { return kFlushBits != 0 && (read_mode() & kFlushBits) == kFlushBits; }

FlushDenormals::FlushDenormals() {
  if (kFlushBits == 0 || !flush_denormals_enabled()) return;
  m_saved = read_mode();
  if ((m_saved & kFlushBits) != kFlushBits) {
    write_mode(m_saved | kFlushBits);
    m_set = true;
  }
}

FlushDenormals::~FlushDenormals() {
  if (m_set) write_mode(m_saved);
}

}  // namespace convncf
