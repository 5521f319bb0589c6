// eval_gpu.cpp: evaluation and recommendation lists on the GPU (see eval_gpu.hpp). The scores
// come from a DeviceScorer; the ranking kernels are in kernels/rank.cu. Tested by
// tests/test_eval_gpu.cu against evaluate() and top_k() of evaluate.hpp on the same scores.
//
//   evaluate_gpu  full: per query, the union of its user's `exclude` rows (sorted, distinct) and
//                 its positives (sorted) are uploaded once, with every positive's own score
//                 (score_pairs). Queries go in blocks of nu and items in chunks, nu * chunk <=
//                 max_pairs(); for each (block, chunk) the scorer writes the scores and
//                 count_beating_gpu adds, per positive, the chunk's candidate negatives ranked
//                 above it. At the end each query's positions follow from its counts
//                 (positions_from_beats) and n_negatives = n_items - |excluded or positive|, as
//                 evaluate() has them. sampled/file: the candidates (positives, then negatives)
//                 of consecutive queries as (user, item) pairs, scored in launches of up to
//                 max_pairs(), downloaded, and ranked by positive_positions() exactly as
//                 evaluate() does. Metrics are summed in query order in both cases. With
//                 several ranks each ranks its share of the queries (slice_queries) and the
//                 others' positions arrive by gather_query_shares (evaluate.hpp), as in evaluate().
//   top_k_gpu     users in blocks, items in chunks as above; each user's best k so far stays on
//                 the device and top_k_merge_gpu merges each chunk into it.
// Every transfer is ordered on `stream` (cudaMemcpyAsync, then cudaStreamSynchronize before a
// host vector that was uploaded is changed or a downloaded one is read), so the scorer and the
// kernels may run on a non-blocking stream.
#include "convncf/eval_gpu.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <string>

#include "convncf/cuda_check.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/errors.hpp"
#include "convncf/rank.hpp"

namespace convncf {
namespace {

// Copies v into the front of d on `stream`; v must stay unchanged until the stream is synced.
template <typename T>
void upload_async(const std::vector<T>& v, const DeviceBuffer<T>& d, cudaStream_t stream) {
  if (v.size() > d.size()) throw_internal("eval_gpu: upload larger than its device buffer");
  if (!v.empty())
    CUDA_CHECK(cudaMemcpyAsync(d.data(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice,
                               stream));
}

template <typename T>
DeviceBuffer<T> to_device(const std::vector<T>& v, cudaStream_t stream) {
  DeviceBuffer<T> d(v.size());
  upload_async(v, d, stream);
  return d;
}

// n elements from `from` (device) into out, then waits for the stream.
template <typename T>
void download_sync(const T* from, size_t n, std::vector<T>& out, cudaStream_t stream) {
  out.resize(n);
  if (n)
    CUDA_CHECK(cudaMemcpyAsync(out.data(), from, n * sizeof(T), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
}

// The DeviceScorer's pair budget, checked once.
int64_t pair_budget(const DeviceScorer& scorer) {
  const int64_t mp = scorer.max_pairs();
  if (mp < 1)
    throw_internal("eval_gpu: the scorer's max_pairs() is " + std::to_string(mp) +
                   " (expected >= 1)");
  return mp;
}

// Rows (queries or users) per block and items per chunk, nu * chunk <= max_pairs. Aims at
// kTargetRows rows per block, so the ranking kernels get enough blocks, with chunks of at least
// kMinChunk items (or max_pairs when smaller) and at most all items.
struct BlockShape {
  int64_t nu;
  int32_t chunk;
};
BlockShape block_shape(int64_t max_pairs, int64_t rows, int32_t n_items) {
  constexpr int64_t kTargetRows = 256, kMinChunk = 256;
  int64_t chunk = max_pairs / std::max<int64_t>(1, std::min(rows, kTargetRows));
  chunk = std::max(chunk, std::min(kMinChunk, max_pairs));
  chunk = std::max<int64_t>(1, std::min<int64_t>(chunk, n_items));
  const int64_t nu = std::max<int64_t>(1, std::min(rows, max_pairs / chunk));
  return {nu, static_cast<int32_t>(chunk)};
}

// Sorted, distinct union of user u's rows of `exclude`, only items in [0, n_items); a CSR
// without row u (a split without validation items) adds nothing, as in evaluate().
void excluded_items(const std::vector<const Csr*>& exclude, int32_t u, int32_t n_items,
                    std::vector<int32_t>& out) {
  out.clear();
  for (const Csr* c : exclude) {
    if (!c || c->offsets.empty() || u < 0 || u >= c->n_rows()) continue;
    out.insert(out.end(), c->row(u), c->row(u) + c->degree(u));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  out.erase(std::remove_if(out.begin(), out.end(),
                           [n_items](int32_t it) { return it < 0 || it >= n_items; }),
            out.end());
}

// score_pairs over n pairs in launches of at most max_pairs.
void score_pairs_all(DeviceScorer& scorer, int64_t max_pairs, const int32_t* user,
                     const int32_t* item, int64_t n, float* out, cudaStream_t stream) {
  for (int64_t k0 = 0; k0 < n; k0 += max_pairs)
    scorer.score_pairs(user + k0, item + k0, std::min(max_pairs, n - k0), out + k0, stream);
}

void check_set(const EvalSet& set, int64_t N) {
  const int64_t Q = set.size();
  if (int64_t(set.pos_offsets.size()) != Q + 1 ||
      (!set.full() && int64_t(set.neg_offsets.size()) != Q + 1))
    throw_internal("evaluate_gpu: inconsistent EvalSet offsets");
  if (set.pos_offsets.front() != 0 ||
      set.pos_offsets.back() != int64_t(set.positives.size()) ||
      !std::is_sorted(set.pos_offsets.begin(), set.pos_offsets.end()))
    throw_internal("evaluate_gpu: EvalSet positive offsets do not cover the positives");
  if (!set.full() && (set.neg_offsets.front() != 0 ||
                      set.neg_offsets.back() != int64_t(set.negatives.size()) ||
                      !std::is_sorted(set.neg_offsets.begin(), set.neg_offsets.end())))
    throw_internal("evaluate_gpu: EvalSet negative offsets do not cover the negatives");
  for (int32_t it : set.positives)
    if (it < 0 || it >= N) throw_internal("evaluate_gpu: positive item out of range");
  for (int32_t it : set.negatives)
    if (it < 0 || it >= N) throw_internal("evaluate_gpu: negative item out of range");
}

// Full mode: positions (set.positives' layout, each query's ascending) and candidate counts.
void rank_full_gpu(DeviceScorer& scorer, const EvalSet& set, cudaStream_t stream,
                   std::vector<int64_t>& positions, std::vector<int64_t>& n_neg) {
  const int64_t Q = set.size(), P = int64_t(set.positives.size());
  const int32_t N = scorer.n_items();
  const int64_t mp = pair_budget(scorer);
  // Per query: positives sorted (the kernel searches them; positions do not depend on their
  // order), the excluded items, and the candidate negatives left.
  std::vector<int32_t> positives(set.positives), pair_user(static_cast<size_t>(P)), excl, row, both;
  std::vector<int64_t> excl_offsets(size_t(Q) + 1, 0);
  for (int64_t q = 0; q < Q; ++q) {
    const int64_t b = set.pos_offsets[size_t(q)], e = set.pos_offsets[size_t(q) + 1];
    const int32_t u = set.user[size_t(q)];
    std::sort(positives.begin() + b, positives.begin() + e);
    std::fill(pair_user.begin() + b, pair_user.begin() + e, u);
    excluded_items(set.exclude, u, N, row);
    excl.insert(excl.end(), row.begin(), row.end());
    excl_offsets[size_t(q) + 1] = int64_t(excl.size());
    both = row;  // evaluate(): n_negatives = N - |excluded rows U positives|
    both.insert(both.end(), positives.begin() + b, positives.begin() + e);
    std::sort(both.begin(), both.end());
    n_neg[size_t(q)] = N - int64_t(std::unique(both.begin(), both.end()) - both.begin());
  }
  if (P == 0) return;  // no positive: MetricSum skips every query

  const DeviceBuffer<int32_t> d_users = to_device(set.user, stream);
  const DeviceBuffer<int64_t> d_pos_offsets = to_device(set.pos_offsets, stream);
  const DeviceBuffer<int32_t> d_positives = to_device(positives, stream);
  const DeviceBuffer<int32_t> d_pair_user = to_device(pair_user, stream);
  const DeviceBuffer<int64_t> d_excl_offsets = to_device(excl_offsets, stream);
  const DeviceBuffer<int32_t> d_excl = to_device(excl, stream);
  const DeviceBuffer<float> d_pos_score(static_cast<size_t>(P));
  const DeviceBuffer<int64_t> d_beat(static_cast<size_t>(P));
  CUDA_CHECK(cudaMemsetAsync(d_beat.data(), 0, size_t(P) * sizeof(int64_t), stream));
  score_pairs_all(scorer, mp, d_pair_user.data(), d_positives.data(), P, d_pos_score.data(),
                  stream);

  const BlockShape shape = block_shape(mp, Q, N);
  const DeviceBuffer<float> d_scores(size_t(shape.nu) * size_t(shape.chunk));
  for (int64_t q0 = 0; q0 < Q; q0 += shape.nu) {
    const int64_t nb = std::min(shape.nu, Q - q0);
    for (int32_t lo = 0; lo < N; lo += std::min(shape.chunk, N - lo)) {
      const int32_t n = std::min(shape.chunk, N - lo);
      scorer.score_range(d_users.data() + q0, nb, lo, n, d_scores.data(), stream);
      count_beating_gpu(nb, lo, n, d_scores.data(), d_pos_offsets.data() + q0,
                        d_positives.data(), d_pos_score.data(), d_excl_offsets.data() + q0,
                        d_excl.data(), d_beat.data(), stream);
    }
  }
  std::vector<int64_t> beat;
  download_sync(d_beat.data(), size_t(P), beat, stream);
  for (int64_t q = 0; q < Q; ++q) {
    const int64_t b = set.pos_offsets[size_t(q)];
    positions_from_beats(beat.data() + b, set.pos_offsets[size_t(q) + 1] - b,
                         positions.data() + b);
  }
}

// Sampled and file modes: every query's candidates scored as pairs, ranked on the host.
void rank_listed_gpu(DeviceScorer& scorer, const EvalSet& set, cudaStream_t stream,
                     std::vector<int64_t>& positions, std::vector<int64_t>& n_neg) {
  const int64_t Q = set.size();
  const int64_t mp = pair_budget(scorer);
  auto candidates = [&set](int64_t q) {
    return set.pos_offsets[size_t(q) + 1] - set.pos_offsets[size_t(q)] +
           set.neg_offsets[size_t(q) + 1] - set.neg_offsets[size_t(q)];
  };
  // Batches of consecutive queries of up to `cap` pairs (one larger query alone).
  const int64_t cap = std::max<int64_t>(mp, int64_t(1) << 20);
  std::vector<int64_t> batch_start = {0};
  int64_t largest = 0;
  for (int64_t q = 0, size = 0; q < Q; ++q) {
    const int64_t c = candidates(q);
    if (size > 0 && size + c > cap) {
      batch_start.push_back(q);
      largest = std::max(largest, size);
      size = 0;
    }
    size += c;
    if (q == Q - 1) largest = std::max(largest, size);
  }
  batch_start.push_back(Q);
  for (int64_t q = 0; q < Q; ++q)
    n_neg[size_t(q)] = set.neg_offsets[size_t(q) + 1] - set.neg_offsets[size_t(q)];
  if (largest == 0) return;

  const DeviceBuffer<int32_t> d_user(static_cast<size_t>(largest)), d_item(static_cast<size_t>(largest));
  const DeviceBuffer<float> d_out(static_cast<size_t>(largest));
  std::vector<int32_t> user, item;
  std::vector<float> scores;
  for (size_t bi = 0; bi + 1 < batch_start.size(); ++bi) {
    const int64_t q0 = batch_start[bi], q1 = batch_start[bi + 1];
    user.clear();
    item.clear();
    for (int64_t q = q0; q < q1; ++q) {  // positives, then negatives, as evaluate() scores them
      const int64_t pb = set.pos_offsets[size_t(q)], pe = set.pos_offsets[size_t(q) + 1];
      const int64_t nb = set.neg_offsets[size_t(q)], ne = set.neg_offsets[size_t(q) + 1];
      item.insert(item.end(), set.positives.begin() + pb, set.positives.begin() + pe);
      item.insert(item.end(), set.negatives.begin() + nb, set.negatives.begin() + ne);
      user.resize(item.size(), set.user[size_t(q)]);
    }
    const int64_t n = int64_t(item.size());
    if (n == 0) continue;
    upload_async(user, d_user, stream);
    upload_async(item, d_item, stream);
    score_pairs_all(scorer, mp, d_user.data(), d_item.data(), n, d_out.data(), stream);
    download_sync(d_out.data(), size_t(n), scores, stream);  // also frees `user` and `item`
    const float* s = scores.data();
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t pb = set.pos_offsets[size_t(q)], m = set.pos_offsets[size_t(q) + 1] - pb;
      positive_positions(s, m, s + m, n_neg[size_t(q)], positions.data() + pb);
      s += m + n_neg[size_t(q)];
    }
  }
}

}  // namespace

Metrics evaluate_gpu(DeviceScorer& scorer, const EvalSet& set, const std::vector<int>& topk,
                     cudaStream_t stream) {
  MetricSum sum(topk);
  const int64_t Q = set.size();
  check_set(set, scorer.n_items());
  std::vector<int64_t> positions(set.positives.size()), n_neg(static_cast<size_t>(Q));
  // Several ranks (evaluate.hpp): this rank ranks its share of the queries as a set of its own
  // and gathers the others'; one process ranks them all in place.
  const QueryRange mine = rank_queries(set);
  const bool shared = mine.lo != 0 || mine.hi != Q;
  EvalSet part;
  if (shared) part = slice_queries(set, mine.lo, mine.hi);
  const EvalSet& ranked = shared ? part : set;
  std::vector<int64_t> part_positions, part_n_neg;
  std::vector<int64_t>& pos_out = shared ? part_positions : positions;
  std::vector<int64_t>& neg_out = shared ? part_n_neg : n_neg;
  if (shared) {
    part_positions.resize(part.positives.size());
    part_n_neg.resize(size_t(part.size()));
  }
  if (ranked.full())
    rank_full_gpu(scorer, ranked, stream, pos_out, neg_out);
  else
    rank_listed_gpu(scorer, ranked, stream, pos_out, neg_out);
  if (shared) {
    std::copy(part_n_neg.begin(), part_n_neg.end(), n_neg.begin() + mine.lo);
    std::copy(part_positions.begin(), part_positions.end(), positions.begin() + set.pos_offsets[size_t(mine.lo)]);
  }
  gather_query_shares(set, positions, n_neg);
  for (int64_t q = 0; q < Q; ++q) {
    const int64_t b = set.pos_offsets[size_t(q)];
    sum.add(positions.data() + b, set.pos_offsets[size_t(q) + 1] - b, n_neg[size_t(q)]);
  }
  return sum.mean();
}

std::vector<std::vector<std::pair<int32_t, float>>> top_k_gpu(
    DeviceScorer& scorer, const std::vector<int32_t>& users, const std::vector<const Csr*>& exclude,
    int32_t k, cudaStream_t stream) {
  const int64_t U = int64_t(users.size());
  const int32_t N = scorer.n_items();
  std::vector<std::vector<std::pair<int32_t, float>>> result(static_cast<size_t>(U));
  if (k <= 0 || U == 0 || N <= 0) return result;
  if (k > kTopKGpuMax)
    throw_usage("top-k of " + std::to_string(k) + " items per user is more than the GPU keeps (" +
                std::to_string(kTopKGpuMax) + "); ask for at most " +
                std::to_string(kTopKGpuMax) + " or use the CPU device");
  const int64_t mp = pair_budget(scorer);
  std::vector<int32_t> excl, row;
  std::vector<int64_t> excl_offsets(size_t(U) + 1, 0);
  for (int64_t u = 0; u < U; ++u) {
    excluded_items(exclude, users[size_t(u)], N, row);
    excl.insert(excl.end(), row.begin(), row.end());
    excl_offsets[size_t(u) + 1] = int64_t(excl.size());
  }
  const DeviceBuffer<int32_t> d_users = to_device(users, stream);
  const DeviceBuffer<int64_t> d_excl_offsets = to_device(excl_offsets, stream);
  const DeviceBuffer<int32_t> d_excl = to_device(excl, stream);
  const BlockShape shape = block_shape(mp, U, N);
  const DeviceBuffer<float> d_scores(size_t(shape.nu) * size_t(shape.chunk));
  const DeviceBuffer<int32_t> d_list_item(size_t(shape.nu) * size_t(k));
  const DeviceBuffer<float> d_list_score(size_t(shape.nu) * size_t(k));
  const DeviceBuffer<int32_t> d_count(static_cast<size_t>(shape.nu));
  std::vector<int32_t> count, list_item;
  std::vector<float> list_score;
  for (int64_t u0 = 0; u0 < U; u0 += shape.nu) {
    const int64_t nb = std::min(shape.nu, U - u0);
    CUDA_CHECK(cudaMemsetAsync(d_count.data(), 0, size_t(nb) * sizeof(int32_t), stream));
    for (int32_t lo = 0; lo < N; lo += std::min(shape.chunk, N - lo)) {
      const int32_t n = std::min(shape.chunk, N - lo);
      scorer.score_range(d_users.data() + u0, nb, lo, n, d_scores.data(), stream);
      top_k_merge_gpu(nb, lo, n, k, d_scores.data(), d_excl_offsets.data() + u0, d_excl.data(),
                      d_list_item.data(), d_list_score.data(), d_count.data(), stream);
    }
    download_sync(d_count.data(), size_t(nb), count, stream);
    download_sync(d_list_item.data(), size_t(nb) * size_t(k), list_item, stream);
    download_sync(d_list_score.data(), size_t(nb) * size_t(k), list_score, stream);
    for (int64_t i = 0; i < nb; ++i) {
      auto& r = result[size_t(u0 + i)];
      const int32_t c = count[size_t(i)];
      if (c < 0 || c > k) throw_internal("top_k_gpu: list length out of range");
      r.reserve(size_t(c));
      for (int32_t j = 0; j < c; ++j)
        r.emplace_back(list_item[size_t(i * k + j)], list_score[size_t(i * k + j)]);
    }
  }
  return result;
}

}  // namespace convncf
