// fake_kernels.cpp: every kernel launcher of include/convncf (outer_product, pairs, head, bpr,
// regularization, conv_bias_relu, sparse_grad, optim_gpu, sampling, reduce, rank, fused_tower) on
// the emulated device. Each one runs
//   1. its real launcher's argument checks, the check_*_args function that the launcher in
//      kernels/<op>.cu calls too (defined next to the twin in kernels/<op>_cpu.cpp; none is
//      copied here), so a bad call from the engine throws here exactly when it throws there;
//   2. extent checks (emulated_device.hpp): every pointer must be device memory with room for
//      the elements the kernel touches, computed from the sizes it is given (rows of an embedding
//      table from the largest row id it reads);
//   3. the CPU twin with the same arguments (device pointers are host memory here).
// Where no twin exists (optimizers, gather_batch_gpu, the reductions, norm_grad_gpu) the kernel's
// own per-element functions (optim.hpp, rng.hpp, dataset.hpp) run in a loop, and the
// deterministic reductions replay the kernels' fixed grid and summation tree (reduce.hpp's
// kReduceBlocks, kReduceThreads), so the emulated sums have the GPU's bits.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "convncf/bpr.hpp"
#include "convncf/conv_bias_relu.hpp"
#include "convncf/dataset.hpp"
#include "convncf/errors.hpp"
#include "convncf/fused_tower.hpp"
#include "convncf/head.hpp"
#include "convncf/optim_gpu.hpp"
#include "convncf/outer_product.hpp"
#include "convncf/pairs.hpp"
#include "convncf/rank.hpp"
#include "convncf/reduce.hpp"
#include "convncf/regularization.hpp"
#include "convncf/rng.hpp"
#include "convncf/sampling.hpp"
#include "convncf/sparse_grad.hpp"
#include "emulated_device.hpp"

namespace convncf {
namespace {

using emul::check_elems;
using emul::check_table_rows;

// Both sides of a pair array: the user rows of P, the item rows of Q.
void check_pairs(const char* who, int64_t n, int E, const int32_t* user, const int32_t* item,
                 const float* P, const float* Q) {
  check_table_rows(P, E, user, n, who, "P");
  check_table_rows(Q, E, item, n, who, "Q");
}

// The (user, pos, neg) triples' rows: P by user, Q by pos and by neg.
void check_triples(const char* who, int64_t n_valid, int E, const int32_t* user, const int32_t* pos,
                   const int32_t* neg, const float* P, const float* Q) {
  check_table_rows(P, E, user, n_valid, who, "P");
  check_table_rows(Q, E, pos, n_valid, who, "Q (positives)");
  check_table_rows(Q, E, neg, n_valid, who, "Q (negatives)");
}

}  // namespace

// ---- outer_product.hpp --------------------------------------------------------------------------
void outer_product_fwd(int64_t B, int E, const int32_t* __restrict__ user,
                       const int32_t* __restrict__ item, const float* __restrict__ P,
                       const float* __restrict__ Q, float* __restrict__ out, cudaStream_t stream,
                       int variant) {
  emul::check_stream(stream, "outer_product_fwd");
  check_outer_product_fwd_args(B, E, user, item, P, Q, out, variant);
  if (B == 0) return;
  check_pairs("outer_product_fwd", B, E, user, item, P, Q);
  check_elems(out, B * E * E, "outer_product_fwd", "out");
  outer_product_fwd_cpu<float>(B, E, user, item, P, Q, out);
}

void outer_product_bwd(int64_t n_pairs, int E, const int32_t* __restrict__ pair_user,
                       const int32_t* __restrict__ pair_item, const float* __restrict__ P,
                       const float* __restrict__ Q, const float* __restrict__ G,
                       float* __restrict__ dp, float* __restrict__ dq, cudaStream_t stream) {
  const char* who = "outer_product_bwd";
  emul::check_stream(stream, who);
  check_outer_product_bwd_args(n_pairs, E, pair_user, pair_item, P, Q, G, dp, dq);
  if (n_pairs == 0) return;
  check_pairs(who, n_pairs, E, pair_user, pair_item, P, Q);
  check_elems(G, n_pairs * E * E, who, "G");
  check_elems(dp, n_pairs * E, who, "dp");
  check_elems(dq, n_pairs * E, who, "dq");
  outer_product_bwd_cpu(n_pairs, E, pair_user, pair_item, P, Q, G, dp, dq);
}

// ---- pairs.hpp ----------------------------------------------------------------------------------
void make_pairs(int64_t B_cap, int64_t n_valid, const int32_t* __restrict__ user,
                const int32_t* __restrict__ pos, const int32_t* __restrict__ neg,
                int32_t* __restrict__ pair_user, int32_t* __restrict__ pair_item,
                cudaStream_t stream) {
  const char* who = "make_pairs";
  emul::check_stream(stream, who);
  check_make_pairs_args(B_cap, n_valid, user, pos, neg, pair_user, pair_item);
  if (B_cap == 0) return;
  check_elems(user, n_valid, who, "user");
  check_elems(pos, n_valid, who, "pos");
  check_elems(neg, n_valid, who, "neg");
  check_elems(pair_user, 2 * B_cap, who, "pair_user");
  check_elems(pair_item, 2 * B_cap, who, "pair_item");
  make_pairs_cpu(B_cap, n_valid, user, pos, neg, pair_user, pair_item);
}

void gather_row_grads(int64_t B_cap, int64_t n_valid, int E, const float* __restrict__ dp,
                      const float* __restrict__ dq, float* __restrict__ rows, cudaStream_t stream) {
  const char* who = "gather_row_grads";
  emul::check_stream(stream, who);
  check_gather_row_grads_args(B_cap, n_valid, E, dp, dq, rows);
  if (B_cap == 0) return;
  check_elems(dp, 2 * n_valid * E, who, "dp");
  check_elems(dq, 2 * n_valid * E, who, "dq");
  check_elems(rows, 3 * B_cap * E, who, "rows");
  gather_row_grads_cpu(B_cap, n_valid, E, dp, dq, rows);
}

void interleave_rows(int64_t B_cap, int E, const float* __restrict__ rows, float* __restrict__ out,
                     cudaStream_t stream) {
  emul::check_stream(stream, "interleave_rows");
  check_interleave_rows_args(B_cap, E, rows, out);
  if (B_cap == 0) return;
  check_elems(rows, 3 * B_cap * E, "interleave_rows", "rows");
  check_elems(out, 2 * B_cap * E, "interleave_rows", "out");
  interleave_rows_cpu(B_cap, E, rows, out);
}

void range_pairs(int64_t nu, const int32_t* __restrict__ users, int32_t item_lo, int32_t n,
                 int64_t cap, int32_t* __restrict__ pair_user, int32_t* __restrict__ pair_item,
                 cudaStream_t stream) {
  emul::check_stream(stream, "range_pairs");
  check_range_pairs_args(nu, users, item_lo, n, cap, pair_user, pair_item);
  if (cap == 0) return;
  if (nu * n > 0) check_elems(users, nu, "range_pairs", "users");
  check_elems(pair_user, cap, "range_pairs", "pair_user");
  check_elems(pair_item, cap, "range_pairs", "pair_item");
  range_pairs_cpu(nu, users, item_lo, n, cap, pair_user, pair_item);
}

// ---- head.hpp -----------------------------------------------------------------------------------
void head_fwd(int64_t n_pairs, int C, int HW, const float* __restrict__ Y,
              const float* __restrict__ w_out, const float* __restrict__ b_out, DropoutArgs drop,
              float* __restrict__ h, float* __restrict__ score, cudaStream_t stream) {
  const char* who = "head_fwd";
  emul::check_stream(stream, who);
  check_head_fwd_args(n_pairs, C, HW, Y, w_out, b_out, drop, h, score);
  if (n_pairs == 0) return;
  check_elems(Y, n_pairs * C * HW, who, "Y");
  check_elems(w_out, C, who, "w_out");
  check_elems(b_out, 1, who, "b_out");
  check_elems(h, n_pairs * C, who, "h");
  check_elems(score, n_pairs, who, "score");
  head_fwd_cpu(n_pairs, C, HW, Y, w_out, b_out, drop, h, score);
}

void head_bwd(int64_t n_pairs, int C, int HW, const float* __restrict__ dscore,
              const float* __restrict__ w_out, const float* __restrict__ h, DropoutArgs drop,
              float* __restrict__ dY, float* __restrict__ dw_out, float* __restrict__ db_out,
              cudaStream_t stream) {
  const char* who = "head_bwd";
  emul::check_stream(stream, who);
  check_head_bwd_args(n_pairs, C, HW, dscore, w_out, h, drop, dY, dw_out, db_out);
  if (n_pairs > 0) {
    check_elems(dscore, n_pairs, who, "dscore");
    check_elems(w_out, C, who, "w_out");
    check_elems(h, n_pairs * C, who, "h");
    check_elems(dY, n_pairs * C * HW, who, "dY");
  }
  check_elems(dw_out, C, who, "dw_out");
  check_elems(db_out, 1, who, "db_out");
  head_bwd_cpu(n_pairs, C, HW, dscore, w_out, h, drop, dY, dw_out, db_out);
}

// ---- bpr.hpp ------------------------------------------------------------------------------------
void bpr_loss_grad(int64_t B_cap, int64_t n_valid, const float* __restrict__ score,
                   double* __restrict__ loss, float* __restrict__ dscore, cudaStream_t stream) {
  const char* who = "bpr_loss_grad";
  emul::check_stream(stream, who);
  check_bpr_loss_grad_args(B_cap, n_valid, score, loss, dscore);
  if (B_cap == 0) return;
  check_elems(score, 2 * n_valid, who, "score");
  check_elems(loss, B_cap, who, "loss");
  check_elems(dscore, 2 * B_cap, who, "dscore");
  bpr_loss_grad_cpu(B_cap, n_valid, score, loss, dscore);
}

void mf_bpr_fwd_bwd(int64_t B_cap, int64_t n_valid, int E, const int32_t* __restrict__ user,
                    const int32_t* __restrict__ pos, const int32_t* __restrict__ neg,
                    const float* __restrict__ P, const float* __restrict__ Q,
                    double* __restrict__ loss, float* __restrict__ rows, cudaStream_t stream) {
  const char* who = "mf_bpr_fwd_bwd";
  emul::check_stream(stream, who);
  check_mf_bpr_fwd_bwd_args(B_cap, n_valid, E, user, pos, neg, P, Q, loss, rows);
  if (B_cap == 0) return;
  check_triples(who, n_valid, E, user, pos, neg, P, Q);
  check_elems(loss, B_cap, who, "loss");
  check_elems(rows, 3 * B_cap * E, who, "rows");
  mf_bpr_fwd_bwd_cpu(B_cap, n_valid, E, user, pos, neg, P, Q, loss, rows);
}

void mf_score_pairs(int64_t n, int E, const int32_t* __restrict__ user,
                    const int32_t* __restrict__ item, const float* __restrict__ P,
                    const float* __restrict__ Q, float* __restrict__ score, cudaStream_t stream) {
  const char* who = "mf_score_pairs";
  emul::check_stream(stream, who);
  check_mf_score_pairs_args(n, E, user, item, P, Q, score);
  if (n == 0) return;
  check_pairs(who, n, E, user, item, P, Q);
  check_elems(score, n, who, "score");
  mf_score_pairs_cpu(n, E, user, item, P, Q, score);
}

// ---- regularization.hpp -------------------------------------------------------------------------
void rows_squared_reg(int64_t B_cap, int64_t n_valid, int E, double l,
                      const int32_t* __restrict__ user, const int32_t* __restrict__ pos,
                      const int32_t* __restrict__ neg, const float* __restrict__ P,
                      const float* __restrict__ Q, float* __restrict__ rows,
                      double* __restrict__ reg, cudaStream_t stream) {
  const char* who = "rows_squared_reg";
  emul::check_stream(stream, who);
  check_rows_squared_reg_args(B_cap, n_valid, E, l, user, pos, neg, P, Q, rows, reg);
  if (B_cap == 0) return;
  check_triples(who, n_valid, E, user, pos, neg, P, Q);
  check_elems(rows, 3 * B_cap * E, who, "rows");
  check_elems(reg, B_cap, who, "reg");
  rows_squared_reg_cpu(B_cap, n_valid, E, l, user, pos, neg, P, Q, rows, reg);
}

void scale_add(int64_t n, float a, const float* __restrict__ x, float* __restrict__ y,
               cudaStream_t stream) {
  emul::check_stream(stream, "scale_add");
  check_scale_add_args(n, x, y);
  if (n == 0) return;
  check_elems(x, n, "scale_add", "x");
  check_elems(y, n, "scale_add", "y");
  scale_add_cpu(n, a, x, y);
}

void norm_grad_gpu(int64_t n, double coef, const double* __restrict__ sumsq,
                   const float* __restrict__ x, float* __restrict__ y, cudaStream_t stream) {
  const char* who = "norm_grad_gpu";
  emul::check_stream(stream, who);
  check_norm_grad_args(n, sumsq, x, y);
  if (n == 0) return;
  check_elems(sumsq, 1, who, "sumsq");
  check_elems(x, n, who, "x");
  check_elems(y, n, who, "y");
  const double s = *sumsq;
  if (!(s > 0)) return;
  const double c = coef / std::sqrt(s);
  for (int64_t i = 0; i < n; ++i) y[i] += static_cast<float>(c * double(x[i]));
}

// ---- conv_bias_relu.hpp (the real ConvLayerPlans calls these; the emulated one does not) -------
void bias_relu_fwd(int64_t n, int C, int64_t HW, float* __restrict__ Y, const float* __restrict__ b,
                   cudaStream_t stream) {
  emul::check_stream(stream, "bias_relu_fwd");
  check_bias_relu_fwd_args(n, C, HW, Y, b);
  const int64_t count = n * C * HW;
  if (count == 0) return;
  check_elems(Y, count, "bias_relu_fwd", "Y");
  check_elems(b, C, "bias_relu_fwd", "b");
  bias_relu_fwd_cpu(n, C, HW, Y, b);
}

void relu_bwd(int64_t count, const float* __restrict__ Y, float* __restrict__ dY,
              cudaStream_t stream) {
  emul::check_stream(stream, "relu_bwd");
  check_relu_bwd_args(count, Y, dY);
  if (count == 0) return;
  check_elems(Y, count, "relu_bwd", "Y");
  check_elems(dY, count, "relu_bwd", "dY");
  relu_bwd_cpu(count, Y, dY);
}

void bias_grad(int64_t n, int C, int64_t HW, const float* __restrict__ dZ, float* __restrict__ db,
               cudaStream_t stream) {
  emul::check_stream(stream, "bias_grad");
  check_bias_grad_args(n, C, HW, dZ, db);
  check_elems(db, C, "bias_grad", "db");
  if (n * HW == 0) {
    std::fill(db, db + C, 0.0f);
    return;
  }
  check_elems(dZ, n * C * HW, "bias_grad", "dZ");
  bias_grad_cpu(n, C, HW, dZ, db);
}

// ---- sparse_grad.hpp ----------------------------------------------------------------------------
// The members (CUB's storage) stay empty: combine() runs the twin.
RowGradCombiner::RowGradCombiner(int64_t max_entries, int E, bool deterministic)
    : m_max(max_entries), m_E(E), m_deterministic(deterministic) {
  check_row_grad_combiner_args(max_entries, E);
}

void RowGradCombiner::combine(int64_t n, const int32_t* ids, const float* rows, float* table,
                              int32_t* unique_ids, int32_t* n_unique, cudaStream_t stream) {
  const char* who = "RowGradCombiner::combine";
  emul::check_stream(stream, who);
  check_row_grad_combine_args(n, m_max, ids, rows, table, unique_ids, n_unique);
  check_elems(n_unique, 1, who, "n_unique");
  if (n == 0) {
    *n_unique = 0;
    return;
  }
  check_table_rows(table, m_E, ids, n, who, "table");
  check_elems(rows, n * m_E, who, "rows");
  check_elems(unique_ids, n, who, "unique_ids");
  const std::vector<int32_t> distinct = combine_rows_cpu(n, m_E, ids, rows, table);
  std::copy(distinct.begin(), distinct.end(), unique_ids);
  *n_unique = static_cast<int32_t>(distinct.size());
}

// ---- optim_gpu.hpp ------------------------------------------------------------------------------
namespace {

// One element, as optim.cu's update_element (and Optimizer<float>::step).
void update_element(const OptimizerSpec& s, const AdamCorrections& c, int64_t i, float* p,
                    const float* g, float* s0, float* s1) {
  switch (s.learner) {
    case Learner::SGD:
      sgd_update(p[i], g[i], s.lr, s.weight_decay);
      break;
    case Learner::Adagrad:
      adagrad_update(p[i], g[i], s0[i], s.lr, s.adagrad_eps, s.weight_decay);
      break;
    case Learner::Adam:
      adam_update(p[i], g[i], s0[i], s1[i], s.lr, s.beta1, s.beta2, s.adam_eps, s.weight_decay,
                  c.bc1, c.bc2);
      break;
  }
}

}  // namespace

void optim_dense_gpu(const OptimizerSpec& spec, int64_t step, int64_t n, float* __restrict__ p,
                     const float* __restrict__ g, float* __restrict__ s0, float* __restrict__ s1,
                     cudaStream_t stream) {
  const char* who = "optim_dense_gpu";
  emul::check_stream(stream, who);
  check_optim_dense_args(spec, step, n, p, g, s0, s1);
  const AdamCorrections c = adam_corrections(spec, step);
  if (n == 0) return;
  check_elems(p, n, who, "p");
  check_elems(g, n, who, "g");
  if (spec.learner != Learner::SGD) check_elems(s0, n, who, "s0");
  if (spec.learner == Learner::Adam) check_elems(s1, n, who, "s1");
  for (int64_t i = 0; i < n; ++i) update_element(spec, c, i, p, g, s0, s1);
}

void optim_rows_gpu(const OptimizerSpec& spec, int64_t step, const int32_t* __restrict__ rows,
                    const int32_t* __restrict__ n_rows, int64_t max_rows, int row_size,
                    float* __restrict__ p, const float* __restrict__ g, float* __restrict__ s0,
                    float* __restrict__ s1, cudaStream_t stream) {
  const char* who = "optim_rows_gpu";
  emul::check_stream(stream, who);
  check_optim_rows_args(spec, step, rows, n_rows, max_rows, row_size, p, g, s0, s1);
  const AdamCorrections c = adam_corrections(spec, step);
  if (max_rows == 0) return;
  check_elems(n_rows, 1, who, "n_rows");
  const int64_t nr = std::min<int64_t>(std::max<int64_t>(*n_rows, 0), max_rows);
  // The kernel updates each listed row from one thread per element, in parallel: a row listed
  // twice would be a race on the GPU, so it is an error here.
  std::vector<int32_t> sorted(rows, rows + nr);
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    throw_internal("emulated device: optim_rows_gpu: a row is listed twice");
  check_table_rows(p, row_size, rows, nr, who, "p");
  check_table_rows(g, row_size, rows, nr, who, "g");
  if (spec.learner != Learner::SGD) check_table_rows(s0, row_size, rows, nr, who, "s0");
  if (spec.learner == Learner::Adam) check_table_rows(s1, row_size, rows, nr, who, "s1");
  for (int64_t r = 0; r < nr; ++r)
    for (int col = 0; col < row_size; ++col)
      update_element(spec, c, int64_t(rows[r]) * row_size + col, p, g, s0, s1);
}

// ---- sampling.hpp -------------------------------------------------------------------------------
// Every element the kernel reads is checked, then the twin computes the batch.
void gather_batch_gpu(int64_t B_cap, int64_t n, int32_t n_neg, int64_t lo, int epoch, uint64_t seed,
                      const int64_t* __restrict__ order, const int32_t* __restrict__ train_user,
                      const int32_t* __restrict__ train_item,
                      const int64_t* __restrict__ row_offsets,
                      const int32_t* __restrict__ row_items, int32_t n_items,
                      const uint64_t* __restrict__ cdf, const uint64_t* __restrict__ row_cum,
                      int32_t* __restrict__ user, int32_t* __restrict__ pos,
                      int32_t* __restrict__ neg, cudaStream_t stream) {
  const char* who = "gather_batch_gpu";
  emul::check_stream(stream, who);
  check_gather_batch_args(B_cap, n, n_neg, lo, order, train_user, train_item, row_offsets, n_items, cdf, row_cum,
                          user, pos, neg);
  if (B_cap == 0) return;
  check_elems(user, B_cap, who, "user");
  check_elems(pos, B_cap, who, "pos");
  check_elems(neg, B_cap, who, "neg");
  if (n > 0) check_elems(order + lo, n, who, "order[lo .. lo+n)");
  if (cdf) check_elems(cdf, int64_t(n_items) + 1, who, "cdf");
  for (int64_t j = 0; j < n; ++j) {
    const int64_t t = order[lo + j];
    if (t < 0)
      throw_internal("emulated device: gather_batch_gpu: negative index in the epoch's order");
    check_elems(train_user + t, 1, who, "train_user[order[..]]");
    check_elems(train_item + t, 1, who, "train_item[order[..]]");
    const int32_t u = train_user[t];
    if (u < 0) throw_internal("emulated device: gather_batch_gpu: negative user id");
    check_elems(row_offsets + u, 2, who, "row_offsets[u .. u+1]");
    const int64_t begin = row_offsets[u];
    const int64_t deg = row_offsets[u + 1] - begin;
    if (deg < 0 || deg >= n_items)
      throw_internal("emulated device: gather_batch_gpu: bad CSR row of a user");
    if (deg > 0) check_elems(row_items + begin, deg, who, "row_items of a user");
    if (cdf && deg > 0) check_elems(row_cum + begin, deg, who, "row_cum of a user");
    if (cdf && cdf[n_items] - (deg > 0 ? row_cum[begin + deg - 1] : 0) == 0)
      throw_internal("emulated device: gather_batch_gpu: a user with no absent weight to draw from");
  }
  gather_batch_cpu(B_cap, n, n_neg, lo, epoch, seed, order, train_user, train_item, row_offsets, row_items, n_items,
                   cdf, row_cum, user, pos, neg);
}

// ---- reduce.hpp ---------------------------------------------------------------------------------
namespace {

// kernels/reduce.cu's deterministic_sum: thread g of the fixed grid sums the elements g,
// g + stride, ... in index order; each block's 256 sums go through the shared-memory tree into
// partials[block]; one block sums the partials (i, i + 256, ... per thread) and the same tree.
void tree(double* sh) {
  for (int s = kReduceThreads / 2; s > 0; s /= 2)
    for (int t = 0; t < s; ++t) sh[t] += sh[t + s];
}

template <typename T, typename F>
void deterministic_sum(const char* who, int64_t n, const T* x, double* partials, double* out, F f,
                       cudaStream_t stream) {
  emul::check_stream(stream, who);
  check_deterministic_sum_args(n, x, partials, out, who);
  check_elems(out, 1, who, "out");
  if (n == 0) {
    *out = 0.0;
    return;
  }
  check_elems(x, n, who, "x");
  check_elems(partials, kReduceBlocks, who, "partials");
  constexpr int64_t stride = int64_t(kReduceBlocks) * kReduceThreads;
  std::vector<double> acc(static_cast<size_t>(stride), 0.0);
  for (int64_t i = 0; i < n; ++i) acc[size_t(i % stride)] += f(x[i]);
  for (int b = 0; b < kReduceBlocks; ++b) {
    double* sh = acc.data() + int64_t(b) * kReduceThreads;
    tree(sh);
    partials[b] = sh[0];
  }
  double sh[kReduceThreads];
  for (int t = 0; t < kReduceThreads; ++t) {
    double a = 0.0;
    for (int i = t; i < kReduceBlocks; i += kReduceThreads) a += partials[i];
    sh[t] = a;
  }
  tree(sh);
  *out = sh[0];
}

}  // namespace

void sum_squares_gpu(int64_t n, const float* __restrict__ x, double* __restrict__ partials,
                     double* __restrict__ out, cudaStream_t stream) {
  deterministic_sum(
      "sum_squares_gpu", n, x, partials, out, [](float v) { return double(v) * double(v); },
      stream);
}

void sum_gpu(int64_t n, const double* __restrict__ x, double* __restrict__ partials,
             double* __restrict__ out, cudaStream_t stream) {
  deterministic_sum(
      "sum_gpu", n, x, partials, out, [](double v) { return v; }, stream);
}

void count_non_finite_gpu(int64_t n, const float* __restrict__ x, int32_t* __restrict__ out,
                          cudaStream_t stream) {
  const char* who = "count_non_finite_gpu";
  emul::check_stream(stream, who);
  check_count_non_finite_args(n, x, out);
  if (n == 0) return;
  check_elems(x, n, who, "x");
  check_elems(out, 1, who, "out");
  int32_t count = 0;
  for (int64_t i = 0; i < n; ++i) count += !std::isfinite(x[i]);
  *out += count;
}

// ---- rank.hpp -----------------------------------------------------------------------------------
void count_beating_gpu(int64_t nu, int32_t item_lo, int32_t n, const float* __restrict__ scores,
                       const int64_t* __restrict__ pos_offsets,
                       const int32_t* __restrict__ positives, const float* __restrict__ pos_score,
                       const int64_t* __restrict__ excl_offsets,
                       const int32_t* __restrict__ excl_items, int64_t* __restrict__ beat,
                       cudaStream_t stream) {
  const char* who = "count_beating_gpu";
  emul::check_stream(stream, who);
  check_count_beating_args(nu, n, scores, pos_offsets, excl_offsets);
  if (nu == 0 || n == 0) return;
  check_elems(scores, nu * n, who, "scores");
  check_elems(pos_offsets, nu + 1, who, "pos_offsets");
  check_elems(excl_offsets, nu + 1, who, "excl_offsets");
  // The offsets index the whole arrays: positives, pos_score and beat up to pos_offsets[nu].
  const int64_t p_end = pos_offsets[nu], e_end = excl_offsets[nu];
  if (pos_offsets[0] < 0 || p_end < pos_offsets[0] || excl_offsets[0] < 0 ||
      e_end < excl_offsets[0])
    throw_internal("emulated device: count_beating_gpu: offsets out of order");
  if (p_end > pos_offsets[0]) {
    check_elems(positives, p_end, who, "positives");
    check_elems(pos_score, p_end, who, "pos_score");
    check_elems(beat, p_end, who, "beat");
  }
  if (e_end > excl_offsets[0]) check_elems(excl_items, e_end, who, "excl_items");
  count_beating_cpu(nu, item_lo, n, scores, pos_offsets, positives, pos_score, excl_offsets,
                    excl_items, beat);
}

void top_k_merge_gpu(int64_t nu, int32_t item_lo, int32_t n, int32_t k,
                     const float* __restrict__ scores, const int64_t* __restrict__ excl_offsets,
                     const int32_t* __restrict__ excl_items, int32_t* __restrict__ list_item,
                     float* __restrict__ list_score, int32_t* __restrict__ list_count,
                     cudaStream_t stream) {
  const char* who = "top_k_merge_gpu";
  emul::check_stream(stream, who);
  check_top_k_merge_args(nu, n, k, scores, excl_offsets, list_item, list_score, list_count);
  if (nu == 0 || n == 0) return;
  check_elems(scores, nu * n, who, "scores");
  check_elems(excl_offsets, nu + 1, who, "excl_offsets");
  const int64_t e_end = excl_offsets[nu];
  if (excl_offsets[0] < 0 || e_end < excl_offsets[0])
    throw_internal("emulated device: top_k_merge_gpu: offsets out of order");
  if (e_end > excl_offsets[0]) check_elems(excl_items, e_end, who, "excl_items");
  check_elems(list_item, nu * k, who, "list_item");
  check_elems(list_score, nu * k, who, "list_score");
  check_elems(list_count, nu, who, "list_count");
  for (int64_t u = 0; u < nu; ++u)
    if (list_count[u] < 0 || list_count[u] > k)
      throw_internal("emulated device: top_k_merge_gpu: list_count[" + std::to_string(u) +
                     "] = " + std::to_string(list_count[u]) + " (uninitialized?)");
  top_k_merge_cpu(nu, item_lo, n, k, scores, excl_offsets, excl_items, list_item, list_score,
                  list_count);
}

// ---- fused_tower.hpp ----------------------------------------------------------------------
// The emulated device has an H100's opt-in shared memory per block, and small grids, so that
// blocks hold several pairs and a user's two pairs are sometimes split between blocks.
size_t fused_max_smem_bytes() { return 227 * 1024; }

int fused_tower_grid(const FusedTower& t, bool backward) {
  check_fused_args("fused_tower_grid", t, 0, 1, {});
  return backward ? 7 : 5;
}

void fused_pack(const FusedTower& t, const float* net, float* packed, cudaStream_t stream) {
  emul::check_stream(stream, "fused_pack");
  check_fused_args("fused_pack", t, 1, 1, {net, packed});
  check_elems(net, t.n_params, "fused_pack", "net");
  check_elems(packed, t.packed_size(), "fused_pack", "packed");
  fused_pack_cpu(t, net, packed);
}

void fused_tower_fwd(const FusedTower& t, int64_t n_pairs, int n_blocks, const int32_t* pair_user,
                     const int32_t* pair_item, const float* P, const float* Q, const float* packed,
                     DropoutArgs drop, float* score, cudaStream_t stream, int variant) {
  emul::check_stream(stream, "fused_tower_fwd");
  check_fused_args("fused_tower_fwd", t, n_pairs, n_blocks, {pair_user, pair_item, P, Q, packed, score});
  check_fused_variant("fused_tower_fwd", t, variant);
  if (n_pairs == 0) return;
  check_elems(pair_user, n_pairs, "fused_tower_fwd", "pair_user");
  check_elems(pair_item, n_pairs, "fused_tower_fwd", "pair_item");
  check_pairs("fused_tower_fwd", n_pairs, t.E, pair_user, pair_item, P, Q);
  check_elems(packed, t.packed_size(), "fused_tower_fwd", "packed");
  check_elems(score, n_pairs, "fused_tower_fwd", "score");
  fused_tower_fwd_cpu(t, n_pairs, n_blocks, pair_user, pair_item, P, Q, packed, drop, score, variant);
}

void fused_tower_bwd(const FusedTower& t, int64_t n_pairs, int n_blocks, const int32_t* pair_user,
                     const int32_t* pair_item, const float* P, const float* Q, const float* packed,
                     DropoutArgs drop, const float* dscore, float* dp, float* dq, float* partial,
                     cudaStream_t stream, int variant) {
  emul::check_stream(stream, "fused_tower_bwd");
  check_fused_tower_bwd_args("fused_tower_bwd", t, n_pairs, n_blocks, pair_user, pair_item, P, Q, packed, dscore, dp,
                             dq, partial);
  check_fused_variant("fused_tower_bwd", t, variant);
  check_elems(partial, int64_t(n_blocks) * t.n_params, "fused_tower_bwd", "partial");
  if (n_pairs > 0) {
    check_elems(pair_user, n_pairs, "fused_tower_bwd", "pair_user");
    check_elems(pair_item, n_pairs, "fused_tower_bwd", "pair_item");
    check_pairs("fused_tower_bwd", n_pairs, t.E, pair_user, pair_item, P, Q);
    check_elems(packed, t.packed_size(), "fused_tower_bwd", "packed");
    check_elems(dscore, n_pairs, "fused_tower_bwd", "dscore");
    check_elems(dp, n_pairs * t.E, "fused_tower_bwd", "dp");
    check_elems(dq, n_pairs * t.E, "fused_tower_bwd", "dq");
  }
  fused_tower_bwd_cpu(t, n_pairs, n_blocks, pair_user, pair_item, P, Q, packed, drop, dscore, dp, dq, partial,
                      variant);
}

void fused_reduce_grads(const FusedTower& t, int n_blocks, const float* partial, float* dnet, cudaStream_t stream) {
  emul::check_stream(stream, "fused_reduce_grads");
  check_fused_args("fused_reduce_grads", t, 1, n_blocks, {partial, dnet});
  check_elems(partial, int64_t(n_blocks) * t.n_params, "fused_reduce_grads", "partial");
  check_elems(dnet, t.n_params, "fused_reduce_grads", "dnet");
  fused_reduce_grads_cpu(t, n_blocks, partial, dnet);
}

}  // namespace convncf
