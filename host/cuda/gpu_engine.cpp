// gpu_engine.cpp: the CUDA training engine (see gpu_engine.hpp for the step, kernel by kernel).
// Host code only: every kernel is behind its launcher; this file sizes memory once, builds the
// cuDNN plans once, and orders the launches on one stream.
//
// What differs between ConvNCF on cuDNN, ConvNCF fused and MF-BPR is one strategy, the PairModel:
// from the batch's pairs it computes the per-triple losses, the row gradients (3, B, E) and the
// network's gradient, and it scores evaluation pairs. Everything around it (sampling, the pairs,
// regularization, combining rows, the updates, the finite check, evaluation) is the same code.
#include "convncf/gpu_engine.hpp"

#include <cuda_runtime_api.h>
#include <nvtx3/nvToolsExt.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "convncf/bpr.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/cudnn_conv.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/errors.hpp"
#include "convncf/fused_tower.hpp"
#include "convncf/head.hpp"
#include "convncf/nccl.hpp"
#include "convncf/optim_gpu.hpp"
#include "convncf/outer_product.hpp"
#include "convncf/pairs.hpp"
#include "convncf/reduce.hpp"
#include "convncf/regularization.hpp"
#include "convncf/sampling.hpp"
#include "convncf/sparse_grad.hpp"

namespace convncf {
namespace {

// Scalars read back once per step: doubles, then int counts.
enum Scalar { kBpr = 0, kRowReg = 1, kSumP = 2, kSumQ = 3, kTerms = 4 };
constexpr int kMaxScalars = 256;
enum Count { kBadP = 0, kBadQ = 1, kBadNet = 2, kCounts = 3 };

// A named range of a step for Nsight Systems (nsys profile --trace=cuda,nvtx): sample, forward,
// backward, combine, update, evaluate. No cost without a profiler attached.
struct NvtxRange {
  explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
  ~NvtxRange() { nvtxRangePop(); }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

struct DeviceOptim {
  OptimizerSpec spec;
  int64_t steps = 0;
  DeviceBuffer<float> s0, s1;
  bool ready = false;
};

// cudaMemcpy from pageable host memory may return before the data reach the device, and the
// engine's stream (non-blocking) does not wait for the legacy default stream those copies use:
// every function that uploads ends here, so the engine's next launch sees the new data.
void uploads_done() { CUDA_CHECK(cudaDeviceSynchronize()); }

// What the strategies read and write: the parameters, the step's batch and its outputs, the
// evaluation pairs. Owned by GpuEngine::Impl.
struct Shared {
  int E = 0;
  int64_t Bc = 0;                               // triples per step (data parallel: per rank's share)
  cudaStream_t stream = nullptr;
  DeviceBuffer<float> P, Q, net, dnet;          // (n_users,E) (n_items,E) (n_params) (n_params)
  DeviceBuffer<int32_t> user, pos, neg;         // (Bc,) the batch's triples
  DeviceBuffer<int32_t> pair_user, pair_item;   // (2Bc,) its pairs, interleaved
  DeviceBuffer<double> loss_t;                  // (Bc,) BPR term per triple
  DeviceBuffer<float> rows;                     // (3,Bc,E) row gradients: user, pos, neg
  int64_t eval_n = 0;                           // pairs per evaluation forward
  DeviceBuffer<int32_t> eval_user, eval_item;   // (eval_n,)
};

class PairModel {
 public:
  virtual ~PairModel() = default;
  // Loss per triple into s.loss_t, row gradients into s.rows and the network gradient into
  // s.dnet (head, conv layers), for the first n of the Bc triples (padding adds nothing).
  virtual void train(int64_t n, const DropoutArgs& drop) = 0;
  // Scores of the first n evaluation pairs (the rest padding) into out (device, n floats).
  virtual void score(int64_t n, float* out) = 0;
  virtual void params_changed() {}
  virtual std::string describe(bool verbose) const = 0;
};

// MF-BPR: scores p.q; the loss and the three row gradients in one kernel.
class MfBprModel final : public PairModel {
 public:
  explicit MfBprModel(Shared& s) : m(s) {}
  void train(int64_t n, const DropoutArgs&) override {
    NvtxRange r("forward+backward");
    mf_bpr_fwd_bwd(m.Bc, n, m.E, m.user.data(), m.pos.data(), m.neg.data(), m.P.data(), m.Q.data(), m.loss_t.data(),
                   m.rows.data(), m.stream);
  }
  void score(int64_t n, float* out) override {
    mf_score_pairs(n, m.E, m.eval_user.data(), m.eval_item.data(), m.P.data(), m.Q.data(), out, m.stream);
  }
  std::string describe(bool) const override { return ""; }

 private:
  Shared& m;
};

// ConvNCF layer by layer: the outer product into the first conv's input, cuDNN's conv + bias +
// ReLU per layer, the head; backward through the same plans, then the outer product's backward.
class CudnnTowerModel final : public PairModel {
  struct Buffers {  // the forward (and, for training, backward) maps of N pairs
    int64_t N = 0;
    std::vector<DeviceBuffer<float>> X;   // X[0] (N,1,E,E), X[l+1] the output of layer l
    std::vector<DeviceBuffer<float>> dX;  // training only: gradients of X[l]
    DeviceBuffer<float> h, score, dscore; // (N, C), (N,), (N,)
    std::vector<ConvLayerPlans> plans;
  };

 public:
  CudnnTowerModel(Shared& s, const TowerSpec& tower, bool deterministic)
      : m(s), m_tower(tower), m_cudnn(s.stream) {
    ConvOptions co;
    co.deterministic = deterministic;
    make(m_train, 2 * s.Bc, true, co);
    make(m_eval, s.eval_n, false, co);
    size_t ws = 0;
    for (const Buffers* b : {&m_train, &m_eval})
      for (const ConvLayerPlans& p : b->plans) ws = std::max(ws, p.workspace_bytes());
    m_workspace = DeviceBuffer<unsigned char>(std::max<size_t>(ws, 1));
  }

  void train(int64_t n, const DropoutArgs& drop) override {
    Buffers& t = m_train;
    {
      NvtxRange r("forward");
      forward(t, m.pair_user.data(), m.pair_item.data(), drop);
      bpr_loss_grad(m.Bc, n, t.score.data(), m.loss_t.data(), t.dscore.data(), m.stream);
    }
    NvtxRange r("backward");
    const ConvLayer& last = m_tower.layers.back();
    float* dnet = m.dnet.data();
    head_bwd(t.N, last.cout, last.out_size * last.out_size, t.dscore.data(), m.net.data() + m_tower.out_w_offset,
             t.h.data(), drop, t.dX.back().data(), dnet + m_tower.out_w_offset, dnet + m_tower.out_b_offset, m.stream);
    for (int l = int(m_tower.layers.size()) - 1; l >= 0; --l) {
      const ConvLayer& cl = m_tower.layers[size_t(l)];
      t.plans[size_t(l)].backward(t.X[size_t(l)].data(), w(l), t.X[size_t(l) + 1].data(), t.dX[size_t(l) + 1].data(),
                                  dnet + cl.w_offset, dnet + cl.b_offset, t.dX[size_t(l)].data(), m_workspace.data(),
                                  m.stream);
    }
    outer_product_bwd(t.N, m.E, m.pair_user.data(), m.pair_item.data(), m.P.data(), m.Q.data(), t.dX[0].data(),
                      m_dp.data(), m_dq.data(), m.stream);
    gather_row_grads(m.Bc, n, m.E, m_dp.data(), m_dq.data(), m.rows.data(), m.stream);
  }

  void score(int64_t n, float* out) override {
    forward(m_eval, m.eval_user.data(), m.eval_item.data(), DropoutArgs{});
    if (n) CUDA_CHECK(cudaMemcpyAsync(out, m_eval.score.data(), size_t(n) * sizeof(float), cudaMemcpyDeviceToDevice, m.stream));
  }

  std::string describe(bool verbose) const override {
    std::ostringstream s;
    if (verbose)
      for (size_t l = 0; l < m_train.plans.size(); ++l)
        s << "\n  layer " << l + 1 << " train: " << m_train.plans[l].describe() << "\n  layer " << l + 1
          << " eval:  " << m_eval.plans[l].describe();
    return s.str();
  }

 private:
  float* w(int l) const { return m.net.data() + m_tower.layers[size_t(l)].w_offset; }
  float* b(int l) const { return m.net.data() + m_tower.layers[size_t(l)].b_offset; }

  void make(Buffers& t, int64_t N, bool training, const ConvOptions& co) {
    t.N = N;
    const int E = m.E;
    t.X.emplace_back(size_t(N) * E * E);
    if (training) t.dX.emplace_back(size_t(N) * E * E);
    for (const ConvLayer& l : m_tower.layers) {
      const size_t sz = size_t(N) * l.cout * l.out_size * l.out_size;
      t.X.emplace_back(sz);
      if (training) t.dX.emplace_back(sz);
      t.plans.emplace_back(m_cudnn.handle(), ConvShape{N, l.cin, l.cout, l.k, l.in_size}, co);
    }
    t.h = DeviceBuffer<float>(size_t(N) * m_tower.last_channels());
    t.score = DeviceBuffer<float>(size_t(N));
    if (training) {
      t.dscore = DeviceBuffer<float>(size_t(N));
      m_dp = DeviceBuffer<float>(size_t(N) * E);
      m_dq = DeviceBuffer<float>(size_t(N) * E);
    }
  }

  // The tower on all N pairs of `t` into t.score.
  void forward(Buffers& t, const int32_t* pair_user, const int32_t* pair_item, const DropoutArgs& drop) {
    outer_product_fwd(t.N, m.E, pair_user, pair_item, m.P.data(), m.Q.data(), t.X[0].data(), m.stream, 2);
    for (size_t l = 0; l < m_tower.layers.size(); ++l)
      t.plans[l].forward(t.X[l].data(), w(int(l)), b(int(l)), t.X[l + 1].data(), m_workspace.data(), m.stream);
    const ConvLayer& last = m_tower.layers.back();
    head_fwd(t.N, last.cout, last.out_size * last.out_size, t.X.back().data(), m.net.data() + m_tower.out_w_offset,
             m.net.data() + m_tower.out_b_offset, drop, t.h.data(), t.score.data(), m.stream);
  }

  Shared& m;
  TowerSpec m_tower;
  CudnnContext m_cudnn;  // before the plans (member order): plans are destroyed first
  Buffers m_train, m_eval;
  DeviceBuffer<float> m_dp, m_dq;  // (2Bc, E) the pairs' embedding gradients
  DeviceBuffer<unsigned char> m_workspace;
};

// ConvNCF fused (fused_tower.hpp): a pair's whole tower in one block, no map in global memory;
// the packed weights are rebuilt after every change of the network.
class FusedTowerModel final : public PairModel {
 public:
  FusedTowerModel(Shared& s, const TowerSpec& tower, Precision precision)
      : m(s), m_ft(make_fused_tower(tower, precision, fused_max_smem_bytes())) {
    m_grid_fwd = fused_tower_grid(m_ft, false);
    m_grid_bwd = fused_tower_grid(m_ft, true);
    m_packed = DeviceBuffer<float>(size_t(m_ft.packed_size()));
    m_partial = DeviceBuffer<float>(size_t(m_grid_bwd) * size_t(tower.n_params));
    m_score = DeviceBuffer<float>(size_t(2 * s.Bc));
    m_dscore = DeviceBuffer<float>(size_t(2 * s.Bc));
    m_dp = DeviceBuffer<float>(size_t(2 * s.Bc) * s.E);
    m_dq = DeviceBuffer<float>(size_t(2 * s.Bc) * s.E);
  }

  void train(int64_t n, const DropoutArgs& drop) override {
    const int64_t N = 2 * m.Bc;
    {
      NvtxRange r("forward");
      ensure_packed();
      fused_tower_fwd(m_ft, N, m_grid_fwd, m.pair_user.data(), m.pair_item.data(), m.P.data(), m.Q.data(),
                      m_packed.data(), drop, m_score.data(), m.stream, fused_engine_variant(m_ft));
      bpr_loss_grad(m.Bc, n, m_score.data(), m.loss_t.data(), m_dscore.data(), m.stream);
    }
    NvtxRange r("backward");
    fused_tower_bwd(m_ft, N, m_grid_bwd, m.pair_user.data(), m.pair_item.data(), m.P.data(), m.Q.data(),
                    m_packed.data(), drop, m_dscore.data(), m_dp.data(), m_dq.data(), m_partial.data(), m.stream,
                    fused_engine_variant(m_ft));
    fused_reduce_grads(m_ft, m_grid_bwd, m_partial.data(), m.dnet.data(), m.stream);
    gather_row_grads(m.Bc, n, m.E, m_dp.data(), m_dq.data(), m.rows.data(), m.stream);
  }

  void score(int64_t n, float* out) override {  // only the n real pairs, straight into `out`
    ensure_packed();
    fused_tower_fwd(m_ft, n, m_grid_fwd, m.eval_user.data(), m.eval_item.data(), m.P.data(), m.Q.data(),
                    m_packed.data(), DropoutArgs{}, out, m.stream, fused_engine_variant(m_ft));
  }

  void params_changed() override { m_packed_stale = true; }

  std::string describe(bool) const override {
    std::ostringstream s;
    const int variant = fused_engine_variant(m_ft);
    s << "; fused tower (" << precision_name(m_ft.precision) << ", variant " << variant
      << (variant >= 3 ? ": tensor cores" : "");
    if (variant == 4 && m_ft.tc4.group > 1)
      s << ", layers " << m_ft.tc4.stack0 + 1 << ".." << m_ft.L << " over groups of " << m_ft.tc4.group << " pairs";
    if (variant == 4 && m_ft.tc4.chunks > 0) s << ", layer 1 in " << m_ft.tc4.chunks << " chunks";
    s << "), " << (fused_engine_smem_bytes(m_ft) + 1023) / 1024
      << " KiB of shared memory per block, " << m_grid_fwd << " forward and " << m_grid_bwd << " backward blocks";
    return s.str();
  }

 private:
  void ensure_packed() {
    if (!m_packed_stale) return;
    fused_pack(m_ft, m.net.data(), m_packed.data(), m.stream);
    m_packed_stale = false;
  }

  Shared& m;
  FusedTower m_ft;
  int m_grid_fwd = 0, m_grid_bwd = 0;
  DeviceBuffer<float> m_packed, m_partial;   // (ft.packed_size()), (grid_bwd, n_params)
  DeviceBuffer<float> m_score, m_dscore;     // (2Bc,)
  DeviceBuffer<float> m_dp, m_dq;            // (2Bc, E)
  bool m_packed_stale = true;
};

}  // namespace

struct GpuEngine::Impl {
  ModelKind model;
  bool conv = false;
  TowerSpec tower;
  int32_t n_users = 0, n_items = 0;
  GpuEngineOptions opt;
  // Declared first, destroyed last: the stream every buffer and plan below was used on.
  CudaStream stream;
  CudaEvent ev_in, ev_out;
  Shared s;
  std::unique_ptr<PairModel> pairs;

  DeviceBuffer<float> dP, dQ;   // gradient tables
  DeviceOptim optim[2][3];      // [phase][P, Q, net]

  // Data parallel (opt.comm): the models train this rank's share of a step in s (s.Bc triples);
  // the step's Bs triples are reassembled here from every rank's share. One rank: Bs == s.Bc and
  // the step's arrays are s's own.
  int64_t Bs = 0;
  DeviceBuffer<int32_t> x_user, x_pos, x_neg, x_pair_user, x_pair_item;  // (Bs,) x3, (2Bs,) x2
  DeviceBuffer<float> x_rows, recv_rows;       // (3,Bs,E), (ranks,3,s.Bc,E)
  DeviceBuffer<double> x_loss, recv_loss;      // (Bs,), (ranks,s.Bc)

  // training data
  DeviceBuffer<int32_t> train_user, train_item, row_items;
  DeviceBuffer<int64_t> row_offsets, order;
  DeviceBuffer<uint64_t> pop_cdf, pop_row_cum;  // popularity negatives (sampling.hpp); empty: uniform
  int64_t order_size = 0;

  // per-step buffers besides the shared ones
  DeviceBuffer<double> reg_t;                 // (Bc,)
  DeviceBuffer<float> qrows;                  // (2Bc,E)
  DeviceBuffer<int32_t> uniqP, uniqQ, n_uniq; // (Bc,), (2Bc,), (2,)
  std::unique_ptr<RowGradCombiner> combP, combQ;
  DeviceBuffer<double> partials, scalars;     // reduce_partials_size(), kMaxScalars
  DeviceBuffer<int32_t> counts;               // kCounts
  PinnedBuffer<double> host_scalars;          // kMaxScalars
  PinnedBuffer<int32_t> host_counts;          // kCounts
  size_t bytes_after = 0, bytes_before = 0;

  // The eval pairs hold user[0..n) and item[0..n); the rest is padding.
  void score_eval_pairs(int64_t n, float* out) {
    NvtxRange r("evaluate");
    pairs->score(n, out);
  }
};

GpuEngine::GpuEngine(ModelKind model, const TowerSpec* tower, const Split& split, int E,
                     const GpuEngineOptions& options)
    : m(std::make_unique<Impl>()) {
  Impl& g = *m;
  if (model == ModelKind::Pop) throw Error(kExitSoftware, "GpuEngine: the popularity model does not train");
  if (model == ModelKind::ConvNCF && !tower) throw Error(kExitSoftware, "GpuEngine: ConvNCF needs a tower");
  if (options.batch_cap <= 0 || options.eval_pairs <= 0 || options.negatives.sample_num < 1 ||
      options.batch_cap % options.negatives.sample_num != 0)
    throw Error(kExitSoftware, "GpuEngine: bad sizes");
  if (options.negatives.dynamic)
    throw Error(kExitUsage, "dynamic negative sampling (train_neg_sample_args: dynamic: true) is done by the CPU "
                            "engine only");
  if (options.comm && !options.deterministic)
    throw Error(kExitSoftware, "GpuEngine: several ranks need the deterministic row sums (their updates must agree)");
  size_t free0 = 0, total = 0;
  CUDA_CHECK(cudaMemGetInfo(&free0, &total));
  g.model = model;
  g.conv = model == ModelKind::ConvNCF;
  if (g.conv) g.tower = *tower;
  g.n_users = split.n_users;
  g.n_items = split.n_items;
  m_n_items = split.n_items;
  g.opt = options;
  Shared& s = g.s;
  s.E = E;
  s.stream = g.stream.get();
  // Bs triples per step; Bc per training forward: the step's with one rank, a rank's share of the
  // step's positives (the first shares are one longer, sampling.hpp's StepShare) with several
  const int64_t Bs = g.Bs = options.batch_cap;
  const int32_t n_neg = options.negatives.sample_num;
  const int ranks = options.comm ? options.comm->size() : 1;
  const int64_t Bc = s.Bc = ceil_div<int64_t>(Bs / n_neg, ranks) * n_neg;
  s.eval_n = std::max<int64_t>(options.eval_pairs, 1);

  s.P = DeviceBuffer<float>(size_t(g.n_users) * E);
  s.Q = DeviceBuffer<float>(size_t(g.n_items) * E);
  g.dP = DeviceBuffer<float>(s.P.size());
  g.dQ = DeviceBuffer<float>(s.Q.size());
  if (g.conv) {
    s.net = DeviceBuffer<float>(size_t(g.tower.n_params));
    s.dnet = DeviceBuffer<float>(size_t(g.tower.n_params));
  }
  g.train_user = DeviceBuffer<int32_t>(split.train_user);
  g.train_item = DeviceBuffer<int32_t>(split.train_item);
  g.row_offsets = DeviceBuffer<int64_t>(split.train.offsets);
  g.row_items = DeviceBuffer<int32_t>(split.train.items);
  g.order = DeviceBuffer<int64_t>(split.train_user.size());
  if (options.negatives.distribution == NegDistribution::Popularity) {
    const PopularityTable pop = negative_table(split, options.negatives);
    g.pop_cdf = DeviceBuffer<uint64_t>(pop.cdf);
    if (!pop.row_cum.empty()) g.pop_row_cum = DeviceBuffer<uint64_t>(pop.row_cum);
  }

  s.user = DeviceBuffer<int32_t>(size_t(Bc));
  s.pos = DeviceBuffer<int32_t>(size_t(Bc));
  s.neg = DeviceBuffer<int32_t>(size_t(Bc));
  s.pair_user = DeviceBuffer<int32_t>(size_t(2 * Bc));
  s.pair_item = DeviceBuffer<int32_t>(size_t(2 * Bc));
  s.loss_t = DeviceBuffer<double>(size_t(Bc));
  s.rows = DeviceBuffer<float>(size_t(3 * Bc) * E);
  s.eval_user = DeviceBuffer<int32_t>(size_t(s.eval_n));
  s.eval_item = DeviceBuffer<int32_t>(size_t(s.eval_n));
  if (options.comm) {
    g.x_user = DeviceBuffer<int32_t>(size_t(Bs));
    g.x_pos = DeviceBuffer<int32_t>(size_t(Bs));
    g.x_neg = DeviceBuffer<int32_t>(size_t(Bs));
    g.x_pair_user = DeviceBuffer<int32_t>(size_t(2 * Bs));
    g.x_pair_item = DeviceBuffer<int32_t>(size_t(2 * Bs));
    g.x_rows = DeviceBuffer<float>(size_t(3 * Bs) * E);
    g.x_loss = DeviceBuffer<double>(size_t(Bs));
    g.recv_rows = DeviceBuffer<float>(size_t(ranks) * size_t(3 * Bc) * E);
    g.recv_loss = DeviceBuffer<double>(size_t(ranks) * size_t(Bc));
  }
  g.reg_t = DeviceBuffer<double>(size_t(Bs));
  g.qrows = DeviceBuffer<float>(size_t(2 * Bs) * E);
  g.uniqP = DeviceBuffer<int32_t>(size_t(Bs));
  g.uniqQ = DeviceBuffer<int32_t>(size_t(2 * Bs));
  g.n_uniq = DeviceBuffer<int32_t>(2);
  g.combP = std::make_unique<RowGradCombiner>(Bs, E, options.deterministic);
  g.combQ = std::make_unique<RowGradCombiner>(2 * Bs, E, options.deterministic);
  g.partials = DeviceBuffer<double>(size_t(reduce_partials_size()));
  g.scalars = DeviceBuffer<double>(kMaxScalars);
  g.counts = DeviceBuffer<int32_t>(kCounts);
  g.host_scalars = PinnedBuffer<double>(kMaxScalars);
  g.host_counts = PinnedBuffer<int32_t>(kCounts);

  if (!g.conv) g.pairs = std::make_unique<MfBprModel>(s);
  else if (options.fused) g.pairs = std::make_unique<FusedTowerModel>(s, g.tower, options.precision);
  else g.pairs = std::make_unique<CudnnTowerModel>(s, g.tower, options.deterministic);

  size_t free1 = 0;
  CUDA_CHECK(cudaMemGetInfo(&free1, &total));
  g.bytes_before = total - free0;
  g.bytes_after = free0 > free1 ? free0 - free1 : 0;
  uploads_done();
}

// The stream's work ends before anything it uses is freed; Impl's members then go in reverse order
// (the cuDNN plans before their handle), the stream last.
GpuEngine::~GpuEngine() {
  if (m) CUDA_CHECK_NOTHROW(cudaStreamSynchronize(m->stream.get()));
}

cudaStream_t GpuEngine::stream() const { return m->stream.get(); }
int64_t GpuEngine::max_pairs() const { return m->s.eval_n; }

std::string GpuEngine::describe() const {
  std::ostringstream s;
  int dev = 0;
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  s << "CUDA engine on " << prop.name << " (device " << dev << "): " << (m->bytes_after >> 20)
    << " MiB of device memory for batches of " << m->Bs << " triples and evaluation launches of " << m->s.eval_n
    << " pairs; sparse gradients " << (m->opt.deterministic ? "deterministic" : "fast (atomics)");
  if (const NcclComm* c = m->opt.comm)
    s << "; data parallel: rank " << c->rank() << " trains shares of up to " << m->s.Bc << " triples, " << c->describe();
  s << m->pairs->describe(m->opt.verbose);
  return s.str();
}

void GpuEngine::upload_params(const Params<float>& prm) {
  Impl& g = *m;
  Shared& s = g.s;
  if (prm.P.size() != s.P.size() || prm.Q.size() != s.Q.size() || (g.conv && prm.net.size() != s.net.size()))
    throw Error(kExitSoftware, "GpuEngine::upload_params: parameters of another shape");
  CUDA_CHECK(cudaStreamSynchronize(s.stream));
  s.P.upload(prm.P);
  s.Q.upload(prm.Q);
  if (g.conv) s.net.upload(prm.net);
  g.pairs->params_changed();
  uploads_done();
}

void GpuEngine::download_params(Params<float>& prm) const {
  const Impl& g = *m;
  CUDA_CHECK(cudaStreamSynchronize(g.s.stream));
  prm.P = g.s.P.download();
  prm.Q = g.s.Q.download();
  if (g.conv) prm.net = g.s.net.download();
}

void GpuEngine::upload_optimizers(int phase, const OptimizerSet& set) {
  Impl& g = *m;
  CUDA_CHECK(cudaStreamSynchronize(g.s.stream));
  Optimizer<float>* host[3] = {set.P, set.Q, set.net};
  for (int k = 0; k < 3; ++k) {
    DeviceOptim& d = g.optim[phase][k];
    d.spec = host[k]->spec();
    d.steps = host[k]->steps();
    d.s0 = DeviceBuffer<float>(host[k]->state0());
    d.s1 = DeviceBuffer<float>(host[k]->state1());
    d.ready = true;
  }
  uploads_done();
}

void GpuEngine::download_optimizers(int phase, const OptimizerSet& set) const {
  const Impl& g = *m;
  CUDA_CHECK(cudaStreamSynchronize(g.s.stream));
  Optimizer<float>* host[3] = {set.P, set.Q, set.net};
  for (int k = 0; k < 3; ++k) {
    const DeviceOptim& d = g.optim[phase][k];
    if (!d.ready) continue;
    host[k]->set_steps(d.steps);
    host[k]->state0() = d.s0.download();
    host[k]->state1() = d.s1.download();
  }
}

void GpuEngine::set_epoch_order(const std::vector<int64_t>& order) {
  Impl& g = *m;
  if (order.size() > g.order.size()) throw Error(kExitSoftware, "GpuEngine::set_epoch_order: too many positives");
  CUDA_CHECK(cudaStreamSynchronize(g.s.stream));
  if (!order.empty())
    CUDA_CHECK(cudaMemcpy(g.order.data(), order.data(), order.size() * sizeof(int64_t), cudaMemcpyHostToDevice));
  g.order_size = int64_t(order.size());
  uploads_done();
}

GpuEngine::StepResult GpuEngine::train_step(int epoch, int64_t lo, int64_t n, int phase, const RegSpec& reg,
                                            const DropoutSpec& dropout, uint64_t seed) {
  Impl& g = *m;
  Shared& sh = g.s;
  const int64_t Bs = g.Bs;
  const int E = sh.E;
  const cudaStream_t s = sh.stream;
  const int32_t N = g.opt.negatives.sample_num;
  if (n <= 0 || n > Bs / N || lo < 0 || lo + n > g.order_size || phase < 0 || phase > 1 || !g.optim[phase][0].ready)
    throw Error(kExitSoftware, "GpuEngine::train_step: bad batch or optimizers not uploaded");
  const int64_t nt = n * N;  // the step's triples: the positives' N copies (sampling.hpp)
  auto regw = [&](size_t i) { return reg_weight(reg, i); };
  const bool squared = reg.type == RegType::Squared;
  const double row_l2 = squared ? regw(0) : 0.0;
  const bool norm_tables = !squared && regw(0) > 0;
  NcclComm* comm = g.opt.comm;
  const bool popular = g.pop_cdf.size() > 0;  // popularity negatives, else uniform
  const uint64_t* pop_cdf = popular ? g.pop_cdf.data() : nullptr;
  const uint64_t* pop_row_cum = popular ? g.pop_row_cum.data() : nullptr;
  // This rank's positives of the step: all of them, or its share (sampling.hpp's StepShare).
  const StepShare share = comm ? step_share(n, comm->size(), comm->rank()) : StepShare{0, n};
  DropoutArgs drop{dropout.p, dropout.seed, dropout.step};
  if (comm && share.n > 0) {  // the share's masks are the step's (head.hpp)
    drop.share_n = share.n;
    drop.share_lo = share.lo;
    drop.step_n = n;
  }

  {
    NvtxRange r("sample");
    CUDA_CHECK(cudaMemsetAsync(g.scalars.data(), 0, kMaxScalars * sizeof(double), s));
    CUDA_CHECK(cudaMemsetAsync(g.counts.data(), 0, kCounts * sizeof(int32_t), s));
    gather_batch_gpu(sh.Bc, share.n, N, lo + share.lo, epoch, seed, g.order.data(), g.train_user.data(),
                     g.train_item.data(), g.row_offsets.data(), g.row_items.data(), g.n_items, pop_cdf, pop_row_cum,
                     sh.user.data(), sh.pos.data(), sh.neg.data(), s);
    make_pairs(sh.Bc, share.n * N, sh.user.data(), sh.pos.data(), sh.neg.data(), sh.pair_user.data(),
               sh.pair_item.data(), s);
  }

  g.pairs->train(share.n * N, drop);

  // The step's triples, losses and row gradients: this rank's own, or every rank's shares.
  int32_t* user = sh.user.data();
  int32_t* pos = sh.pos.data();
  int32_t* neg = sh.neg.data();
  int32_t* pair_item = sh.pair_item.data();
  float* rows = sh.rows.data();
  double* loss = sh.loss_t.data();
  if (comm) {
    NvtxRange r("exchange");
    const int ranks = comm->size();
    const int64_t Bc = sh.Bc;
    comm->group_begin();
    if (g.conv) comm->allreduce_sum(sh.dnet.data(), sh.dnet.size(), s);  // before the network's regularization
    comm->allgather(sh.rows.data(), g.recv_rows.data(), size_t(3 * Bc) * size_t(E) * sizeof(float), s);
    comm->allgather(sh.loss_t.data(), g.recv_loss.data(), size_t(Bc) * sizeof(double), s);
    comm->group_end();
    // the step's triples, drawn here whole: the sampler is a pure function of the position
    user = g.x_user.data();
    pos = g.x_pos.data();
    neg = g.x_neg.data();
    pair_item = g.x_pair_item.data();
    rows = g.x_rows.data();
    loss = g.x_loss.data();
    gather_batch_gpu(Bs, n, N, lo, epoch, seed, g.order.data(), g.train_user.data(), g.train_item.data(),
                     g.row_offsets.data(), g.row_items.data(), g.n_items, pop_cdf, pop_row_cum, user, pos, neg, s);
    make_pairs(Bs, nt, user, pos, neg, g.x_pair_user.data(), pair_item, s);
    // every share in its place (for_each_share_block), padding 0 as a single GPU's
    for (int q = 0; q < ranks; ++q) {
      const StepShare sq = step_share(n, ranks, q);
      const float* from_rows = g.recv_rows.data() + size_t(q) * size_t(3 * Bc) * size_t(E);
      for (int c = 0; c < 3; ++c)
        for_each_share_block(sq, n, N, E, [&](int64_t to, int64_t from, int64_t count) {
          CUDA_CHECK(cudaMemcpyAsync(rows + c * Bs * E + to, from_rows + c * Bc * E + from, size_t(count) * sizeof(float),
                                     cudaMemcpyDeviceToDevice, s));
        });
      for_each_share_block(sq, n, N, 1, [&](int64_t to, int64_t from, int64_t count) {
        CUDA_CHECK(cudaMemcpyAsync(loss + to, g.recv_loss.data() + q * Bc + from, size_t(count) * sizeof(double),
                                   cudaMemcpyDeviceToDevice, s));
      });
    }
    if (nt < Bs) {
      for (int c = 0; c < 3; ++c)
        CUDA_CHECK(cudaMemsetAsync(rows + (c * Bs + nt) * E, 0, size_t(Bs - nt) * size_t(E) * sizeof(float), s));
      CUDA_CHECK(cudaMemsetAsync(loss + nt, 0, size_t(Bs - nt) * sizeof(double), s));
    }
  }

  const std::vector<NetRegTerm> terms = g.conv ? network_reg_terms(g.tower, reg) : std::vector<NetRegTerm>{};
  double* sc = g.scalars.data();
  {
    NvtxRange r("combine");
    if (row_l2 > 0) {
      rows_squared_reg(Bs, nt, E, row_l2, user, pos, neg, sh.P.data(), sh.Q.data(), rows, g.reg_t.data(), s);
    } else {
      CUDA_CHECK(cudaMemsetAsync(g.reg_t.data(), 0, size_t(Bs) * sizeof(double), s));
    }
    // embedding-row gradients combined into the dense gradient tables
    CUDA_CHECK(cudaMemsetAsync(g.dP.data(), 0, g.dP.size() * sizeof(float), s));
    CUDA_CHECK(cudaMemsetAsync(g.dQ.data(), 0, g.dQ.size() * sizeof(float), s));
    g.combP->combine(nt, user, rows, g.dP.data(), g.uniqP.data(), g.n_uniq.data(), s);
    interleave_rows(Bs, E, rows, g.qrows.data(), s);
    g.combQ->combine(2 * nt, pair_item, g.qrows.data(), g.dQ.data(), g.uniqQ.data(), g.n_uniq.data() + 1, s);

    // losses and whole-tensor regularization (before the update: the step's parameters)
    sum_gpu(Bs, loss, g.partials.data(), sc + kBpr, s);
    sum_gpu(Bs, g.reg_t.data(), g.partials.data(), sc + kRowReg, s);
    if (norm_tables) {
      sum_squares_gpu(int64_t(sh.P.size()), sh.P.data(), g.partials.data(), sc + kSumP, s);
      sum_squares_gpu(int64_t(sh.Q.size()), sh.Q.data(), g.partials.data(), sc + kSumQ, s);
      norm_grad_gpu(int64_t(sh.P.size()), regw(0), sc + kSumP, sh.P.data(), g.dP.data(), s);
      norm_grad_gpu(int64_t(sh.Q.size()), regw(0), sc + kSumQ, sh.Q.data(), g.dQ.data(), s);
    }
    if (int(terms.size()) + kTerms > kMaxScalars) throw Error(kExitSoftware, "GpuEngine: too many layers");
    for (size_t k = 0; k < terms.size(); ++k) {
      const NetRegTerm& tm = terms[k];
      if (tm.coef <= 0) continue;
      double* ss = sc + kTerms + k;
      sum_squares_gpu(tm.n, sh.net.data() + tm.off, g.partials.data(), ss, s);
      if (squared) scale_add(tm.n, float(2 * tm.coef), sh.net.data() + tm.off, sh.dnet.data() + tm.off, s);
      else norm_grad_gpu(tm.n, tm.coef, ss, sh.net.data() + tm.off, sh.dnet.data() + tm.off, s);
    }
  }

  {
    NvtxRange r("update");
    DeviceOptim* o = g.optim[phase];
    const bool adam = o[0].spec.learner == Learner::Adam;
    const bool wd = o[0].spec.weight_decay != 0;
    // Row updates equal dense ones when no other row has a gradient and nothing but the gradient
    // moves a row (SGD, Adagrad without weight decay); lazy Adam is row-only by choice.
    const bool rows_only = !norm_tables && ((!adam && !wd) || (adam && g.opt.lazy_adam));
    auto state = [](DeviceOptim& d, int which) -> float* {
      DeviceBuffer<float>& b = which == 0 ? d.s0 : d.s1;
      return b.size() ? b.data() : nullptr;
    };
    DeviceBuffer<float>* tables[2] = {&sh.P, &sh.Q};
    DeviceBuffer<float>* grads[2] = {&g.dP, &g.dQ};
    const int32_t* uniq[2] = {g.uniqP.data(), g.uniqQ.data()};
    const int64_t max_rows[2] = {Bs, 2 * Bs};
    for (int k = 0; k < 2; ++k) {
      DeviceOptim& d = o[k];
      ++d.steps;
      if (rows_only)
        optim_rows_gpu(d.spec, d.steps, uniq[k], g.n_uniq.data() + k, max_rows[k], E, tables[k]->data(),
                       grads[k]->data(), state(d, 0), state(d, 1), s);
      else
        optim_dense_gpu(d.spec, d.steps, int64_t(tables[k]->size()), tables[k]->data(), grads[k]->data(), state(d, 0),
                        state(d, 1), s);
    }
    if (g.conv) {
      DeviceOptim& d = o[2];
      ++d.steps;
      optim_dense_gpu(d.spec, d.steps, int64_t(sh.net.size()), sh.net.data(), sh.dnet.data(), state(d, 0), state(d, 1), s);
    }
    count_non_finite_gpu(int64_t(sh.P.size()), sh.P.data(), g.counts.data() + kBadP, s);
    count_non_finite_gpu(int64_t(sh.Q.size()), sh.Q.data(), g.counts.data() + kBadQ, s);
    if (g.conv) count_non_finite_gpu(int64_t(sh.net.size()), sh.net.data(), g.counts.data() + kBadNet, s);
    g.pairs->params_changed();  // the network moved

    const size_t n_sc = size_t(kTerms) + terms.size();
    CUDA_CHECK(cudaMemcpyAsync(g.host_scalars.data(), sc, n_sc * sizeof(double), cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaMemcpyAsync(g.host_counts.data(), g.counts.data(), kCounts * sizeof(int32_t), cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
  }

  StepResult r;
  const double* h = g.host_scalars.data();
  r.loss.bpr = h[kBpr];
  r.loss.reg = h[kRowReg];
  if (norm_tables) r.loss.reg += regw(0) * (std::sqrt(h[kSumP]) + std::sqrt(h[kSumQ]));
  for (size_t k = 0; k < terms.size(); ++k) {
    if (terms[k].coef <= 0) continue;
    const double ss = h[kTerms + k];
    r.loss.reg += squared ? terms[k].coef * ss : terms[k].coef * std::sqrt(ss);
  }
  const int32_t* bad = g.host_counts.data();
  if (bad[kBadP]) r.non_finite = "user embeddings (" + std::to_string(bad[kBadP]) + " values)";
  else if (bad[kBadQ]) r.non_finite = "item embeddings (" + std::to_string(bad[kBadQ]) + " values)";
  else if (bad[kBadNet]) r.non_finite = "network weights (" + std::to_string(bad[kBadNet]) + " values)";
  return r;
}

// Evaluation: the caller's stream waits for nothing of ours and we wait for the caller's work
// before reading its arrays; our results are ready for the caller's stream when we return.
void GpuEngine::score_range(const int32_t* users, int64_t nu, int32_t item_lo, int32_t n, float* out,
                            cudaStream_t stream) {
  Impl& g = *m;
  Shared& s = g.s;
  if (nu < 0 || n < 0 || nu * n > s.eval_n) throw Error(kExitSoftware, "GpuEngine::score_range: too many pairs");
  CUDA_CHECK(cudaEventRecord(g.ev_in.get(), stream));
  CUDA_CHECK(cudaStreamWaitEvent(s.stream, g.ev_in.get(), 0));
  range_pairs(nu, users, item_lo, n, s.eval_n, s.eval_user.data(), s.eval_item.data(), s.stream);
  g.score_eval_pairs(nu * n, out);
  CUDA_CHECK(cudaEventRecord(g.ev_out.get(), s.stream));
  CUDA_CHECK(cudaStreamWaitEvent(stream, g.ev_out.get(), 0));
}

void GpuEngine::score_pairs(const int32_t* user, const int32_t* item, int64_t n, float* out, cudaStream_t stream) {
  Impl& g = *m;
  Shared& s = g.s;
  if (n < 0 || n > s.eval_n) throw Error(kExitSoftware, "GpuEngine::score_pairs: too many pairs");
  CUDA_CHECK(cudaEventRecord(g.ev_in.get(), stream));
  CUDA_CHECK(cudaStreamWaitEvent(s.stream, g.ev_in.get(), 0));
  const size_t used = size_t(n) * sizeof(int32_t), rest = size_t(s.eval_n - n) * sizeof(int32_t);
  if (n) {
    CUDA_CHECK(cudaMemcpyAsync(s.eval_user.data(), user, used, cudaMemcpyDeviceToDevice, s.stream));
    CUDA_CHECK(cudaMemcpyAsync(s.eval_item.data(), item, used, cudaMemcpyDeviceToDevice, s.stream));
  }
  if (rest) {
    CUDA_CHECK(cudaMemsetAsync(s.eval_user.data() + n, 0, rest, s.stream));
    CUDA_CHECK(cudaMemsetAsync(s.eval_item.data() + n, 0, rest, s.stream));
  }
  g.score_eval_pairs(n, out);
  CUDA_CHECK(cudaEventRecord(g.ev_out.get(), s.stream));
  CUDA_CHECK(cudaStreamWaitEvent(stream, g.ev_out.get(), 0));
}

}  // namespace convncf
