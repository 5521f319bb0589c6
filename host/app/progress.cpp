// progress.cpp: the live progress line (see progress.hpp).
#include "progress.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

namespace convncf {

std::string hms(double s) {
  if (!(s >= 0) || s > 1e7) return "?";
  const int64_t t = int64_t(s + 0.5);
  char b[32];
  if (t >= 3600) std::snprintf(b, sizeof b, "%lld:%02lld:%02lld", (long long)(t / 3600), (long long)(t / 60 % 60), (long long)(t % 60));
  else std::snprintf(b, sizeof b, "%lld:%02lld", (long long)(t / 60), (long long)(t % 60));
  return b;
}

namespace {
bool live_terminal() {
  const char* term = std::getenv("TERM");
  return isatty(STDERR_FILENO) && !(term && std::strcmp(term, "dumb") == 0);
}
}  // namespace

Progress::Progress(bool on) : m_on(on && live_terminal()) {}

void Progress::update(int epoch, int epochs, int64_t batch, int64_t batches, double loss, double tps,
                      const std::string& eta) {
  if (!m_on) return;
  const auto now = std::chrono::steady_clock::now();
  if (batch != batches && now - m_last < std::chrono::milliseconds(250)) return;
  m_last = now;
  char b[200];
  std::snprintf(b, sizeof b, "\r  epoch %d/%d  batch %lld/%lld  loss %.4f  %.0f triples/s  ETA %s\033[K", epoch, epochs,
                (long long)batch, (long long)batches, loss, tps, eta.c_str());
  std::cerr << b << std::flush;
  m_drawn = true;
}

void Progress::clear() {
  if (m_drawn) std::cerr << "\r\033[K" << std::flush;
  m_drawn = false;
}

}  // namespace convncf
