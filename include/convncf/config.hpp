// config.hpp: the effective configuration of a run, with RecBole's key names.
// Sources merge in order: preset defaults, then each --config=FILE.yaml, then --KEY=VALUE.
// The preset (recbole | paper) is read first from all sources (last one wins), so its defaults
// sit under every explicit key regardless of where `preset` is written.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace convncf {

enum class ModelKind { ConvNCF, BPR, Pop };
enum class Preset { RecBole, Paper };
enum class Learner { SGD, Adagrad, Adam };
enum class RegType { Norm, Squared };  // RecBole's whole-table norms | the paper's squared row norms
enum class InitKind { PyTorch, Paper }; // PyTorch defaults | truncated normals of the official code
enum class Device { Auto, Cpu, Cuda };

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
  int epochs = 300;
  uint64_t seed = 2020;
  std::string train_method = "no_pretrain";  // no_pretrain | after_pretrain
  std::string pre_model_path;                // run folder of an MF-BPR (model: BPR) training
  // evaluation
  std::string eval_mode = "uni999";  // uniN: N sampled negatives per user
  int64_t eval_batch_size = 4096;
  int eval_step = 1;
  int stopping_step = 10;            // 0: never stop early
  std::string valid_metric = "mrr@10";
  std::vector<int> topk{5, 10, 20};
  // data and run
  std::string dataset = "synthetic";
  Device device = Device::Auto;
  std::string out;   // run folder; empty: runs/<model>-<timestamp>
  int threads = 0;   // 0: OpenMP's default
  bool quiet = false;

  std::set<std::string> explicit_keys;  // keys set by a file or the command line
  std::vector<std::string> config_files; // --config files, in order

  // Parses `train`'s arguments (argv after the subcommand). Throws Error(kExitUsage) on an
  // unknown key (naming the closest valid one), a bad value, or a malformed YAML file;
  // Error(kExitNoInput) when a --config file does not exist.
  static Config from_args(const std::vector<std::string>& args);

  // Applies the preset's defaults to every key not in explicit_keys.
  void apply_preset_defaults();

  // Integer N of eval_mode uniN (validated by from_args).
  int64_t eval_negatives() const;

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

}  // namespace convncf
