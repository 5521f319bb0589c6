// emu.cpp: the scheduler of the kernel emulation (see shim.hpp and wmma.hpp for what is and is
// not emulated). Each block's threads are ucontext fibers; a round runs every runnable fiber up
// to its next __syncthreads(), warp-collective call or exit, in the chosen order. Then the warps
// whose lanes all wait at a warp call run it (after checking that the lanes agree); when no warp
// call is pending, the block must agree on the barrier it waits at, and every thread goes on. The
// fibers of a block share one scheduler context; nothing runs in parallel.
// A warp's call runs as soon as its last lane arrives; its lanes then go on first, so that one
// warp can run ahead of the rest of the block up to the next barrier.
#include <ucontext.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
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
unsigned frag_seed = 1;
int sms = 3, per_sm = 2;
size_t smem_declared_align = 0;

namespace {

constexpr size_t kStackBytes = 128 * 1024;
constexpr size_t kGuardFloats = 64;          // NaN guard zone after the dynamic shared memory
constexpr uint32_t kFillBits = 0x7fc17fc1u;  // a quiet NaN whose halves are bf16 NaNs: poisons any sum
constexpr size_t kSmemBaseAlign = 1024;      // the buffer's base: more aligned than any declaration

std::vector<std::string> errors;
std::map<std::uintptr_t, size_t> smem_limits;
std::map<const char*, size_t> device_buffers;  // start -> bytes

enum State { kRunnable, kAtBarrier, kAtWarpCall, kDone };

struct Fiber {
  ucontext_t ctx;
  State state = kRunnable;
  long barriers = 0;
  const char* file = nullptr;  // the barrier the fiber waits at
  int line = 0;
  WarpCall* call = nullptr;    // the warp call it waits at
};

struct FreeDeleter {
  void operator()(char* p) const { std::free(p); }
};
// Reused by every launch; page-aligned, so that a variable sits at the same offset of every
// thread's stack (stack_offset) whatever alignment the compiler gives its frame.
std::vector<std::unique_ptr<char, FreeDeleter>> stacks;
std::vector<Fiber>* fibers = nullptr;
ucontext_t scheduler;
size_t current = 0;
const std::function<void()>* body_fn = nullptr;
size_t smem_size = 0;  // bytes of the running block's dynamic shared memory

void fiber_entry() {
  try {
    (*body_fn)();
  } catch (const std::exception& e) {
    report(std::string("exception in a thread: ") + e.what());
  } catch (...) {
    report("exception in a thread");
  }
  Fiber& f = (*fibers)[current];
  f.state = kDone;
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
  if (f.state == kDone) return "exited";
  if (f.state == kAtWarpCall)
    return std::string(f.call->name) + " at " + f.call->file + ":" + std::to_string(f.call->line);
  return std::string("__syncthreads at ") + (f.file ? f.file : "?") + ":" + std::to_string(f.line);
}

std::string call_at(const WarpCall& c) { return std::string(c.name) + " at " + c.file + ":" + std::to_string(c.line); }

// The lanes [lo, hi) of one warp, all blocked or done: runs their pending call, or reports how
// they diverge (once per block) and lets the waiting lanes go on without it. False when none of
// its lanes waits at a warp call.
bool settle_warp(std::vector<Fiber>& fs, size_t lo, size_t hi, const std::string& blk, bool& diverged) {
  size_t first = hi;
  for (size_t t = lo; t < hi; ++t)
    if (fs[t].state == kAtWarpCall) {
      first = t;
      break;
    }
  if (first == hi) return false;
  const WarpCall& c0 = *fs[first].call;
  std::string why;
  if (hi - lo != 32) why = "a warp of " + std::to_string(hi - lo) + " threads";
  for (size_t t = lo; t < hi && why.empty(); ++t) {
    const Fiber& f = fs[t];
    const std::string lane = "lane " + std::to_string(t - lo);
    if (f.state != kAtWarpCall) {
      why = "lane " + std::to_string(first - lo) + " at " + call_at(c0) + ", " + lane + " " + where(f);
    } else if (f.call->line != c0.line || std::strcmp(f.call->file, c0.file) != 0 ||
               std::strcmp(f.call->name, c0.name) != 0) {
      why = "lane " + std::to_string(first - lo) + " at " + call_at(c0) + ", " + lane + " at " + call_at(*f.call);
    } else if (f.call->type != c0.type || !std::equal(c0.uniform, c0.uniform + 3, f.call->uniform)) {
      auto text = [](const WarpCall& c) {
        return (c.type ? *c.type : std::string()) + " (" + std::to_string(c.uniform[0]) + ", " +
               std::to_string(c.uniform[1]) + ", " + std::to_string(c.uniform[2]) + ")";
      };
      why = call_at(c0) + ": lanes pass different arguments (pointer, ldm, layout or value; lane " +
            std::to_string(first - lo) + ": " + text(c0) + "; " + lane + ": " + text(*f.call) + ")";
    } else {
      for (int i = 0; i < 4; ++i)
        if (f.call->frag_offset[i] != c0.frag_offset[i])
          why = call_at(c0) + ": fragment argument " + std::to_string(i) + " is another variable in " + lane;
    }
  }
  if (why.empty()) {
    WarpCall* lanes[32];
    for (size_t t = lo; t < hi; ++t) lanes[t - lo] = fs[t].call;
    c0.body(lanes);
  } else if (!diverged) {
    report(blk + " warp " + std::to_string(lo / 32) + ": lanes diverge at a warp-collective call: " + why);
    diverged = true;
  }
  for (size_t t = lo; t < hi; ++t)
    if (fs[t].state == kAtWarpCall) {
      fs[t].state = kRunnable;
      fs[t].call = nullptr;
    }
  return true;
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
  f.state = kAtBarrier;
  swapcontext(&f.ctx, &scheduler);
}

void warp_call(WarpCall& call) {
  Fiber& f = (*fibers)[current];
  f.call = &call;
  f.state = kAtWarpCall;
  swapcontext(&f.ctx, &scheduler);
}

unsigned lane_id() { return unsigned(current % 32); }

long stack_offset(const void* p) {
  const char* base = stacks[current].get();
  const char* c = static_cast<const char*>(p);
  if (c >= base && c < base + kStackBytes) return long(c - base);
  return long(reinterpret_cast<uintptr_t>(p));
}

bool in_shared(const void* p, size_t bytes) {
  const char* b = reinterpret_cast<const char*>(smem);
  const char* c = static_cast<const char*>(p);
  return b && c >= b && c + bytes <= b + smem_size;
}
size_t shared_offset(const void* p) {
  return size_t(static_cast<const char*>(p) - reinterpret_cast<const char*>(smem));
}

void register_device_buffer(const void* p, size_t bytes) { device_buffers[static_cast<const char*>(p)] = bytes; }
void clear_device_buffers() { device_buffers.clear(); }
bool in_device_buffer(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  auto it = device_buffers.upper_bound(c);
  if (it == device_buffers.begin()) return false;
  --it;
  return c + bytes <= it->first + it->second;
}

void declare_shared(size_t align) { smem_declared_align = align; }

// Alignment of p as the kernel may rely on it: in shared memory, the offset's, capped by the
// declaration; elsewhere the address's.
static size_t known_alignment(const void* p) {
  size_t a = 1;
  if (in_shared(p, 1)) {
    const size_t off = shared_offset(p);
    while (a < 4096 && off % (2 * a) == 0) a *= 2;
    return std::min(a, smem_declared_align == 0 ? size_t(1) : smem_declared_align);
  }
  const uintptr_t u = reinterpret_cast<uintptr_t>(p);
  while (a < 4096 && u % (2 * a) == 0) a *= 2;
  return a;
}

void check_float4_view(const void* p, const char* file, int line) {
  if (known_alignment(p) < 16)
    report(std::string(file) + ":" + std::to_string(line) + ": float4 view of a pointer not known to be 16-byte aligned" +
           (in_shared(p, 1) ? " (shared offset " + std::to_string(shared_offset(p)) + ", extern __shared__ declared " +
                                  std::to_string(smem_declared_align) + "-byte aligned)"
                            : ""));
}

bool check_tile(const char* call, const char* file, int line, const void* p, size_t elem, unsigned ldm, int rows,
                int cols, bool row_major) {
  const std::string at = std::string(file) + ":" + std::to_string(line) + ": " + call + ": ";
  bool ok = true;
  if (known_alignment(p) < 32) {
    report(at + "pointer not 256-bit aligned" +
           (in_shared(p, 1) ? " (shared offset " + std::to_string(shared_offset(p)) + ", extern __shared__ declared " +
                                  std::to_string(smem_declared_align) + "-byte aligned)"
                            : ""));
    ok = false;
  }
  if ((size_t(ldm) * elem) % 16 != 0) {
    report(at + "ldm " + std::to_string(ldm) + " is not a multiple of 16 bytes (" + std::to_string(16 / elem) +
           " elements)");
    ok = false;
  }
  // the tile's extent: from its first to its last element
  const size_t lines = size_t(row_major ? rows : cols), len = size_t(row_major ? cols : rows);
  const size_t bytes = ((lines - 1) * ldm + len) * elem;
  if (!in_shared(p, bytes) && !in_device_buffer(p, bytes)) {
    report(at + "the tile (" + std::to_string(bytes) + " B from the pointer) is neither inside the block's " +
           std::to_string(smem_size) + " B of shared memory nor inside a registered device buffer" +
           (in_shared(p, 1) ? " (shared offset " + std::to_string(shared_offset(p)) + ")" : ""));
    ok = false;
  }
  return ok;
}

const std::vector<int>& fragment_map(const std::string& type, int n_elems) {
  static std::map<std::pair<std::string, unsigned>, std::vector<int>> maps;
  std::vector<int>& m = maps[{type, frag_seed}];
  if (m.empty()) {
    m.resize(size_t(n_elems));
    for (int e = 0; e < n_elems; ++e) m[size_t(e)] = e;
    std::seed_seq sq(type.begin(), type.end());
    std::vector<unsigned> s(1);
    sq.generate(s.begin(), s.end());
    std::mt19937 rng(s[0] ^ (frag_seed * 2654435761u));
    std::shuffle(m.begin(), m.end(), rng);
  }
  return m;
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
  // the base 1024-byte aligned; what the kernel may assume is what it declares (known_alignment)
  const size_t n_buf = n_smem + kGuardFloats;
  std::unique_ptr<float, decltype(&std::free)> buffer(
      static_cast<float*>(std::aligned_alloc(kSmemBaseAlign, (n_buf * sizeof(float) + kSmemBaseAlign - 1) /
                                                                 kSmemBaseAlign * kSmemBaseAlign)),
      &std::free);
  while (stacks.size() < nt) stacks.emplace_back(static_cast<char*>(std::aligned_alloc(4096, kStackBytes)));
  std::mt19937 rng(seed);
  grid_dim = {unsigned(grid), 1, 1};
  block_dim = {unsigned(block), 1, 1};
  std::vector<Fiber> fs(nt);
  std::vector<size_t> run_order(nt);
  for (long long b = 0; b < grid; ++b) {
    block_idx = {unsigned(b), 0, 0};
    const std::string blk = "block " + std::to_string(b);
    std::fill(buffer.get(), buffer.get() + n_buf, fill);
    smem = buffer.get();
    smem_size = smem_bytes;
    smem_declared_align = 0;
    fibers = &fs;
    body_fn = &body;
    for (size_t t = 0; t < nt; ++t) {
      fs[t] = Fiber{};
      start_fiber(fs[t], stacks[t].get());
    }
    bool diverged = false, warp_diverged = false;
    std::deque<size_t> queue;
    std::vector<size_t> lanes_order(32);
    for (;;) {
      for (size_t i = 0; i < nt; ++i) run_order[i] = i;
      if (order == kDescending) std::reverse(run_order.begin(), run_order.end());
      if (order == kRandom) std::shuffle(run_order.begin(), run_order.end(), rng);
      queue.assign(run_order.begin(), run_order.end());
      // A warp runs its call as soon as its last lane arrives, and its lanes go on at once (at
      // the queue's front), before the threads that have not run yet: a warp may race ahead of
      // the rest of the block up to the next barrier, so a missing barrier shows.
      bool warp_calls = false;
      while (!queue.empty()) {
        const size_t t = queue.front();
        queue.pop_front();
        if (fs[t].state != kRunnable) continue;
        current = t;
        thread_idx = {unsigned(t), 0, 0};
        resume_fiber(fs[t]);
        if (fs[t].state != kAtWarpCall) continue;
        const size_t lo = t / 32 * 32, hi = std::min(nt, lo + 32);
        bool blocked = true;
        for (size_t u = lo; u < hi; ++u) blocked = blocked && fs[u].state != kRunnable;
        if (!blocked) continue;
        current = lo;
        settle_warp(fs, lo, hi, blk, warp_diverged);
        warp_calls = true;
        size_t n = 0;
        for (size_t u = lo; u < hi; ++u) lanes_order[n++] = u;
        if (order == kDescending) std::reverse(lanes_order.begin(), lanes_order.begin() + long(n));
        if (order == kRandom) std::shuffle(lanes_order.begin(), lanes_order.begin() + long(n), rng);
        for (size_t i = n; i-- > 0;) queue.push_front(lanes_order[i]);
      }
      // A warp whose last lane stopped at a barrier or exited while others wait at a warp call:
      // divergence (settle_warp reports it and lets the waiting lanes go on).
      for (size_t lo = 0; lo < nt; lo += 32) {
        current = lo;
        warp_calls = settle_warp(fs, lo, std::min(nt, lo + 32), blk, warp_diverged) || warp_calls;
      }
      if (warp_calls) continue;
      // Then the barrier: every live thread waits at the same one, with the same count; none has exited.
      const Fiber* first_live = nullptr;
      size_t n_done = 0;
      for (const Fiber& f : fs) {
        if (f.state == kDone) {
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
      if (!first_live) break;
      if (n_done > 0 && !diverged) {
        report(blk + ": " + std::to_string(n_done) + " threads exited while others wait at " + where(*first_live));
        diverged = true;
      }
      for (Fiber& f : fs)
        if (f.state == kAtBarrier) f.state = kRunnable;
    }
    for (size_t i = n_smem; i < n_buf; ++i)
      if (std::memcmp(&buffer.get()[i], &kFillBits, sizeof(float)) != 0) {
        report(blk + ": write past the " + std::to_string(smem_bytes) + " B of dynamic shared memory");
        break;
      }
    fibers = nullptr;
    smem = nullptr;
    smem_size = 0;
  }
}

}  // namespace emu
