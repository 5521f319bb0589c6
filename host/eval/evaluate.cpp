// evaluate.cpp: the evaluation protocols, the three scorers and the metrics (see evaluate.hpp).
// Tested by tests/test_evaluate.cpp (hand-worked metrics, samplers, scorers against naive
// versions); timed by bench/bench_eval.cpp.
//
//   make_eval_set  one query per user with held-out items (per .test.negative line in file
//                  mode). Sampled negatives come from rng_hash(seed, stream, user << 32 | draw),
//                  so a user's negatives depend on nothing else (thread count, other users).
//                  uni: rejection over the ranks of the absent items while the user needs at
//                  most half of them, else a partial Fisher-Yates over the absent items (no
//                  endless loop when N is large). pop: rejection from the popularity CDF; when
//                  it stalls (the user holds most of the popular mass), exponential keys
//                  (Efraimidis-Spirakis) over the eligible items, which draw from the same
//                  distribution (successive sampling without replacement).
//   scorers        Pop: a lookup. BPR: score_all is a blocked SGEMM, Q packed once into panels
//                  of kNR items (E, kNR) and users into groups of kMR (E, kMR), a kMR x kNR
//                  register micro-kernel, threads over item panels (each reads its share of Q
//                  once per user block). ConvNCF: the engine's score_items (the user's side of
//                  layer 1 once per call, then the items through the tower 8 at a time as one
//                  matrix product per layer), one PairWork per thread; score_all runs it over
//                  (user, 256-item chunk) tasks.
//   evaluate       full: users in blocks, score_all into one reusable buffer, then per user a
//                  counting pass over all items minus the excluded ones (one comparison per
//                  item for one positive, a binary search among the sorted positive scores for
//                  several). sampled/file: per query, parallel over queries. Positions go to an
//                  array and the metrics are summed serially in query order, so the result does
//                  not depend on the thread count.
#include "convncf/evaluate.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "convncf/dist.hpp"
#include "convncf/errors.hpp"
#include "convncf/fp_env.hpp"
#include "convncf/rng.hpp"
#include "json_util.hpp"

namespace convncf {

// ---------------------------------------------------------------------------------------------
// Protocols and sampling

namespace {

enum class ModeKind { Full, Uni, Pop, File };
struct ModeSpec {
  ModeKind kind;
  int64_t n;  // negatives per positive (uni, pop)
};

ModeSpec parse_mode(const std::string& mode) {
  if (mode == "full") return {ModeKind::Full, 0};
  if (mode == "file") return {ModeKind::File, 0};
  for (const char* prefix : {"uni", "pop"}) {
    if (mode.compare(0, 3, prefix) != 0) continue;
    const std::string digits = mode.substr(3);
    if (digits.empty() || digits.size() > 9 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      break;
    const int64_t n = std::stoll(digits);
    if (n < 1) break;
    return {prefix[0] == 'u' ? ModeKind::Uni : ModeKind::Pop, n};
  }
  throw_usage("eval mode '" + mode +
              "' is not one of full, uniN, popN (N >= 1 negatives per positive, e.g. uni99, "
              "pop100) or file");
}

// Row u of a CSR, empty when the CSR has no such row (a split without validation items).
struct Row {
  const int32_t* items;
  int64_t size;
};
Row row_of(const Csr& c, int32_t u) {
  if (c.offsets.empty() || u < 0 || u >= c.n_rows()) return {nullptr, 0};
  return {c.row(u), c.degree(u)};
}

// Sorted, distinct union of several sorted rows, only items in [0, n_items).
void union_rows(const std::vector<Row>& rows, int32_t n_items, std::vector<int32_t>& out) {
  out.clear();
  for (const Row& r : rows) out.insert(out.end(), r.items, r.items + r.size);
  if (rows.size() > 1) std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  while (!out.empty() && out.back() >= n_items) out.pop_back();
  out.erase(out.begin(), std::lower_bound(out.begin(), out.end(), 0));
}

constexpr uint64_t kEsCounter = uint64_t(1) << 31;  // pop fallback draws: counter | item

uint64_t draw(uint64_t seed, uint64_t stream, int32_t user, uint64_t t) {
  return rng_hash(seed, stream, (uint64_t(uint32_t(user)) << 32) | t);
}

// `want` distinct items uniform over those absent from the sorted row (F of them, want <= F).
void sample_uniform(const Row& all, int32_t n_items, int64_t want, uint64_t seed, uint64_t stream,
                    int32_t user, std::vector<uint8_t>& mark, std::vector<int32_t>& scratch,
                    int32_t* out) {
  const int64_t F = n_items - all.size;
  if (want <= 0) return;
  if (2 * want <= F) {
    // Rejection over ranks of the absent items: each draw repeats a chosen one with p < 1/2.
    int64_t k = 0;
    for (uint64_t t = 0; k < want; ++t) {
      const int64_t r = uniform_index(draw(seed, stream, user, t), uint32_t(F));
      const int32_t item = nth_absent_item(all.items, all.size, r);
      if (mark[size_t(item)]) continue;
      mark[size_t(item)] = 1;
      out[k++] = item;
    }
    for (int64_t i = 0; i < want; ++i) mark[size_t(out[i])] = 0;
    return;
  }
  // The user needs more than half of the absent items: partial Fisher-Yates over all of them
  // (F < 2 want, so this is O(want) as well).
  scratch.resize(size_t(F));
  for (int64_t r = 0, j = 0, item = 0; item < n_items; ++item) {
    while (j < all.size && all.items[j] < item) ++j;
    if (j < all.size && all.items[j] == item) continue;
    scratch[size_t(r++)] = int32_t(item);
  }
  for (int64_t k = 0; k < want && k < F - 1; ++k) {
    const int64_t j = k + uniform_index(draw(seed, stream, user, uint64_t(k)), uint32_t(F - k));
    std::swap(scratch[size_t(k)], scratch[size_t(j)]);
  }
  std::copy(scratch.begin(), scratch.begin() + want, out);
}

// Popularity sampling state shared by all users.
struct PopTable {
  std::vector<int64_t> count;  // (n_items,)
  std::vector<int64_t> cum;    // (n_items,) inclusive prefix sums
  int64_t total = 0;
  int64_t n_eligible = 0;  // items with count > 0
};

// `want` distinct items, never marked (mark holds the user's items on entry and on exit), drawn
// in proportion to count; want < number of eligible items.
void sample_popular(const PopTable& pt, const Row& all, int32_t n_items, int64_t want,
                    uint64_t seed, uint64_t stream, int32_t user, std::vector<uint8_t>& mark,
                    std::vector<std::pair<double, int32_t>>& keys, int32_t* out) {
  if (want <= 0) return;
  const uint64_t max_draws = uint64_t(64 * want + 1024);
  int64_t k = 0;
  for (uint64_t t = 0; k < want && t < max_draws; ++t) {
    const double u = uniform01(draw(seed, stream, user, t));
    const int64_t r = std::min(int64_t(u * double(pt.total)), pt.total - 1);
    // first item whose inclusive prefix sum exceeds r: never a zero-count item
    const int32_t item =
        int32_t(std::upper_bound(pt.cum.begin(), pt.cum.end(), r) - pt.cum.begin());
    if (mark[size_t(item)]) continue;
    mark[size_t(item)] = 1;
    out[k++] = item;
  }
  for (int64_t i = 0; i < k; ++i) mark[size_t(out[i])] = 0;
  if (k == want) return;
  // Rejection stalled: exponential keys log(u)/w over every eligible item, the largest `want`.
  keys.clear();
  for (int64_t j = 0, item = 0; item < n_items; ++item) {
    while (j < all.size && all.items[j] < item) ++j;
    if ((j < all.size && all.items[j] == item) || pt.count[size_t(item)] <= 0) continue;
    const uint64_t bits = draw(seed, stream, user, kEsCounter | uint64_t(item));
    const double u = (double(bits >> 11) + 0.5) * 0x1.0p-53;  // in (0, 1)
    keys.emplace_back(std::log(u) / double(pt.count[size_t(item)]), int32_t(item));
  }
  std::partial_sort(keys.begin(), keys.begin() + want, keys.end(),
                    [](const std::pair<double, int32_t>& a, const std::pair<double, int32_t>& b) {
                      return a.first != b.first ? a.first > b.first : a.second < b.second;
                    });
  for (int64_t i = 0; i < want; ++i) out[i] = keys[size_t(i)].second;
}

}  // namespace

void check_eval_mode(const std::string& mode) { parse_mode(mode); }

EvalSet make_eval_set(const Split& split, bool test, const std::string& mode, uint64_t seed,
                      uint64_t stream, const FileNegatives* file_negatives) {
  ModeSpec ms = parse_mode(mode);
  const int32_t n_items = split.n_items;
  EvalSet set;
  if (ms.kind == ModeKind::File) {
    if (test) {
      if (!file_negatives || file_negatives->empty())
        throw_usage("eval mode 'file' needs the negatives of a .test.negative file (data_format "
                    "ncf); this data has none");
      const FileNegatives& fn = *file_negatives;
      const size_t L = fn.user.size();
      if (fn.positive.size() != L || fn.offsets.size() != L + 1 ||
          fn.offsets.back() != int64_t(fn.negatives.size()))
        throw_internal("make_eval_set: inconsistent FileNegatives");
      for (size_t l = 0; l < L; ++l)
        if (fn.user[l] < 0 || fn.user[l] >= split.n_users || fn.positive[l] < 0 ||
            fn.positive[l] >= n_items)
          throw_data("test negatives, line " + std::to_string(l + 1) + ": user or item unknown");
      for (int32_t it : fn.negatives)
        if (it < 0 || it >= n_items) throw_data("test negatives: item index out of range");
      set.mode = "file";
      set.user = fn.user;
      set.pos_offsets.resize(L + 1);
      std::iota(set.pos_offsets.begin(), set.pos_offsets.end(), int64_t(0));
      set.positives = fn.positive;
      set.neg_offsets = fn.offsets;
      set.negatives = fn.negatives;
      return set;
    }
    ms = {ModeKind::Full, 0};  // file negatives exist for the test items only
  }
  set.mode = ms.kind == ModeKind::Full ? std::string("full") : mode;
  const Csr& held = test ? split.test : split.valid;
  set.pos_offsets.push_back(0);
  for (int32_t u = 0; u < split.n_users; ++u) {
    const Row r = row_of(held, u);
    if (r.size == 0) continue;
    set.user.push_back(u);
    set.positives.insert(set.positives.end(), r.items, r.items + r.size);
    set.pos_offsets.push_back(int64_t(set.positives.size()));
  }
  if (ms.kind == ModeKind::Full) {
    set.exclude = {&split.train};
    if (test) set.exclude.push_back(&split.valid);
    return set;
  }

  // Sampled: how many negatives each query gets, then fill in parallel (each user alone).
  const int64_t Q = set.size();
  PopTable pt;
  if (ms.kind == ModeKind::Pop) {
    pt.count.assign(size_t(n_items), 0);
    if (int64_t(split.item_train_count.size()) == int64_t(n_items)) {
      std::copy(split.item_train_count.begin(), split.item_train_count.end(), pt.count.begin());
    } else {  // a split built without counts: count the training rows
      for (int32_t it : split.train.items)
        if (it >= 0 && it < n_items) ++pt.count[size_t(it)];
    }
    pt.cum.resize(size_t(n_items));
    for (int32_t i = 0; i < n_items; ++i) {
      pt.total += std::max<int64_t>(pt.count[size_t(i)], 0);
      pt.cum[size_t(i)] = pt.total;
      pt.n_eligible += pt.count[size_t(i)] > 0;
    }
  }
  std::vector<int64_t> available(static_cast<size_t>(Q));  // distinct negatives the user can get
  set.neg_offsets.assign(size_t(Q) + 1, 0);
  for (int64_t q = 0; q < Q; ++q) {
    const Row all = row_of(split.all, set.user[size_t(q)]);
    int64_t avail = n_items - all.size;
    if (ms.kind == ModeKind::Pop) {
      avail = pt.n_eligible;
      for (int64_t j = 0; j < all.size; ++j) avail -= pt.count[size_t(all.items[j])] > 0;
    }
    const int64_t m = set.pos_offsets[size_t(q) + 1] - set.pos_offsets[size_t(q)];
    available[size_t(q)] = avail;
    set.neg_offsets[size_t(q) + 1] = set.neg_offsets[size_t(q)] + std::min(ms.n * m, avail);
  }
  set.negatives.resize(size_t(set.neg_offsets.back()));
#pragma omp parallel
  {
    std::vector<uint8_t> mark(size_t(n_items), 0);
    std::vector<int32_t> scratch;
    std::vector<std::pair<double, int32_t>> keys;
#pragma omp for schedule(dynamic, 16)
    for (int64_t q = 0; q < Q; ++q) {
      const int32_t u = set.user[size_t(q)];
      const Row all = row_of(split.all, u);
      int32_t* out = set.negatives.data() + set.neg_offsets[size_t(q)];
      const int64_t want = set.neg_offsets[size_t(q) + 1] - set.neg_offsets[size_t(q)];
      if (want == 0) continue;
      if (ms.kind == ModeKind::Uni) {
        sample_uniform(all, n_items, want, seed, stream, u, mark, scratch, out);
        continue;
      }
      if (want == available[size_t(q)]) {  // every eligible item
        int64_t k = 0;
        for (int64_t j = 0, item = 0; item < n_items; ++item) {
          while (j < all.size && all.items[j] < item) ++j;
          if ((j < all.size && all.items[j] == item) || pt.count[size_t(item)] <= 0) continue;
          out[k++] = int32_t(item);
        }
        continue;
      }
      for (int64_t j = 0; j < all.size; ++j) mark[size_t(all.items[j])] = 1;
      sample_popular(pt, all, n_items, want, seed, stream, u, mark, keys, out);
      for (int64_t j = 0; j < all.size; ++j) mark[size_t(all.items[j])] = 0;
    }
  }
  return set;
}

// ---------------------------------------------------------------------------------------------
// Scorers

namespace {

class PopScorer final : public Scorer {
 public:
  PopScorer(int threads, const Params<float>& params) : m_threads(threads), m_params(params) {}
  int threads() const override { return m_threads; }
  int32_t n_items() const override { return m_params.n_items; }
  void score_items(int32_t, const int32_t* items, int64_t n, float* out, int) override {
    const float* net = m_params.net.data();
    for (int64_t i = 0; i < n; ++i) out[i] = net[items[i]];
  }
  void score_all(const int32_t*, int64_t nu, float* out) override {
    const int64_t N = m_params.n_items;
#pragma omp parallel for num_threads(m_threads) schedule(static)
    for (int64_t u = 0; u < nu; ++u) std::copy(m_params.net.begin(), m_params.net.begin() + N, out + u * N);
  }

 private:
  int m_threads;
  const Params<float>& m_params;
};

// BPR micro-kernel: kMR users x kNR items in registers (12 AVX2 accumulators), the BLIS
// Haswell shape. a: (E, kMR) packed users, b: (E, kNR) packed items, c: (R, cols) at stride ldc.
constexpr int kMR = 6;
constexpr int kNR = 16;

template <int R>
void bpr_micro_kernel(int E, const float* __restrict a, const float* __restrict b,
                      float* __restrict c, int64_t ldc) {
  float acc[R][kNR];
  for (int r = 0; r < R; ++r)
#pragma omp simd
    for (int j = 0; j < kNR; ++j) acc[r][j] = 0.f;
  for (int e = 0; e < E; ++e) {
    const float* be = b + int64_t(e) * kNR;
    const float* ae = a + int64_t(e) * kMR;
    for (int r = 0; r < R; ++r) {
      const float ar = ae[r];
#pragma omp simd
      for (int j = 0; j < kNR; ++j) acc[r][j] += ar * be[j];
    }
  }
  for (int r = 0; r < R; ++r)
#pragma omp simd
    for (int j = 0; j < kNR; ++j) c[r * ldc + j] = acc[r][j];
}

// rows x cols of c; a partial panel (cols < kNR) goes through a small buffer, so the kernel
// always stores whole rows from registers.
void bpr_micro(int rows, int E, const float* a, const float* b, float* c, int64_t ldc, int cols) {
  float tile[kMR * kNR];
  float* dst = cols == kNR ? c : tile;
  const int64_t ld = cols == kNR ? ldc : kNR;
  switch (rows) {
    case 6: bpr_micro_kernel<6>(E, a, b, dst, ld); break;
    case 5: bpr_micro_kernel<5>(E, a, b, dst, ld); break;
    case 4: bpr_micro_kernel<4>(E, a, b, dst, ld); break;
    case 3: bpr_micro_kernel<3>(E, a, b, dst, ld); break;
    case 2: bpr_micro_kernel<2>(E, a, b, dst, ld); break;
    default: bpr_micro_kernel<1>(E, a, b, dst, ld); break;
  }
  if (cols != kNR)
    for (int r = 0; r < rows; ++r)
      for (int j = 0; j < cols; ++j) c[r * ldc + j] = tile[r * kNR + j];
}

class BprScorer final : public Scorer {
 public:
  BprScorer(int threads, const Params<float>& params) : m_threads(threads), m_params(params) {}
  int threads() const override { return m_threads; }
  int32_t n_items() const override { return m_params.n_items; }
  void score_items(int32_t user, const int32_t* items, int64_t n, float* out, int) override {
    const FlushDenormals flush;  // fp_env.hpp
    const int E = m_params.E;
    const float* p = m_params.P.data() + int64_t(user) * E;
    for (int64_t i = 0; i < n; ++i) {
      const float* q = m_params.Q.data() + int64_t(items[i]) * E;
      float s = 0.f;
#pragma omp simd reduction(+ : s)
      for (int e = 0; e < E; ++e) s += p[e] * q[e];
      out[i] = s;
    }
  }
  void score_all(const int32_t* users, int64_t nu, float* out) override;

 private:
  void pack_items();
  int m_threads;
  const Params<float>& m_params;
  std::vector<float> m_qpack;  // (panels, E, kNR) Q transposed per panel, zero-padded
  std::vector<float> m_upack;  // (groups, E, kMR) the users of the current call
};

void BprScorer::pack_items() {
  const int E = m_params.E;
  const int64_t N = m_params.n_items, panels = ceil_div<int64_t>(N, kNR);
  m_qpack.assign(size_t(panels * E * kNR), 0.f);
  const float* Q = m_params.Q.data();
#pragma omp parallel for num_threads(m_threads) schedule(static)
  for (int64_t pn = 0; pn < panels; ++pn) {
    float* dst = m_qpack.data() + pn * E * kNR;
    for (int j = 0; j < kNR && pn * kNR + j < N; ++j) {
      const float* q = Q + (pn * kNR + j) * E;
      for (int e = 0; e < E; ++e) dst[e * kNR + j] = q[e];
    }
  }
}

void BprScorer::score_all(const int32_t* users, int64_t nu, float* out) {
  const int E = m_params.E;
  const int64_t N = m_params.n_items;
  if (nu <= 0 || N <= 0) return;
  if (E == 0) {
    std::fill(out, out + nu * N, 0.f);
    return;
  }
  if (m_qpack.empty()) pack_items();
  const int64_t groups = ceil_div<int64_t>(nu, kMR), panels = ceil_div<int64_t>(N, kNR);
  m_upack.assign(size_t(groups * E * kMR), 0.f);
  for (int64_t u = 0; u < nu; ++u) {
    const float* p = m_params.P.data() + int64_t(users[u]) * E;
    float* dst = m_upack.data() + (u / kMR) * E * kMR + u % kMR;
    for (int e = 0; e < E; ++e) dst[e * kMR] = p[e];
  }
  // Users in chunks whose packed rows stay in L1/L2 while every item panel streams past them;
  // threads split the item panels, so each reads its part of Q once per chunk.
  constexpr int64_t kGroupsPerChunk = 16;
  const float* up = m_upack.data();
  const float* qp = m_qpack.data();
#pragma omp parallel num_threads(m_threads)
  {
    const FlushDenormals flush;  // fp_env.hpp, in each worker
    for (int64_t g0 = 0; g0 < groups; g0 += kGroupsPerChunk) {
      const int64_t g1 = std::min(groups, g0 + kGroupsPerChunk);
#pragma omp for schedule(static)
      for (int64_t pn = 0; pn < panels; ++pn) {
        const int cols = int(std::min<int64_t>(kNR, N - pn * kNR));
        const float* b = qp + pn * E * kNR;
        for (int64_t g = g0; g < g1; ++g) {
          const int rows = int(std::min<int64_t>(kMR, nu - g * kMR));
          bpr_micro(rows, E, up + g * E * kMR, b, out + g * kMR * N + pn * kNR, N, cols);
        }
      }
    }
  }
}

class ConvScorer final : public Scorer {
 public:
  ConvScorer(CpuEngine<float>& engine, const Params<float>& params)
      : m_engine(engine), m_params(params), m_threads(std::max(1, engine.threads())) {
    engine.prepare_scoring(params);
    for (int t = 0; t < m_threads; ++t) m_work.push_back(engine.make_work());
  }
  int threads() const override { return m_threads; }
  int32_t n_items() const override { return m_params.n_items; }
  void score_items(int32_t user, const int32_t* items, int64_t n, float* out, int tid) override {
    m_engine.score_items(m_params, user, items, n, out, m_work[size_t(tid)]);
  }
  void score_all(const int32_t* users, int64_t nu, float* out) override {
    const int64_t N = m_params.n_items;
    if (int64_t(m_all_items.size()) != N) {
      m_all_items.resize(size_t(N));
      std::iota(m_all_items.begin(), m_all_items.end(), 0);
    }
    constexpr int64_t kChunk = 256;
    const int64_t chunks = ceil_div<int64_t>(N, kChunk), tasks = nu * chunks;
#pragma omp parallel for num_threads(m_threads) schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t u = t / chunks, i0 = (t % chunks) * kChunk, n = std::min(kChunk, N - i0);
      m_engine.score_items(m_params, users[u], m_all_items.data() + i0, n, out + u * N + i0,
                           m_work[size_t(omp_get_thread_num())]);
    }
  }

 private:
  CpuEngine<float>& m_engine;
  const Params<float>& m_params;
  int m_threads;
  std::vector<PairWork<float>> m_work;  // one per thread
  std::vector<int32_t> m_all_items;     // 0..n_items-1
};

}  // namespace

std::unique_ptr<Scorer> make_scorer(CpuEngine<float>& engine, const Params<float>& params) {
  const int threads = std::max(1, engine.threads());
  const size_t NU = size_t(std::max(params.n_users, 0)), NI = size_t(std::max(params.n_items, 0));
  switch (params.model) {
    case ModelKind::Pop:
      if (params.net.size() < NI) throw_internal("make_scorer: popularity counts do not cover the items");
      return std::make_unique<PopScorer>(threads, params);
    case ModelKind::BPR:
      if (params.P.size() != NU * size_t(params.E) || params.Q.size() != NI * size_t(params.E))
        throw_internal("make_scorer: embedding tables do not match n_users, n_items, E");
      return std::make_unique<BprScorer>(threads, params);
    case ModelKind::ConvNCF:
      if (params.P.size() != NU * size_t(params.E) || params.Q.size() != NI * size_t(params.E))
        throw_internal("make_scorer: embedding tables do not match n_users, n_items, E");
      return std::make_unique<ConvScorer>(engine, params);
  }
  throw_internal("make_scorer: unknown model");
}

// ---------------------------------------------------------------------------------------------
// Ranking

namespace {

// Descending, NaN last: then "negative v ranks above positive x" (!(v < x)) holds for a suffix.
bool desc_nan_last(float a, float b) { return a > b || (!std::isnan(a) && std::isnan(b)); }

// First j with !(v < ps[j]) in ps sorted by desc_nan_last: the positives v ranks above.
int64_t first_beaten(const float* ps, int64_t m, float v) {
  int64_t lo = 0, hi = m;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (v < ps[mid]) lo = mid + 1; else hi = mid;
  }
  return lo;
}

// Positions from diff[j] = negatives whose first beaten positive is j (ps sorted).
void positions_from_diff(const int64_t* diff, int64_t m, int64_t* out) {
  int64_t above = 0;
  for (int64_t j = 0; j < m; ++j) {
    above += diff[j];
    out[j] = j + above;
  }
}

// Negatives ranked above one positive x: !(v < x) counts ties and NaN negatives against it,
// and everything against a NaN positive.
int64_t count_above(const float* s, int64_t n, float x) {
  int64_t c = 0;
#pragma omp simd reduction(+ : c)
  for (int64_t i = 0; i < n; ++i) c += !(s[i] < x);
  return c;
}

// One full-mode query: `s` holds the user's scores of all N items.
void rank_full(const float* s, int64_t N, const int32_t* pos, int64_t m,
               const std::vector<int32_t>& skip, int64_t* out, std::vector<float>& ps,
               std::vector<int64_t>& diff) {
  // Count over every item, then take back the skipped ones (the positives among them).
  if (m == 1) {
    const float x = s[pos[0]];
    int64_t c = count_above(s, N, x);
    for (int32_t it : skip) c -= !(s[it] < x);
    out[0] = c;
    return;
  }
  ps.resize(size_t(m));
  for (int64_t j = 0; j < m; ++j) ps[size_t(j)] = s[pos[j]];
  std::sort(ps.begin(), ps.end(), desc_nan_last);
  diff.assign(size_t(m) + 1, 0);
  for (int64_t i = 0; i < N; ++i) ++diff[size_t(first_beaten(ps.data(), m, s[i]))];
  for (int32_t it : skip) --diff[size_t(first_beaten(ps.data(), m, s[it]))];
  positions_from_diff(diff.data(), m, out);
}

int64_t block_users(int64_t N) {
  // About 16 MiB of scores per block: enough users to amortize streaming Q, few enough that
  // the block's scores are still in L3 when they are ranked.
  const int64_t b = (int64_t(4) << 20) / std::max<int64_t>(N, 1);
  return std::max<int64_t>(kMR, std::min<int64_t>(32 * kMR, b / kMR * kMR));
}

}  // namespace

void positive_positions(const float* pos, int64_t m, const float* neg, int64_t n, int64_t* out) {
  if (m <= 0) return;
  if (m == 1) {
    out[0] = count_above(neg, n, pos[0]);
    return;
  }
  std::vector<float> ps(pos, pos + m);
  std::sort(ps.begin(), ps.end(), desc_nan_last);
  std::vector<int64_t> diff(size_t(m) + 1, 0);
  for (int64_t i = 0; i < n; ++i) ++diff[size_t(first_beaten(ps.data(), m, neg[i]))];
  positions_from_diff(diff.data(), m, out);
}

Metrics evaluate(Scorer& scorer, const EvalSet& set, const std::vector<int>& topk) {
  MetricSum sum(topk);
  const int64_t Q = set.size();
  const int64_t N = scorer.n_items();
  const int T = std::max(1, scorer.threads());
  if (int64_t(set.pos_offsets.size()) != Q + 1 ||
      (!set.full() && int64_t(set.neg_offsets.size()) != Q + 1))
    throw_internal("evaluate: inconsistent EvalSet offsets");
  for (int32_t it : set.positives)
    if (it < 0 || it >= N) throw_internal("evaluate: positive item out of range");
  for (int32_t it : set.negatives)
    if (it < 0 || it >= N) throw_internal("evaluate: negative item out of range");
  std::vector<int64_t> positions(set.positives.size());
  std::vector<int64_t> n_neg(static_cast<size_t>(Q));
  // Several ranks: this rank's share of the queries, the others' by gather_query_shares below
  const QueryRange mine = rank_queries(set);
  const int64_t q_lo = mine.lo, q_hi = mine.hi;

  if (set.full()) {
    const int64_t B = block_users(N);
    std::vector<float> scores(size_t(std::min(B, std::max<int64_t>(q_hi - q_lo, 1)) * N));
    for (int64_t q0 = q_lo; q0 < q_hi; q0 += B) {
      const int64_t nb = std::min(B, q_hi - q0);
      scorer.score_all(set.user.data() + q0, nb, scores.data());
#pragma omp parallel num_threads(T)
      {
        std::vector<Row> rows;
        std::vector<int32_t> skip;
        std::vector<float> ps;
        std::vector<int64_t> diff;
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < nb; ++i) {
          const int64_t q = q0 + i;
          const int32_t u = set.user[size_t(q)];
          const int64_t b = set.pos_offsets[size_t(q)], m = set.pos_offsets[size_t(q) + 1] - b;
          rows.clear();
          rows.push_back({set.positives.data() + b, m});
          for (const Csr* c : set.exclude) rows.push_back(row_of(*c, u));
          union_rows(rows, int32_t(N), skip);
          n_neg[size_t(q)] = N - int64_t(skip.size());
          rank_full(scores.data() + i * N, N, set.positives.data() + b, m, skip,
                    positions.data() + b, ps, diff);
        }
      }
    }
  } else {
#pragma omp parallel num_threads(T)
    {
      const int tid = omp_get_thread_num();
      std::vector<int32_t> items;
      std::vector<float> scores;
#pragma omp for schedule(dynamic, 4)
      for (int64_t q = q_lo; q < q_hi; ++q) {
        const int64_t pb = set.pos_offsets[size_t(q)], m = set.pos_offsets[size_t(q) + 1] - pb;
        const int64_t nb = set.neg_offsets[size_t(q)], n = set.neg_offsets[size_t(q) + 1] - nb;
        items.assign(set.positives.begin() + pb, set.positives.begin() + pb + m);
        items.insert(items.end(), set.negatives.begin() + nb, set.negatives.begin() + nb + n);
        scores.resize(items.size());
        scorer.score_items(set.user[size_t(q)], items.data(), m + n, scores.data(), tid);
        positive_positions(scores.data(), m, scores.data() + m, n, positions.data() + pb);
        n_neg[size_t(q)] = n;
      }
    }
  }
  gather_query_shares(set, positions, n_neg);
  for (int64_t q = 0; q < Q; ++q) {
    const int64_t b = set.pos_offsets[size_t(q)];
    sum.add(positions.data() + b, set.pos_offsets[size_t(q) + 1] - b, n_neg[size_t(q)]);
  }
  return sum.mean();
}

QueryRange rank_queries(const EvalSet& set) {
  const World& world = World::get();
  return {static_share_begin(set.size(), world.size(), world.rank()),
          static_share_end(set.size(), world.size(), world.rank())};
}

void gather_query_shares(const EvalSet& set, std::vector<int64_t>& positions, std::vector<int64_t>& n_neg) {
  const World& world = World::get();
  if (!world.distributed()) return;
  const int64_t Q = set.size();
  const QueryRange mine = rank_queries(set);
  // this rank's queries' negatives counts, then their positives' positions
  const int64_t p_lo = set.pos_offsets[size_t(mine.lo)], p_hi = set.pos_offsets[size_t(mine.hi)];
  std::vector<int64_t> sent(n_neg.begin() + mine.lo, n_neg.begin() + mine.hi);
  sent.insert(sent.end(), positions.begin() + p_lo, positions.begin() + p_hi);
  const std::vector<std::vector<int64_t>> all = world.allgather(sent);
  for (int r = 0; r < world.size(); ++r) {
    const int64_t a = static_share_begin(Q, world.size(), r), b = static_share_end(Q, world.size(), r);
    const int64_t pa = set.pos_offsets[size_t(a)], pb = set.pos_offsets[size_t(b)];
    const std::vector<int64_t>& v = all[size_t(r)];
    if (int64_t(v.size()) != (b - a) + (pb - pa))
      throw_internal("evaluate: rank " + std::to_string(r) + " sent another number of positions: the ranks disagree on the queries");
    std::copy(v.begin(), v.begin() + (b - a), n_neg.begin() + a);
    std::copy(v.begin() + (b - a), v.end(), positions.begin() + pa);
  }
}

EvalSet slice_queries(const EvalSet& set, int64_t lo, int64_t hi) {
  if (lo < 0 || hi < lo || hi > set.size()) throw_internal("slice_queries: queries out of range");
  EvalSet out;
  out.mode = set.mode;
  out.exclude = set.exclude;
  out.user.assign(set.user.begin() + lo, set.user.begin() + hi);
  auto slice = [&](const std::vector<int64_t>& offsets, const std::vector<int32_t>& items, std::vector<int64_t>& o,
                   std::vector<int32_t>& it) {
    o.resize(size_t(hi - lo) + 1);
    for (int64_t q = lo; q <= hi; ++q) o[size_t(q - lo)] = offsets[size_t(q)] - offsets[size_t(lo)];
    it.assign(items.begin() + offsets[size_t(lo)], items.begin() + offsets[size_t(hi)]);
  };
  slice(set.pos_offsets, set.positives, out.pos_offsets, out.positives);
  if (!set.full()) slice(set.neg_offsets, set.negatives, out.neg_offsets, out.negatives);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Metrics

namespace {
constexpr int kPerK = 5;  // hit, recall, precision, ndcg, mrr
}

MetricSum::MetricSum(const std::vector<int>& topk)
    : m_topk(topk), m_sum(size_t(kPerK) * topk.size() + 1, 0.0) {
  for (int k : topk)
    if (k < 1) throw_usage("topk values must be >= 1, not " + std::to_string(k));
}

void MetricSum::add(const int64_t* positions, int64_t m, int64_t n_negatives) {
  if (m <= 0) return;
  std::vector<int64_t> sorted;
  if (!std::is_sorted(positions, positions + m)) {
    sorted.assign(positions, positions + m);
    std::sort(sorted.begin(), sorted.end());
    positions = sorted.data();
  }
  for (size_t t = 0; t < m_topk.size(); ++t) {
    const int64_t K = m_topk[t];
    int64_t hits = 0;
    double dcg = 0.0, idcg = 0.0;
    for (int64_t j = 0; j < m && positions[j] < K; ++j) {
      ++hits;
      dcg += 1.0 / std::log2(double(positions[j]) + 2.0);
    }
    for (int64_t i = 0; i < std::min(m, K); ++i) idcg += 1.0 / std::log2(double(i) + 2.0);
    double* s = m_sum.data() + t * kPerK;
    s[0] += hits > 0 ? 1.0 : 0.0;
    s[1] += double(hits) / double(m);
    s[2] += double(hits) / double(K);
    s[3] += dcg / idcg;
    s[4] += hits > 0 ? 1.0 / double(positions[0] + 1) : 0.0;
  }
  double above = 0.0;
  for (int64_t j = 0; j < m; ++j) above += double(positions[j] - j);
  m_sum.back() += 1.0 - above / double(m) / double(n_negatives + 1);
  ++m_count;
}

void MetricSum::merge(const MetricSum& other) {
  if (other.m_topk != m_topk) throw_internal("MetricSum::merge: different topk");
  for (size_t i = 0; i < m_sum.size(); ++i) m_sum[i] += other.m_sum[i];
  m_count += other.m_count;
}

Metrics MetricSum::mean() const {
  const double inv = m_count > 0 ? 1.0 / double(m_count) : 0.0;
  static const char* const names[kPerK] = {"hit", "recall", "precision", "ndcg", "mrr"};
  Metrics out;
  for (size_t t = 0; t < m_topk.size(); ++t)
    for (int i = 0; i < kPerK; ++i)
      out.emplace_back(std::string(names[i]) + "@" + std::to_string(m_topk[t]),
                       m_sum[t * kPerK + size_t(i)] * inv);
  out.emplace_back("auc", m_sum.back() * inv);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Recommendation lists

std::vector<std::vector<std::pair<int32_t, float>>> top_k(Scorer& scorer,
                                                          const std::vector<int32_t>& users,
                                                          const std::vector<const Csr*>& exclude,
                                                          int32_t k) {
  const int64_t U = int64_t(users.size()), N = scorer.n_items();
  std::vector<std::vector<std::pair<int32_t, float>>> result(static_cast<size_t>(U));
  if (k <= 0 || U == 0 || N <= 0) return result;
  const int T = std::max(1, scorer.threads());
  const int64_t B = block_users(N);
  std::vector<float> scores(size_t(std::min(B, U) * N));
  for (int64_t u0 = 0; u0 < U; u0 += B) {
    const int64_t nb = std::min(B, U - u0);
    scorer.score_all(users.data() + u0, nb, scores.data());
#pragma omp parallel num_threads(T)
    {
      std::vector<Row> rows;
      std::vector<int32_t> skip, cand;
#pragma omp for schedule(dynamic, 1)
      for (int64_t i = 0; i < nb; ++i) {
        const float* s = scores.data() + i * N;
        rows.clear();
        for (const Csr* c : exclude) rows.push_back(row_of(*c, users[size_t(u0 + i)]));
        union_rows(rows, int32_t(N), skip);
        cand.clear();
        for (int32_t it = 0, j = 0; it < N; ++it) {
          if (j < int32_t(skip.size()) && skip[size_t(j)] == it) {
            ++j;
            continue;
          }
          cand.push_back(it);
        }
        const size_t kk = std::min(size_t(k), cand.size());
        // best first: higher score, NaN last, ties by lower item index
        std::partial_sort(cand.begin(), cand.begin() + int64_t(kk), cand.end(),
                          [s](int32_t a, int32_t b) {
                            const float sa = s[a], sb = s[b];
                            const bool na = std::isnan(sa), nb2 = std::isnan(sb);
                            if (na != nb2) return nb2;
                            if (!na && sa != sb) return sa > sb;
                            return a < b;
                          });
        auto& r = result[size_t(u0 + i)];
        r.reserve(kk);
        for (size_t j = 0; j < kk; ++j) r.emplace_back(cand[j], s[cand[j]]);
      }
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Reporting

double metric_value(const Metrics& m, const std::string& name) {
  for (const auto& kv : m)
    if (kv.first == name) return kv.second;
  throw_usage("metric '" + name + "' is not computed; valid_metric must use a K listed in topk");
}

std::string metrics_json(const Metrics& m) { return metrics_object(m).dump(); }

std::string metrics_brief(const Metrics& m, const std::vector<std::string>& names) {
  std::string s;
  char buf[128];
  for (const std::string& n : names) {
    std::snprintf(buf, sizeof buf, "%s%s %.4f", s.empty() ? "" : "  ", n.c_str(),
                  metric_value(m, n));
    s += buf;
  }
  return s;
}

}  // namespace convncf
