// gpu_engine.hpp: the CUDA training engine (device: cuda). The CPU reference engine
// (cpu_engine.hpp) is its oracle: the same batches (device sampling reproduces the host's draws),
// the same dropout masks, the same loss, regularization and updates.
//
// One training step of ConvNCF, all on one stream, with one host synchronization (the loss):
//   gather_batch_gpu     (user, pos, neg) of the batch from the epoch's order, N negatives per
//                        positive drawn on the device from the user's CSR row, uniform or by
//                        popularity (sampling.hpp); batch_cap is the step's triples
//   make_pairs           2B pairs, interleaved: 2t = (u, pos), 2t+1 = (u, neg)
//   outer_product_fwd    the pairs' E x E maps written straight into the first conv's input
//   ConvLayerPlans       conv + bias + ReLU per layer through cuDNN's graph API (cudnn_conv.hpp)
//   head_fwd             spatial sum, dropout, output layer -> scores
//   bpr_loss_grad        per-triple loss and score gradients
//   head_bwd, ConvLayerPlans::backward (layer L .. 1), outer_product_bwd
//   gather_row_grads     per-triple embedding-row gradients
//   (several ranks)      options.comm (nccl.hpp): the steps above ran on this rank's share of the
//                        step's positives (sampling.hpp's StepShare, dropout's masks the step's);
//                        the network's gradient is summed over the ranks (ncclAllReduce), the
//                        shares' row gradients and losses gathered (ncclAllGather) and put in the
//                        step's order, the step's triples drawn again whole; from here on every
//                        rank does the same work on the same values, so their updates agree
//   rows_squared_reg     the paper preset's row regularization
//   RowGradCombiner      repeated rows summed (CUB sort + segmented sum, or atomics)
//   sum_squares_gpu, norm_grad_gpu  RecBole's whole-table norms (every row gets a gradient)
//   optim_*_gpu          SGD / Adagrad / Adam on the network (dense) and on the tables (dense,
//                        or only the batch's rows when that is the same update, or for lazy Adam)
//   count_non_finite_gpu the finite check of the updated tensors
// engine: fused (options.fused, fused_tower.hpp) replaces outer_product_fwd .. outer_product_bwd
// by fused_tower_fwd, bpr_loss_grad, fused_tower_bwd and fused_reduce_grads: no feature map is
// stored in global memory, and the packed weights are rebuilt after every update.
// MF-BPR replaces the tower by mf_bpr_fwd_bwd. All device memory is allocated in the
// constructor: parameters, gradients, optimizer states, activations for 2 * batch_cap pairs,
// the cuDNN workspace and CUB's temporary storage; a step allocates nothing.
//
// Evaluation: the engine is a DeviceScorer (eval_gpu.hpp) over its current parameters, with its
// own forward buffers for `eval_pairs` pairs.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "convncf/cpu_engine.hpp"
#include "convncf/dataset.hpp"
#include "convncf/engine.hpp"
#include "convncf/eval_gpu.hpp"
#include "convncf/fused_tower.hpp"
#include "convncf/model.hpp"
#include "convncf/optim.hpp"

namespace convncf {


// The host side of one optimizer: its spec, step count and state (as checkpoints hold it).
struct OptimizerSet {
  Optimizer<float>* P;
  Optimizer<float>* Q;
  Optimizer<float>* net;
};

class GpuEngine : public DeviceScorer {
 public:
  // `tower` null for BPR. `split` gives the training CSR and positives (kept on the device).
  GpuEngine(ModelKind model, const TowerSpec* tower, const Split& split, int E,
            const GpuEngineOptions& options);
  ~GpuEngine() override;
  GpuEngine(const GpuEngine&) = delete;
  GpuEngine& operator=(const GpuEngine&) = delete;

  std::string describe() const;  // device, memory, cuDNN plans (verbose)

  void upload_params(const Params<float>& prm);
  void download_params(Params<float>& prm) const;
  // Optimizer state goes to the device with upload_optimizers (one set per phase: 0 main, 1 the
  // warm-up's) and back with download_optimizers, for checkpoints.
  void upload_optimizers(int phase, const OptimizerSet& set);
  void download_optimizers(int phase, const OptimizerSet& set) const;

  // The epoch's order of training positives (indices into split.train_user / train_item).
  void set_epoch_order(const std::vector<int64_t>& order);

  struct StepResult {
    LossParts loss;
    std::string non_finite;  // the first updated tensor holding a NaN/inf, or empty
  };
  // One step on positives lo .. lo+n of the epoch's order and their negatives.sample_num
  // negatives each (n · N <= batch_cap triples): loss, gradients, update of phase `phase`'s
  // optimizers (their step counts advance). Synchronizes once, for the loss. Dynamic negatives
  // are refused by the constructor (kExitUsage): they are the CPU engine's.
  StepResult train_step(int epoch, int64_t lo, int64_t n, int phase, const RegSpec& reg,
                        const DropoutSpec& dropout, uint64_t seed);

  // DeviceScorer
  int32_t n_items() const override { return m_n_items; }
  int64_t max_pairs() const override;
  void score_range(const int32_t* users, int64_t nu, int32_t item_lo, int32_t n, float* out,
                   cudaStream_t stream) override;
  void score_pairs(const int32_t* user, const int32_t* item, int64_t n, float* out,
                   cudaStream_t stream) override;
  cudaStream_t stream() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> m;
  int32_t m_n_items = 0;
};

}  // namespace convncf
