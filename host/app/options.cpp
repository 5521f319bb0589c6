// options.cpp: configuration -> each stage's options (see options.hpp).
#include "convncf/options.hpp"

#include "convncf/fused_tower.hpp"

#include <algorithm>

namespace convncf {

TowerSpec tower_spec(const Config& cfg) {
  return TowerSpec::make(cfg.embedding_size, cfg.cnn_channels, cfg.cnn_kernels, cfg.cnn_strides);
}

InitSpec init_spec(const Config& cfg) { return InitSpec{cfg.model, cfg.init, cfg.embedding_size, cfg.seed}; }

OptimizerSpec optimizer_spec(const Config& cfg, Learner learner, double lr) {
  OptimizerSpec s;
  s.learner = learner;
  s.lr = lr;
  s.weight_decay = cfg.weight_decay;
  s.adagrad_initial_accumulator = cfg.adagrad_initial_accumulator;
  s.adagrad_eps = cfg.adagrad_eps;
  return s;
}

GpuEngineOptions gpu_engine_options(const Config& cfg) {
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

EngineOptions engine_options(const Config& cfg, bool training) {
  EngineOptions o;
  o.model = cfg.model;
  if (cfg.model == ModelKind::ConvNCF) o.tower = tower_spec(cfg);
  o.E = cfg.model == ModelKind::Pop ? 0 : cfg.embedding_size;
  o.device = cfg.device;
  o.threads = cfg.threads;
  o.seed = cfg.seed;
  const double emb_lr = cfg.embedding_learning_rate > 0 ? cfg.embedding_learning_rate : cfg.learning_rate;
  o.phases[0] = {optimizer_spec(cfg, cfg.learner, emb_lr), optimizer_spec(cfg, cfg.learner, cfg.learning_rate)};
  o.phases[1] = {optimizer_spec(cfg, Learner::Adagrad, cfg.warmup_learning_rate),
                 optimizer_spec(cfg, Learner::Adagrad, cfg.warmup_learning_rate)};
  o.cuda = gpu_engine_options(cfg);
  o.training = training;
  if (!training) {
    o.cuda.batch_cap = 1;         // no training
    o.cuda.deterministic = true;  // scoring keeps deterministic cuDNN plans whatever sparse_grad says
  }
  return o;
}

}  // namespace convncf
