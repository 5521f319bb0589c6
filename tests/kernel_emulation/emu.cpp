// emu.cpp: the scheduler of the kernel emulation (see shim.hpp for what is and is not emulated).
// Each block's threads are ucontext fibers; a round runs every live fiber up to its next
// __syncthreads() (or its exit) in the chosen order, then checks that the block agrees on the
// barrier it waits at. The fibers of a block share one scheduler context; nothing runs in parallel.
#include <ucontext.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <random>

#include "shim.hpp"

namespace emu {

Dim3 thread_idx{0, 0, 0}, block_idx{0, 0, 0}, block_dim{1, 1, 1}, grid_dim{1, 1, 1};
float* smem = nullptr;
Order order = kAscending;
unsigned seed = 1;
int sms = 3, per_sm = 2;

namespace {

constexpr size_t kStackBytes = 128 * 1024;
constexpr size_t kGuardFloats = 64;       // NaN guard zone after the dynamic shared memory
constexpr uint32_t kFillBits = 0x7fc0bad0u;  // a quiet NaN: garbage that poisons any sum it enters

std::vector<std::string> errors;
std::map<std::uintptr_t, size_t> smem_limits;

struct Fiber {
  ucontext_t ctx;
  bool done = false;
  long barriers = 0;
  const char* file = nullptr;  // the barrier the fiber waits at
  int line = 0;
};

std::vector<std::unique_ptr<char[]>> stacks;  // reused by every launch
std::vector<Fiber>* fibers = nullptr;
ucontext_t scheduler;
size_t current = 0;
const std::function<void()>* body_fn = nullptr;

void fiber_entry() {
  try {
    (*body_fn)();
  } catch (const std::exception& e) {
    report(std::string("exception in a thread: ") + e.what());
  } catch (...) {
    report("exception in a thread");
  }
  Fiber& f = (*fibers)[current];
  f.done = true;
  swapcontext(&f.ctx, &scheduler);  // never resumed
}

// getcontext and swapcontext return twice, as setjmp: kept out of run_grid's frame (-Wclobbered).
[[gnu::noinline]] void start_fiber(Fiber& f, char* stack) {
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = stack;
  f.ctx.uc_stack.ss_size = kStackBytes;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, fiber_entry, 0);
}

[[gnu::noinline]] void resume_fiber(Fiber& f) { swapcontext(&scheduler, &f.ctx); }

std::string where(const Fiber& f) {
  return std::string(f.file ? f.file : "?") + ":" + std::to_string(f.line);
}

}  // namespace

void report(const std::string& error) { errors.push_back(error); }

std::vector<std::string> take_errors() {
  std::vector<std::string> e;
  e.swap(errors);
  return e;
}

void set_smem_limit(std::uintptr_t kernel, size_t bytes) { smem_limits[kernel] = bytes; }

size_t smem_limit(std::uintptr_t kernel) {
  const auto it = smem_limits.find(kernel);
  return it == smem_limits.end() ? kMaxDynamicSmemDefault : std::max(kMaxDynamicSmemDefault, it->second);
}

void sync(const char* file, int line) {
  Fiber& f = (*fibers)[current];
  ++f.barriers;
  f.file = file;
  f.line = line;
  swapcontext(&f.ctx, &scheduler);
}

void run_grid(std::uintptr_t kernel, long long grid, long long block, size_t smem_bytes,
              const std::function<void()>& body) {
  if (grid < 1 || grid > 2147483647LL || block < 1 || block > 1024) {
    report("launch with grid " + std::to_string(grid) + ", block " + std::to_string(block));
    return;
  }
  if (smem_bytes > smem_limit(kernel)) {
    report("launch with " + std::to_string(smem_bytes) + " B of dynamic shared memory above the kernel's limit");
    return;
  }
  const size_t nt = size_t(block), n_smem = smem_bytes / sizeof(float);
  float fill = 0.0f;
  std::memcpy(&fill, &kFillBits, sizeof fill);
  std::vector<float> buffer(n_smem + kGuardFloats);
  while (stacks.size() < nt) stacks.emplace_back(new char[kStackBytes]);
  std::mt19937 rng(seed);
  grid_dim = {unsigned(grid), 1, 1};
  block_dim = {unsigned(block), 1, 1};
  std::vector<Fiber> fs(nt);
  std::vector<size_t> run_order(nt);
  for (long long b = 0; b < grid; ++b) {
    block_idx = {unsigned(b), 0, 0};
    const std::string blk = "block " + std::to_string(b);
    std::fill(buffer.begin(), buffer.end(), fill);
    smem = buffer.data();
    fibers = &fs;
    body_fn = &body;
    for (size_t t = 0; t < nt; ++t) {
      fs[t] = Fiber{};
      start_fiber(fs[t], stacks[t].get());
    }
    bool diverged = false;
    for (;;) {
      for (size_t i = 0; i < nt; ++i) run_order[i] = i;
      if (order == kDescending) std::reverse(run_order.begin(), run_order.end());
      if (order == kRandom) std::shuffle(run_order.begin(), run_order.end(), rng);
      bool ran = false;
      for (const size_t t : run_order) {
        if (fs[t].done) continue;
        current = t;
        thread_idx = {unsigned(t), 0, 0};
        resume_fiber(fs[t]);
        ran = true;
      }
      if (!ran) break;
      // Every live thread waits at the same barrier, with the same count; none has exited.
      const Fiber* first_live = nullptr;
      size_t n_done = 0;
      for (const Fiber& f : fs) {
        if (f.done) {
          ++n_done;
          continue;
        }
        if (!first_live) {
          first_live = &f;
        } else if (!diverged && (f.line != first_live->line || std::strcmp(f.file, first_live->file) != 0 ||
                                 f.barriers != first_live->barriers)) {
          report(blk + ": threads wait at different barriers (" + where(*first_live) + " barrier #" +
                 std::to_string(first_live->barriers) + " and " + where(f) + " barrier #" +
                 std::to_string(f.barriers) + ")");
          diverged = true;
        }
      }
      if (first_live && n_done > 0 && !diverged) {
        report(blk + ": " + std::to_string(n_done) + " threads exited while others wait at " + where(*first_live));
        diverged = true;
      }
    }
    for (size_t i = n_smem; i < buffer.size(); ++i)
      if (std::memcmp(&buffer[i], &kFillBits, sizeof(float)) != 0) {
        report(blk + ": write past the " + std::to_string(smem_bytes) + " B of dynamic shared memory");
        break;
      }
    fibers = nullptr;
    smem = nullptr;
  }
}

}  // namespace emu
