// progress.hpp (private): the live progress line of `convncf train`: epoch, batch, loss, triples
// per second and the run's ETA (train.cpp: the training and validation left), redrawn at most 4
// times a second on stderr, as tqdm and RecBole do, and only when stderr is a terminal whose TERM
// is not "dumb". It is erased before any other line is printed, so logs stay clean.
#pragma once
#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace convncf {

// "m:ss" or "h:mm:ss"; "?" for a negative or absurd time.
std::string hms(double seconds);

class Progress {
 public:
  // on: the caller wants it; it is shown only when stderr is a live terminal as well.
  explicit Progress(bool on);
  bool shown() const { return m_on; }
  void update(int epoch, int epochs, int64_t batch, int64_t batches, double loss, double tps, const std::string& eta);
  void clear();

 private:
  bool m_on;
  std::chrono::steady_clock::time_point m_last{};
  bool m_drawn = false;
};

}  // namespace convncf
