// options.hpp: the one place where the configuration (config.hpp) becomes the options of each
// stage: the tower, the initializer, the engine, the training schedule. Every stage below the
// application layer takes only these, never the whole Config.
#pragma once
#include <cstdint>

#include "convncf/config.hpp"
#include "convncf/engine.hpp"
#include "convncf/model.hpp"

namespace convncf {

// The tower of cnn_channels / cnn_kernels / cnn_strides at embedding_size (validated: a bad tower
// is kExitUsage naming the layer). Only meaningful for ConvNCF.
TowerSpec tower_spec(const Config& cfg);

// model, init, embedding_size, seed.
InitSpec init_spec(const Config& cfg);

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
// (batch buffers of one triple, deterministic cuDNN plans whatever sparse_grad says).
EngineOptions engine_options(const Config& cfg, bool training = true);

// The CUDA engine's choices alone: train_batch_size, eval_batch_size (at least 1), sparse_grad,
// embedding_update, verbose, engine and precision.
GpuEngineOptions gpu_engine_options(const Config& cfg);

}  // namespace convncf
