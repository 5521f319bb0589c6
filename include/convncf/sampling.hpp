// sampling.hpp: the training negatives (RecBole's train_neg_sample_args) and the batch of triples
// they make, the same on every engine.
//
// A batch of n positives with N = sample_num negatives each is n·N triples laid out as RecBole's
// TrainDataLoader lays them out (its batch repeated N times, the k-th copy with the k-th
// negatives): triple s = k·n + j (k < N, j < n) is (user_j, pos_j, neg_{j,k}). neg_{j,k} is drawn
// from the items user_j has not interacted with in training:
//   uniform      the r-th absent item, r = uniform_index(bits, n_items − degree) (nth_absent_item);
//   popularity   with probability proportional to the item's weight (make_popularity_table): the
//                absent item that holds point r = uniform_below(bits, absent weight) of the
//                user's absent weight laid out in item order (nth_absent_weighted). Exact: no
//                rejection loop, integer arithmetic, the same on the CPU and the GPU.
// bits = negative_bits(seed, epoch, lo + j, k): a pure function of the seed, the epoch, the
// positive's place in the epoch's order and the draw's number, so any engine and any thread
// draws the same. With N = 1 and uniform this is the sampler every earlier version had.
// RecBole's dynamic negative sampling (dynamic: true) draws candidate_num candidates per
// negative, number c·N + k for candidate c of negative k (RecBole's order), and keeps the one the
// current model scores highest (the first on ties); the CPU engine does it
// (host/engine/cpu_training_engine.cpp with draw_candidates_cpu and best_candidate below), the
// CUDA engine refuses it.
//
// Kernel: kernels/sampling.cu (gather_batch_gpu). CPU twin: kernels/sampling_cpu.cpp
// (gather_batch_cpu, same arguments; the CPU engine's sampler and the emulated device's).
// Tests: tests/test_sampling.cpp (the twin against plain definitions and the distributions),
// tests/test_sampling_gpu.cu (the kernel against the twin).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "convncf/common.hpp"
#include "convncf/dataset.hpp"
#include "convncf/rng.hpp"

struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace convncf {

enum class NegDistribution { Uniform, Popularity };

// RecBole's train_neg_sample_args (and the older neg_sampling: {uniform: N} / {popularity: N}).
struct NegativeSpec {
  NegDistribution distribution = NegDistribution::Uniform;
  int sample_num = 1;      // N negatives per positive: N triples
  double alpha = 1.0;      // popularity: weight = count^alpha
  bool dynamic = false;    // keep the best-scoring of candidate_num candidates
  int candidate_num = 1;   // candidates per negative when dynamic
  std::string describe() const;  // "1 uniform negative per positive", ...
};

// Positives per batch for a batch of `batch_size` triples: RecBole's max(batch_size / N, 1), so a
// step holds positives · N triples (more than batch_size only when N > batch_size).
inline int64_t positives_per_batch(int64_t batch_size, int sample_num) {
  const int64_t p = batch_size / sample_num;
  return p > 0 ? p : 1;
}

// A step's share on one of `parts` data-parallel ranks (the CUDA engine's, gpu_engine.hpp): the
// step's n positives cut as static_share cuts them, share r holding positives lo .. lo+n_r of the
// step. The rank samples and trains them as a step of its own (gather_batch_gpu at lo_step + lo),
// so its local triple k·n_r + i is the step's triple k·n + lo + i: block k of the share (n_r
// triples from k·n_r) lands at k·n + lo of the step. Dropout's masks (head.hpp) and the gathered
// rows both use this map (share_triple_in_step, common.hpp), so the step is the one a single GPU
// would take.
struct StepShare {
  int64_t lo = 0, n = 0;
};
inline StepShare step_share(int64_t n, int parts, int r) {
  const int64_t b = static_share_begin(n, parts, r);
  return {b, static_share_end(n, parts, r) - b};
}
// Per-triple values of share `sh` (`width` values per triple, in the share's own layout) into the
// step's layout: copy(step_offset, share_offset, count), in values, once per block k < N.
template <typename Copy>
void for_each_share_block(const StepShare& sh, int64_t step_n, int32_t N, int64_t width, Copy&& copy) {
  if (sh.n == 0) return;
  for (int32_t k = 0; k < N; ++k) copy((k * step_n + sh.lo) * width, k * sh.n * width, sh.n * width);
}

// The popularity tables on a training CSR. weight[i] = round(count_i^alpha · 2^kWeightShift) for
// alpha != 1 (count_i itself for alpha = 1), count_i the item's interactions in `counts`.
//   cdf      (n_items + 1,) cdf[i] = Σ_{i' < i} weight[i']
//   row_cum  (nnz,) for each training row, the running sum of its items' weights, inclusive
// absent(u) = cdf[n_items] − row_cum[end of u's row − 1] is the weight u can draw from.
inline constexpr int kWeightShift = 20;
struct PopularityTable {
  std::vector<uint64_t> cdf;
  std::vector<uint64_t> row_cum;
  uint64_t absent(const Csr& train, int32_t u) const {
    const int64_t b = train.offsets[size_t(u)], e = train.offsets[size_t(u) + 1];
    return cdf.back() - (e > b ? row_cum[size_t(e - 1)] : 0);
  }
};
// Throws kExitData when the weights overflow 2^62.
PopularityTable make_popularity_table(const Csr& train, const std::vector<int64_t>& counts, double alpha);

// The table `spec` needs on `split`: popularity counts every interaction of the split (training
// positives, repeats included, then the validation and test items), as RecBole's sampler counts
// its three datasets; empty (no cdf) for uniform.
PopularityTable negative_table(const Split& split, const NegativeSpec& spec);

// Whether user u of `train` has an item to draw as a negative (uniform: degree < n_items;
// popularity: absent weight > 0, also given the table).
bool has_negative(const Csr& train, int32_t n_items, int32_t u, const PopularityTable* pop);

CONVNCF_HD uint64_t negative_bits(uint64_t seed, int epoch, int64_t index, int64_t draw) {
  return rng_hash(seed, kStreamNegative + (uint64_t(draw) << 8), (uint64_t(epoch) << 40) + uint64_t(index));
}

// Uniform integer in [0, n), n < 2^64, from 64 random bits (the high word of bits · n).
CONVNCF_HD uint64_t uniform_below(uint64_t bits, uint64_t n) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(bits, n);
#else
  __extension__ using u128 = unsigned __int128;  // GCC and Clang; -Wpedantic knows no 128-bit type
  return static_cast<uint64_t>((static_cast<u128>(bits) * n) >> 64);
#endif
}

// The absent item at point r of the user's absent weight, r < absent weight: with the user's
// sorted row (deg items, running weights row_cum), the absent weight before row[j] is
// cdf[row[j]] − row_cum[j−1], increasing in j; the first j where it exceeds r bounds the gap
// holding the answer, and in that gap the answer is the first item i with cdf[i + 1] − (weight of
// the row's items before the gap) > r. Two binary searches, integers only.
CONVNCF_HD int32_t nth_absent_weighted(const uint64_t* cdf, int32_t n_items, const int32_t* row,
                                       const uint64_t* row_cum, int64_t deg, uint64_t r) {
  int64_t lo = 0, hi = deg;  // smallest j with cdf[row[j]] - cum(j) > r; deg when none
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    const uint64_t before = mid > 0 ? row_cum[mid - 1] : 0;
    if (cdf[row[mid]] - before > r) hi = mid; else lo = mid + 1;
  }
  const uint64_t target = r + (lo > 0 ? row_cum[lo - 1] : 0);  // first i with cdf[i + 1] > target
  int64_t a = lo > 0 ? row[lo - 1] + 1 : 0, b = lo < deg ? row[lo] : n_items;
  while (a < b) {
    const int64_t mid = (a + b) / 2;
    if (cdf[mid + 1] > target) b = mid; else a = mid + 1;
  }
  return static_cast<int32_t>(a);
}

// One negative for a user with sorted training row `row` (deg items): uniform when cdf is null,
// else by popularity (cdf, row_cum: the user's slice of PopularityTable::row_cum).
CONVNCF_HD int32_t draw_negative(uint64_t bits, const int32_t* row, int64_t deg, int32_t n_items,
                                 const uint64_t* cdf, const uint64_t* row_cum) {
  if (!cdf) {
    const int64_t r = uniform_index(bits, static_cast<uint32_t>(n_items - deg));
    return nth_absent_item(row, deg, r);
  }
  const uint64_t absent = cdf[n_items] - (deg > 0 ? row_cum[deg - 1] : 0);
  return nth_absent_weighted(cdf, n_items, row, row_cum, deg, uniform_below(bits, absent));
}

// Triples lo .. of the epoch for positives order[lo .. lo+n), N = n_neg negatives each: slot
// s = k·n + j < n·N gets user[s] = train_user[t], pos[s] = train_item[t] (t = order[lo + j]) and
// neg[s] drawn with negative_bits(seed, epoch, lo + j, k); slots n·N .. B_cap are set to row 0
// (padding). cdf / row_cum null: uniform; else popularity (PopularityTable's, on the device).
void gather_batch_gpu(int64_t B_cap, int64_t n, int32_t n_neg, int64_t lo, int epoch, uint64_t seed,
                      const int64_t* __restrict__ order,        // (T,) indices into train_*
                      const int32_t* __restrict__ train_user,   // (T_all,)
                      const int32_t* __restrict__ train_item,   // (T_all,)
                      const int64_t* __restrict__ row_offsets,  // (n_users+1,) training CSR
                      const int32_t* __restrict__ row_items,    // (nnz,) sorted per row
                      int32_t n_items,
                      const uint64_t* __restrict__ cdf,         // (n_items+1,) or null
                      const uint64_t* __restrict__ row_cum,     // (nnz,) or null
                      int32_t* __restrict__ user,  // (B_cap,)
                      int32_t* __restrict__ pos,   // (B_cap,)
                      int32_t* __restrict__ neg,   // (B_cap,)
                      cudaStream_t stream);

// The CPU twin: the same arguments and results, in host memory.
void gather_batch_cpu(int64_t B_cap, int64_t n, int32_t n_neg, int64_t lo, int epoch, uint64_t seed,
                      const int64_t* order, const int32_t* train_user, const int32_t* train_item,
                      const int64_t* row_offsets, const int32_t* row_items, int32_t n_items,
                      const uint64_t* cdf, const uint64_t* row_cum, int32_t* user, int32_t* pos, int32_t* neg);

// gather_batch's argument checks, shared by the kernel's launcher, the twin and the emulated
// launcher (kernels/sampling_cpu.cpp): throws Error(kExitSoftware) unless 0 <= n, n_neg >= 1,
// n·n_neg <= B_cap, lo >= 0, n_items >= 1, cdf and row_cum both null or both set, the outputs
// are not null when B_cap > 0 and the inputs are not null when n > 0.
void check_gather_batch_args(int64_t B_cap, int64_t n, int32_t n_neg, int64_t lo, const int64_t* order,
                             const int32_t* train_user, const int32_t* train_item,
                             const int64_t* row_offsets, int32_t n_items, const uint64_t* cdf,
                             const uint64_t* row_cum, const int32_t* user, const int32_t* pos,
                             const int32_t* neg);

// Dynamic negative sampling, the candidates: for each triple s = k·n + j of a batch (users from
// gather_batch), candidate c drawn with draw number c·N + k (RecBole's order) into
// cand[s·C + c] (C = candidates). Host code, for the CPU engine.
void draw_candidates_cpu(int64_t n, int32_t n_neg, int32_t candidates, int64_t lo, int epoch, uint64_t seed,
                         const int32_t* user,          // (n·N,)
                         const int64_t* row_offsets,   // (n_users+1,)
                         const int32_t* row_items,     // (nnz,)
                         int32_t n_items, const uint64_t* cdf, const uint64_t* row_cum,
                         int32_t* cand);               // (n·N, C)
// The index of the highest of scores[0 .. C), the first on ties; a NaN never wins unless all are.
int32_t best_candidate(const float* scores, int32_t candidates);

}  // namespace convncf
