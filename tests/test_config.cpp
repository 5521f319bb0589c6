// test_config.cpp: the configuration (host/app/config.cpp): preset and model defaults, precedence of
// preset, files and command line, value parsing and every usage error (exit code and message),
// the YAML-subset reader's corner cases, and the to_yaml -> --config round trip.
// Temp files go under ::testing::TempDir(). Run: ctest -R Config, or the test binary.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "convncf/config.hpp"
#include "convncf/errors.hpp"
#include "convncf/options.hpp"

using namespace convncf;

namespace {

std::string temp_file(const std::string& name, const std::string& text) {
  const std::string p = ::testing::TempDir() + "/convncf_config_" + std::to_string(getpid()) + "_" + name;
  std::ofstream f(p, std::ios::binary);
  f << text;
  return p;
}

// Runs from_args expecting an Error; returns it (code -1 and empty text when nothing threw).
Error error_of(const std::vector<std::string>& args) {
  try {
    Config::from_args(args);
  } catch (const Error& e) {
    return e;
  }
  return Error(-1, "");
}

// from_args must fail with `code` and a message holding every one of `parts`.
void expect_error(const std::vector<std::string>& args, int code, const std::vector<std::string>& parts) {
  std::string joined;
  for (const std::string& a : args) joined += a + " ";
  const Error e = error_of(args);
  EXPECT_EQ(e.code(), code) << "args: " << joined << " message: " << e.what();
  for (const std::string& p : parts)
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
        << "args: " << joined << "\nmessage: " << e.what() << "\nmissing: " << p;
}

void expect_usage(const std::vector<std::string>& args, const std::vector<std::string>& parts) {
  expect_error(args, kExitUsage, parts);
}

// Every setting (not the bookkeeping explicit_keys / config_files).
void expect_same(const Config& a, const Config& b) {
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.preset, b.preset);
  EXPECT_EQ(a.embedding_size, b.embedding_size);
  EXPECT_EQ(a.cnn_channels, b.cnn_channels);
  EXPECT_EQ(a.cnn_kernels, b.cnn_kernels);
  EXPECT_EQ(a.cnn_strides, b.cnn_strides);
  EXPECT_EQ(a.dropout_prob, b.dropout_prob);
  EXPECT_EQ(a.init, b.init);
  EXPECT_EQ(a.reg_weights, b.reg_weights);
  EXPECT_EQ(a.reg_type, b.reg_type);
  EXPECT_EQ(a.learner, b.learner);
  EXPECT_EQ(a.learning_rate, b.learning_rate);
  EXPECT_EQ(a.embedding_learning_rate, b.embedding_learning_rate);
  EXPECT_EQ(a.weight_decay, b.weight_decay);
  EXPECT_EQ(a.adagrad_initial_accumulator, b.adagrad_initial_accumulator);
  EXPECT_EQ(a.adagrad_eps, b.adagrad_eps);
  EXPECT_EQ(a.warmup_epochs, b.warmup_epochs);
  EXPECT_EQ(a.warmup_learning_rate, b.warmup_learning_rate);
  EXPECT_EQ(a.train_batch_size, b.train_batch_size);
  EXPECT_EQ(a.drop_last_batch, b.drop_last_batch);
  EXPECT_EQ(a.epochs, b.epochs);
  EXPECT_EQ(a.neg_distribution, b.neg_distribution);
  EXPECT_EQ(a.neg_sample_num, b.neg_sample_num);
  EXPECT_EQ(a.neg_alpha, b.neg_alpha);
  EXPECT_EQ(a.neg_dynamic, b.neg_dynamic);
  EXPECT_EQ(a.neg_candidate_num, b.neg_candidate_num);
  EXPECT_EQ(a.benchmark_filename, b.benchmark_filename);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.train_method, b.train_method);
  EXPECT_EQ(a.pre_model_path, b.pre_model_path);
  EXPECT_EQ(a.eval_mode_valid, b.eval_mode_valid);
  EXPECT_EQ(a.eval_mode_test, b.eval_mode_test);
  EXPECT_EQ(a.split, b.split);
  EXPECT_EQ(a.split_ratios, b.split_ratios);
  EXPECT_EQ(a.split_ls, b.split_ls);
  EXPECT_EQ(a.split_order, b.split_order);
  EXPECT_EQ(a.metrics, b.metrics);
  EXPECT_EQ(a.load_col, b.load_col);
  EXPECT_EQ(a.val_interval, b.val_interval);
  EXPECT_EQ(a.val_interval_field, b.val_interval_field);
  EXPECT_EQ(a.user_inter_num_interval, b.user_inter_num_interval);
  EXPECT_EQ(a.item_inter_num_interval, b.item_inter_num_interval);
  EXPECT_EQ(a.rm_dup_inter, b.rm_dup_inter);
  EXPECT_EQ(a.data_format, b.data_format);
  EXPECT_EQ(a.field_separator, b.field_separator);
  EXPECT_EQ(a.user_id_field, b.user_id_field);
  EXPECT_EQ(a.time_field, b.time_field);
  EXPECT_EQ(a.split_file, b.split_file);
  EXPECT_EQ(a.data_path, b.data_path);
  EXPECT_EQ(a.show_progress, b.show_progress);
  EXPECT_EQ(a.eval_batch_size, b.eval_batch_size);
  EXPECT_EQ(a.eval_step, b.eval_step);
  EXPECT_EQ(a.stopping_step, b.stopping_step);
  EXPECT_EQ(a.valid_metric, b.valid_metric);
  EXPECT_EQ(a.topk, b.topk);
  EXPECT_EQ(a.dataset, b.dataset);
  EXPECT_EQ(a.device, b.device);
  EXPECT_EQ(a.engine, b.engine);
  EXPECT_EQ(a.precision, b.precision);
  EXPECT_EQ(a.sparse_grad, b.sparse_grad);
  EXPECT_EQ(a.embedding_update, b.embedding_update);
  EXPECT_EQ(a.verbose, b.verbose);
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.threads, b.threads);
  EXPECT_EQ(a.quiet, b.quiet);
}

// The line "key: ..." of a to_yaml text.
std::string yaml_line(const std::string& yaml, const std::string& key) {
  const size_t at = yaml.find("\n" + key + ": ");
  if (at == std::string::npos) return "";
  return yaml.substr(at + 1, yaml.find('\n', at + 1) - at - 1);
}

}  // namespace

// ---- presets ----

TEST(Config, RecBoleDefaults) {
  const Config c = Config::from_args({"--dataset=ml-1m"});
  EXPECT_EQ(c.preset, Preset::RecBole);
  EXPECT_EQ(c.model, ModelKind::ConvNCF);
  EXPECT_EQ(c.embedding_size, 64);
  EXPECT_EQ(c.cnn_channels, (std::vector<int>{1, 32, 32, 32, 32}));
  EXPECT_EQ(c.cnn_kernels, (std::vector<int>{4, 4, 2, 2}));
  EXPECT_EQ(c.cnn_strides, (std::vector<int>{4, 4, 2, 2}));
  EXPECT_EQ(c.dropout_prob, 0.2);
  EXPECT_EQ(c.init, InitKind::PyTorch);
  EXPECT_EQ(c.reg_type, RegType::Norm);
  EXPECT_EQ(c.reg_weights, (std::vector<double>{0.1, 0.1}));
  EXPECT_EQ(c.learner, Learner::Adam);
  EXPECT_EQ(c.learning_rate, 0.001);
  EXPECT_EQ(c.embedding_learning_rate, -1.0);
  EXPECT_EQ(c.weight_decay, 0.0);
  EXPECT_EQ(c.adagrad_initial_accumulator, 0.0);
  EXPECT_EQ(c.adagrad_eps, 1e-10);
  EXPECT_EQ(c.warmup_epochs, 0);
  EXPECT_EQ(c.warmup_learning_rate, 0.01);
  EXPECT_EQ(c.train_batch_size, 2048);
  EXPECT_FALSE(c.drop_last_batch);
  EXPECT_EQ(c.epochs, 300);
  EXPECT_EQ(c.eval_step, 1);
  EXPECT_EQ(c.stopping_step, 10);
  EXPECT_EQ(c.valid_metric, "mrr@10");
  EXPECT_EQ(c.topk, (std::vector<int>{10}));
  EXPECT_EQ(c.eval_batch_size, 4096);
  EXPECT_EQ(c.seed, 2020u);
  // RecBole's overall.yaml: eval_args {split: {RS: [0.8, 0.1, 0.1]}, group_by: user, order: RO, mode: full}
  EXPECT_EQ(c.split, "RS");
  EXPECT_EQ(c.split_ratios, (std::vector<double>{0.8, 0.1, 0.1}));
  EXPECT_EQ(c.split_order, "RO");
  EXPECT_EQ(c.group_by, "user");
  EXPECT_EQ(c.eval_mode_valid, "full");
  EXPECT_EQ(c.eval_mode_test, "full");
  EXPECT_EQ(c.metrics, (std::vector<std::string>{"recall", "mrr", "ndcg", "hit", "precision"}));
  EXPECT_EQ(c.train_method, "no_pretrain");
  EXPECT_EQ(c.device, Device::Auto);
  EXPECT_EQ(c.engine, "cudnn");
  EXPECT_EQ(c.precision, "fp32");
  EXPECT_EQ(c.threads, 0);
  EXPECT_FALSE(c.quiet);
  EXPECT_EQ(c.explicit_keys, (std::set<std::string>{"dataset"}));
  // the struct's own defaults are the recbole column
  Config plain;
  plain.dataset = "ml-1m";
  plain.explicit_keys = {"dataset"};
  expect_same(c, plain);
}

TEST(Config, PaperDefaults) {
  const Config c = Config::from_args({"--preset=paper", "--dataset=yelp"});
  EXPECT_EQ(c.preset, Preset::Paper);
  EXPECT_EQ(c.cnn_channels, (std::vector<int>{1, 32, 32, 32, 32, 32, 32}));
  EXPECT_EQ(c.cnn_kernels, (std::vector<int>{2, 2, 2, 2, 2, 2}));
  EXPECT_EQ(c.cnn_strides, (std::vector<int>{2, 2, 2, 2, 2, 2}));
  EXPECT_EQ(c.dropout_prob, 0.0);
  EXPECT_EQ(c.init, InitKind::Paper);
  EXPECT_EQ(c.reg_type, RegType::Squared);
  EXPECT_EQ(c.reg_weights, (std::vector<double>{0.01, 10, 1}));
  EXPECT_EQ(c.learner, Learner::Adagrad);
  EXPECT_EQ(c.learning_rate, 0.05);
  EXPECT_EQ(c.embedding_learning_rate, 0.05);
  EXPECT_EQ(c.adagrad_initial_accumulator, 0.1);
  EXPECT_EQ(c.adagrad_eps, 0.0);
  EXPECT_EQ(c.warmup_epochs, 1);
  EXPECT_EQ(c.warmup_learning_rate, 0.01);
  EXPECT_EQ(c.train_batch_size, 512);
  EXPECT_TRUE(c.drop_last_batch);
  EXPECT_EQ(c.epochs, 1500);
  EXPECT_EQ(c.eval_step, 100);
  EXPECT_EQ(c.stopping_step, 0);
  EXPECT_EQ(c.valid_metric, "ndcg@10");
  EXPECT_EQ(c.topk, (std::vector<int>{5, 10, 20}));
  // the paper's protocol: leave-one-out by time, 999 sampled negatives
  EXPECT_EQ(c.split, "LS");
  EXPECT_EQ(c.split_ls, "valid_and_test");
  EXPECT_EQ(c.split_order, "TO");
  EXPECT_EQ(c.eval_mode_valid, "uni999");
  EXPECT_EQ(c.eval_mode_test, "uni999");
  // keys the paper column leaves alone
  EXPECT_EQ(c.embedding_size, 64);
  EXPECT_EQ(c.eval_batch_size, 4096);
  EXPECT_EQ(c.seed, 2020u);
  EXPECT_EQ(c.weight_decay, 0.0);
}

TEST(Config, BprDefaults) {
  Config r = Config::from_args({"--model=BPR", "--dataset=ml-1m"});
  EXPECT_EQ(r.model, ModelKind::BPR);
  EXPECT_EQ(r.reg_weights, (std::vector<double>{0.0}));  // RecBole's BPR: no regularization (MF-BPR: one weight)
  EXPECT_EQ(r.epochs, 300);
  EXPECT_EQ(r.learner, Learner::Adam);
  EXPECT_EQ(r.warmup_epochs, 0);
  Config p = Config::from_args({"--model=BPR", "--preset=paper", "--dataset=yelp"});
  EXPECT_EQ(p.reg_weights, (std::vector<double>{0.01}));
  EXPECT_EQ(p.epochs, 500);
  EXPECT_EQ(p.warmup_epochs, 0);
  EXPECT_EQ(p.learner, Learner::Adagrad);
  EXPECT_EQ(p.train_batch_size, 512);
  EXPECT_EQ(p.reg_type, RegType::Squared);
  // an explicit reg_weights stays under BPR
  p = Config::from_args({"--model=BPR", "--reg_weights=[0.5, 0.5]"});
  EXPECT_EQ(p.reg_weights, (std::vector<double>{0.5, 0.5}));
  // Pop takes the ConvNCF defaults (it uses none of them)
  EXPECT_EQ(Config::from_args({"--model=Pop"}).reg_weights, (std::vector<double>{0.1, 0.1}));
}

TEST(Config, ExplicitKeysWinOverPresetRegardlessOfOrder) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--epochs=7", "--learner=adam", "--preset=paper"},
           {"--preset=paper", "--epochs=7", "--learner=adam"}}) {
    const Config c = Config::from_args(args);
    EXPECT_EQ(c.preset, Preset::Paper);
    EXPECT_EQ(c.epochs, 7);
    EXPECT_EQ(c.learner, Learner::Adam);     // explicit, although it is recbole's value
    EXPECT_EQ(c.learning_rate, 0.05);        // not explicit: paper's
    EXPECT_EQ(c.train_batch_size, 512);
  }
  // the preset in a file, the key on the command line, and the other way round
  const std::string preset_file = temp_file("preset.yaml", "preset: paper\n");
  const std::string key_file = temp_file("key.yaml", "train_batch_size: 100\n");
  Config c = Config::from_args({"--train_batch_size=100", "--config=" + preset_file});
  EXPECT_EQ(c.preset, Preset::Paper);
  EXPECT_EQ(c.train_batch_size, 100);
  EXPECT_EQ(c.learner, Learner::Adagrad);
  c = Config::from_args({"--config=" + key_file, "--preset=paper"});
  EXPECT_EQ(c.train_batch_size, 100);
  EXPECT_EQ(c.learner, Learner::Adagrad);
  // the last preset wins: the command line's over the file's
  c = Config::from_args({"--config=" + preset_file, "--preset=recbole"});
  EXPECT_EQ(c.preset, Preset::RecBole);
  EXPECT_EQ(c.learner, Learner::Adam);
}

TEST(Config, ApplyPresetDefaultsKeepsExplicitKeys) {
  Config c;
  c.preset = Preset::Paper;
  c.model = ModelKind::BPR;
  c.dataset = "ml-1m";
  c.learning_rate = 0.3;
  c.explicit_keys = {"learning_rate"};
  c.apply_preset_defaults();
  EXPECT_EQ(c.preset, Preset::Paper);
  EXPECT_EQ(c.model, ModelKind::BPR);
  EXPECT_EQ(c.dataset, "ml-1m");
  EXPECT_EQ(c.learning_rate, 0.3);
  EXPECT_EQ(c.embedding_learning_rate, 0.05);
  EXPECT_EQ(c.epochs, 500);
  EXPECT_EQ(c.reg_weights, (std::vector<double>{0.01}));
}

TEST(Config, SyntheticEpochDefaultAndExplicitEpochsWin) {
  for (const char* preset : {"--preset=recbole", "--preset=paper"}) {
    const Config c = Config::from_args({preset});
    EXPECT_EQ(c.dataset, "synthetic");
    EXPECT_EQ(c.epochs, 10) << preset;
    EXPECT_EQ(c.eval_step, 5) << preset;  // validation costs more than training here (README)
    EXPECT_EQ(c.pretrain_epochs, 10) << preset;  // the MF-BPR stage is `--model=BPR`'s run
  }
  Config c = Config::from_args({"--preset=paper", "--epochs=300"});
  EXPECT_EQ(c.epochs, 300);
  EXPECT_EQ(c.eval_step, 5);
  c = Config::from_args({"--preset=paper", "--eval_step=5"});
  EXPECT_EQ(c.epochs, 10);
  EXPECT_EQ(c.eval_step, 5);
  EXPECT_EQ(Config::from_args({"--model=BPR", "--preset=paper"}).epochs, 10);
}

// ---- values ----

TEST(Config, ListParsing) {
  Config c = Config::from_args({"--cnn_kernels=[4,4,2,2]", "--cnn_strides=[4, 4, 2, 2]",
                                "--cnn_channels=  [ 1 , 8,16 ]  "});
  EXPECT_EQ(c.cnn_kernels, (std::vector<int>{4, 4, 2, 2}));
  EXPECT_EQ(c.cnn_strides, (std::vector<int>{4, 4, 2, 2}));
  EXPECT_EQ(c.cnn_channels, (std::vector<int>{1, 8, 16}));
  c = Config::from_args({"--topk=10"});
  EXPECT_EQ(c.topk, (std::vector<int>{10}));
  c = Config::from_args({"--topk=[1,50]", "--reg_weights=[0.5, 1e-3, 0]"});
  EXPECT_EQ(c.topk, (std::vector<int>{1, 50}));
  EXPECT_EQ(c.reg_weights, (std::vector<double>{0.5, 1e-3, 0.0}));
  c = Config::from_args({"--reg_weights=[]", "--cnn_kernels=['2', \"2\"]"});
  EXPECT_TRUE(c.reg_weights.empty());
  EXPECT_EQ(c.cnn_kernels, (std::vector<int>{2, 2}));
}

TEST(Config, ListErrors) {
  const std::string ints = "a list of integers > 0";
  expect_usage({"--cnn_kernels=[4,4,]"}, {"cnn_kernels", "[4,4,]", ints});
  expect_usage({"--cnn_kernels=[4,,4]"}, {"cnn_kernels", "[4,,4]"});
  expect_usage({"--cnn_kernels=[4,x]"}, {"cnn_kernels", "[4,x]", ints});
  expect_usage({"--cnn_kernels=[4,2.5]"}, {"cnn_kernels", ints});
  expect_usage({"--cnn_kernels=[0,4]"}, {"cnn_kernels", ints});
  expect_usage({"--cnn_kernels=4"}, {"cnn_kernels", "'4'", ints});
  expect_usage({"--cnn_kernels=[4,[2]]"}, {"cnn_kernels", "[4,[2]]"});
  expect_usage({"--cnn_kernels=[4,4"}, {"cnn_kernels", "[4,4", ints});
  expect_usage({"--cnn_kernels=[4 4]"}, {"cnn_kernels"});
  expect_usage({"--cnn_kernels=[4] x"}, {"cnn_kernels"});
  expect_usage({"--reg_weights=[0.1,-1]"}, {"reg_weights", "[0.1,-1]", "numbers >= 0"});
  expect_usage({"--reg_weights=0.1"}, {"reg_weights", "a list of numbers"});
  expect_usage({"--topk=0"}, {"topk", "'0'", "an integer > 0 or a list"});
  expect_usage({"--topk=[5,abc]"}, {"topk"});
  expect_usage({"--topk=[5,"}, {"topk", "'[5,'", "an integer > 0 or a list"});
  expect_usage({"--reg_weights=[0.1"}, {"reg_weights", "'[0.1'", "a list of numbers"});
  expect_usage({"--epochs=[1,2]"}, {"epochs", "[1,2]", "an integer >= 0"});
}

TEST(Config, BoolAndEnumParsing) {
  EXPECT_TRUE(Config::from_args({"--quiet"}).quiet);
  EXPECT_TRUE(Config::from_args({"--quiet=true"}).quiet);
  EXPECT_FALSE(Config::from_args({"--quiet", "--quiet=false"}).quiet);
  EXPECT_TRUE(Config::from_args({"--drop_last_batch=TRUE"}).drop_last_batch);
  expect_usage({"--quiet=yes"}, {"quiet", "'yes'", "true or false"});
  expect_usage({"--drop_last_batch=1"}, {"drop_last_batch", "'1'", "true or false"});

  const std::vector<std::pair<std::string, ModelKind>> models = {
      {"ConvNCF", ModelKind::ConvNCF}, {"convncf", ModelKind::ConvNCF}, {"BPR", ModelKind::BPR},
      {"bpr", ModelKind::BPR},         {"MF", ModelKind::BPR},          {"MF-BPR", ModelKind::BPR},
      {"mf-bpr", ModelKind::BPR},      {"Pop", ModelKind::Pop},         {"POP", ModelKind::Pop}};
  for (const auto& m : models) EXPECT_EQ(Config::from_args({"--model=" + m.first}).model, m.second) << m.first;
  expect_usage({"--model=NCF"}, {"model", "'NCF'", "ConvNCF, BPR", "Pop"});

  EXPECT_EQ(Config::from_args({"--preset=PAPER"}).preset, Preset::Paper);
  EXPECT_EQ(Config::from_args({"--learner=SGD"}).learner, Learner::SGD);
  EXPECT_EQ(Config::from_args({"--learner=adagrad"}).learner, Learner::Adagrad);
  EXPECT_EQ(Config::from_args({"--reg_type=squared"}).reg_type, RegType::Squared);
  EXPECT_EQ(Config::from_args({"--init=paper"}).init, InitKind::Paper);
  EXPECT_EQ(Config::from_args({"--device=cpu"}).device, Device::Cpu);
  EXPECT_EQ(Config::from_args({"--device=CUDA"}).device, Device::Cuda);
  EXPECT_EQ(Config::from_args({"--sparse_grad=fast"}).sparse_grad, "fast");
  EXPECT_TRUE(Config::from_args({"--verbose"}).verbose);
  EXPECT_FALSE(Config::from_args({"--verbose=false"}).verbose);
  EXPECT_EQ(Config::from_args({"--embedding_update=lazy"}).embedding_update, "lazy");
  expect_usage({"--sparse_grad=atomic"}, {"sparse_grad", "'atomic'", "deterministic | fast"});
  expect_usage({"--embedding_update=sparse"}, {"embedding_update", "'sparse'", "dense | lazy"});
  EXPECT_EQ(Config::from_args({"--engine=fused"}).engine, "fused");
  EXPECT_EQ(Config::from_args({"--engine=FUSED"}).engine, "fused");  // stored as printed
  EXPECT_EQ(Config::from_args({"--engine=cudnn"}).engine, "cudnn");
  EXPECT_EQ(Config::from_args({"--precision=tf32"}).precision, "tf32");
  EXPECT_EQ(Config::from_args({"--precision=BF16"}).precision, "bf16");
  EXPECT_EQ(Config::from_args({"--precision=fp32"}).precision, "fp32");
  // whether a precision suits the engine is the train job's check (it needs both keys merged)
  EXPECT_EQ(Config::from_args({"--engine=cudnn", "--precision=tf32"}).precision, "tf32");
  expect_usage({"--engine=cublas"}, {"engine", "'cublas'", "cudnn | fused"});
  expect_usage({"--engine=[fused]"}, {"engine", "cudnn | fused"});
  expect_usage({"--precision=fp16"}, {"precision", "'fp16'", "fp32 | tf32 | bf16"});
  expect_usage({"--precision=32"}, {"precision", "'32'", "fp32 | tf32 | bf16"});
  expect_usage({"--preset=tf"}, {"preset", "'tf'", "recbole | paper"});
  expect_usage({"--learner=rmsprop"}, {"learner", "'rmsprop'", "sgd | adagrad | adam"});
  expect_usage({"--reg_type=l2"}, {"reg_type", "'l2'", "norm | squared"});
  expect_usage({"--init=xavier"}, {"init", "'xavier'", "pytorch | paper"});
  expect_usage({"--device=gpu"}, {"device", "'gpu'", "auto | cpu | cuda"});
  expect_usage({"--train_method=pretrain"}, {"train_method", "'pretrain'", "no_pretrain | after_pretrain"});
}

TEST(Config, ValidMetricAndEvalMode) {
  EXPECT_EQ(Config::from_args({"--valid_metric=MRR@10"}).valid_metric, "mrr@10");
  EXPECT_EQ(Config::from_args({"--valid_metric=NDCG@20"}).valid_metric, "ndcg@20");
  EXPECT_EQ(Config::from_args({"--valid_metric=Hit@5"}).valid_metric, "hit@5");
  EXPECT_EQ(Config::from_args({"--valid_metric=AUC"}).valid_metric, "auc");
  for (const char* bad : {"map@10", "mrr@0", "mrr", "mrr@", "mrr@x", "@10", "mrr@10@2"})
    expect_usage({std::string("--valid_metric=") + bad}, {"valid_metric", std::string("'") + bad + "'", "NAME@K"});

  Config c = Config::from_args({"--eval_mode=UNI99"});  // eval_mode is a short name of eval_args.mode
  EXPECT_EQ(c.eval_mode_valid, "uni99");
  EXPECT_EQ(c.eval_mode_test, "uni99");
  EXPECT_EQ(c.explicit_keys, (std::set<std::string>{"eval_args.mode"}));
  EXPECT_EQ(Config::from_args({"--eval_args.mode=pop0100"}).eval_mode_test, "pop100");
  EXPECT_EQ(Config::from_args({"--eval_args.mode=FULL"}).eval_mode_valid, "full");
  const Config both = Config::from_args({"--eval_args.mode={valid: uni99, test: file}"});
  EXPECT_EQ(both.eval_mode_valid, "uni99");
  EXPECT_EQ(both.eval_mode_test, "file");
  for (const char* bad : {"uni0", "uni-5", "uni", "pop", "uni9x", "uni99999999999", "labeled"})
    expect_usage({std::string("--eval_mode=") + bad}, {"eval_mode", std::string("'") + bad + "'", "full, uniN, popN"});
  expect_usage({"--eval_args.mode.valid=file"}, {"eval_args.mode", "other than file for validation"});
}

TEST(Config, NestedMapsAsRecBoleWritesThem) {
  // block maps, flow maps inside them, dotted keys, and the command line's flow maps
  const std::string f = temp_file("nested.yaml",
                                  "eval_args:\n"
                                  "  split: {'RS': [0.7, 0.2, 0.1]}\n"
                                  "  group_by: user\n"
                                  "  order: TO\n"
                                  "  mode:\n"
                                  "    valid: uni50\n"
                                  "    test: full\n"
                                  "load_col:\n"
                                  "  inter: [user_id, item_id, timestamp]\n"
                                  "val_interval: {rating: \"[3,inf)\"}\n"
                                  "user_inter_num_interval: \"[5,inf)\"\n"
                                  "neg_sampling:\n"
                                  "  uniform: 1\n"
                                  "gpu_id: 0\n"
                                  "dropout: 0.3\n");
  const Config c = Config::from_args({"--config=" + f});
  EXPECT_EQ(c.split, "RS");
  EXPECT_EQ(c.split_ratios, (std::vector<double>{0.7, 0.2, 0.1}));
  EXPECT_EQ(c.split_order, "TO");
  EXPECT_EQ(c.eval_mode_valid, "uni50");
  EXPECT_EQ(c.eval_mode_test, "full");
  EXPECT_EQ(c.load_col, (std::vector<std::string>{"user_id", "item_id", "timestamp"}));
  EXPECT_EQ(c.val_interval, "[3,inf)");
  EXPECT_EQ(c.val_interval_field, "rating");
  EXPECT_EQ(c.user_inter_num_interval, "[5,inf)");
  EXPECT_EQ(c.dropout_prob, 0.3);  // RecBole's ConvNCF.yaml calls it dropout
  EXPECT_EQ(c.ignored_keys, (std::set<std::string>{"gpu_id"}));
  EXPECT_NE(c.ignored_warning().find("gpu_id"), std::string::npos);
  EXPECT_EQ(c.neg_distribution, "uniform");  // neg_sampling: {uniform: 1} is train_neg_sample_args'
  EXPECT_EQ(c.neg_sample_num, 1);

  const Config l = Config::from_args({"--eval_args={split: {LS: test_only}, order: RO, mode: pop100}"});
  EXPECT_EQ(l.split, "LS");
  EXPECT_EQ(l.split_ls, "test_only");
  EXPECT_EQ(l.split_order, "RO");
  EXPECT_EQ(l.eval_mode_test, "pop100");
  EXPECT_EQ(Config::from_args({"--eval_args.split.RS=[8,1,1]"}).split_ratios, (std::vector<double>{8, 1, 1}));

  // what RecBole means and this tool does not do is refused, not ignored
  expect_usage({"--neg_sampling={gaussian: 1}"}, {"neg_sampling.gaussian", "{uniform: N} or {popularity: N}"});
  expect_usage({"--valid_metric_bigger=False"}, {"valid_metric_bigger", "not supported"});
  expect_usage({"--clip_grad_norm={max_norm: 5}"}, {"clip_grad_norm", "not supported"});
  expect_usage({"--eval_args.group_by=none"}, {"group_by", "'none'"});
  expect_usage({"--eval_args.split={RS: [0.8]}"}, {"eval_args.split", "2 or 3 numbers"});
  expect_usage({"--eval_args.split={XS: 1}"}, {"eval_args.split", "RS"});
  expect_usage({"--user_inter_num_interval=5"}, {"user_inter_num_interval", "interval"});
  expect_usage({"--eval_args.moda=full"}, {"unknown key 'eval_args.moda'", "eval_args.mode"});
}

TEST(Config, RecBoleOverallAndConvNcfFilesRunUnchanged) {
  // The keys and values of RecBole's properties/overall.yaml and model/ConvNCF.yaml (written
  // out here without their comments).
  const std::string overall = temp_file("overall.yaml",
      "gpu_id: 0\nuse_gpu: True\nseed: 2020\nstate: INFO\nreproducibility: True\ndata_path: 'dataset/'\n"
      "checkpoint_dir: 'saved'\nshow_progress: True\nsave_dataset: False\ndataset_save_path: ~\n"
      "save_dataloaders: False\ndataloaders_save_path: ~\nlog_wandb: False\nwandb_project: 'recbole'\n\n"
      "epochs: 300\ntrain_batch_size: 2048\nlearner: adam\nlearning_rate: 0.001\nneg_sampling:\n  uniform: 1\n"
      "eval_step: 1\nstopping_step: 10\nclip_grad_norm: ~\nweight_decay: 0.0\nloss_decimal_place: 4\n"
      "require_pow: False\n\neval_args:\n  split: {'RS':[0.8,0.1,0.1]}\n  group_by: user\n  order: RO\n"
      "  mode: full\nrepeatable: False\nmetrics: [\"Recall\",\"MRR\",\"NDCG\",\"Hit\",\"Precision\"]\n"
      "topk: [10]\nvalid_metric: MRR@10\nvalid_metric_bigger: True\neval_batch_size: 4096\n"
      "metric_decimal_place: 4\n");
  const std::string model = temp_file("ConvNCF.yaml",
      "embedding_size: 64\ncnn_channels: [1, 32, 32, 32, 32]\ncnn_kernels: [4, 4, 2, 2]\n"
      "cnn_strides: [4, 4, 2, 2]\ndropout: 0.2\nreg_weights: [0.1, 0.1]");
  const Config c = Config::from_args({"--config=" + overall, "--config=" + model, "--dataset=ml-100k"});
  Config plain = Config::from_args({"--dataset=ml-100k"});
  EXPECT_EQ(c.to_yaml(), plain.to_yaml());  // they are exactly the recbole preset
  EXPECT_EQ(c.ignored_keys.size(), 17u);  // all but data_path, show_progress and neg_sampling, which mean the same here
  // RecBole 1.2.1's overall.yaml writes the negatives as train_neg_sample_args
  const std::string overall121 = temp_file("overall121.yaml",
      "epochs: 300\ntrain_batch_size: 2048\nlearner: adam\nlearning_rate: 0.001\ntrain_neg_sample_args:\n"
      "  distribution: uniform\n  sample_num: 1\n  alpha: 1.0\n  dynamic: False\n  candidate_num: 0\n"
      "eval_step: 1\nstopping_step: 10\nclip_grad_norm: ~\nweight_decay: 0.0\n");
  const Config d = Config::from_args({"--config=" + overall121, "--config=" + model, "--dataset=ml-100k"});
  EXPECT_EQ(d.to_yaml(), plain.to_yaml());
}

TEST(Config, TrainNegSampleArgs) {
  Config c = Config::from_args(
      {"--train_neg_sample_args={distribution: popularity, sample_num: 5, alpha: 0.75, dynamic: True, candidate_num: 3}"});
  EXPECT_EQ(c.neg_distribution, "popularity");
  EXPECT_EQ(c.neg_sample_num, 5);
  EXPECT_EQ(c.neg_alpha, 0.75);
  EXPECT_TRUE(c.neg_dynamic);
  EXPECT_EQ(c.neg_candidate_num, 3);
  EXPECT_NE(c.to_yaml().find("train_neg_sample_args:\n  distribution: popularity\n  sample_num: 5\n  alpha: 0.75\n"
                             "  dynamic: true\n  candidate_num: 3\n"),
            std::string::npos)
      << c.to_yaml();
  EXPECT_TRUE(c.ignored_keys.empty());
  // defaults: RecBole's (one uniform negative)
  c = Config::from_args({});
  EXPECT_EQ(c.neg_distribution, "uniform");
  EXPECT_EQ(c.neg_sample_num, 1);
  EXPECT_FALSE(c.neg_dynamic);
  EXPECT_EQ(c.neg_candidate_num, 0);
  // block form in a file, and dotted keys on the command line
  const std::string f = temp_file("neg.yaml", "train_neg_sample_args:\n  distribution: popularity\n  sample_num: 2\n");
  c = Config::from_args({"--config=" + f, "--train_neg_sample_args.sample_num=4"});
  EXPECT_EQ(c.neg_distribution, "popularity");
  EXPECT_EQ(c.neg_sample_num, 4);
  // the older neg_sampling maps onto it: {uniform: N} / {popularity: N}
  c = Config::from_args({"--neg_sampling={uniform: 3}"});
  EXPECT_EQ(c.neg_distribution, "uniform");
  EXPECT_EQ(c.neg_sample_num, 3);
  const std::string g = temp_file("oldneg.yaml", "neg_sampling:\n  popularity: 2\n");
  c = Config::from_args({"--config=" + g});
  EXPECT_EQ(c.neg_distribution, "popularity");
  EXPECT_EQ(c.neg_sample_num, 2);
  EXPECT_EQ(c.explicit_keys.count("train_neg_sample_args.sample_num"), 1u);
  // what RecBole means and this tool does not do is refused by name
  expect_usage({"--train_neg_sample_args.distribution=none"}, {"train_neg_sample_args.distribution", "none"});
  expect_usage({"--train_neg_sample_args={distribution: ~}"}, {"train_neg_sample_args.distribution", "not supported"});
  expect_usage({"--train_neg_sample_args=None"}, {"train_neg_sample_args", "null", "not supported"});
  const std::string h = temp_file("noneg.yaml", "train_neg_sample_args: ~\n");
  expect_usage({"--config=" + h}, {h + ":1: ", "train_neg_sample_args", "not supported"});
  const std::string i = temp_file("nullneg.yaml", "neg_sampling: ~\n");
  expect_usage({"--config=" + i}, {i + ":1: ", "neg_sampling", "not supported"});
  expect_usage({"--train_neg_sample_args.sample_num=0"}, {"sample_num", "an integer >= 1"});
  expect_usage({"--train_neg_sample_args.sample_num=none"}, {"sample_num", "none is not supported"});
  expect_usage({"--train_neg_sample_args.dynamic=maybe"}, {"dynamic", "true or false"});
  expect_usage({"--train_neg_sample_args.candidate_num=-1"}, {"candidate_num", ">= 0"});
  expect_usage({"--train_neg_sample_args.alpha=1e9"}, {"alpha"});
  expect_usage({"--train_neg_sample_args.sample_nums=2"}, {"unknown key 'train_neg_sample_args.sample_nums'",
                                                           "train_neg_sample_args.sample_num"});
}

// RecBole's command line keeps a value it cannot eval as text: --user_inter_num_interval=[5,inf)
// (the shell's quotes gone) is the interval, never a silently dropped list.
TEST(Config, IntervalOnTheCommandLineAsRecBoleReadsIt) {
  const Config c = Config::from_args({"--user_inter_num_interval=[5,inf)", "--item_inter_num_interval=(0,10]"});
  EXPECT_EQ(c.user_inter_num_interval, "[5,inf)");
  EXPECT_EQ(c.item_inter_num_interval, "(0,10]");
  expect_usage({"--topk=[5,10"}, {"topk", "an integer > 0 or a list"});
  expect_usage({"--cnn_kernels=[4,4"}, {"cnn_kernels", "a list of integers"});
}

TEST(Config, BenchmarkFilename) {
  Config c = Config::from_args({"--benchmark_filename=[train, valid, test]"});
  EXPECT_EQ(c.benchmark_filename, (std::vector<std::string>{"train", "valid", "test"}));
  EXPECT_NE(c.to_yaml().find("benchmark_filename: [train, valid, test]\n"), std::string::npos);
  EXPECT_TRUE(c.ignored_keys.empty());
  const std::string f = temp_file("bench.yaml", "benchmark_filename:\n  - tr\n  - va\n  - te\n");
  EXPECT_EQ(Config::from_args({"--config=" + f}).benchmark_filename, (std::vector<std::string>{"tr", "va", "te"}));
  EXPECT_TRUE(Config::from_args({"--benchmark_filename=~"}).benchmark_filename.empty());
  EXPECT_NE(Config::from_args({}).to_yaml().find("benchmark_filename: ~\n"), std::string::npos);
  expect_usage({"--benchmark_filename=[train, test]"}, {"benchmark_filename", "three"});
  expect_usage({"--benchmark_filename=train"}, {"benchmark_filename", "three"});
  expect_usage({"--benchmark_filename=[a, a/b, c]"}, {"benchmark_filename", "three"});
}

TEST(Config, NumbersAndStrings) {
  const Config c = Config::from_args(
      {"--embedding_size=32", "--learning_rate=5e-3", "--embedding_learning_rate=0.2", "--seed=18446744073709551615",
       "--train_batch_size=+4096", "--dropout_prob=0", "--out=runs/a b#c", "--dataset=data/ml-1m.inter",
       "--train_method=after_pretrain", "--pre_model_path=runs/bpr", "--threads=8", "--weight_decay=1e-4"});
  EXPECT_EQ(c.embedding_size, 32);
  EXPECT_EQ(c.learning_rate, 5e-3);
  EXPECT_EQ(c.embedding_learning_rate, 0.2);
  EXPECT_EQ(c.seed, 18446744073709551615ull);
  EXPECT_EQ(c.train_batch_size, 4096);
  EXPECT_EQ(c.dropout_prob, 0.0);
  EXPECT_EQ(c.out, "runs/a b#c");  // verbatim: '#' is no comment on the command line
  EXPECT_EQ(c.dataset, "data/ml-1m.inter");
  EXPECT_EQ(c.train_method, "after_pretrain");
  EXPECT_EQ(c.pre_model_path, "runs/bpr");
  EXPECT_EQ(c.threads, 8);
  EXPECT_EQ(c.weight_decay, 1e-4);
  EXPECT_EQ(Config::from_args({"--out="}).out, "");
  EXPECT_EQ(Config::from_args({"--embedding_learning_rate=-1"}).embedding_learning_rate, -1.0);
}

TEST(Config, RangeChecks) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--embedding_size=0", "an integer >= 1"},
      {"--embedding_size=-3", "an integer >= 1"},
      {"--embedding_size=64.0", "an integer >= 1"},
      {"--embedding_size=99999999999", "an integer from 1 to 2147483647"},
      {"--train_batch_size=0", "an integer > 0"},
      {"--eval_batch_size=-1", "an integer > 0"},
      {"--epochs=-1", "an integer >= 0"},
      {"--epochs=ten", "an integer >= 0"},
      {"--epochs=", "an integer >= 0"},
      {"--eval_step=0", "an integer >= 1"},
      {"--stopping_step=-1", "an integer >= 0"},
      {"--warmup_epochs=-1", "an integer >= 0"},
      {"--dropout_prob=1", "a number in [0, 1)"},
      {"--dropout_prob=-0.1", "a number in [0, 1)"},
      {"--dropout_prob=nan", "a number in [0, 1)"},
      {"--learning_rate=0", "a number > 0"},
      {"--learning_rate=-0.1", "a number > 0"},
      {"--learning_rate=inf", "a number > 0"},
      {"--learning_rate=0.1x", "a number > 0"},
      {"--warmup_learning_rate=0", "a number > 0"},
      {"--embedding_learning_rate=0", "a number > 0, or < 0"},
      {"--weight_decay=-1", "a number >= 0"},
      {"--adagrad_eps=-1e-8", "a number >= 0"},
      {"--adagrad_initial_accumulator=-0.1", "a number >= 0"},
      {"--threads=-1", "an integer >= 0"},
      {"--seed=-1", "an integer >= 0"},
      {"--seed=1.5", "an integer >= 0"},
  };
  for (const auto& b : bad) {
    const std::string key = b.first.substr(2, b.first.find('=') - 2);
    const std::string value = b.first.substr(b.first.find('=') + 1);
    expect_usage({b.first}, {"bad value '" + value + "' for key '" + key + "': expected " + b.second});
  }
}

// ---- errors of the command line ----

TEST(Config, UnknownKeyNamesClosest) {
  const Error e = error_of({"--embeding_size=32"});
  EXPECT_EQ(e.code(), kExitUsage);
  EXPECT_STREQ(e.what(), "unknown key 'embeding_size' (did you mean 'embedding_size'?)");
  expect_usage({"--learningrate=0.1"}, {"unknown key 'learningrate'", "did you mean 'learning_rate'?"});
  expect_usage({"--Epochs=3"}, {"unknown key 'Epochs'", "did you mean 'epochs'?"});
  // nothing close: no misleading suggestion
  const Error far = error_of({"--zzzzzzzzzzzzzzzzzzzz=1"});
  EXPECT_EQ(far.code(), kExitUsage);
  EXPECT_EQ(std::string(far.what()).find("did you mean"), std::string::npos) << far.what();
  EXPECT_NE(std::string(far.what()).find("convncf train --help"), std::string::npos) << far.what();
  // an unknown key is reported even with a value no key could take
  expect_usage({"--cnn_kernal=[4,"}, {"unknown key 'cnn_kernal'", "'cnn_kernels'"});
  // explicit_keys and config_files are bookkeeping, not keys
  expect_usage({"--explicit_keys=[a]"}, {"unknown key 'explicit_keys'"});
}

TEST(Config, ClosestKey) {
  EXPECT_EQ(closest_key("embeding_size"), "embedding_size");
  EXPECT_EQ(closest_key("epoch"), "epochs");
  EXPECT_EQ(closest_key("topK"), "topk");
  EXPECT_EQ(closest_key("train_batchsize"), "train_batch_size");
  EXPECT_EQ(closest_key("eval_batch_size"), "eval_batch_size");
  EXPECT_EQ(closest_key("reg_weight"), "reg_weights");
}

TEST(Config, MalformedArgumentsAreUsageErrors) {
  expect_usage({"epochs=3"}, {"argument 'epochs=3' is not of the form --KEY=VALUE"});
  expect_usage({"--epochs"}, {"argument '--epochs' is not of the form --KEY=VALUE", "--epochs=VALUE"});
  expect_usage({"-q"}, {"'-q'", "--KEY=VALUE"});
  expect_usage({"--=3"}, {"'--=3'", "--KEY=VALUE"});
  expect_usage({"train"}, {"'train'", "--KEY=VALUE"});
  expect_usage({"--config"}, {"'--config'", "--KEY=VALUE"});
  expect_usage({"--config="}, {"--config= needs a file name"});
}

TEST(Config, MissingConfigFileExits66) {
  const std::string missing = ::testing::TempDir() + "/convncf_no_such_config.yaml";
  expect_error({"--config=" + missing}, kExitNoInput, {missing, "does not exist"});
  expect_error({"--config=" + ::testing::TempDir()}, kExitNoInput, {"is a folder"});
}

TEST(Config, AfterPretrainWithoutPreModelPathTrainsItsOwnStage) {
  // without pre_model_path the run trains its MF-BPR stage first (pretrain_config)
  const Config a = Config::from_args({"--train_method=after_pretrain", "--dataset=data/x.inter"});
  EXPECT_TRUE(pretrains_in_run(a));
  EXPECT_EQ(a.pretrain_epochs, 300);  // RecBole's BPR epochs
  EXPECT_EQ(a.pretrain_learning_rate, 0.001);
  const Config c = Config::from_args({"--train_method=After_Pretrain", "--pre_model_path=runs/bpr"});
  EXPECT_EQ(c.train_method, "after_pretrain");
  EXPECT_FALSE(pretrains_in_run(c));
  // the MF-BPR stage: model BPR with its preset's keys, epochs and learning rate from pretrain_*
  const Config p = pretrain_config(Config::from_args({"--train_method=after_pretrain", "--dataset=data/x.inter",
                                                      "--pretrain_epochs=7", "--pretrain_learning_rate=0.02",
                                                      "--learning_rate=0.5", "--seed=9", "--threads=1"}));
  EXPECT_EQ(p.model, ModelKind::BPR);
  EXPECT_EQ(p.epochs, 7);
  EXPECT_EQ(p.learning_rate, 0.02);
  EXPECT_EQ(p.embedding_learning_rate, -1.0);
  EXPECT_EQ(p.reg_weights, std::vector<double>{0.0});  // RecBole's BPR
  EXPECT_EQ(p.train_method, "no_pretrain");
  EXPECT_EQ(p.seed, 9u);
  EXPECT_EQ(p.threads, 1);
  const Config pp = pretrain_config(Config::from_args({"--preset=paper", "--train_method=after_pretrain",
                                                       "--dataset=data/x.inter"}));
  EXPECT_EQ(pp.epochs, 500);  // MF_BPR.py's
  EXPECT_EQ(pp.learning_rate, 0.05);
  EXPECT_EQ(pp.learner, Learner::Adagrad);
  EXPECT_EQ(pp.warmup_epochs, 0);
  EXPECT_EQ(pp.reg_weights, std::vector<double>{0.01});
  // the built-in synthetic data's ConvNCF uses the recipe; its MF-BPR stage is `--model=BPR`'s defaults
  const Config syn = Config::from_args({});
  EXPECT_TRUE(pretrains_in_run(syn));
  EXPECT_EQ(Config::from_args({"--model=BPR"}).train_method, "no_pretrain");
  const Config sp = pretrain_config(syn), bpr = Config::from_args({"--model=BPR"});
  EXPECT_EQ(run_settings(sp.to_yaml()), run_settings(bpr.to_yaml()));
  // after_pretrain is ConvNCF's: refused for MF-BPR and popularity
  expect_usage({"--model=BPR", "--train_method=after_pretrain"}, {"after_pretrain", "model is BPR"});
  expect_usage({"--model=Pop", "--train_method=after_pretrain"}, {"after_pretrain", "model is Pop"});
  expect_usage({"--model=BPR", "--pre_model_path=runs/bpr"}, {"pre_model_path", "no_pretrain"});
}

TEST(Config, SettingsOfAnOlderConfigWithoutAddedKeys) {
  // a config.yaml written before pretrain_epochs existed is the same run (README "Runs that survive crashes")
  const std::string now = Config::from_args({"--model=BPR"}).to_yaml();
  std::string old;
  std::istringstream in(now);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("pretrain_", 0) != 0) old += line + "\n";
  ASSERT_NE(old, now);
  EXPECT_TRUE(same_run_settings(now, old));
  EXPECT_TRUE(same_run_settings(now, now));
  std::string theirs;
  EXPECT_FALSE(same_run_settings(Config::from_args({"--model=BPR", "--seed=3"}).to_yaml(), old, &theirs));
  EXPECT_EQ(theirs, "seed: 2020");
  // a key missing from the newer text is a difference
  EXPECT_FALSE(same_run_settings(old, now, &theirs));
  EXPECT_EQ(theirs.rfind("pretrain_epochs:", 0), 0u) << theirs;
}

// ---- YAML files ----

TEST(Config, YamlCommentsQuotesAndLists) {
  const std::string f = temp_file("full.yaml",
                                  "\xEF\xBB\xBF# a RecBole-style file\n"
                                  "---\n"
                                  "model: ConvNCF   # trailing comment\n"
                                  "\n"
                                  "   # an indented comment\n"
                                  "dataset: 'data/it''s #1.inter'\n"
                                  "out: \"runs/x \\\"y\\\" \\\\z\"\n"
                                  "train_method: after_pretrain  # pre_model_path needs it\n"
                                  "pre_model_path: runs/a#b\n"
                                  "cnn_kernels: [4, 4, '2', \"2\"]  # flow list\n"
                                  "cnn_strides:\n"
                                  "  - 4\n"
                                  "  - 4   # item comment\n"
                                  "\n"
                                  "  - 2\n"
                                  "  - '2'\n"
                                  "topk:\n"
                                  "- 5\n"
                                  "- 10\n"
                                  "reg_weights: []\n"
                                  "valid_metric: NDCG@5\n"
                                  "quiet: true\n"
                                  "threads:   3   \n"
                                  "...\n");
  const Config c = Config::from_args({"--config=" + f});
  EXPECT_EQ(c.model, ModelKind::ConvNCF);
  EXPECT_EQ(c.dataset, "data/it's #1.inter");
  EXPECT_EQ(c.out, "runs/x \"y\" \\z");
  EXPECT_EQ(c.pre_model_path, "runs/a#b");  // '#' not after whitespace is text
  EXPECT_EQ(c.cnn_kernels, (std::vector<int>{4, 4, 2, 2}));
  EXPECT_EQ(c.cnn_strides, (std::vector<int>{4, 4, 2, 2}));
  EXPECT_EQ(c.topk, (std::vector<int>{5, 10}));
  EXPECT_TRUE(c.reg_weights.empty());
  EXPECT_EQ(c.valid_metric, "ndcg@5");
  EXPECT_TRUE(c.quiet);
  EXPECT_EQ(c.threads, 3);
  EXPECT_EQ(c.config_files, (std::vector<std::string>{f}));
  EXPECT_EQ(c.explicit_keys.size(), 12u);
}

TEST(Config, YamlCrlfAndNulls) {
  const std::string f = temp_file("crlf.yaml", "epochs: 3\r\ncnn_kernels:\r\n  - 2\r\n  - 2\r\nout:\r\n"
                                               "pre_model_path: ~\r\ndataset: ml-1m\r\n");
  const Config c = Config::from_args({"--config=" + f});
  EXPECT_EQ(c.epochs, 3);
  EXPECT_EQ(c.cnn_kernels, (std::vector<int>{2, 2}));
  EXPECT_EQ(c.out, "");
  EXPECT_EQ(c.pre_model_path, "");
  EXPECT_EQ(c.dataset, "ml-1m");
  // a null for a number is a bad value
  const std::string g = temp_file("null.yaml", "epochs:\n");
  expect_usage({"--config=" + g}, {g + ":1: ", "epochs", "an integer >= 0"});
}

TEST(Config, YamlRejectsWhatItCannotRead) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"eval_args:\n  mode: full\n   order: TO\n", ":3: unexpected indentation"},
      {"eval_args: {mode: full\n", ":1: expected ',' or '}' in a mapping"},
      {"eval_args: {mode: [full\n", ":1: unterminated list"},
      {"eval_args: {mode full}\n", ":1: expected 'key: value' in a mapping"},
      {"eval_args: {mode: full} x\n", ":1: unexpected text after a mapping"},
      {"eval_args: {mode: full,, order: TO}\n", ":1: expected 'key: value' in a mapping"},
      {"a: b: c\n", ":1: nested mappings are not supported"},
      {"epochs: 3\n  eval_step: 2\n", ":2: unexpected indentation"},
      {"dataset:\n  multi line\n", ":2: expected 'key: value'"},
      {"topk:\n  - 5\n  mode: x\n", ":3: unexpected indentation"},
      {"topk:\n  - 5\n    - 10\n", ":3: list item indented differently"},
      {"topk:\n  - [5]\n", ":2: nested lists"},
      {"topk:\n  - - 5\n", ":2: nested lists"},
      {"topk:\n  -\n", ":2: empty list item"},
      {"- 5\n", ":1: list item without a 'key:' line"},
      {"epochs 3\n", ":1: expected 'key: value'"},
      {"epochs:3\n", ":1: expected 'key: value'"},
      {"\"epochs\": 3\n", ":1: expected 'key: value'"},
      {"dataset: 'abc\n", ":1: unterminated quoted string"},
      {"dataset: 'abc' x\n", ":1: unexpected text after a quoted string"},
      {"dataset: \"a\\qb\"\n", ":1: unknown escape \\q"},
      {"topk: [5, 10\n", ":1: unterminated list"},
      {"topk: [5, 10] x\n", ":1: unexpected text after a list"},
      {"topk: [5, [10]]\n", ":1: nested lists and mappings"},
      {"topk: [5,,10]\n", ":1: empty item in a list"},
      {"dataset: |\n  x\n", ":1: block scalars"},
      {"learning_rate: !!float 1e-3\n", ":1: '!'"},
      {"epochs: 1\n\tthreads: 2\n", ":2: tab in indentation"},
  };
  int n = 0;
  for (const auto& b : bad) {
    const std::string f = temp_file("bad" + std::to_string(n++) + ".yaml", b.first);
    expect_usage({"--config=" + f}, {f + b.second});
  }
}

TEST(Config, YamlKeysAreValidatedWithFileAndLine) {
  const std::string f = temp_file("keys.yaml", "epochs: 3\n# comment\nembeding_size: 32\n");
  const Error e = error_of({"--config=" + f});
  EXPECT_EQ(e.code(), kExitUsage);
  EXPECT_EQ(std::string(e.what()), f + ":3: unknown key 'embeding_size' (did you mean 'embedding_size'?)");
  const std::string g = temp_file("values.yaml", "epochs: 3\nlearning_rate: fast\n");
  expect_usage({"--config=" + g}, {g + ":2: bad value 'fast' for key 'learning_rate': expected a number > 0"});
  const std::string h = temp_file("list.yaml", "cnn_kernels:\n  - 4\n  - x\n");
  expect_usage({"--config=" + h}, {h + ":1: bad value '[4, x]' for key 'cnn_kernels'"});
  const std::string i = temp_file("string.yaml", "dataset: [a, b]\n");
  expect_usage({"--config=" + i}, {i + ":1: bad value '[a, b]' for key 'dataset': expected a string"});
  const std::string j = temp_file("include.yaml", "config: other.yaml\n");
  expect_usage({"--config=" + j}, {j + ":1: ", "--config"});
  // a file's key error comes before the command line is applied
  expect_usage({"--epochs=2", "--config=" + f}, {f + ":3: unknown key"});
}

TEST(Config, MergeOrderFilesThenCommandLine) {
  const std::string a = temp_file("a.yaml", "epochs: 1\neval_step: 1\nlearning_rate: 0.1\npreset: paper\n");
  const std::string b = temp_file("b.yaml", "epochs: 2\neval_step: 2\npreset: recbole\n");
  // the command line comes after both files whatever its position among the --config flags
  Config c = Config::from_args({"--epochs=3", "--config=" + a, "--config=" + b});
  EXPECT_EQ(c.epochs, 3);
  EXPECT_EQ(c.eval_step, 2);
  EXPECT_EQ(c.learning_rate, 0.1);
  EXPECT_EQ(c.preset, Preset::RecBole);
  EXPECT_EQ(c.learner, Learner::Adam);  // recbole: b's preset is the last
  EXPECT_EQ(c.config_files, (std::vector<std::string>{a, b}));
  EXPECT_EQ(c.explicit_keys, (std::set<std::string>{"epochs", "eval_step", "learning_rate", "preset"}));
  c = Config::from_args({"--config=" + b, "--config=" + a});
  EXPECT_EQ(c.epochs, 1);
  EXPECT_EQ(c.eval_step, 1);
  EXPECT_EQ(c.preset, Preset::Paper);
  EXPECT_EQ(c.learner, Learner::Adagrad);
  // several command-line values: the last wins
  c = Config::from_args({"--config=" + a, "--epochs=4", "--epochs=5"});
  EXPECT_EQ(c.epochs, 5);
}

TEST(Config, RecBoleConfigFilesFlag) {
  // run_recbole.py's --config_files: names separated by spaces, read in order, under the command line
  const std::string a = temp_file("cf_a.yaml", "epochs: 1\neval_step: 1\nlearning_rate: 0.1\n");
  const std::string b = temp_file("cf_b.yaml", "epochs: 2\neval_step: 2\n");
  Config c = Config::from_args({"--model=BPR", "--dataset=ml-100k", "--config_files=" + a + " " + b, "--eval_step=5"});
  EXPECT_EQ(c.model, ModelKind::BPR);
  EXPECT_EQ(c.dataset, "ml-100k");
  EXPECT_EQ(c.config_files, (std::vector<std::string>{a, b}));
  EXPECT_EQ(c.epochs, 2);
  EXPECT_EQ(c.eval_step, 5);
  EXPECT_EQ(c.learning_rate, 0.1);
  // argparse's spellings of run_recbole.py's three flags: the value as the next argument
  c = Config::from_args({"-m", "BPR", "--dataset", "ml-1m", "--config_files", b + "  " + a});
  EXPECT_EQ(c.model, ModelKind::BPR);
  EXPECT_EQ(c.dataset, "ml-1m");
  EXPECT_EQ(c.config_files, (std::vector<std::string>{b, a}));
  EXPECT_EQ(c.epochs, 1);
  // with --config: all files in the order given
  c = Config::from_args({"--config=" + a, "--config_files=" + b});
  EXPECT_EQ(c.config_files, (std::vector<std::string>{a, b}));
  EXPECT_EQ(c.epochs, 2);
  expect_usage({"--config_files="}, {"--config_files= needs file names"});
  expect_usage({"--config_files=  "}, {"--config_files= needs file names"});
  expect_error({"--config_files=" + a + " /nonexistent/x.yaml"}, kExitNoInput, {"/nonexistent/x.yaml", "does not exist"});
  const std::string inner = temp_file("cf_inner.yaml", "config_files: a.yaml\n");
  expect_usage({"--config_files=" + inner}, {inner + ":1: ", "--config"});
  expect_usage({"--model"}, {"'--model' is not of the form --KEY=VALUE"});
}

// ---- to_yaml ----

TEST(Config, ToYamlFormat) {
  Config c = Config::from_args({"--model=mf", "--out=", "--dataset=true"});
  const std::string y = c.to_yaml();
  EXPECT_EQ(yaml_line(y, "model"), "model: BPR");
  EXPECT_EQ(yaml_line(y, "preset"), "preset: recbole");
  EXPECT_EQ(yaml_line(y, "cnn_kernels"), "cnn_kernels: [4, 4, 2, 2]");
  EXPECT_EQ(yaml_line(y, "reg_weights"), "reg_weights: [0]");
  EXPECT_EQ(yaml_line(y, "adagrad_eps"), "adagrad_eps: 1.0e-10");
  EXPECT_EQ(yaml_line(y, "learning_rate"), "learning_rate: 0.001");
  EXPECT_EQ(yaml_line(y, "embedding_learning_rate"), "embedding_learning_rate: -1");
  EXPECT_EQ(yaml_line(y, "learner"), "learner: adam");
  EXPECT_EQ(yaml_line(y, "init"), "init: pytorch");
  EXPECT_EQ(yaml_line(y, "device"), "device: auto");
  EXPECT_EQ(yaml_line(y, "engine"), "engine: cudnn");
  EXPECT_EQ(yaml_line(y, "precision"), "precision: fp32");
  EXPECT_EQ(yaml_line(y, "drop_last_batch"), "drop_last_batch: false");
  EXPECT_EQ(yaml_line(y, "valid_metric"), "valid_metric: mrr@10");
  EXPECT_NE(y.find("\neval_args:\n  split: {RS: [0.8, 0.1, 0.1]}\n  order: RO\n  group_by: user\n  mode: full\n"),
            std::string::npos);
  EXPECT_EQ(yaml_line(y, "load_col"), "load_col: ~");
  EXPECT_EQ(yaml_line(y, "out"), "out: \"\"");            // empty: quoted
  EXPECT_EQ(yaml_line(y, "dataset"), "dataset: \"true\"");  // would read as a bool: quoted
  EXPECT_EQ(yaml_line(y, "pre_model_path"), "pre_model_path: \"\"");
  EXPECT_EQ(yaml_line(y, "train_method"), "train_method: no_pretrain");
  // every key once, in config_keys() order
  size_t lines = 0;
  for (const KeyDoc& k : config_keys()) {
    const size_t dot = k.name.find('.');
    if (dot == std::string::npos) EXPECT_FALSE(yaml_line(y, k.name).empty()) << k.name;
    else EXPECT_NE(y.find("\n  " + k.name.substr(dot + 1) + ": "), std::string::npos) << k.name;
    ++lines;
  }
  size_t yaml_keys = 0;
  for (size_t at = 0; (at = y.find('\n', at)) != std::string::npos; ++at)
    if (at + 1 < y.size() && y[at + 1] != '#' && y.compare(at + 1, 10, "eval_args:") != 0 &&
        y.compare(at + 1, 22, "train_neg_sample_args:") != 0)
      ++yaml_keys;
  EXPECT_EQ(yaml_keys, lines);
  EXPECT_EQ(Config::from_args({"--dataset=plain/path.inter"}).to_yaml().find("dataset: plain/path.inter\n") !=
                std::string::npos,
            true);
}

TEST(Config, RoundTripThroughToYaml) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"--preset=paper"},
      {"--preset=paper", "--model=BPR", "--dataset=ml-1m"},
      {"--model=Pop", "--quiet"},
      {"--embedding_size=16", "--cnn_channels=[1,8,8]", "--cnn_kernels=[4,4]", "--cnn_strides=[4,4]",
       "--dropout_prob=0.123456789012345", "--reg_weights=[0.1, 1e-7, 3]", "--learning_rate=0.3",
       "--embedding_learning_rate=1e-5", "--weight_decay=2.5e-6", "--seed=18446744073709551615",
       "--train_method=after_pretrain", "--pre_model_path=runs/it's a \"run\" #2: x", "--eval_mode=uni49",
       "--valid_metric=AUC", "--topk=7", "--dataset=-weird: name", "--device=cuda", "--out= spaced ",
       "--threads=3", "--drop_last_batch=true", "--learner=sgd", "--init=paper", "--reg_type=squared",
       "--warmup_epochs=2", "--warmup_learning_rate=0.02", "--adagrad_eps=0", "--stopping_step=0"},
      {"--out=tab\there", "--dataset=123", "--train_method=after_pretrain", "--pre_model_path=null"},
      {"--eval_args={split: {LS: test_only}, order: TO, mode: {valid: uni5, test: file}}", "--load_col={inter: [a, b]}",
       "--val_interval={stars: \"(0,5]\"}", "--item_inter_num_interval=[1,inf)", "--rm_dup_inter=last",
       "--metrics=[NDCG, AUC]", "--field_separator=,", "--USER_ID_FIELD=uid", "--data_format=csv", "--show_progress=false"},
      {"--engine=fused", "--precision=bf16", "--sparse_grad=fast"},
      {"--train_neg_sample_args={distribution: popularity, sample_num: 3, alpha: -0.5, dynamic: true, candidate_num: 7}",
       "--benchmark_filename=[a, b, c]"},
  };
  int n = 0;
  for (const auto& args : cases) {
    const Config a = Config::from_args(args);
    const std::string f = temp_file("round" + std::to_string(n++) + ".yaml", a.to_yaml());
    const Config b = Config::from_args({"--config=" + f});
    SCOPED_TRACE(a.to_yaml());
    expect_same(a, b);
    EXPECT_EQ(a.to_yaml(), b.to_yaml());
    EXPECT_EQ(b.explicit_keys.size(), config_keys().size());  // a written config pins every key
  }
}

// ---- key docs ----

TEST(Config, ConfigKeysDocumentEveryKey) {
  const std::vector<KeyDoc>& keys = config_keys();
  EXPECT_EQ(keys.size(), 66u);
  std::set<std::string> names;
  for (const KeyDoc& k : keys) {
    EXPECT_TRUE(names.insert(k.name).second) << "duplicate " << k.name;
    EXPECT_FALSE(k.meaning.empty()) << k.name;
    EXPECT_EQ(k.meaning.find('\n'), std::string::npos) << k.name;
    // the documented default is accepted as a value of its own key under both presets
    for (const std::string preset : {"recbole", "paper"}) {
      const std::string value = preset == "recbole" ? k.default_recbole : k.default_paper;
      std::vector<std::string> args = {"--preset=" + preset, "--dataset=ml-1m"};
      if (k.name != "preset" && k.name != "dataset" && !value.empty() && value != "\"\"")
        args.push_back("--" + k.name + "=" + value);
      const Config implicit = Config::from_args({"--preset=" + preset, "--dataset=ml-1m"});
      EXPECT_NO_THROW(expect_same(Config::from_args(args), implicit)) << k.name << "=" << value;
    }
  }
  auto doc = [&](const std::string& name) {
    for (const KeyDoc& k : keys)
      if (k.name == name) return k;
    return KeyDoc{};
  };
  EXPECT_EQ(doc("cnn_kernels").default_recbole, "[4, 4, 2, 2]");
  EXPECT_EQ(doc("cnn_kernels").default_paper, "[2, 2, 2, 2, 2, 2]");
  EXPECT_EQ(doc("epochs").default_recbole, "300");
  EXPECT_EQ(doc("epochs").default_paper, "1500");
  EXPECT_EQ(doc("learner").default_paper, "adagrad");
  EXPECT_EQ(doc("preset").default_paper, "recbole");
  EXPECT_EQ(doc("model").default_recbole, "ConvNCF");
  EXPECT_EQ(doc("engine").default_recbole, "cudnn");
  EXPECT_EQ(doc("engine").default_paper, "cudnn");
  EXPECT_EQ(doc("precision").default_recbole, "fp32");
  EXPECT_EQ(doc("precision").default_paper, "fp32");
  EXPECT_NE(doc("learning_rate").meaning.find("RecBole"), std::string::npos);
}

// ---- mistakes that used to be accepted silently (issue 13) ----

// reg_weights must have exactly as many values as the regularization form uses for the model:
// an extra value would be ignored without a word.
TEST(Config, RegWeightsCountMustMatchTheForm) {
  auto check = [](const std::vector<std::string>& args) {
    check_run_config(Config::from_args(args));
  };
  auto refused = [&](const std::vector<std::string>& args, const std::vector<std::string>& parts) {
    std::string joined;
    for (const std::string& a : args) joined += a + " ";
    try {
      check(args);
      ADD_FAILURE() << "accepted: " << joined;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), kExitUsage) << joined << e.what();
      for (const std::string& p : parts)
        EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << joined << "\n" << e.what() << "\nmissing: " << p;
    }
  };
  // the forms as documented: norm [embeddings, network], squared [l1, l2, l3]; MF-BPR has no network
  EXPECT_NO_THROW(check({"--reg_type=norm", "--reg_weights=[1,2]"}));
  EXPECT_NO_THROW(check({"--reg_type=squared", "--reg_weights=[1,2,3]"}));
  EXPECT_NO_THROW(check({"--model=BPR", "--reg_type=norm", "--reg_weights=[1]"}));
  EXPECT_NO_THROW(check({"--model=BPR", "--reg_type=squared", "--reg_weights=[1]"}));
  EXPECT_NO_THROW(check({"--model=BPR"}));                    // the presets' own values
  EXPECT_NO_THROW(check({"--model=BPR", "--preset=paper"}));
  EXPECT_NO_THROW(check({"--preset=paper"}));
  EXPECT_NO_THROW(check({"--model=Pop", "--reg_weights=[1,2,3]"}));  // popularity trains nothing
  refused({"--reg_type=norm", "--reg_weights=[1,2,3]"},
          {"reg_weights has 3 values", "reg_type norm", "ConvNCF", "uses 2"});
  refused({"--reg_type=norm", "--reg_weights=[1]"}, {"reg_weights has 1 value", "uses 2"});
  refused({"--reg_type=squared", "--reg_weights=[1,2]"}, {"reg_weights has 2 values", "uses 3"});
  refused({"--reg_type=squared", "--reg_weights=[1,2,3,4]"}, {"reg_weights has 4 values", "uses 3"});
  refused({"--model=BPR", "--reg_type=norm", "--reg_weights=[1,2]"}, {"reg_weights has 2 values", "BPR", "uses 1"});
  refused({"--model=BPR", "--reg_type=squared", "--reg_weights=[0.01,10,1]"}, {"has 3 values", "BPR", "uses 1"});
  refused({"--reg_weights=[]"}, {"reg_weights has 0 values", "uses 2"});
}

// pre_model_path does something only with train_method: after_pretrain, as in RecBole.
TEST(Config, PreModelPathWithoutAfterPretrainIsRefused) {
  expect_usage({"--pre_model_path=runs/bpr", "--dataset=ml-1m"}, {"pre_model_path", "train_method: after_pretrain"});
  expect_usage({"--train_method=no_pretrain", "--pre_model_path=runs/bpr"}, {"pre_model_path", "after_pretrain"});
  // ConvNCF on the built-in synthetic data is after_pretrain by default: pre_model_path is its start
  EXPECT_EQ(Config::from_args({"--pre_model_path=runs/bpr"}).train_method, "after_pretrain");
  EXPECT_NO_THROW(Config::from_args({"--train_method=after_pretrain", "--pre_model_path=runs/bpr"}));
  EXPECT_NO_THROW(Config::from_args({"--pre_model_path="}));  // empty: nothing asked for
  const std::string f = temp_file("premodel.yaml", "pre_model_path: runs/bpr\ndataset: ml-1m\n");
  expect_usage({"--config=" + f}, {"pre_model_path", "train_method: after_pretrain"});
}

// A key written twice in one file and a second YAML document: the last value used to win.
TEST(Config, YamlDuplicateKeysAndSecondDocumentsAreRefused) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"epochs: 1\nseed: 3\nepochs: 2\n", ":3: key 'epochs' is set twice in this file (first at line 1)"},
      {"eval_args:\n  mode: full\neval_args:\n  order: TO\n", ":3: key 'eval_args' is set twice in this file (first at line 1)"},
      {"eval_args:\n  mode: full\n  mode: uni9\n", ":3: key 'eval_args.mode' is set twice in this file (first at line 2)"},
      {"eval_args: {mode: full, mode: uni9}\n", ":1: key 'eval_args.mode' is set twice in this file (first at line 1)"},
      {"eval_args: {mode: full}\neval_mode: uni99\n", ":2: key 'eval_mode' is set twice in this file (first at line 1 as 'eval_args.mode')"},
      {"dropout: 0.1\ndropout_prob: 0.2\n", ":2: key 'dropout_prob' is set twice in this file (first at line 1 as 'dropout')"},
      {"topk:\n  - 5\ntopk: [10]\n", ":3: key 'topk' is set twice"},
      {"epochs: 1\n---\nepochs: 2\n", ":2: a second YAML document"},
      {"---\nepochs: 1\n---\n", ":3: a second YAML document"},
      {"epochs: 1\n...\nseed: 2\n", ":3: text after the end of the YAML document"},
  };
  int n = 0;
  for (const auto& b : bad) {
    const std::string f = temp_file("dup" + std::to_string(n++) + ".yaml", b.first);
    expect_usage({"--config=" + f}, {f + b.second});
  }
  // one document, with its optional markers, and the same key in two files or on the command line
  const std::string one = temp_file("one_doc.yaml", "# comment\n---\nepochs: 1\n...\n");
  EXPECT_EQ(Config::from_args({"--config=" + one}).epochs, 1);
  const std::string two = temp_file("two_files.yaml", "epochs: 2\n");
  EXPECT_EQ(Config::from_args({"--config=" + one, "--config=" + two, "--epochs=3"}).epochs, 3);
  EXPECT_EQ(Config::from_args({"--config=" + one, "--config=" + two}).epochs, 2);
}

// eval_mode: file is the file's negatives at test time and full ranking at validation (the
// .test.negative file holds test negatives only), as the README says.
TEST(Config, EvalModeFileMeansFileForTestFullForValidation) {
  for (const char* arg : {"--eval_mode=file", "--eval_args.mode=FILE", "--eval_args={mode: file}"}) {
    const Config c = Config::from_args({arg});
    EXPECT_EQ(c.eval_mode_valid, "full") << arg;
    EXPECT_EQ(c.eval_mode_test, "file") << arg;
  }
  const std::string f = temp_file("file_mode.yaml", "eval_args:\n  mode: file\n");
  const Config c = Config::from_args({"--config=" + f});
  EXPECT_EQ(c.eval_mode_valid, "full");
  EXPECT_EQ(c.eval_mode_test, "file");
  // and it reads back from config.yaml as the same setting
  const std::string y = temp_file("file_mode_back.yaml", c.to_yaml());
  const Config back = Config::from_args({"--config=" + y});
  EXPECT_EQ(back.eval_mode_valid, "full");
  EXPECT_EQ(back.eval_mode_test, "file");
  // validation by file negatives is still impossible
  expect_usage({"--eval_args.mode={valid: file, test: file}"}, {"other than file for validation"});
  expect_usage({"--eval_args.mode.valid=file"}, {"other than file for validation"});
}

// An integer that is one, but too large: the message gives the range.
TEST(Config, IntegerOutOfRangeNamesTheRange) {
  expect_usage({"--seed=1180591620717411303424"},
               {"bad value '1180591620717411303424' for key 'seed': expected an integer from 0 to 18446744073709551615"});
  expect_usage({"--epochs=99999999999"}, {"key 'epochs': expected an integer from 0 to 2147483647"});
  expect_usage({"--embedding_size=99999999999"}, {"key 'embedding_size': expected an integer from 1 to 2147483647"});
  expect_usage({"--train_batch_size=99999999999999999999"},
               {"key 'train_batch_size': expected an integer from 1 to 9223372036854775807"});
  expect_usage({"--seed=-1"}, {"key 'seed': expected an integer >= 0"});  // not an out-of-range integer
}

// Each list key's message shows an example of that key, not another's.
TEST(Config, ListMessagesShowTheirOwnKeysExample) {
  expect_usage({"--cnn_channels=[1,0,32]"}, {"cnn_channels", "like [1, 32, 32, 32, 32]"});
  EXPECT_EQ(error_of({"--cnn_channels=[1,0,32]"}).what(), std::string("bad value '[1,0,32]' for key 'cnn_channels': "
                                                                      "expected a list of integers > 0 like [1, 32, 32, 32, 32]"));
  expect_usage({"--cnn_kernels=[4,0]"}, {"like [4, 4, 2, 2]"});
  expect_usage({"--cnn_strides=[4,0]"}, {"like [4, 4, 2, 2]"});
}
