// cpu_engine.hpp: the CPU reference engine, the oracle every GPU kernel is tested against.
//
// Forward and hand-written backward of ConvNCF and MF-BPR for a batch of (user, pos, neg)
// triples, the stable BPR loss, both regularization forms, dropout with counter-based masks.
// The scalar type is a template parameter: float trains, double checks gradients.
//
// How the tower is computed (see REFERENCE.md): the first layer never builds the E x E map; it
// uses its rank-1 structure, out[c][x][y] = b[c] + sum_s q[ky+s] * A[x][s][c] with
// A[x][s][c] = sum_r p[kx+r] * W[c][r][s], the user's side, computed once per user and shared by
// the pairs of a triple and by all the items a user is scored against. Later layers keep maps
// channels-last (HWC), so each k x k patch is k contiguous runs of k*C_in values and a layer is a
// matrix product of the patches of several pairs (the two of a triple; up to kScorePairs items
// of one user in scoring) against a repacked weight Wt[(r*k+s)*C_in+ci][co], done by
// register-blocked kernels (cpu_engine.cpp) for 32-channel layers and by plain loops otherwise.
// convncf_score_naive() is the plain explicit-map version, used by the tests to check this one.
//
// Parallel over triples: each batch is cut into ranks x threads contiguous shares, as OpenMP's
// schedule(static) would cut it (static_share_begin/end), and a rank's threads take its shares.
// Network gradients are summed per share (per triple, over the patches of its two pairs), then
// over shares in share order; per-triple embedding-row gradients are summed in triple order. With
// several ranks (dist.hpp) the shares computed elsewhere arrive by allgather before those sums.
// A run is therefore deterministic for a seed and ranks x threads: W ranks of T threads give the
// bits of one process of W*T threads. A score does not depend on which other items
// are scored with it (each output is one chain in a fixed order).
#pragma once
#include <cstdint>
#include <vector>

#include "convncf/common.hpp"
#include "convncf/model.hpp"

namespace convncf {

struct TripleBatch {
  const int32_t* user;  // (B,)
  const int32_t* pos;   // (B,)
  const int32_t* neg;   // (B,)
  int64_t size;
};

struct RegSpec {
  RegType type = RegType::Norm;
  std::vector<double> weights;  // Norm: [reg1, reg2]; Squared: [l1, l2, l3]; empty or zeros: none
  bool enabled = true;
};

// The coefficient reg.weights[i], or 0 when the regularizer is off or has no such weight.
double reg_weight(const RegSpec& reg, size_t i);

// The network's regularization terms, the same for every engine: the weights at `off`, `n`
// values, coefficient `coef`. Norm: coef * |w| for each conv weight and the output weight
// (reg[1], biases excluded); Squared: coef * |w|^2 for each conv layer's weight and bias
// (adjacent in the flat array, reg[2]) and the output weight and bias (reg[1] + reg[2]).
struct NetRegTerm {
  int64_t off, n;
  double coef;
};
std::vector<NetRegTerm> network_reg_terms(const TowerSpec& tower, const RegSpec& reg);

// Inverted dropout on the C_L-vector before the output layer; the mask of channel c of pair
// (triple t, side s in {0 pos, 1 neg}) at global step `step` is a pure function of those.
struct DropoutSpec {
  double p = 0.0;
  uint64_t seed = 0;
  uint64_t step = 0;
};
double dropout_scale(const DropoutSpec& d, int64_t triple, int side, int channel);

struct LossParts {
  double bpr = 0.0;  // sum over the batch of softplus(-(s_pos - s_neg))
  double reg = 0.0;  // regularization term
};

// softplus(-x) = log(1 + exp(-x)) computed without overflow, and its derivative d/dx.
template <typename T>
T bpr_loss(T x);
template <typename T>
T bpr_grad(T x);  // = -sigmoid(-x)

template <typename T>
struct Gradients {
  std::vector<T> P, Q, net;
};

// Scratch of the tower for up to `pairs` pairs of one user computed together (activations kept
// for backward); a pair's maps follow one another in each layer's buffer.
template <typename T>
struct PairWork {
  int pairs = 0;                     // capacity
  std::vector<T> A, dA;              // (S1 * k1 * C1): the user's side of layer 1, its gradient
  std::vector<std::vector<T>> act;   // per layer (pairs, S_l^2, C_l), post-ReLU, channels-last
  std::vector<std::vector<T>> dact;  // per layer, gradient w.r.t. act (masked by ReLU)
  std::vector<T> h, dh;              // (pairs, C_L) spatial sums, their gradient
  void resize(const TowerSpec& t, int pairs = 1);
};

template <typename T>
class CpuEngine {
 public:
  // `tower` may be null for BPR and Pop. threads <= 0: OpenMP's default.
  CpuEngine(ModelKind model, const TowerSpec* tower, int32_t n_users, int32_t n_items, int E,
            int threads);

  // Loss and gradients of the batch. The gradients are in grads(): net fully, P and Q on the
  // touched rows (all rows when the regularizer touches the whole table, see all_rows()); other
  // rows are zero. The dropout spec is ignored when p == 0.
  LossParts compute(const Params<T>& params, const TripleBatch& batch, const RegSpec& reg,
                    const DropoutSpec& dropout);
  // Loss only (same value as compute, no gradients).
  LossParts loss(const Params<T>& params, const TripleBatch& batch, const RegSpec& reg,
                 const DropoutSpec& dropout);

  const Gradients<T>& grads() const { return m_grads; }
  const std::vector<int32_t>& touched_users() const { return m_touched_users; }
  const std::vector<int32_t>& touched_items() const { return m_touched_items; }
  bool all_rows() const { return m_all_rows; }
  // Threads asked for: the constructor's, else OpenMP's default (OMP_NUM_THREADS, or what
  // omp_set_num_threads set before); every parallel region of the engine and its scorers asks
  // for this many. last_team(): how many the last compute() or loss() got (fewer only where
  // OMP_DYNAMIC or OMP_THREAD_LIMIT says so).
  int threads() const { return m_threads; }
  int last_team() const { return m_last_team; }

  // Scoring for evaluation: prepare_scoring() packs the weights once; then score_items() may run
  // concurrently from several threads, each with its own PairWork (sized by make_work()).
  // It scores one user against n items (no dropout), reusing the user's side of layer 1.
  void prepare_scoring(const Params<T>& params);
  void score_items(const Params<T>& params, int32_t user, const int32_t* items, int64_t n, T* out,
                   PairWork<T>& w) const;
  PairWork<T> make_work() const {
    PairWork<T> w;
    if (m_has_tower) w.resize(m_tower, kScorePairs);
    return w;
  }
  // Items of one user that score_items pushes through the tower together.
  static constexpr int kScorePairs = 8;

  // Single pair with explicit activations, for tests: forward returns the score; backward adds
  // the gradients into dpacked, dp and dq.
  T forward_pair(const T* packed, const T* p, const T* q, const T* mask, PairWork<T>& w) const;
  void backward_pair(const T* packed, const T* p, const T* q, const T* mask, T dscore,
                     PairWork<T>& w, T* dpacked, T* dp, T* dq) const;
  // Repacks PyTorch-layout network weights into the engine's layout (packed_size() elements:
  // the weights, their transposed copy and a blocked transposed copy, see pack) and gradients in
  // the engine's layout back (first n_params elements).
  int64_t packed_size() const { return 3 * m_tower.n_params; }
  void pack(const T* net, T* packed) const;
  void unpack_add(const T* packed, T* net) const;

 private:
  LossParts run(const Params<T>& params, const TripleBatch& batch, const RegSpec& reg,
                const DropoutSpec& dropout, bool want_grads);
  void exchange_shares(int64_t B, int64_t V, int threads, bool want_grads, bool net_grads);
  void layer1_user(const T* packed, const T* p, T* A) const;
  // n pairs (n <= w.pairs) of the user whose side of layer 1 is w.A, items q[i], masks mask[i]
  // (mask null: none for any pair), scores into score[i].
  void forward_pairs(const T* packed, const T* const* q, const T* const* mask, int n,
                     PairWork<T>& w, T* score) const;
  // Their backward after forward_pairs: dscore[i] per pair; adds into dpacked, dp (the user's
  // row, once for all n pairs) and dq[i].
  void backward_pairs(const T* packed, const T* p, const T* const* q, const T* const* mask,
                      const T* dscore, int n, PairWork<T>& w, T* dpacked, T* dp, T* const* dq) const;

  ModelKind m_model;
  TowerSpec m_tower;
  bool m_has_tower = false;
  int32_t m_n_users, m_n_items;
  int m_E;
  int m_threads;
  int m_last_team = 0;
  std::vector<T> m_packed;                     // packed network weights of this step
  std::vector<std::vector<T>> m_thread_dnet;   // per virtual thread (ranks x threads), packed layout
  std::vector<char> m_send;                    // this rank's share of a step, to the others
  std::vector<PairWork<T>> m_work;             // per thread, for the two pairs of a triple
  std::vector<std::vector<int64_t>> m_rows;    // per layer >= 2: each patch's offset in its
                                               // input map, for kScorePairs pairs (fast kernels)
  std::vector<T> m_row_grads;                  // (B, 3, E): dp, dq_pos, dq_neg per triple
  std::vector<double> m_triple_loss;           // (B,) BPR term per triple
  std::vector<double> m_triple_reg;            // (B,) squared row-norm term per triple
  Gradients<T> m_grads;
  std::vector<int32_t> m_touched_users, m_touched_items;
  std::vector<uint8_t> m_mark_users, m_mark_items;
  bool m_all_rows = false;
};

// The explicit-map forward: builds M = p (x) q (E x E), runs every conv in PyTorch's layout
// directly from the definition, sums, applies the mask (C_L, or null) and the output layer.
template <typename T>
T convncf_score_naive(const TowerSpec& tower, const T* net, const T* p, const T* q,
                      const T* mask);

}  // namespace convncf
