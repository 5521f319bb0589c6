// gpu_engine.cpp: the CUDA training engine (see gpu_engine.hpp for the step, kernel by kernel).
// Host code only: every kernel is behind its launcher; this file sizes memory once, builds the
// cuDNN plans once, and orders the launches on one stream.
#include "convncf/gpu_engine.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "convncf/cuda_check.hpp"
#include "convncf/cudnn_conv.hpp"
#include "convncf/device_buffer.hpp"
#include "convncf/engine_glue.hpp"
#include "convncf/fused_tower.hpp"
#include "convncf/errors.hpp"
#include "convncf/optim_gpu.hpp"
#include "convncf/outer_product.hpp"
#include "convncf/pair_kernels.hpp"
#include "convncf/sampling_gpu.hpp"
#include "convncf/sparse_grad.hpp"

namespace convncf {
namespace {

// Scalars read back once per step: doubles, then int counts.
enum Scalar { kBpr = 0, kRowReg = 1, kSumP = 2, kSumQ = 3, kTerms = 4 };
constexpr int kMaxScalars = 256;
enum Count { kBadP = 0, kBadQ = 1, kBadNet = 2, kCounts = 3 };

// The forward (and, for training, backward) buffers of the tower for a fixed number of pairs.
struct Tower {
  int64_t N = 0;  // pairs
  DeviceBuffer<int32_t> pair_user, pair_item;  // (N,)
  std::vector<DeviceBuffer<float>> X;          // X[0] (N,1,E,E), X[l+1] output of layer l
  std::vector<DeviceBuffer<float>> dX;         // training only: gradients of X[l]
  DeviceBuffer<float> h, score, dscore;        // (N, C), (N,), (N,)
  std::vector<ConvLayerPlans> plans;
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

}  // namespace

struct GpuEngine::Impl {
  ModelKind model;
  bool conv = false;
  TowerSpec tower;
  int E = 0;
  int32_t n_users = 0, n_items = 0;
  GpuEngineOptions opt;
  cudaStream_t stream = nullptr;
  std::unique_ptr<CudnnContext> cudnn;

  // parameters and gradients
  DeviceBuffer<float> P, Q, net;    // (n_users,E) (n_items,E) (n_params)
  DeviceBuffer<float> dP, dQ, dnet;
  DeviceOptim optim[2][3];          // [phase][P, Q, net]

  // training data
  DeviceBuffer<int32_t> train_user, train_item, row_items;
  DeviceBuffer<int64_t> row_offsets, order;
  int64_t order_size = 0;

  // per-step buffers
  int64_t Bc = 0;
  DeviceBuffer<int32_t> user, pos, neg;      // (Bc,)
  DeviceBuffer<double> loss_t, reg_t;         // (Bc,)
  DeviceBuffer<float> rows, qrows;            // (3,Bc,E), (2Bc,E)
  DeviceBuffer<float> dp_pairs, dq_pairs;     // (2Bc,E)
  DeviceBuffer<int32_t> uniqP, uniqQ, n_uniq; // (Bc,), (2Bc,), (2,)
  std::unique_ptr<RowGradCombiner> combP, combQ;
  DeviceBuffer<double> partials, scalars;     // reduce_partials_size(), kMaxScalars
  DeviceBuffer<int32_t> counts;               // kCounts
  double* host_scalars = nullptr;             // pinned
  int32_t* host_counts = nullptr;

  Tower train, eval;
  DeviceBuffer<unsigned char> workspace;
  cudaEvent_t ev_in = nullptr, ev_out = nullptr;
  size_t bytes_after = 0, bytes_before = 0;

  // engine: fused (fused_tower.hpp): no maps in global memory, the packed weights (rebuilt when
  // the parameters change) and the backward's per-block weight-gradient slices instead
  bool fused = false;
  FusedTower ft;
  int grid_fwd = 0, grid_bwd = 0;
  DeviceBuffer<float> packed, partial;  // (ft.packed_size()), (grid_bwd, n_params)
  bool packed_stale = true;

  void ensure_packed() {
    if (!packed_stale) return;
    fused_pack(ft, net.data(), packed.data(), stream);
    packed_stale = false;
  }

  float* w(int l) const { return net.data() + tower.layers[size_t(l)].w_offset; }
  float* b(int l) const { return net.data() + tower.layers[size_t(l)].b_offset; }

  void make_tower(Tower& t, int64_t N, bool training) {
    t.N = N;
    t.pair_user = DeviceBuffer<int32_t>(size_t(N));
    t.pair_item = DeviceBuffer<int32_t>(size_t(N));
    if (!conv) return;
    if (fused) {
      t.score = DeviceBuffer<float>(size_t(N));
      if (training) t.dscore = DeviceBuffer<float>(size_t(N));
      return;
    }
    t.X.emplace_back(size_t(N) * E * E);
    if (training) t.dX.emplace_back(size_t(N) * E * E);
    ConvOptions co;
    co.deterministic = opt.deterministic;
    for (const ConvLayer& l : tower.layers) {
      const size_t sz = size_t(N) * l.cout * l.out_size * l.out_size;
      t.X.emplace_back(sz);
      if (training) t.dX.emplace_back(sz);
      t.plans.emplace_back(cudnn->handle(), ConvShape{N, l.cin, l.cout, l.k, l.in_size}, co);
    }
    const int C = tower.last_channels();
    t.h = DeviceBuffer<float>(size_t(N) * C);
    t.score = DeviceBuffer<float>(size_t(N));
    if (training) t.dscore = DeviceBuffer<float>(size_t(N));
  }

  // Forward of the tower on t.pair_user/t.pair_item (all N pairs) into t.score.
  void forward(Tower& t, const DropoutArgs& drop) {
    if (fused) {
      ensure_packed();
      fused_tower_fwd(ft, t.N, grid_fwd, t.pair_user.data(), t.pair_item.data(), P.data(), Q.data(), packed.data(), drop,
                      t.score.data(), stream, fused_engine_variant(ft));
      return;
    }
    outer_product_fwd(t.N, E, t.pair_user.data(), t.pair_item.data(), P.data(), Q.data(), t.X[0].data(),
                      stream, 2);
    for (size_t l = 0; l < tower.layers.size(); ++l)
      t.plans[l].forward(t.X[l].data(), w(int(l)), b(int(l)), t.X[l + 1].data(), workspace.data(), stream);
    const ConvLayer& last = tower.layers.back();
    head_fwd(t.N, last.cout, last.out_size * last.out_size, t.X.back().data(), net.data() + tower.out_w_offset,
             net.data() + tower.out_b_offset, drop, t.h.data(), t.score.data(), stream);
  }

  // Scores of the first n pairs already in eval.pair_user/pair_item (the rest padding) into out.
  void score_eval_pairs(int64_t n, float* out) {
    if (fused) {  // only the n real pairs, straight into `out`
      ensure_packed();
      fused_tower_fwd(ft, n, grid_fwd, eval.pair_user.data(), eval.pair_item.data(), P.data(), Q.data(), packed.data(),
                      DropoutArgs{}, out, stream, fused_engine_variant(ft));
    } else if (conv) {
      forward(eval, DropoutArgs{});
      if (n) CUDA_CHECK(cudaMemcpyAsync(out, eval.score.data(), size_t(n) * sizeof(float), cudaMemcpyDeviceToDevice, stream));
    } else {
      mf_score_pairs(n, E, eval.pair_user.data(), eval.pair_item.data(), P.data(), Q.data(), out, stream);
    }
  }
};

GpuEngineOptions GpuEngineOptions::from_config(const Config& cfg) {
  GpuEngineOptions o;
  o.batch_cap = cfg.train_batch_size;
  o.eval_pairs = std::max<int64_t>(cfg.eval_batch_size, 1);
  o.deterministic = cfg.sparse_grad == "deterministic";
  o.lazy_adam = cfg.embedding_update == "lazy";
  o.verbose = cfg.verbose;
  o.fused = cfg.engine == "fused";
  o.precision = parse_precision(cfg.precision);
  return o;
}

GpuEngine::GpuEngine(ModelKind model, const TowerSpec* tower, const Split& split, int E,
                     const GpuEngineOptions& options)
    : m(std::make_unique<Impl>()) {
  Impl& g = *m;
  if (model == ModelKind::Pop) throw Error(kExitSoftware, "GpuEngine: the popularity model does not train");
  if (model == ModelKind::ConvNCF && !tower) throw Error(kExitSoftware, "GpuEngine: ConvNCF needs a tower");
  if (options.batch_cap <= 0 || options.eval_pairs <= 0) throw Error(kExitSoftware, "GpuEngine: bad sizes");
  size_t free0 = 0, total = 0;
  CUDA_CHECK(cudaMemGetInfo(&free0, &total));
  g.model = model;
  g.conv = model == ModelKind::ConvNCF;
  if (g.conv) g.tower = *tower;
  g.E = E;
  g.n_users = split.n_users;
  g.n_items = split.n_items;
  m_n_items = split.n_items;
  g.opt = options;
  CUDA_CHECK(cudaStreamCreateWithFlags(&g.stream, cudaStreamNonBlocking));
  CUDA_CHECK(cudaEventCreateWithFlags(&g.ev_in, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventCreateWithFlags(&g.ev_out, cudaEventDisableTiming));
  g.fused = g.conv && options.fused;
  if (g.fused) {
    g.ft = make_fused_tower(g.tower, options.precision, fused_max_smem_bytes());
    g.grid_fwd = fused_tower_grid(g.ft, false);
    g.grid_bwd = fused_tower_grid(g.ft, true);
  } else if (g.conv) {
    g.cudnn = std::make_unique<CudnnContext>(g.stream);
  }

  g.P = DeviceBuffer<float>(size_t(g.n_users) * E);
  g.Q = DeviceBuffer<float>(size_t(g.n_items) * E);
  g.dP = DeviceBuffer<float>(g.P.size());
  g.dQ = DeviceBuffer<float>(g.Q.size());
  if (g.conv) {
    g.net = DeviceBuffer<float>(size_t(g.tower.n_params));
    g.dnet = DeviceBuffer<float>(size_t(g.tower.n_params));
  }
  if (g.fused) {
    g.packed = DeviceBuffer<float>(size_t(g.ft.packed_size()));
    g.partial = DeviceBuffer<float>(size_t(g.grid_bwd) * size_t(g.tower.n_params));
  }
  g.train_user = DeviceBuffer<int32_t>(split.train_user);
  g.train_item = DeviceBuffer<int32_t>(split.train_item);
  g.row_offsets = DeviceBuffer<int64_t>(split.train.offsets);
  g.row_items = DeviceBuffer<int32_t>(split.train.items);
  g.order = DeviceBuffer<int64_t>(split.train_user.size());

  const int64_t Bc = g.Bc = options.batch_cap;
  g.user = DeviceBuffer<int32_t>(size_t(Bc));
  g.pos = DeviceBuffer<int32_t>(size_t(Bc));
  g.neg = DeviceBuffer<int32_t>(size_t(Bc));
  g.loss_t = DeviceBuffer<double>(size_t(Bc));
  g.reg_t = DeviceBuffer<double>(size_t(Bc));
  g.rows = DeviceBuffer<float>(size_t(3 * Bc) * E);
  g.qrows = DeviceBuffer<float>(size_t(2 * Bc) * E);
  g.dp_pairs = DeviceBuffer<float>(size_t(2 * Bc) * E);
  g.dq_pairs = DeviceBuffer<float>(size_t(2 * Bc) * E);
  g.uniqP = DeviceBuffer<int32_t>(size_t(Bc));
  g.uniqQ = DeviceBuffer<int32_t>(size_t(2 * Bc));
  g.n_uniq = DeviceBuffer<int32_t>(2);
  g.combP = std::make_unique<RowGradCombiner>(Bc, E, options.deterministic);
  g.combQ = std::make_unique<RowGradCombiner>(2 * Bc, E, options.deterministic);
  g.partials = DeviceBuffer<double>(size_t(reduce_partials_size()));
  g.scalars = DeviceBuffer<double>(kMaxScalars);
  g.counts = DeviceBuffer<int32_t>(kCounts);
  CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&g.host_scalars), kMaxScalars * sizeof(double)));
  CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&g.host_counts), kCounts * sizeof(int32_t)));

  g.make_tower(g.train, 2 * Bc, true);
  g.make_tower(g.eval, std::max<int64_t>(options.eval_pairs, 1), false);
  size_t ws = 0;
  for (const Tower* t : {&g.train, &g.eval})
    for (const ConvLayerPlans& p : t->plans) ws = std::max(ws, p.workspace_bytes());
  g.workspace = DeviceBuffer<unsigned char>(std::max<size_t>(ws, 1));
  size_t free1 = 0;
  CUDA_CHECK(cudaMemGetInfo(&free1, &total));
  g.bytes_before = total - free0;
  g.bytes_after = free0 > free1 ? free0 - free1 : 0;
  uploads_done();
}

GpuEngine::~GpuEngine() {
  if (!m) return;
  if (m->stream) CUDA_CHECK_NOTHROW(cudaStreamSynchronize(m->stream));
  if (m->host_scalars) CUDA_CHECK_NOTHROW(cudaFreeHost(m->host_scalars));
  if (m->host_counts) CUDA_CHECK_NOTHROW(cudaFreeHost(m->host_counts));
  if (m->ev_in) CUDA_CHECK_NOTHROW(cudaEventDestroy(m->ev_in));
  if (m->ev_out) CUDA_CHECK_NOTHROW(cudaEventDestroy(m->ev_out));
  cudaStream_t s = m->stream;
  m.reset();  // plans before the cuDNN handle (member order), buffers, then the stream they used
  if (s) CUDA_CHECK_NOTHROW(cudaStreamDestroy(s));
}

cudaStream_t GpuEngine::stream() const { return m->stream; }
int64_t GpuEngine::max_pairs() const { return m->eval.N; }

std::string GpuEngine::describe() const {
  std::ostringstream s;
  int dev = 0;
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  s << "CUDA engine on " << prop.name << ": " << (m->bytes_after >> 20) << " MiB of device memory for batches of "
    << m->Bc << " triples and evaluation launches of " << m->eval.N << " pairs; sparse gradients "
    << (m->opt.deterministic ? "deterministic" : "fast (atomics)");
  if (m->fused)
    s << "; fused tower (" << precision_name(m->ft.precision) << ", variant " << fused_engine_variant(m->ft)
      << (m->ft.tc.ok ? ": tensor cores" : "") << "), " << (fused_engine_smem_bytes(m->ft) + 1023) / 1024
      << " KiB of shared memory per block, " << m->grid_fwd << " forward and " << m->grid_bwd << " backward blocks";
  if (m->opt.verbose && m->conv)
    for (size_t l = 0; l < m->train.plans.size(); ++l)
      s << "\n  layer " << l + 1 << " train: " << m->train.plans[l].describe() << "\n  layer " << l + 1
        << " eval:  " << m->eval.plans[l].describe();
  return s.str();
}

void GpuEngine::upload_params(const Params<float>& prm) {
  Impl& g = *m;
  if (prm.P.size() != g.P.size() || prm.Q.size() != g.Q.size() || (g.conv && prm.net.size() != g.net.size()))
    throw Error(kExitSoftware, "GpuEngine::upload_params: parameters of another shape");
  CUDA_CHECK(cudaStreamSynchronize(g.stream));
  g.P.upload(prm.P);
  g.Q.upload(prm.Q);
  if (g.conv) g.net.upload(prm.net);
  g.packed_stale = true;
  uploads_done();
}

void GpuEngine::download_params(Params<float>& prm) const {
  const Impl& g = *m;
  CUDA_CHECK(cudaStreamSynchronize(g.stream));
  prm.P = g.P.download();
  prm.Q = g.Q.download();
  if (g.conv) prm.net = g.net.download();
}

void GpuEngine::upload_optimizers(int phase, const OptimizerSet& set) {
  Impl& g = *m;
  CUDA_CHECK(cudaStreamSynchronize(g.stream));
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
  CUDA_CHECK(cudaStreamSynchronize(g.stream));
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
  CUDA_CHECK(cudaStreamSynchronize(g.stream));
  if (!order.empty())
    CUDA_CHECK(cudaMemcpy(g.order.data(), order.data(), order.size() * sizeof(int64_t), cudaMemcpyHostToDevice));
  g.order_size = int64_t(order.size());
  uploads_done();
}

GpuEngine::StepResult GpuEngine::train_step(int epoch, int64_t lo, int64_t n, int phase, const RegSpec& reg,
                                            const DropoutSpec& dropout, uint64_t seed) {
  Impl& g = *m;
  const int64_t Bc = g.Bc;
  const int E = g.E;
  const cudaStream_t s = g.stream;
  if (n <= 0 || n > Bc || lo < 0 || lo + n > g.order_size || phase < 0 || phase > 1 || !g.optim[phase][0].ready)
    throw Error(kExitSoftware, "GpuEngine::train_step: bad batch or optimizers not uploaded");
  auto regw = [&](size_t i) { return reg_weight(reg, i); };
  const bool squared = reg.type == RegType::Squared;
  const double row_l2 = squared ? regw(0) : 0.0;
  const bool norm_tables = !squared && regw(0) > 0;

  CUDA_CHECK(cudaMemsetAsync(g.scalars.data(), 0, kMaxScalars * sizeof(double), s));
  CUDA_CHECK(cudaMemsetAsync(g.counts.data(), 0, kCounts * sizeof(int32_t), s));
  gather_batch_gpu(Bc, n, lo, epoch, seed, g.order.data(), g.train_user.data(), g.train_item.data(),
                   g.row_offsets.data(), g.row_items.data(), g.n_items, g.user.data(), g.pos.data(), g.neg.data(), s);
  Tower& t = g.train;
  make_pairs(Bc, n, g.user.data(), g.pos.data(), g.neg.data(), t.pair_user.data(), t.pair_item.data(), s);

  const std::vector<NetRegTerm> terms = g.conv ? network_reg_terms(g.tower, reg) : std::vector<NetRegTerm>{};
  const DropoutArgs drop{dropout.p, dropout.seed, dropout.step};
  if (g.conv) {
    g.forward(t, drop);
    bpr_loss_grad(Bc, n, t.score.data(), g.loss_t.data(), t.dscore.data(), s);
  }
  if (g.fused) {
    fused_tower_bwd(g.ft, t.N, g.grid_bwd, t.pair_user.data(), t.pair_item.data(), g.P.data(), g.Q.data(),
                    g.packed.data(), drop, t.dscore.data(), g.dp_pairs.data(), g.dq_pairs.data(), g.partial.data(), s,
                    fused_engine_variant(g.ft));
    fused_reduce_grads(g.ft, g.grid_bwd, g.partial.data(), g.dnet.data(), s);
    gather_row_grads(Bc, n, E, g.dp_pairs.data(), g.dq_pairs.data(), g.rows.data(), s);
  } else if (g.conv) {
    const ConvLayer& last = g.tower.layers.back();
    const int C = last.cout;
    head_bwd(t.N, C, last.out_size * last.out_size, t.dscore.data(), g.net.data() + g.tower.out_w_offset, t.h.data(),
             drop, t.dX.back().data(), g.dnet.data() + g.tower.out_w_offset, g.dnet.data() + g.tower.out_b_offset, s);
    for (int l = int(g.tower.layers.size()) - 1; l >= 0; --l) {
      const ConvLayer& cl = g.tower.layers[size_t(l)];
      t.plans[size_t(l)].backward(t.X[size_t(l)].data(), g.w(l), t.X[size_t(l) + 1].data(), t.dX[size_t(l) + 1].data(),
                                  g.dnet.data() + cl.w_offset, g.dnet.data() + cl.b_offset, t.dX[size_t(l)].data(),
                                  g.workspace.data(), s);
    }
    outer_product_bwd(t.N, E, t.pair_user.data(), t.pair_item.data(), g.P.data(), g.Q.data(), t.dX[0].data(),
                      g.dp_pairs.data(), g.dq_pairs.data(), s);
    gather_row_grads(Bc, n, E, g.dp_pairs.data(), g.dq_pairs.data(), g.rows.data(), s);
  } else {
    mf_bpr_fwd_bwd(Bc, n, E, g.user.data(), g.pos.data(), g.neg.data(), g.P.data(), g.Q.data(), g.loss_t.data(),
                   g.rows.data(), s);
  }
  if (row_l2 > 0) {
    rows_squared_reg(Bc, n, E, row_l2, g.user.data(), g.pos.data(), g.neg.data(), g.P.data(), g.Q.data(),
                     g.rows.data(), g.reg_t.data(), s);
  } else {
    CUDA_CHECK(cudaMemsetAsync(g.reg_t.data(), 0, size_t(Bc) * sizeof(double), s));
  }

  // embedding-row gradients combined into the dense gradient tables
  CUDA_CHECK(cudaMemsetAsync(g.dP.data(), 0, g.dP.size() * sizeof(float), s));
  CUDA_CHECK(cudaMemsetAsync(g.dQ.data(), 0, g.dQ.size() * sizeof(float), s));
  g.combP->combine(n, g.user.data(), g.rows.data(), g.dP.data(), g.uniqP.data(), g.n_uniq.data(), s);
  interleave_rows(Bc, E, g.rows.data(), g.qrows.data(), s);
  g.combQ->combine(2 * n, t.pair_item.data(), g.qrows.data(), g.dQ.data(), g.uniqQ.data(), g.n_uniq.data() + 1, s);

  // losses and whole-tensor regularization (before the update: the step's parameters)
  double* sc = g.scalars.data();
  sum_gpu(Bc, g.loss_t.data(), g.partials.data(), sc + kBpr, s);
  sum_gpu(Bc, g.reg_t.data(), g.partials.data(), sc + kRowReg, s);
  if (norm_tables) {
    sum_squares_gpu(int64_t(g.P.size()), g.P.data(), g.partials.data(), sc + kSumP, s);
    sum_squares_gpu(int64_t(g.Q.size()), g.Q.data(), g.partials.data(), sc + kSumQ, s);
    norm_grad_gpu(int64_t(g.P.size()), regw(0), sc + kSumP, g.P.data(), g.dP.data(), s);
    norm_grad_gpu(int64_t(g.Q.size()), regw(0), sc + kSumQ, g.Q.data(), g.dQ.data(), s);
  }
  if (int(terms.size()) + kTerms > kMaxScalars) throw Error(kExitSoftware, "GpuEngine: too many layers");
  for (size_t k = 0; k < terms.size(); ++k) {
    const NetRegTerm& tm = terms[k];
    if (tm.coef <= 0) continue;
    double* ss = sc + kTerms + k;
    sum_squares_gpu(tm.n, g.net.data() + tm.off, g.partials.data(), ss, s);
    if (squared) scale_add(tm.n, float(2 * tm.coef), g.net.data() + tm.off, g.dnet.data() + tm.off, s);
    else norm_grad_gpu(tm.n, tm.coef, ss, g.net.data() + tm.off, g.dnet.data() + tm.off, s);
  }

  // updates
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
  DeviceBuffer<float>* tables[2] = {&g.P, &g.Q};
  DeviceBuffer<float>* grads[2] = {&g.dP, &g.dQ};
  const int32_t* uniq[2] = {g.uniqP.data(), g.uniqQ.data()};
  const int64_t max_rows[2] = {Bc, 2 * Bc};
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
    optim_dense_gpu(d.spec, d.steps, int64_t(g.net.size()), g.net.data(), g.dnet.data(), state(d, 0), state(d, 1), s);
  }
  count_non_finite_gpu(int64_t(g.P.size()), g.P.data(), g.counts.data() + kBadP, s);
  count_non_finite_gpu(int64_t(g.Q.size()), g.Q.data(), g.counts.data() + kBadQ, s);
  if (g.conv) count_non_finite_gpu(int64_t(g.net.size()), g.net.data(), g.counts.data() + kBadNet, s);
  g.packed_stale = true;  // the network moved

  const size_t n_sc = size_t(kTerms) + terms.size();
  CUDA_CHECK(cudaMemcpyAsync(g.host_scalars, sc, n_sc * sizeof(double), cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaMemcpyAsync(g.host_counts, g.counts.data(), kCounts * sizeof(int32_t), cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaStreamSynchronize(s));

  StepResult r;
  const double* h = g.host_scalars;
  r.loss.bpr = h[kBpr];
  r.loss.reg = h[kRowReg];
  if (norm_tables) r.loss.reg += regw(0) * (std::sqrt(h[kSumP]) + std::sqrt(h[kSumQ]));
  for (size_t k = 0; k < terms.size(); ++k) {
    if (terms[k].coef <= 0) continue;
    const double ss = h[kTerms + k];
    r.loss.reg += squared ? terms[k].coef * ss : terms[k].coef * std::sqrt(ss);
  }
  if (g.host_counts[kBadP]) r.non_finite = "user embeddings (" + std::to_string(g.host_counts[kBadP]) + " values)";
  else if (g.host_counts[kBadQ]) r.non_finite = "item embeddings (" + std::to_string(g.host_counts[kBadQ]) + " values)";
  else if (g.host_counts[kBadNet]) r.non_finite = "network weights (" + std::to_string(g.host_counts[kBadNet]) + " values)";
  return r;
}

// Evaluation: the caller's stream waits for nothing of ours and we wait for the caller's work
// before reading its arrays; our results are ready for the caller's stream when we return.
void GpuEngine::score_range(const int32_t* users, int64_t nu, int32_t item_lo, int32_t n, float* out,
                            cudaStream_t stream) {
  Impl& g = *m;
  if (nu < 0 || n < 0 || nu * n > g.eval.N) throw Error(kExitSoftware, "GpuEngine::score_range: too many pairs");
  CUDA_CHECK(cudaEventRecord(g.ev_in, stream));
  CUDA_CHECK(cudaStreamWaitEvent(g.stream, g.ev_in, 0));
  range_pairs(nu, users, item_lo, n, g.eval.N, g.eval.pair_user.data(), g.eval.pair_item.data(), g.stream);
  g.score_eval_pairs(nu * n, out);
  CUDA_CHECK(cudaEventRecord(g.ev_out, g.stream));
  CUDA_CHECK(cudaStreamWaitEvent(stream, g.ev_out, 0));
}

void GpuEngine::score_pairs(const int32_t* user, const int32_t* item, int64_t n, float* out, cudaStream_t stream) {
  Impl& g = *m;
  if (n < 0 || n > g.eval.N) throw Error(kExitSoftware, "GpuEngine::score_pairs: too many pairs");
  CUDA_CHECK(cudaEventRecord(g.ev_in, stream));
  CUDA_CHECK(cudaStreamWaitEvent(g.stream, g.ev_in, 0));
  const size_t used = size_t(n) * sizeof(int32_t), rest = size_t(g.eval.N - n) * sizeof(int32_t);
  if (n) {
    CUDA_CHECK(cudaMemcpyAsync(g.eval.pair_user.data(), user, used, cudaMemcpyDeviceToDevice, g.stream));
    CUDA_CHECK(cudaMemcpyAsync(g.eval.pair_item.data(), item, used, cudaMemcpyDeviceToDevice, g.stream));
  }
  if (rest) {
    CUDA_CHECK(cudaMemsetAsync(g.eval.pair_user.data() + n, 0, rest, g.stream));
    CUDA_CHECK(cudaMemsetAsync(g.eval.pair_item.data() + n, 0, rest, g.stream));
  }
  g.score_eval_pairs(n, out);
  CUDA_CHECK(cudaEventRecord(g.ev_out, g.stream));
  CUDA_CHECK(cudaStreamWaitEvent(stream, g.ev_out, 0));
}

}  // namespace convncf
