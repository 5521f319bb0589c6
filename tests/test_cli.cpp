// test_cli.cpp: the convncf command end to end (the built binary, run as a user would):
// exit codes and messages of bad input, nothing written on failure, the run folder's contents
// and its contract (the lock against a second process, kill -9, files the run did not write,
// each state of a folder), pretraining, and that MF-BPR and ConvNCF learn the synthetic data's
// planted structure (they beat popularity on test NDCG@10).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <fcntl.h>

#include <algorithm>

#include "convncf/checkpoint.hpp"
#include "convncf/gpu.hpp"
#include "convncf/model_io.hpp"
#include "test_paths.hpp"


namespace {

struct Result {
  int code;
  std::string out;  // stdout and stderr together
};

Result run(const std::string& args) {
  const std::string cmd = convncf::test::convncf_binary() + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

bool exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

std::string fresh_dir(const std::string& name) {
  const std::string d = ::testing::TempDir() + "/convncf_cli_" + name + "_" + std::to_string(getpid());
  std::system(("rm -rf '" + d + "'").c_str());
  return d;
}

std::string read_file(const std::string& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The value of "key":number inside the last line holding `event`.
double json_number(const std::string& jsonl, const std::string& event, const std::string& key) {
  std::istringstream in(jsonl);
  std::string line, last;
  while (std::getline(in, line))
    if (line.find("\"event\":\"" + event + "\"") != std::string::npos) last = line;
  const size_t at = last.find("\"" + key + "\":");
  if (at == std::string::npos) return -1;
  return std::stod(last.substr(at + key.size() + 3));
}

// Leave-one-out by time with 99 sampled negatives: quick to evaluate on the CPU.
const char* kQuick = "--eval_args.split.LS=valid_and_test --eval_args.order=TO --eval_mode=uni99 --quiet";

// The lines of metrics.jsonl without their timings and memory, which differ between runs.
std::string metrics_without_timings(const std::string& dir) {
  std::istringstream in(read_file(dir + "/metrics.jsonl"));
  std::string line, out;
  while (std::getline(in, line)) {
    for (const char* key : {"\"seconds\":", "\"triples_per_second\":", "\"eval_seconds\":", "\"peak_memory_bytes\":"}) {
      const size_t a = line.find(key);
      if (a == std::string::npos) continue;
      size_t b = line.find_first_of(",}", a);
      line.erase(a, b - a);
    }
    out += line + "\n";
  }
  return out;
}

// A small .inter file: users with 20-40 items each out of 150, deterministic.
std::string small_inter(const std::string& name) {
  const std::string path = ::testing::TempDir() + "/convncf_cli_" + name + "_" + std::to_string(getpid()) + ".inter";
  std::ofstream f(path);
  f << "user_id:token\titem_id:token\ttimestamp:float\n";
  uint64_t x = 12345;
  for (int u = 0; u < 200; ++u) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    const int n = 20 + int((x >> 33) % 21);
    for (int k = 0; k < n; ++k) f << "u" << u << "\ti" << ((u * 7 + k * k * 3 + k) % 150) << "\t" << k << "\n";
  }
  return path;
}

}  // namespace

TEST(Cli, NoArgumentsPrintsUsage) {
  const Result r = run("");
  EXPECT_EQ(r.code, 64);
  EXPECT_NE(r.out.find("usage: convncf train"), std::string::npos);
  EXPECT_EQ(run("--help").code, 0);
  const Result h = run("train --help");
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.out.find("embedding_size"), std::string::npos);
  EXPECT_NE(h.out.find("\n  engine "), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("\n  precision "), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("--resume=RUN_DIR [--epochs=N] [--threads=T] [--device=D] [--engine=E]"), std::string::npos) << h.out;
  EXPECT_EQ(run("frobnicate").code, 64);
}

TEST(Cli, UnknownKeyNamesClosest) {
  const std::string out = fresh_dir("unknown");
  const Result r = run("train --embeding_size=32 --out=" + out);
  EXPECT_EQ(r.code, 64) << r.out;
  EXPECT_NE(r.out.find("embedding_size"), std::string::npos) << r.out;
  EXPECT_FALSE(exists(out));
}

TEST(Cli, BadTowerIsAUsageErrorNamingTheLayer) {
  const std::string out = fresh_dir("tower");
  const Result r = run("train --cnn_kernels=[4,3,2,2] --cnn_strides=[4,3,2,2] --out=" + out);
  EXPECT_EQ(r.code, 64) << r.out;
  EXPECT_NE(r.out.find("layer 2"), std::string::npos) << r.out;
  EXPECT_FALSE(exists(out)) << "a failed run must write nothing";
}

TEST(Cli, MissingAndMalformedDataWriteNothing) {
  const std::string out = fresh_dir("baddata");
  Result r = run("train --dataset=/nonexistent/x.inter --out=" + out);
  EXPECT_EQ(r.code, 66) << r.out;
  EXPECT_FALSE(exists(out));
  const std::string bad = ::testing::TempDir() + "/convncf_bad.inter";
  {
    std::ofstream f(bad);
    f << "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t100\n1\t3\n";
  }
  r = run("train --dataset=" + bad + " --out=" + out);
  EXPECT_EQ(r.code, 65) << r.out;
  EXPECT_NE(r.out.find(":3"), std::string::npos) << "the message names the line: " << r.out;
  EXPECT_FALSE(exists(out));
}

TEST(Cli, DeviceCudaWithoutGpuExits69) {
  std::string reason;
  if (convncf::cuda_device_available(&reason)) GTEST_SKIP() << "a GPU is usable here: device cuda trains";
  const std::string out = fresh_dir("cuda");
  const Result r = run("train --device=cuda --out=" + out);
  EXPECT_EQ(r.code, 69) << r.out;
  EXPECT_NE(r.out.find("device: cuda, but no usable GPU"), std::string::npos) << r.out;
  EXPECT_FALSE(exists(out));
  // lazy Adam cannot go with a regularizer whose gradient touches every row
  const Result lazy = run("train --embedding_update=lazy --out=" + out);
  EXPECT_EQ(lazy.code, 64) << lazy.out;
  EXPECT_NE(lazy.out.find("embedding_update: lazy needs a regularizer"), std::string::npos) << lazy.out;
  EXPECT_FALSE(exists(out));
  const Result a = run("train --model=BPR --epochs=1 " + std::string(kQuick) + " --quiet=false --out=" + out);
  EXPECT_EQ(a.code, 0) << a.out;
  // no GPU: said as such, and why on a line of its own
  EXPECT_NE(a.out.find("device auto: no usable GPU found; using the CPU engine\n  why: "), std::string::npos) << a.out;
  const Result info = run("info --format=json");
  ASSERT_EQ(info.code, 0) << info.out;
  if (info.out.find("\"cuda_built\":true") != std::string::npos &&
      info.out.find("\"cuda_driver\":\"none\"") != std::string::npos) {
    EXPECT_NE(a.out.find("  why: no NVIDIA driver is installed"), std::string::npos) << a.out;
  }
}

// engine and precision: bad values, a precision the cuDNN engine cannot honour (refused on every
// device, before a GPU is looked for: device cuda without one must answer 64, not 69), and the
// CPU engine's warning that it ignores both. Nothing here needs a GPU.
TEST(Cli, EngineAndPrecisionKeys) {
  const std::string out = fresh_dir("engine_keys");
  Result r = run("train --engine=cublas --out=" + out);
  EXPECT_EQ(r.code, 64) << r.out;
  EXPECT_NE(r.out.find("bad value 'cublas' for key 'engine': expected cudnn | fused"), std::string::npos) << r.out;
  r = run("train --precision=fp16 --out=" + out);
  EXPECT_EQ(r.code, 64) << r.out;
  EXPECT_NE(r.out.find("bad value 'fp16' for key 'precision': expected fp32 | tf32 | bf16"), std::string::npos) << r.out;
  for (const std::string device : {"auto", "cpu", "cuda"}) {
    for (const std::string model : {"ConvNCF", "BPR", "Pop"}) {
      r = run("train --precision=tf32 --model=" + model + " --device=" + device + " --out=" + out);
      EXPECT_EQ(r.code, 64) << device << " " << model << ": " << r.out;
      EXPECT_NE(r.out.find("precision: tf32 needs engine: fused; the cuDNN engine computes in FP32"), std::string::npos)
          << r.out;
    }
  }
  r = run("train --engine=cudnn --precision=bf16 --device=cpu --out=" + out);
  EXPECT_EQ(r.code, 64) << r.out;
  EXPECT_NE(r.out.find("precision: bf16 needs engine: fused"), std::string::npos) << r.out;
  EXPECT_FALSE(exists(out));
  // the CPU engine trains with them, says it ignores them, and config.yaml keeps them
  const std::string base = std::string("train --model=BPR --epochs=1 --device=cpu ") + kQuick + " --quiet=false";
  r = run(base + " --engine=fused --precision=bf16 --out=" + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("warning: engine and precision are CUDA engine options: the CPU engine computes in FP32 and "
                       "ignores them (engine: fused, precision: bf16)"),
            std::string::npos)
      << r.out;
  const std::string yaml = read_file(out + "/config.yaml");
  EXPECT_NE(yaml.find("\nengine: fused\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("\nprecision: bf16\n"), std::string::npos) << yaml;
  // a precision from a config file meets the engine from the command line: checked merged
  const std::string f = ::testing::TempDir() + "/convncf_cli_engine_keys_" + std::to_string(getpid()) + ".yaml";
  std::ofstream(f) << "precision: tf32\n";
  const std::string plain = fresh_dir("engine_keys_plain");
  r = run(base + " --config=" + f + " --out=" + plain);
  EXPECT_EQ(r.code, 64) << r.out;
  EXPECT_NE(r.out.find("precision: tf32 needs engine: fused"), std::string::npos) << r.out;
  r = run(base + " --config=" + f + " --engine=fused --out=" + plain);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("ignores them (engine: fused, precision: tf32)"), std::string::npos) << r.out;
  // the defaults draw no warning
  const std::string defaults = fresh_dir("engine_keys_defaults");
  r = run(base + " --out=" + defaults);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("engine and precision"), std::string::npos) << r.out;
  // eval checks the merged keys as train does
  r = run("eval " + defaults + " --device=cpu --precision=tf32");
  EXPECT_EQ(r.code, 64) << r.out;
  EXPECT_NE(r.out.find("precision: tf32 needs engine: fused"), std::string::npos) << r.out;
}

// --engine and --precision may change on resume (how steps are computed, not the model: the
// checkpoint holds FP32 weights). On the CPU engine they change nothing, so the resumed run equals
// an uninterrupted one.
TEST(Cli, ResumeMayChangeEngineAndPrecision) {
  const std::string full = fresh_dir("resume_engine_full"), part = fresh_dir("resume_engine_part");
  const std::string args = std::string("train --model=BPR --device=cpu --threads=2 --stopping_step=0 ") + kQuick;
  ASSERT_EQ(run(args + " --epochs=3 --out=" + full).code, 0);
  ASSERT_EQ(run(args + " --epochs=1 --out=" + part).code, 0);
  // precision without the fused engine is refused on resume as on a fresh run
  Result r = run("train --resume=" + part + " --epochs=2 --precision=tf32");
  EXPECT_EQ(r.code, 64) << r.out;
  EXPECT_NE(r.out.find("precision: tf32 needs engine: fused"), std::string::npos) << r.out;
  r = run("train --resume=" + part + " --epochs=2 --engine=fused --precision=tf32");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("ignores them (engine: fused, precision: tf32)"), std::string::npos) << r.out;
  EXPECT_NE(read_file(part + "/config.yaml").find("\nengine: fused\n"), std::string::npos);
  // and back: the checkpoint of epoch 2 was written under engine fused
  r = run("train --resume=" + part + " --epochs=3 --engine=cudnn --precision=fp32 --quiet");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(convncf::load_checkpoint(part + "/checkpoint.bin").epoch, 3);
  EXPECT_EQ(metrics_without_timings(part), metrics_without_timings(full));
  EXPECT_EQ(read_file(part + "/model.bin"), read_file(full + "/model.bin"));
  // other keys still may not change
  r = run("train --resume=" + part + " --sparse_grad=fast");
  EXPECT_EQ(r.code, 64) << r.out;
  EXPECT_NE(r.out.find("cannot change 'sparse_grad' when resuming: only --epochs, --threads, --device, --engine, "
                       "--precision, --quiet, --verbose and --show_progress"),
            std::string::npos)
      << r.out;
}

// The CUDA engine end to end: ConvNCF and MF-BPR train, validate and test through the command;
// a resumed run equals an uninterrupted one (deterministic sparse gradients).
TEST(Cli, CudaTrainingAndResumeGpu) {
  std::string reason;
  if (!convncf::cuda_device_available(&reason)) GTEST_SKIP() << "no usable CUDA device: " << reason;
  const std::string args = std::string("train --model=ConvNCF --device=cuda --train_batch_size=1024 --cnn_channels=[1,4,4] ") +
                           "--cnn_kernels=[8,8] --cnn_strides=[8,8] --stopping_step=0 " + kQuick;
  const std::string full = fresh_dir("cuda_full"), part = fresh_dir("cuda_part");
  Result r = run(args + " --epochs=3 --out=" + full);
  ASSERT_EQ(r.code, 0) << r.out;
  ASSERT_EQ(run(args + " --epochs=1 --out=" + part).code, 0);
  r = run("train --resume=" + part + " --epochs=3 --quiet");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(metrics_without_timings(part), metrics_without_timings(full));
  EXPECT_EQ(read_file(part + "/model.bin"), read_file(full + "/model.bin"));
  EXPECT_GT(json_number(read_file(full + "/metrics.jsonl"), "test", "ndcg@10"), 0.0);
  const std::string bpr = fresh_dir("cuda_bpr");
  r = run(std::string("train --model=BPR --device=cuda --epochs=2 ") + kQuick + " --out=" + bpr);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_GT(json_number(read_file(bpr + "/metrics.jsonl"), "test", "ndcg@10"), 0.0);
}

TEST(Cli, PopularityRunFolderAndRefusalToOverwrite) {
  const std::string out = fresh_dir("pop");
  Result r = run(std::string("train --model=Pop ") + kQuick + " --out=" + out);
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string m = read_file(out + "/metrics.jsonl");
  EXPECT_NE(m.find("\"event\":\"test\""), std::string::npos) << m;
  EXPECT_GT(json_number(m, "test", "ndcg@10"), 0.0);
  EXPECT_NE(read_file(out + "/config.yaml").find("model: Pop"), std::string::npos);
  const convncf::ModelFile mf = convncf::load_model(out + "/model.bin");
  EXPECT_EQ(mf.params.model, convncf::ModelKind::Pop);
  EXPECT_EQ(mf.item_ids.size(), size_t(mf.params.n_items));
  // a second run into the same folder is refused and leaves the first intact
  r = run(std::string("train --model=Pop ") + kQuick + " --out=" + out);
  EXPECT_EQ(r.code, 64) << r.out;
  EXPECT_EQ(read_file(out + "/metrics.jsonl"), m);
}

TEST(Cli, LearnedModelsBeatPopularityOnSynthetic) {
  // MF-BPR, then ConvNCF initialized from it (RecBole's after_pretrain, the paper's recipe),
  // against popularity on the same leave-one-out split and negatives.
  const std::string pop = fresh_dir("beat_pop"), mf = fresh_dir("beat_mf"), cnn = fresh_dir("beat_cnn");
  ASSERT_EQ(run(std::string("train --model=Pop ") + kQuick + " --out=" + pop).code, 0);
  Result r = run(std::string("train --model=BPR --epochs=30 ") + kQuick + " --out=" + mf);
  ASSERT_EQ(r.code, 0) << r.out;
  r = run(std::string("train --model=ConvNCF --epochs=2 --train_method=after_pretrain --pre_model_path=") + mf +
          " " + kQuick + " --out=" + cnn);
  ASSERT_EQ(r.code, 0) << r.out;
  const double p = json_number(read_file(pop + "/metrics.jsonl"), "test", "ndcg@10");
  const double m = json_number(read_file(mf + "/metrics.jsonl"), "test", "ndcg@10");
  const double c = json_number(read_file(cnn + "/metrics.jsonl"), "test", "ndcg@10");
  EXPECT_GT(p, 0.0);
  EXPECT_GT(m, 1.5 * p) << "MF-BPR " << m << " vs popularity " << p;
  EXPECT_GT(c, 1.5 * p) << "ConvNCF " << c << " vs popularity " << p;
  // a popularity run is not an MF-BPR model: refused, nothing written
  const std::string bad = fresh_dir("pretrained_bad");
  r = run(std::string("train --model=ConvNCF --epochs=1 --train_method=after_pretrain --pre_model_path=") + pop +
          " " + kQuick + " --out=" + bad);
  EXPECT_EQ(r.code, 65) << r.out;
  EXPECT_NE(r.out.find("MF-BPR"), std::string::npos) << r.out;
  EXPECT_FALSE(exists(bad));
}

TEST(Cli, SameSeedSameRun) {
  // Deterministic for a seed and thread count: losses and metrics repeat exactly; another seed
  // gives another run.
  auto losses = [](const std::string& dir) {
    std::istringstream in(read_file(dir + "/metrics.jsonl"));
    std::string line, out;
    while (std::getline(in, line)) {
      const size_t a = line.find("\"loss\":"), b = line.find(",\"seconds\"");
      if (a != std::string::npos) out += line.substr(a, b - a) + ";";
      const size_t v = line.find("\"valid\":");
      if (v != std::string::npos) out += line.substr(v, line.find('}', v) - v) + ";";
    }
    return out;
  };
  const std::string a = fresh_dir("seed_a"), b = fresh_dir("seed_b"), c = fresh_dir("seed_c");
  const std::string args = std::string("train --model=ConvNCF --epochs=1 --train_batch_size=4096 ") +
                           "--cnn_channels=[1,4,4] --cnn_kernels=[8,8] --cnn_strides=[8,8] " + kQuick;
  ASSERT_EQ(run(args + " --out=" + a).code, 0);
  ASSERT_EQ(run(args + " --out=" + b).code, 0);
  ASSERT_EQ(run(args + " --seed=7 --out=" + c).code, 0);
  EXPECT_FALSE(losses(a).empty());
  EXPECT_EQ(losses(a), losses(b));
  EXPECT_NE(losses(a), losses(c));
}

TEST(Cli, PaperPresetRunsWarmupThenAdagrad) {
  // The paper preset end to end on a small tower: a warm-up epoch (Adagrad 0.01, no
  // regularization), then the two Adagrad optimizers on the squared-norm loss, batch 512 with the
  // last partial batch dropped.
  const std::string out = fresh_dir("paper");
  const Result r = run(std::string("train --preset=paper --epochs=2 --cnn_channels=[1,4,4] ") +
                       "--cnn_kernels=[8,8] --cnn_strides=[8,8] --eval_mode=uni99 --eval_args.split.LS=valid_and_test "
                       "--out=" + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("epoch 1/2 (warm-up)"), std::string::npos) << r.out;
  const std::string cfg = read_file(out + "/config.yaml");
  EXPECT_NE(cfg.find("learner: adagrad"), std::string::npos) << cfg;
  EXPECT_NE(cfg.find("reg_type: squared"), std::string::npos) << cfg;
  const std::string m = read_file(out + "/metrics.jsonl");
  EXPECT_GT(json_number(m, "epoch", "loss"), 0.0);
  EXPECT_GE(json_number(m, "test", "best_epoch"), 1.0);
}

TEST(Cli, RecBoleDefaultProtocolRatioSplitFullRanking) {
  // The recbole preset evaluates as RecBole: 8:1:1 random split per user, full ranking.
  const std::string out = fresh_dir("rsfull");
  const Result r = run("train --model=Pop --out=" + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("split ratio 0.8/0.1/0.1 RO"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("test full"), std::string::npos) << r.out;
  const std::string m = read_file(out + "/metrics.jsonl");
  EXPECT_GT(json_number(m, "test", "recall@10"), 0.0) << m;
  EXPECT_GT(json_number(m, "test", "precision@10"), 0.0) << m;
  EXPECT_NE(read_file(out + "/split.tsv").find("\ttest\n"), std::string::npos);
  // the saved split is read back by split_file, giving the same test result
  const std::string again = fresh_dir("rsfull_again");
  ASSERT_EQ(run("train --model=Pop --quiet --split_file=" + out + "/split.tsv --out=" + again).code, 0);
  EXPECT_EQ(json_number(read_file(again + "/metrics.jsonl"), "test", "ndcg@10"), json_number(m, "test", "ndcg@10"));
}

// train_neg_sample_args end to end: the negatives the run will draw are printed; what cannot run is
// refused by name before anything is written.
TEST(Cli, TrainNegSampleArgs) {
  const std::string out = fresh_dir("negatives");
  Result r = run("train --model=BPR --epochs=1 --device=cpu --train_neg_sample_args=\"{distribution: popularity, "
                 "sample_num: 3, dynamic: True, candidate_num: 2}\" " + std::string(kQuick) + " --quiet=false --out=" + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("training negatives: 3 popularity negatives per positive, each the best-scoring of 2 "
                       "candidates (dynamic)"), std::string::npos) << r.out;
  EXPECT_NE(read_file(out + "/config.yaml").find("train_neg_sample_args:\n  distribution: popularity\n  sample_num: 3\n"),
            std::string::npos);
  // scoring draws no negatives: eval and recommend take the run whatever its negatives (a GPU is
  // asked for, not refused for dynamic sampling)
  r = run("eval " + out);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(run("recommend " + out + " --users=17").code, 0);  // a raw id of the synthetic set
  std::string reason;
  if (!convncf::cuda_device_available(&reason)) {
    EXPECT_EQ(run("eval " + out + " --device=cuda").code, 69);
  }
  // the issue's example: dynamic without candidate_num (RecBole's default 0) has nothing to pick from
  const std::string bad = fresh_dir("negatives_bad");
  r = run("train --model=BPR --epochs=1 --train_neg_sample_args=\"{distribution: popularity, sample_num: 5, "
          "dynamic: True}\" " + std::string(kQuick) + " --out=" + bad);
  EXPECT_EQ(r.code, 64) << r.out;
  EXPECT_NE(r.out.find("candidate_num"), std::string::npos) << r.out;
  r = run("train --model=BPR --epochs=1 --device=cuda --train_neg_sample_args=\"{dynamic: true, candidate_num: 2}\" " +
          std::string(kQuick) + " --out=" + bad);
  EXPECT_EQ(r.code, 64) << r.out;
  EXPECT_NE(r.out.find("CPU engine only"), std::string::npos) << r.out;
  EXPECT_FALSE(exists(bad));
}

// RecBole's pre-split files (benchmark_filename) are the run's split; filters with them are refused.
TEST(Cli, BenchmarkFilenameIsTheSplit) {
  const std::string root = fresh_dir("benchmark"), dir = root + "/toy", out = root + "/run";
  std::system(("mkdir -p '" + dir + "'").c_str());
  const char* parts[3] = {"train", "valid", "test"};
  std::string want;
  for (int k = 0; k < 3; ++k) {
    std::ofstream f(dir + "/toy." + parts[k] + ".inter");
    f << "user_id:token\titem_id:token\n";
    for (int u = 0; u < 30; ++u)
      for (int j = 0; j < (k == 0 ? 8 : 1); ++j) {
        const int item = (u * 7 + j * 3 + k * 11) % 40;
        f << "u" << u << "\ti" << item << "\n";
        want += "u" + std::to_string(u) + "\ti" + std::to_string(item) + "\t" + parts[k] + "\n";
      }
  }
  Result r = run("train --model=Pop --dataset=" + dir + " --benchmark_filename=[train,valid,test] --quiet --out=" + out);
  ASSERT_EQ(r.code, 0) << r.out;
  std::istringstream split(read_file(out + "/split.tsv"));
  std::vector<std::string> got_lines, want_lines;
  for (std::string line; std::getline(split, line);)
    if (line.rfind("#", 0) != 0 && line.rfind("user\t", 0) != 0) got_lines.push_back(line);
  std::istringstream w(want);
  for (std::string line; std::getline(w, line);) want_lines.push_back(line);
  std::sort(got_lines.begin(), got_lines.end());
  std::sort(want_lines.begin(), want_lines.end());
  EXPECT_EQ(got_lines, want_lines);
  r = run("train --model=Pop --dataset=" + dir + " --benchmark_filename=[train,valid,test] "
          "--user_inter_num_interval=\"[5,inf)\" --quiet --out=" + root + "/bad");
  EXPECT_EQ(r.code, 64) << r.out;
  EXPECT_NE(r.out.find("benchmark_filename"), std::string::npos) << r.out;
  r = run("train --model=Pop --dataset=" + dir + " --benchmark_filename=[train,dev,test] --quiet --out=" + root + "/bad");
  EXPECT_EQ(r.code, 66) << r.out;
  EXPECT_NE(r.out.find("toy.dev.inter"), std::string::npos) << r.out;
  EXPECT_FALSE(exists(root + "/bad"));
}

// A RecBole checkpoint named as pre_model_path is refused with the converter's command.
TEST(Cli, PreModelPathRefusesARecBoleCheckpoint) {
  const std::string root = fresh_dir("pth"), pth = root + "/BPR-x.pth";
  std::system(("mkdir -p '" + root + "'").c_str());
  std::ofstream(pth, std::ios::binary) << std::string("PK\x03\x04 a torch.save archive", 26);
  const Result r = run("train --model=ConvNCF --epochs=1 --train_method=after_pretrain --pre_model_path=" + pth + " " +
                       kQuick + " --out=" + root + "/run");
  EXPECT_EQ(r.code, 65) << r.out;
  EXPECT_NE(r.out.find("tools/recbole_convert.py from-recbole"), std::string::npos) << r.out;
  EXPECT_FALSE(exists(root + "/run"));
}

TEST(Cli, IgnoredRecBoleKeysAreNamedInOneWarning) {
  const std::string out = fresh_dir("ignored");
  const Result r = run("train --model=Pop --gpu_id=0 --log_wandb=False --quiet " + std::string(kQuick) + " --out=" + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("warning: RecBole keys that mean nothing here, ignored: gpu_id log_wandb"), std::string::npos) << r.out;
}

TEST(Cli, ResumeIsBitIdenticalToAnUninterruptedRun) {
  // ConvNCF (Adam, dropout, whole-table norms) on a small tower: 3 epochs straight, against 1
  // epoch then --resume to 3, with the same thread count.
  const std::string full = fresh_dir("resume_full"), part = fresh_dir("resume_part");
  const std::string args = std::string("train --model=ConvNCF --train_batch_size=4096 --threads=2 --cnn_channels=[1,4,4] ") +
                           "--cnn_kernels=[8,8] --cnn_strides=[8,8] --stopping_step=0 " + kQuick;
  ASSERT_EQ(run(args + " --epochs=3 --out=" + full).code, 0);
  ASSERT_EQ(run(args + " --epochs=1 --out=" + part).code, 0);
  {  // what a kill leaves: the line of an epoch whose checkpoint never landed, and a cut-short line
    std::ofstream f(part + "/metrics.jsonl", std::ios::app);
    f << "{\"event\":\"epoch\",\"epoch\":2,\"loss\":9}\n{\"event\":\"epoch\",\"epoch\":1,\"lo";
  }
  const Result r = run("train --resume=" + part + " --epochs=3 --quiet");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(metrics_without_timings(part), metrics_without_timings(full));
  EXPECT_EQ(read_file(part + "/model.bin"), read_file(full + "/model.bin"));
  const convncf::Checkpoint a = convncf::load_checkpoint(full + "/checkpoint.bin");
  const convncf::Checkpoint b = convncf::load_checkpoint(part + "/checkpoint.bin");
  EXPECT_EQ(a.epoch, 3);
  EXPECT_EQ(b.epoch, 3);
  EXPECT_EQ(a.latest.params.net, b.latest.params.net);
  EXPECT_EQ(a.latest.params.P, b.latest.params.P);
  ASSERT_EQ(a.optimizers.size(), b.optimizers.size());
  for (size_t k = 0; k < a.optimizers.size(); ++k) {
    EXPECT_EQ(a.optimizers[k].steps, b.optimizers[k].steps);
    EXPECT_EQ(a.optimizers[k].s0, b.optimizers[k].s0);
    EXPECT_EQ(a.optimizers[k].s1, b.optimizers[k].s1);
  }
  // resuming may change only the length of the run
  const Result bad = run("train --resume=" + part + " --learning_rate=0.1");
  EXPECT_EQ(bad.code, 64) << bad.out;
  EXPECT_NE(bad.out.find("cannot change 'learning_rate' when resuming"), std::string::npos) << bad.out;
}

TEST(Cli, DamagedOrForeignCheckpointIsRefused) {
  const std::string data = small_inter("foreign");
  const std::string a = fresh_dir("ckpt_a"), b = fresh_dir("ckpt_b");
  ASSERT_EQ(run(std::string("train --model=BPR --epochs=1 ") + kQuick + " --out=" + a).code, 0);
  ASSERT_EQ(run(std::string("train --model=BPR --epochs=1 ") + kQuick + " --dataset=" + data + " --out=" + b).code, 0);
  const std::string good = read_file(a + "/checkpoint.bin");
  {  // truncated
    std::ofstream f(a + "/checkpoint.bin", std::ios::binary | std::ios::trunc);
    f << good.substr(0, good.size() / 2);
  }
  Result r = run("train --resume=" + a + " --epochs=2");
  EXPECT_EQ(r.code, 65) << r.out;
  EXPECT_NE(r.out.find("checksum mismatch"), std::string::npos) << r.out;
  // another dataset's checkpoint
  std::system(("cp '" + b + "/checkpoint.bin' '" + a + "/checkpoint.bin'").c_str());
  r = run("train --resume=" + a + " --epochs=2");
  EXPECT_EQ(r.code, 65) << r.out;
  EXPECT_NE(r.out.find("other data"), std::string::npos) << r.out;
  // a checkpoint of the same data made with another configuration
  const std::string c = fresh_dir("ckpt_c");
  ASSERT_EQ(run(std::string("train --model=BPR --epochs=1 --learning_rate=0.01 ") + kQuick + " --out=" + c).code, 0);
  std::system(("cp '" + c + "/checkpoint.bin' '" + a + "/checkpoint.bin'").c_str());
  r = run("train --resume=" + a + " --epochs=2");
  EXPECT_EQ(r.code, 65) << r.out;
  EXPECT_NE(r.out.find("another configuration (it has 'learning_rate: 0.01')"), std::string::npos) << r.out;
  r = run("train --resume=/nonexistent/run");
  EXPECT_EQ(r.code, 66) << r.out;
}

TEST(Cli, NonFiniteTrainingStopsNamingEpochBatchAndTensor) {
  const std::string out = fresh_dir("nonfinite");
  const Result r = run(std::string("train --model=BPR --epochs=3 --learner=sgd --learning_rate=1e38 ") + kQuick +
                       " --out=" + out);
  EXPECT_EQ(r.code, 70) << r.out;
  EXPECT_NE(r.out.find("at epoch 1, batch "), std::string::npos) << r.out;
  EXPECT_TRUE(r.out.find("embedding of '") != std::string::npos || r.out.find("non-finite loss") != std::string::npos) << r.out;
}

TEST(Cli, EvalRecommendExportInfo) {
  const std::string run_dir = fresh_dir("tools_run"), exp = fresh_dir("tools_export");
  ASSERT_EQ(run(std::string("train --model=BPR --epochs=2 ") + kQuick + " --out=" + run_dir).code, 0);
  const double test_ndcg = json_number(read_file(run_dir + "/metrics.jsonl"), "test", "ndcg@10");
  // eval on the run's own protocol reproduces the test line; another protocol works too
  Result r = run("eval " + run_dir + " --quiet");
  ASSERT_EQ(r.code, 0) << r.out;
  const size_t test_at = r.out.find("\"test\":{");
  ASSERT_NE(test_at, std::string::npos) << r.out;
  EXPECT_EQ(std::stod(r.out.substr(r.out.find("\"ndcg@10\":", test_at) + 10)), test_ndcg) << r.out;
  r = run("eval " + run_dir + " --eval_args.mode=full");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("test (full"), std::string::npos) << r.out;
  EXPECT_EQ(run("eval /nonexistent").code, 66);
  EXPECT_EQ(run("eval " + run_dir + " --bogus=1").code, 64);
  // recommend: top-K in the user's own ids, training items left out
  const std::string user = "17";  // a raw id of the synthetic set (users "1" to "1000")
  r = run("recommend " + run_dir + " --users=" + user + " --topk=5");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.compare(0, 20, "user\trank\titem\tscore"), 0) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 6) << r.out;
  r = run("recommend " + run_dir + " --users=" + user + " --topk=3 --format=jsonl");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string head = "{\"user\":\"" + user + "\",\"items\":[";
  EXPECT_EQ(r.out.compare(0, head.size(), head), 0) << r.out;
  r = run("recommend " + run_dir + " --users=no-such-user");
  EXPECT_EQ(r.code, 65) << r.out;
  EXPECT_NE(r.out.find("no-such-user"), std::string::npos) << r.out;
  EXPECT_EQ(run("recommend " + run_dir).code, 64);
  std::string reason;
  if (!convncf::cuda_device_available(&reason)) {  // scoring on a GPU that is not there
    EXPECT_EQ(run("eval " + run_dir + " --device=cuda --quiet").code, 69);
    EXPECT_EQ(run("recommend " + run_dir + " --users=" + user + " --device=cuda").code, 69);
  } else {  // the CUDA engine's top-K equals the CPU engine's
    const Result g = run("recommend " + run_dir + " --users=" + user + " --topk=5 --device=cuda");
    const Result c = run("recommend " + run_dir + " --users=" + user + " --topk=5 --device=cpu");
    EXPECT_EQ(g.code, 0) << g.out;
    auto items = [](const std::string& table) {  // the item column, as a set (near-ties may swap)
      std::set<std::string> out;
      std::istringstream in(table);
      std::string line, u, rank, item;
      std::getline(in, line);  // header
      while (std::getline(in, line)) {
        std::istringstream f(line);
        if (std::getline(f, u, '\t') && std::getline(f, rank, '\t') && std::getline(f, item, '\t')) out.insert(item);
      }
      return out;
    };
    EXPECT_EQ(items(g.out), items(c.out)) << g.out << c.out;
    EXPECT_EQ(items(c.out).size(), 5u) << c.out;
  }
  // export: .npy files that NumPy reads; never over existing files
  r = run("export " + run_dir + " --out=" + exp);
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string npy = read_file(exp + "/user_embeddings.npy");
  ASSERT_GT(npy.size(), 128u);
  EXPECT_EQ(npy.compare(0, 6, "\x93NUMPY"), 0);
  EXPECT_NE(npy.find("'descr': '<f4'"), std::string::npos);
  EXPECT_NE(npy.find("'shape': (1000, 64)"), std::string::npos) << npy.substr(0, 128);
  EXPECT_EQ((npy.find('\n') + 1) % 64, 0u) << "the header is padded to 64 bytes";
  EXPECT_NE(read_file(exp + "/index.json").find("\"user_embeddings\":\"user_embeddings.npy\""), std::string::npos);
  EXPECT_NE(read_file(exp + "/item_ids.npy").find("'descr': '<U"), std::string::npos);
  r = run("export " + run_dir + " --out=" + exp);
  EXPECT_EQ(r.code, 64) << r.out;
  // info
  r = run("info");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("device auto would use: the CPU engine"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("CPU threads"), std::string::npos) << r.out;
}

namespace {
pid_t spawn(const std::vector<std::string>& args) {
  const std::string& bin = convncf::test::convncf_binary();  // resolved before the fork
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(bin.c_str()));
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    setenv("CONVNCF_TEST_WRITE_DELAY_MS", "20", 1);  // so that kills land inside checkpoint writes
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}
}  // namespace

TEST(Cli, SigkillAtRandomMomentsThenResumeMatchesAnUninterruptedRun) {
  const std::string data = small_inter("sigkill");
  const std::string ref = fresh_dir("kill_ref"), out = fresh_dir("kill_run");
  const std::vector<std::string> train = {"train", "--model=BPR", "--epochs=25", "--train_batch_size=256", "--threads=2",
                                          "--stopping_step=0", "--eval_args.split.LS=valid_and_test",
                                          "--eval_args.order=TO", "--eval_mode=uni20", "--quiet", "--dataset=" + data};
  std::vector<std::string> a = train;
  a.push_back("--out=" + ref);
  ASSERT_EQ(run([&] { std::string s; for (auto& x : a) s += "'" + x + "' "; return s; }()).code, 0);

  std::mt19937 rng(20261128);
  std::vector<std::string> first = train;
  first.push_back("--out=" + out);
  const std::vector<std::string> resume = {"train", "--resume=" + out, "--quiet"};
  int kills = 0, resumes = 0, in_write = 0;
  bool done = false;
  const std::string tmp = out + "/checkpoint.bin.tmp";
  for (int attempt = 0; attempt < 200 && !done; ++attempt) {
    const bool fresh = attempt == 0;
    std::remove(tmp.c_str());
    std::remove((out + "/model.bin.tmp").c_str());  // (resume removes it too) so that a .tmp seen below is a write in progress
    const pid_t pid = spawn(fresh ? first : resume);
    ASSERT_GT(pid, 0);
    if (fresh)  // the run folder must exist before resume can be asked for
      while (!exists(out + "/metrics.jsonl")) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    else
      ++resumes;
    int st = 0;
    if (attempt % 3 == 1) {
      // every third kill waits for a checkpoint write to be under way (up to 10 s)
      for (int ms = 0; ms < 10000 && !exists(tmp) && waitpid(pid, &st, WNOHANG) == 0; ++ms)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    } else {
      const int delay_ms = std::uniform_int_distribution<int>(0, 120)(rng);
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    }
    if (kills < 40 && waitpid(pid, &st, WNOHANG) == 0) {
      in_write += exists(tmp) || exists(out + "/model.bin.tmp");
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      ++kills;
      continue;
    }
    if (kills >= 40) {  // the last one runs to the end
      ASSERT_EQ(waitpid(pid, &st, 0), pid);
    }
    ASSERT_TRUE(WIFEXITED(st)) << "attempt " << attempt;
    ASSERT_EQ(WEXITSTATUS(st), 0) << "a resume failed at attempt " << attempt;
    done = true;
  }
  ASSERT_TRUE(done);
  std::printf("SIGKILL test: %d kills (%d while a checkpoint or model file was being written), %d resumes\n", kills,
              in_write, resumes);
  EXPECT_GE(kills, 20);
  EXPECT_GT(in_write, 0) << "no kill landed inside a write; the test did not test that";
  EXPECT_EQ(metrics_without_timings(out), metrics_without_timings(ref));
  EXPECT_EQ(read_file(out + "/model.bin"), read_file(ref + "/model.bin"));
}

TEST(Cli, PlotRunDrawsAPng) {
  // tools/plot_run.py needs matplotlib: the system Python's or the default python3's.
  std::string py;
  for (const char* cand : {"/usr/bin/python3", "python3"})
    if (std::system((std::string(cand) + " -c 'import matplotlib' >/dev/null 2>&1").c_str()) == 0) {
      py = cand;
      break;
    }
  if (py.empty()) GTEST_SKIP() << "no python3 with matplotlib (apt install python3-matplotlib)";
  const std::string a = fresh_dir("plot_a"), b = fresh_dir("plot_b");
  ASSERT_EQ(run(std::string("train --model=BPR --epochs=3 ") + kQuick + " --out=" + a).code, 0);
  ASSERT_EQ(run(std::string("train --model=Pop ") + kQuick + " --out=" + b).code, 0);
  const std::string png = ::testing::TempDir() + "/convncf_plot_" + std::to_string(getpid()) + ".png";
  const std::string script = convncf::test::source_dir() + "/tools/plot_run.py";
  const std::string cmd = py + " " + script + " " + a + " " + b + " --out=" + png + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_EQ(read_file(png).compare(0, 4, "\x89PNG"), 0);
  EXPECT_NE(std::system((py + " " + script + " /nonexistent >/dev/null 2>&1").c_str()), 0);
}

TEST(Cli, ProgressLineOnATerminalPlainLinesOtherwise) {
  if (std::system("command -v script >/dev/null 2>&1") != 0) GTEST_SKIP() << "no script(1) to fake a terminal";
  const std::string a = fresh_dir("tty"), b = fresh_dir("notty");
  const std::string args = std::string("train --model=BPR --epochs=1 --train_batch_size=256 ") +
                           "--eval_args.split.LS=valid_and_test --eval_mode=uni9";
  // script(1) gives the command a terminal and copies what it prints
  const std::string cmd = "script -qfec \"" + convncf::test::convncf_binary() + " " + args + " --out=" + a + "\" /dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ASSERT_EQ(pclose(p), 0) << out;
  EXPECT_NE(out.find("\r  epoch 1/1  batch "), std::string::npos) << out;
  EXPECT_NE(out.find("triples/s  ETA "), std::string::npos) << out;
  // not a terminal: plain lines only
  const Result plain = run(args + " --out=" + b);
  ASSERT_EQ(plain.code, 0) << plain.out;
  EXPECT_EQ(plain.out.find('\r'), std::string::npos);
  EXPECT_NE(plain.out.find("epoch 1/1  loss "), std::string::npos) << plain.out;
  // metrics.jsonl carries the learning rates and peak memory
  const std::string m = read_file(b + "/metrics.jsonl");
  EXPECT_EQ(json_number(m, "epoch", "embedding"), 0.001) << m;
  EXPECT_GT(json_number(m, "epoch", "peak_memory_bytes"), 1e6) << m;
}

TEST(Cli, NcfTrioWithFileNegativesAndBadFilesWriteNothing) {
  // The NCF/ConvNCF trio: the split and the test negatives come from the files.
  const std::string dir = fresh_dir("ncf_data");
  ASSERT_EQ(std::system(("mkdir -p '" + dir + "'").c_str()), 0);
  {
    std::ofstream train(dir + "/toy.train.rating"), test(dir + "/toy.test.rating"), neg(dir + "/toy.test.negative");
    for (int u = 0; u < 30; ++u) {
      for (int k = 0; k < 8; ++k) train << u << "\t" << (u + k * 3) % 40 << "\t1\t" << k << "\n";
      test << u << "\t" << (u + 25) % 40 << "\t1\t99\n";
      neg << "(" << u << "," << (u + 25) % 40 << ")";
      for (int k = 0; k < 5; ++k) neg << "\t" << (u + 26 + k) % 40;
      neg << "\n";
    }
  }
  const std::string out = fresh_dir("ncf_run");
  Result r = run("train --model=BPR --epochs=2 '--eval_args.mode={valid: full, test: file}' --dataset=" + dir +
                 " --out=" + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("(ncf)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("test file (30 queries)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no validation queries (the data files give no validation split): every epoch trains, nothing "
                       "stops early, and the last epoch's model is tested"),
            std::string::npos)
      << r.out;
  // a negatives line that does not match its test line: exit 65 naming file and line, nothing written
  {
    std::ofstream neg(dir + "/toy.test.negative", std::ios::app);
    neg << "(7,3)\t1\t2\n";
  }
  const std::string bad = fresh_dir("ncf_bad");
  r = run("train --model=BPR --epochs=1 --dataset=" + dir + " --out=" + bad);
  EXPECT_EQ(r.code, 65) << r.out;
  EXPECT_NE(r.out.find("toy.test.negative"), std::string::npos) << r.out;
  EXPECT_FALSE(exists(bad));
}

// ---- the run folder is a contract (issue 13) ----

namespace {

// Whether another process holds the flock of `path`: this process's own try fails (a try that
// succeeds is released at once by the close).
bool lock_held(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool held = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  close(fd);
  return held;
}

// The names in a folder, sorted.
std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (const dirent* e = readdir(d))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") names.push_back(e->d_name);
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Every name is one a run writes: its five files, their temporary twins, run.lock.
bool only_run_files(const std::vector<std::string>& names) {
  for (std::string n : names) {
    if (n.size() > 4 && n.compare(n.size() - 4, 4, ".tmp") == 0) n.erase(n.size() - 4);
    if (n != "config.yaml" && n != "split.tsv" && n != "metrics.jsonl" && n != "model.bin" && n != "checkpoint.bin" &&
        n != "run.lock")
      return false;
  }
  return true;
}

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

std::string joined(const std::vector<std::string>& args) {
  std::string s;
  for (const std::string& a : args) s += "'" + a + "' ";
  return s;
}

void make_folder(const std::string& dir) { ASSERT_EQ(std::system(("mkdir -p '" + dir + "'").c_str()), 0); }

}  // namespace

// A run holds its folder's lock from start to end: a second training, a resume and an export
// into it are refused (exit 75) and change nothing; kill -9 frees the lock and the folder resumes.
TEST(Cli, RunFolderIsLockedForTheRunsWholeLifeAndKillFreesIt) {
  const std::string data = small_inter("lock");
  const std::string out = fresh_dir("lock_run");
  const pid_t pid = spawn({"train", "--model=BPR", "--epochs=400", "--train_batch_size=256", "--threads=2",
                           "--stopping_step=0", "--eval_args.split.LS=valid_and_test", "--eval_args.order=TO",
                           "--eval_mode=uni20", "--quiet", "--seed=1", "--dataset=" + data, "--out=" + out});
  ASSERT_GT(pid, 0);
  int st = 0;
  for (int ms = 0; ms < 30000 && !exists(out + "/config.yaml") && waitpid(pid, &st, WNOHANG) == 0; ++ms)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(exists(out + "/config.yaml"));
  EXPECT_TRUE(lock_held(out + "/run.lock")) << "the running training must hold " << out << "/run.lock";
  const std::string config = read_file(out + "/config.yaml");
  Result r = run("train --model=BPR --epochs=1 --seed=2 --quiet --dataset=" + data + " --out=" + out);
  EXPECT_EQ(r.code, 75) << r.out;
  EXPECT_NE(r.out.find("run folder " + out + " is in use by another convncf process (pid " + std::to_string(pid) + ")"),
            std::string::npos)
      << r.out;
  r = run("train --resume=" + out + " --quiet");
  EXPECT_EQ(r.code, 75) << r.out;
  r = run("export " + out + " --out=" + out);
  EXPECT_EQ(r.code, 75) << r.out;
  EXPECT_EQ(read_file(out + "/config.yaml"), config);
  EXPECT_TRUE(only_run_files(listing(out))) << joined(listing(out));
  EXPECT_EQ(waitpid(pid, &st, WNOHANG), 0) << "the first run must still be running";
  kill(pid, SIGKILL);
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  EXPECT_FALSE(lock_held(out + "/run.lock")) << "kill -9 must leave no lock behind";
  r = run("train --resume=" + out + " --epochs=2 --quiet");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(read_file(out + "/metrics.jsonl").find("\"event\":\"test\""), std::string::npos);
  EXPECT_NE(read_file(out + "/config.yaml").find("\nseed: 1\n"), std::string::npos);
}

// Two trainings started together on one --out: one takes the folder and runs to the end, the
// other is refused; the folder then holds exactly the first one's run (as a run of its own elsewhere).
TEST(Cli, TwoTrainingsStartedTogetherOneOwnsTheFolder) {
  const std::string data = small_inter("together");
  auto args = [&](int seed, const std::string& out) {
    return std::vector<std::string>{"train", "--model=BPR", "--epochs=3", "--train_batch_size=256", "--threads=2",
                                    "--eval_args.split.LS=valid_and_test", "--eval_args.order=TO", "--eval_mode=uni20",
                                    "--quiet", "--seed=" + std::to_string(seed), "--dataset=" + data, "--out=" + out};
  };
  std::string ref[3];
  for (int seed : {1, 2}) {
    ref[seed] = fresh_dir("together_ref" + std::to_string(seed));
    ASSERT_EQ(run(joined(args(seed, ref[seed]))).code, 0);
  }
  ASSERT_NE(read_file(ref[1] + "/model.bin"), read_file(ref[2] + "/model.bin"));
  for (int round = 0; round < 3; ++round) {
    const std::string out = fresh_dir("together_" + std::to_string(round));
    const pid_t a = spawn(args(1, out)), b = spawn(args(2, out));
    ASSERT_GT(a, 0);
    ASSERT_GT(b, 0);
    int sa = 0, sb = 0;
    ASSERT_EQ(waitpid(a, &sa, 0), a);
    ASSERT_EQ(waitpid(b, &sb, 0), b);
    const int ca = exit_code(sa), cb = exit_code(sb);
    EXPECT_EQ(std::min(ca, cb), 0) << "round " << round << ": exit codes " << ca << " and " << cb;
    EXPECT_EQ(std::max(ca, cb), 75) << "round " << round << ": exit codes " << ca << " and " << cb;
    if (std::min(ca, cb) != 0) continue;
    const int winner = ca == 0 ? 1 : 2;
    EXPECT_NE(read_file(out + "/config.yaml").find("\nseed: " + std::to_string(winner) + "\n"), std::string::npos);
    EXPECT_EQ(read_file(out + "/model.bin"), read_file(ref[winner] + "/model.bin")) << "round " << round;
    EXPECT_EQ(metrics_without_timings(out), metrics_without_timings(ref[winner])) << "round " << round;
    EXPECT_EQ(read_file(out + "/split.tsv"), read_file(ref[winner] + "/split.tsv"));
    EXPECT_TRUE(only_run_files(listing(out))) << joined(listing(out));
    EXPECT_FALSE(lock_held(out + "/run.lock"));
    const Result e = run("eval " + out + " --quiet");
    ASSERT_EQ(e.code, 0) << e.out;
    const size_t test_at = e.out.find("\"test\":{");
    ASSERT_NE(test_at, std::string::npos) << e.out;
    EXPECT_EQ(std::stod(e.out.substr(e.out.find("\"ndcg@10\":", test_at) + 10)),
              json_number(read_file(ref[winner] + "/metrics.jsonl"), "test", "ndcg@10"))
        << e.out;
  }
}

// --out naming a folder that holds files the run did not write: refused before anything is
// written, the files untouched (the hand-written config read by --config included).
TEST(Cli, FolderHoldingFilesTheRunDidNotWriteIsRefusedUntouched) {
  const std::string exp = fresh_dir("own_config");
  make_folder(exp);
  const std::string mine = "# my baseline, see notes of 3 May\nmodel: Pop\neval_args:\n  split: {LS: valid_and_test}\n"
                           "  order: TO   # by time\n  mode: uni99\n";
  std::ofstream(exp + "/config.yaml") << mine;
  Result r = run("train --config=" + exp + "/config.yaml --out=" + exp);
  EXPECT_EQ(r.code, 64) << r.out;
  EXPECT_NE(r.out.find("run folder " + exp + " holds files this run did not write (config.yaml)"), std::string::npos)
      << r.out;
  EXPECT_EQ(read_file(exp + "/config.yaml"), mine);
  EXPECT_EQ(listing(exp), std::vector<std::string>{"config.yaml"});
  for (const std::string name : {"split.tsv", "checkpoint.bin", "model.bin", "metrics.jsonl", "notes.txt"}) {
    const std::string dir = fresh_dir("own_" + name);
    make_folder(dir);
    std::ofstream(dir + "/" + name) << "mine\n";
    r = run(std::string("train --model=Pop ") + kQuick + " --out=" + dir);
    EXPECT_EQ(r.code, 64) << name << ": " << r.out;
    EXPECT_NE(r.out.find("(" + name + ")"), std::string::npos) << r.out;
    EXPECT_EQ(read_file(dir + "/" + name), "mine\n") << name;
    EXPECT_EQ(listing(dir), std::vector<std::string>{name});
  }
  // an empty folder is taken; so is one that does not exist yet
  const std::string empty = fresh_dir("own_empty");
  make_folder(empty);
  r = run(std::string("train --model=Pop ") + kQuick + " --out=" + empty);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(only_run_files(listing(empty))) << joined(listing(empty));
}

// What train does with each state of a folder: a finished run is never trained over (resume
// without its checkpoint.bin: 66; popularity, which has none: 64; a new training: 64); a run
// killed before its first checkpoint starts again, by --resume or by the same command; another
// command is refused there.
TEST(Cli, FinishedRunsAreNeverTrainedOverKilledAttemptsContinue) {
  const std::string args = std::string("train --model=BPR --epochs=2 --threads=2 --stopping_step=0 ") + kQuick;
  const std::string done = fresh_dir("state_done");
  ASSERT_EQ(run(args + " --out=" + done).code, 0);
  const std::string model = read_file(done + "/model.bin"), metrics = read_file(done + "/metrics.jsonl");
  std::remove((done + "/checkpoint.bin").c_str());
  Result r = run("train --resume=" + done + " --epochs=3");
  EXPECT_EQ(r.code, 66) << r.out;
  EXPECT_NE(r.out.find("holds a finished run but no checkpoint.bin"), std::string::npos) << r.out;
  EXPECT_EQ(read_file(done + "/model.bin"), model);
  EXPECT_EQ(read_file(done + "/metrics.jsonl"), metrics);
  r = run(args + " --out=" + done);
  EXPECT_EQ(r.code, 64) << r.out;
  EXPECT_NE(r.out.find("already holds a finished run"), std::string::npos) << r.out;
  EXPECT_EQ(read_file(done + "/metrics.jsonl"), metrics);
  const std::string pop = fresh_dir("state_pop");
  ASSERT_EQ(run(std::string("train --model=Pop ") + kQuick + " --out=" + pop).code, 0);
  const std::string pop_metrics = read_file(pop + "/metrics.jsonl");
  r = run("train --resume=" + pop);
  EXPECT_EQ(r.code, 64) << r.out;
  EXPECT_NE(r.out.find("popularity"), std::string::npos) << r.out;
  EXPECT_EQ(read_file(pop + "/metrics.jsonl"), pop_metrics);
  // what a kill before the first checkpoint leaves: config.yaml, split.tsv, an empty metrics.jsonl
  auto killed_attempt = [&](const std::string& name) {
    const std::string dir = fresh_dir(name);
    EXPECT_EQ(run(args + " --out=" + dir).code, 0);
    for (const char* f : {"checkpoint.bin", "model.bin"}) std::remove((dir + "/" + f).c_str());
    std::ofstream(dir + "/metrics.jsonl", std::ios::trunc).flush();
    return dir;
  };
  const std::string again = killed_attempt("state_killed_resume");
  r = run("train --resume=" + again + " --quiet=false");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("no checkpoint yet: from the start"), std::string::npos) << r.out;
  EXPECT_EQ(metrics_without_timings(again), metrics_without_timings(done));
  const std::string same = killed_attempt("state_killed_same");
  r = run(args + " --quiet=false --out=" + same);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("an earlier attempt of this run was stopped"), std::string::npos) << r.out;
  EXPECT_EQ(metrics_without_timings(same), metrics_without_timings(done));
  const std::string other = killed_attempt("state_killed_other");
  const std::string split = read_file(other + "/split.tsv");
  r = run(args + " --seed=5 --out=" + other);
  EXPECT_EQ(r.code, 64) << r.out;
  EXPECT_NE(r.out.find("holds another run"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("seed: 2020"), std::string::npos) << r.out;
  EXPECT_EQ(read_file(other + "/split.tsv"), split);
  EXPECT_NE(read_file(other + "/config.yaml").find("\nseed: 2020\n"), std::string::npos);
}

// A fresh run that fails before its first checkpoint leaves no folder behind (here: a
// non-finite loss in epoch 1, after config.yaml and split.tsv were written).
TEST(Cli, FailedFreshRunLeavesNoFolder) {
  const std::string out = fresh_dir("failed_fresh");
  const Result r = run(std::string("train --model=BPR --epochs=3 --learner=sgd --learning_rate=1e38 ") + kQuick +
                       " --out=" + out + "/nested");
  EXPECT_EQ(r.code, 70) << r.out;
  EXPECT_NE(r.out.find("no epoch had finished"), std::string::npos) << r.out;
  EXPECT_FALSE(exists(out + "/nested")) << joined(listing(out + "/nested"));
  EXPECT_FALSE(exists(out));
}

// ---- silent acceptances and unhelpful messages (issue 13) ----

namespace {
std::string inter_file(const std::string& name, const std::string& rows) {
  const std::string path = ::testing::TempDir() + "/convncf_cli_" + name + "_" + std::to_string(getpid()) + ".inter";
  std::ofstream(path) << "user_id:token\titem_id:token\ttimestamp:float\n" << rows;
  return path;
}
}  // namespace

// No test query at all: refused before training (exit 65), saying why and how many users were
// lost at which step; nothing written.
TEST(Cli, NoTestQueriesIsRefusedBeforeTraining) {
  std::string rows;
  for (int u = 0; u < 50; ++u) rows += "u" + std::to_string(u) + "\ti" + std::to_string(u % 10) + "\t1\n";
  const std::string one_each = inter_file("one_each", rows);
  const std::string out = fresh_dir("no_test");
  Result r = run("train --model=BPR --epochs=1 --eval_args.split.LS=valid_and_test --dataset=" + one_each + " --out=" + out);
  EXPECT_EQ(r.code, 65) << r.out;
  EXPECT_NE(r.out.find("no test queries"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("50 users in the data, 50 after the filters, 0 with a test interaction after the split"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("all 50 have a single interaction"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("epoch 1"), std::string::npos) << r.out;
  EXPECT_FALSE(exists(out));
  // a single item: three interactions per user with it, one left after rm_dup_inter: first
  rows.clear();
  for (int u = 0; u < 30; ++u)
    for (int k = 0; k < 3; ++k) rows += "u" + std::to_string(u) + "\tonly\t" + std::to_string(k) + "\n";
  r = run("train --model=BPR --epochs=1 --dataset=" + inter_file("single_item", rows) + " --out=" + out);
  EXPECT_EQ(r.code, 65) << r.out;
  EXPECT_NE(r.out.find("30 users in the data, 30 after the filters, 0 with a test interaction"), std::string::npos)
      << r.out;
  EXPECT_FALSE(exists(out));
  // a split without a test share
  r = run("train --model=Pop --eval_args.split.RS=[1,0,0] --out=" + out);
  EXPECT_EQ(r.code, 65) << r.out;
  EXPECT_NE(r.out.find("1000 users in the data, 1000 after the filters, 0 with a test interaction"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("the test share of the split is 0"), std::string::npos) << r.out;
  EXPECT_FALSE(exists(out));
  // only validation empty: said how validation and early stopping behave
  r = run("train --model=BPR --epochs=2 --eval_args.split.LS=test_only --eval_mode=uni20 --out=" + out);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("no validation queries (the split has no validation interactions): every epoch trains, "
                       "nothing stops early, and the last epoch's model is tested"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(json_number(read_file(out + "/metrics.jsonl"), "test", "best_epoch"), 2);
}

// rm_dup_inter: keep: the split's counts add up to the interactions, and split.tsv read back by
// split_file gives the same split.
TEST(Cli, RepeatedInteractionsKeptAreCountedAndSplitFileReadsThemBack) {
  std::string rows;
  for (int u = 0; u < 20; ++u)  // 20 interactions per user on 4 items: valid and test get 2 each, often a pair twice
    for (int k = 0; k < 20; ++k) rows += "u" + std::to_string(u) + "\ti" + std::to_string((u + k * k) % 4) + "\t" +
                                         std::to_string(k) + "\n";
  const std::string data = inter_file("dups", rows);
  const std::string a = fresh_dir("dups_a"), b = fresh_dir("dups_b");
  Result r = run("train --model=Pop --rm_dup_inter=keep --eval_mode=full --dataset=" + data + " --out=" + a);
  ASSERT_EQ(r.code, 0) << r.out;
  const size_t at = r.out.find("split ratio 0.8/0.1/0.1 RO: ");
  ASSERT_NE(at, std::string::npos) << r.out;
  int64_t train = 0, valid = 0, test = 0;
  ASSERT_EQ(std::sscanf(r.out.c_str() + at, "split ratio 0.8/0.1/0.1 RO: %ld train, %ld valid, %ld test", &train, &valid,
                        &test),
            3)
      << r.out;
  EXPECT_EQ(train + valid + test, 400) << r.out;
  EXPECT_EQ(valid, 40) << r.out;  // two per user: floor(0.1 * 20)
  EXPECT_EQ(test, 40) << r.out;
  std::istringstream split(read_file(a + "/split.tsv"));
  std::string line;
  int lines = 0;
  while (std::getline(split, line)) lines += !line.empty() && line[0] != '#';
  EXPECT_EQ(lines, 1 + 400) << "a header and one line per interaction";
  r = run("train --model=Pop --rm_dup_inter=keep --eval_mode=full --dataset=" + data + " --split_file=" + a +
          "/split.tsv --out=" + b);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find(": " + std::to_string(train) + " train, 40 valid, 40 test"), std::string::npos) << r.out;
  EXPECT_EQ(json_number(read_file(b + "/metrics.jsonl"), "test", "ndcg@10"),
            json_number(read_file(a + "/metrics.jsonl"), "test", "ndcg@10"));
  EXPECT_EQ(json_number(read_file(b + "/metrics.jsonl"), "test", "recall@10"),
            json_number(read_file(a + "/metrics.jsonl"), "test", "recall@10"));
}

// Out of memory: the size asked for, what for, and the memory available; no folder left.
TEST(Cli, OutOfMemorySaysWhatAndHowMuchAndLeavesNoFolder) {
  const std::string tiny = inter_file("tiny", "a\tx\t1\na\ty\t2\na\tz\t3\nb\tx\t1\nb\ty\t2\nb\tz\t3\n");
  const std::string out = fresh_dir("oom");
  // a 262144 x 262144 interaction map: terabytes of feature maps on any machine
  const Result r = run("train --embedding_size=262144 --epochs=1 --threads=2 --dataset=" + tiny + " --out=" + out);
  EXPECT_EQ(r.code, 70) << r.out;
  EXPECT_NE(r.out.find("out of memory: the CPU engine's feature maps"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" TB"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("available"), std::string::npos) << r.out;
  EXPECT_FALSE(exists(out));
}

// A dataset path that is a symbolic link loop or a dangling link is named as such.
TEST(Cli, DatasetSymlinkLoopIsNamed) {
  const std::string dir = fresh_dir("symlinks");
  make_folder(dir);
  ASSERT_EQ(symlink((dir + "/loop").c_str(), (dir + "/loop").c_str()), 0);
  ASSERT_EQ(symlink((dir + "/nowhere.inter").c_str(), (dir + "/dangling.inter").c_str()), 0);
  const std::string out = fresh_dir("symlinks_out");
  Result r = run("train --dataset=" + dir + "/loop --out=" + out);
  EXPECT_EQ(r.code, 66) << r.out;
  EXPECT_NE(r.out.find("dataset " + dir + "/loop is a symbolic link loop (too many levels of symbolic links)"),
            std::string::npos)
      << r.out;
  r = run("train --dataset=" + dir + "/dangling.inter --out=" + out);
  EXPECT_EQ(r.code, 66) << r.out;
  EXPECT_NE(r.out.find("is a symbolic link to " + dir + "/nowhere.inter, which does not exist"), std::string::npos)
      << r.out;
  EXPECT_FALSE(exists(out));
}

// The done line names only the files the run has; the epoch line shows the training and the
// validation seconds and the run's ETA from both.
TEST(Cli, DoneAndEpochLinesSayWhatHappened) {
  const std::string pop = fresh_dir("done_pop");
  Result r = run("train --model=Pop --epochs=0 --eval_mode=uni20 --out=" + pop);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find(pop + "/{config.yaml,split.tsv,metrics.jsonl,model.bin}"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("checkpoint.bin"), std::string::npos) << r.out;
  EXPECT_FALSE(exists(pop + "/checkpoint.bin"));
  const std::string bpr = fresh_dir("done_bpr");
  r = run("train --model=BPR --epochs=3 --eval_step=2 --eval_mode=uni20 --out=" + bpr);
  ASSERT_EQ(r.code, 0) << r.out;
  std::istringstream in(r.out);
  std::string line;
  std::vector<std::string> epochs;
  while (std::getline(in, line))
    if (line.compare(0, 6, "epoch ") == 0) epochs.push_back(line);
  ASSERT_EQ(epochs.size(), 3u) << r.out;
  EXPECT_NE(epochs[0].find("  train "), std::string::npos) << epochs[0];
  EXPECT_NE(epochs[0].find(" triples/s  ETA >"), std::string::npos) << epochs[0] << ": no validation measured yet";
  EXPECT_NE(epochs[1].find(" triples/s  validation "), std::string::npos) << epochs[1];
  EXPECT_NE(epochs[1].find(" s  ETA 0:"), std::string::npos) << epochs[1];
  EXPECT_EQ(epochs[2].find("validation"), std::string::npos) << epochs[2];
  EXPECT_NE(epochs[2].find("ETA 0:00"), std::string::npos) << epochs[2];
  EXPECT_NE(r.out.find(bpr + "/{config.yaml,split.tsv,metrics.jsonl,model.bin,checkpoint.bin}"),
            std::string::npos)
      << r.out;
}
