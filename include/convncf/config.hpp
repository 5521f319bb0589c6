// config.hpp: the effective configuration of a run, with RecBole's key names.
// Sources merge in order: preset defaults, then each --config=FILE.yaml, then --KEY=VALUE.
// The preset (recbole | paper) is read first from all sources (last one wins), so its defaults
// sit under every explicit key regardless of where `preset` is written.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "convncf/kinds.hpp"

namespace convncf {

struct Config {
  // model
  ModelKind model = ModelKind::ConvNCF;
  Preset preset = Preset::RecBole;
  int embedding_size = 64;
  std::vector<int> cnn_channels{1, 32, 32, 32, 32};
  std::vector<int> cnn_kernels{4, 4, 2, 2};
  std::vector<int> cnn_strides{4, 4, 2, 2};
  double dropout_prob = 0.2;
  InitKind init = InitKind::PyTorch;
  // loss
  std::vector<double> reg_weights{0.1, 0.1};  // Norm: [reg1, reg2]; Squared: [l1, l2, l3]
  RegType reg_type = RegType::Norm;
  // optimization
  Learner learner = Learner::Adam;
  double learning_rate = 0.001;            // network (and embeddings unless the next is set)
  double embedding_learning_rate = -1.0;   // < 0: same as learning_rate
  double weight_decay = 0.0;               // PyTorch-style L2 added to the gradient
  double adagrad_initial_accumulator = 0.0;  // PyTorch 0, TensorFlow 0.1
  double adagrad_eps = 1e-10;                // PyTorch 1e-10, TensorFlow 0
  int warmup_epochs = 0;                     // paper: 1 epoch of Adagrad(warmup lr), no reg
  double warmup_learning_rate = 0.01;
  int64_t train_batch_size = 2048;
  bool drop_last_batch = false;            // paper: the last partial batch is dropped
  // training negatives (RecBole's train_neg_sample_args; the older neg_sampling maps onto it)
  std::string neg_distribution = "uniform";  // uniform | popularity
  int neg_sample_num = 1;                    // negatives per positive: triples per positive
  double neg_alpha = 1.0;                    // popularity: weight count^alpha
  bool neg_dynamic = false;                  // the best-scoring of neg_candidate_num candidates
  int neg_candidate_num = 0;
  int epochs = 300;
  uint64_t seed = 2020;
  std::string train_method = "no_pretrain";  // no_pretrain | after_pretrain
  std::string pre_model_path;                // run folder of an MF-BPR (model: BPR) training
  // after_pretrain without pre_model_path: the MF-BPR stage trained first in the same run
  // (pretrain_config() below says how its configuration is made)
  int pretrain_epochs = 300;                 // RecBole's BPR epochs; paper 500; synthetic data: its own
  double pretrain_learning_rate = 0.001;     // RecBole's BPR learning rate; paper 0.05
  // evaluation (RecBole's eval_args: split, order, group_by, mode)
  std::string split = "RS";                       // RS: ratio split | LS: leave-one-out
  std::vector<double> split_ratios{0.8, 0.1, 0.1};  // RS: train, valid, test shares
  std::string split_ls = "valid_and_test";        // LS: valid_and_test | test_only
  std::string split_order = "RO";                 // RO: random | TO: by time
  std::string group_by = "user";
  std::string eval_mode_valid = "full";  // full | uniN | popN | file (file: test only)
  std::string eval_mode_test = "full";
  std::string split_file;                // read the split from this file (written by a run)
  std::vector<std::string> benchmark_filename;  // RecBole's pre-split NAME.<suffix>.inter files: train, valid, test
  int64_t eval_batch_size = 4096;
  int eval_step = 1;
  int stopping_step = 10;            // 0: never stop early
  std::string valid_metric = "mrr@10";
  std::vector<int> topk{10};
  std::vector<std::string> metrics{"recall", "mrr", "ndcg", "hit", "precision"};  // shown
  // data
  std::string dataset = "synthetic";
  std::string data_path = "dataset/";    // RecBole: DATA_PATH/DATASET/DATASET.inter
  std::string data_format = "auto";      // formats.hpp
  std::string field_separator;           // empty: the format's own
  std::string user_id_field = "user_id", item_id_field = "item_id";
  std::string rating_field = "rating", time_field = "timestamp";
  std::vector<std::string> load_col;     // RecBole load_col: {inter: [...]}; empty: all
  std::string rm_dup_inter = "first";    // first | last | keep
  std::string val_interval;              // rating interval like "[3,inf)" ...
  std::string val_interval_field = "rating";  // ... on this field
  std::string user_inter_num_interval, item_inter_num_interval;
  // run
  Device device = Device::Auto;
  std::string engine = "cudnn";               // cuda: cudnn (layer by layer) | fused (one kernel per pair)
  std::string precision = "fp32";             // fused engine: fp32 | tf32 | bf16 products of layers 2..L
  std::string sparse_grad = "deterministic";  // cuda: embedding rows combined by sort | fast: atomics
  std::string embedding_update = "dense";     // cuda Adam: dense (PyTorch) | lazy (batch rows only)
  bool verbose = false;                       // also print engine details (cuDNN plans)
  std::string out;   // run folder; empty: runs/<model>-<timestamp>
  int threads = 0;   // 0: OpenMP's default
  bool quiet = false;
  bool show_progress = true;

  std::set<std::string> explicit_keys;  // keys set by a file or the command line
  std::set<std::string> ignored_keys;   // RecBole keys that mean nothing here (warned about)
  std::vector<std::string> config_files; // --config files, in order

  // Parses `train`'s arguments (argv after the subcommand). Throws Error(kExitUsage) on an
  // unknown key (naming the closest valid one), a bad value, or a malformed YAML file;
  // Error(kExitNoInput) when a --config file does not exist.
  static Config from_args(const std::vector<std::string>& args);

  // Applies the preset's defaults to every key not in explicit_keys.
  void apply_preset_defaults();

  // One line naming the ignored RecBole keys, or empty.
  std::string ignored_warning() const;

  // The effective configuration as YAML (every key, one per line, lists in flow style).
  std::string to_yaml() const;
};

// Key names, their defaults (recbole / paper) and meanings, for --help and the README.
struct KeyDoc {
  std::string name, default_recbole, default_paper, meaning;
};
const std::vector<KeyDoc>& config_keys();

// The valid key closest to `key` by edit distance (for "did you mean").
std::string closest_key(const std::string& key);

// The configuration of the MF-BPR stage of a run with train_method: after_pretrain and no
// pre_model_path: the run that `convncf train --model=BPR` with the same preset, data, split,
// evaluation, seed, negatives, batch and device keys gives, with epochs = pretrain_epochs and
// learning_rate = pretrain_learning_rate (embedding_learning_rate: the same). The keys of the
// ConvNCF model (tower, dropout, reg_weights, warmup, its epochs and learning rates) take MF-BPR's
// preset defaults instead. Its to_yaml() is a configuration a by-hand first run can be given.
Config pretrain_config(const Config& cfg);

// Whether `cfg` trains its own MF-BPR stage first (after_pretrain, ConvNCF, no pre_model_path).
bool pretrains_in_run(const Config& cfg);

// The keys `train --resume` may change: how a run is computed and shown, not what it trains.
const std::vector<std::string>& resumable_keys();

// The lines of a config.yaml text that make a run what it is: every line but comments, `out`
// and the resumable keys. Two configurations with equal settings train the same run, so a
// checkpoint or an earlier attempt made under one continues under the other.
std::string run_settings(const std::string& config_yaml);

// Keys added to config.yaml after runs were made without them, whose absence means a value any
// configuration with them is consistent with (pretrain_epochs, pretrain_learning_rate: they act
// only in the one-run after_pretrain recipe, which older versions refused).
const std::vector<std::string>& added_keys();

// Whether two configuration texts train the same run: equal run_settings(), except that a key of
// added_keys() missing from `theirs` (an older config.yaml or checkpoint) is not a difference.
// False with the first line of `theirs` that differs in *their_line (or the first line of
// `mine` that `theirs` lacks) when they do not.
bool same_run_settings(const std::string& mine, const std::string& theirs, std::string* their_line = nullptr);

}  // namespace convncf
