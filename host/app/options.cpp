// options.cpp: configuration -> each stage's options (see options.hpp).
#include "convncf/options.hpp"

#include "convncf/fused_tower.hpp"

#include <algorithm>

#include "convncf/errors.hpp"
#include "convncf/evaluate.hpp"

namespace convncf {

TowerSpec tower_spec(const Config& cfg) {
  return TowerSpec::make(cfg.embedding_size, cfg.cnn_channels, cfg.cnn_kernels, cfg.cnn_strides);
}

OptimizerSpec optimizer_spec(const Config& cfg, Learner learner, double lr) {
  OptimizerSpec s;
  s.learner = learner;
  s.lr = lr;
  s.weight_decay = cfg.weight_decay;
  s.adagrad_initial_accumulator = cfg.adagrad_initial_accumulator;
  s.adagrad_eps = cfg.adagrad_eps;
  return s;
}

NegativeSpec negative_spec(const Config& cfg) {
  NegativeSpec n;
  n.distribution = cfg.neg_distribution == "popularity" ? NegDistribution::Popularity : NegDistribution::Uniform;
  n.sample_num = cfg.neg_sample_num;
  n.alpha = cfg.neg_alpha;
  n.dynamic = cfg.neg_dynamic;
  n.candidate_num = cfg.neg_dynamic ? cfg.neg_candidate_num : 1;
  return n;
}

GpuEngineOptions gpu_engine_options(const Config& cfg) {
  GpuEngineOptions o;
  o.negatives = negative_spec(cfg);
  // a step's triples: RecBole's positives per batch times sample_num
  o.batch_cap = positives_per_batch(cfg.train_batch_size, cfg.neg_sample_num) * cfg.neg_sample_num;
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
  o.negatives = negative_spec(cfg);
  const double emb_lr = cfg.embedding_learning_rate > 0 ? cfg.embedding_learning_rate : cfg.learning_rate;
  o.phases[0] = {optimizer_spec(cfg, cfg.learner, emb_lr), optimizer_spec(cfg, cfg.learner, cfg.learning_rate)};
  o.phases[1] = {optimizer_spec(cfg, Learner::Adagrad, cfg.warmup_learning_rate),
                 optimizer_spec(cfg, Learner::Adagrad, cfg.warmup_learning_rate)};
  o.cuda = gpu_engine_options(cfg);
  o.training = training;
  if (!training) {
    o.negatives = o.cuda.negatives = NegativeSpec{};  // no sampling
    o.cuda.batch_cap = 1;         // no training
    o.cuda.deterministic = true;  // scoring keeps deterministic cuDNN plans whatever sparse_grad says
  }
  return o;
}

DataOptions data_options(const Config& cfg) {
  DataOptions o;
  o.dataset = cfg.dataset;
  o.data_path = cfg.data_path;
  o.seed = cfg.seed;
  o.load.format = parse_data_format(cfg.data_format);
  o.load.field_separator = cfg.field_separator;
  o.load.user_field = cfg.user_id_field;
  o.load.item_field = cfg.item_id_field;
  o.load.rating_field = cfg.rating_field;
  o.load.time_field = cfg.time_field;
  o.load.load_col = cfg.load_col;
  o.load.dup_rule = cfg.rm_dup_inter == "last" ? DupRule::Last : cfg.rm_dup_inter == "keep" ? DupRule::Keep : DupRule::First;
  if (!cfg.val_interval.empty() && cfg.val_interval_field != cfg.rating_field)
    throw_usage("val_interval filters on '" + cfg.val_interval_field + "', but RATING_FIELD is '" + cfg.rating_field +
                "': only the rating column can be filtered");
  o.filters = FilterSpec{cfg.val_interval, cfg.user_inter_num_interval, cfg.item_inter_num_interval};
  o.load.benchmark = cfg.benchmark_filename;
  if (!cfg.benchmark_filename.empty() &&
      (!cfg.val_interval.empty() || !cfg.user_inter_num_interval.empty() || !cfg.item_inter_num_interval.empty()))
    throw_usage("benchmark_filename: pre-split files are read as they are (RecBole applies no filter to them); remove "
                "val_interval, user_inter_num_interval and item_inter_num_interval");
  o.split.file = cfg.split_file;
  o.split.method = cfg.split;
  o.split.ratios = cfg.split_ratios;
  o.split.with_valid = cfg.split_ls == "valid_and_test";
  o.split.order = cfg.split_order == "TO" ? SplitOrder::Time : SplitOrder::Random;
  o.split.seed = cfg.seed;
  return o;
}

ScheduleOptions schedule_options(const Config& cfg) {
  ScheduleOptions o;
  o.batch_size = cfg.train_batch_size;
  o.drop_last = cfg.drop_last_batch;
  o.warmup_epochs = cfg.warmup_epochs;
  o.seed = cfg.seed;
  o.dropout = cfg.dropout_prob;
  o.reg = RegSpec{cfg.reg_type, cfg.reg_weights, true};
  o.negatives = negative_spec(cfg);
  return o;
}

void check_run_config(const Config& cfg, bool training) {
  // engine and precision that contradict each other: a usage error on every device, checked
  // before any GPU is looked for, so a machine without one gives the same answer as one with
  if (cfg.engine != "fused" && cfg.precision != "fp32")
    throw_usage("precision: " + cfg.precision + " needs engine: fused; the cuDNN engine computes in FP32");
  if (cfg.embedding_update == "lazy" && cfg.reg_type == RegType::Norm && !cfg.reg_weights.empty() &&
      cfg.reg_weights[0] > 0)
    throw_usage("embedding_update: lazy needs a regularizer that touches only the batch's rows, but reg_type norm "
                "with reg_weights[0] > 0 puts a gradient on every row (use reg_type squared or reg_weights[0] = 0)");
  if (cfg.neg_dynamic && cfg.neg_candidate_num < 1)
    throw_usage("train_neg_sample_args: dynamic: true needs candidate_num >= 1 (the candidates each negative is "
                "picked from), found " + std::to_string(cfg.neg_candidate_num));
  if (cfg.neg_dynamic && cfg.device == Device::Cuda)
    throw_usage("train_neg_sample_args: dynamic: true (dynamic negative sampling) is done by the CPU engine only; "
                "use device: cpu (device: auto picks the CPU engine for it)");
  const bool conv = cfg.model == ModelKind::ConvNCF;
  if (conv) tower_spec(cfg);  // throws naming the layer
  // Exactly the weights the form uses: an extra one would be ignored without a word. MF-BPR has
  // no network, so only the embeddings' weight.
  const size_t need_regs = !conv ? 1 : cfg.reg_type == RegType::Squared ? 3 : 2;
  if (training && cfg.model != ModelKind::Pop && cfg.reg_weights.size() != need_regs) {
    const size_t n = cfg.reg_weights.size();
    const char* form = !conv ? "[embeddings]" : cfg.reg_type == RegType::Squared ? "[l1, l2, l3]" : "[embeddings, network]";
    throw_usage("reg_weights has " + std::to_string(n) + (n == 1 ? " value" : " values") + ", but reg_type " +
                (cfg.reg_type == RegType::Squared ? "squared" : "norm") + " with model " + model_name(cfg.model) +
                " uses " + std::to_string(need_regs) + ": " + form + (conv ? "" : " (MF-BPR has no network)"));
  }
  MetricSum probe(cfg.topk);
  metric_value(probe.mean(), cfg.valid_metric);  // throws when valid_metric's K is not in topk
}

std::vector<std::string> shown_metrics(const Config& cfg) {
  std::vector<std::string> names;
  for (const std::string& m : cfg.metrics) {
    if (m == "auc") names.push_back("auc");
    else for (int k : cfg.topk) names.push_back(m + "@" + std::to_string(k));
  }
  if (std::find(names.begin(), names.end(), cfg.valid_metric) == names.end()) names.push_back(cfg.valid_metric);
  return names;
}

}  // namespace convncf
