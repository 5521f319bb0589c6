// options.hpp: the one place where the configuration (config.hpp) becomes the options of each
// stage: the tower, the initializer, the engine, the training schedule. Every stage below the
// application layer takes only these, never the whole Config.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "convncf/config.hpp"
#include "convncf/engine.hpp"
#include "convncf/model.hpp"
#include "convncf/run_data.hpp"
#include "convncf/schedule.hpp"

namespace convncf {

// The tower of cnn_channels / cnn_kernels / cnn_strides at embedding_size (validated: a bad tower
// is kExitUsage naming the layer). Only meaningful for ConvNCF.
TowerSpec tower_spec(const Config& cfg);

// model, init, embedding_size, seed.
inline InitSpec init_spec(const Config& cfg) { return InitSpec{cfg.model, cfg.init, cfg.embedding_size, cfg.seed}; }

// The configuration's initial parameters (init_params of init_spec(cfg)).
inline Params<float> init_params(const Config& cfg, const TowerSpec* tower, int32_t n_users, int32_t n_items) {
  return init_params(init_spec(cfg), tower, n_users, n_items);
}

// The optimizer of one learner at one learning rate, with the configuration's weight decay and
// Adagrad settings.
OptimizerSpec optimizer_spec(const Config& cfg, Learner learner, double lr);

// The engine's options: model and tower, device, threads, the negatives' seed, both phases'
// optimizers (main: learner at learning_rate / embedding_learning_rate; warm-up: Adagrad at
// warmup_learning_rate) and the CUDA engine's choices. training = false: for scoring only
// (batch buffers of one triple, no negatives, deterministic cuDNN plans whatever sparse_grad says).
EngineOptions engine_options(const Config& cfg, bool training = true);

// train_neg_sample_args as the samplers take it (candidate_num 1 unless dynamic).
NegativeSpec negative_spec(const Config& cfg);

// The CUDA engine's choices alone: the batch's triples (positives_per_batch(train_batch_size,
// sample_num) · sample_num), eval_batch_size (at least 1), sparse_grad, embedding_update,
// verbose, engine, precision and the negatives.
GpuEngineOptions gpu_engine_options(const Config& cfg);

// The data stage: dataset, data_path, the format's keys, benchmark_filename, the filters, the
// split. Usage errors that need no data (val_interval on a field other than RATING_FIELD, filters
// with benchmark_filename) are thrown here.
DataOptions data_options(const Config& cfg);

// The training schedule: train_batch_size, drop_last_batch, warmup_epochs, seed, dropout_prob,
// reg_type and reg_weights.
ScheduleOptions schedule_options(const Config& cfg);

// The configuration's contradictions that no single key shows, as usage errors (kExitUsage),
// before anything is loaded or any device is asked: precision without engine: fused; lazy Adam
// with whole-table norms; dynamic negatives without candidates or on device cuda; a valid_metric
// whose K is not in topk; a bad tower; and, for `training`, another count of reg_weights than
// reg_type uses for the model.
void check_run_config(const Config& cfg, bool training = true);

// The metric names the log prints: each of `metrics` at each K of `topk` (auc once), and
// valid_metric if it is not among them.
std::vector<std::string> shown_metrics(const Config& cfg);

}  // namespace convncf
