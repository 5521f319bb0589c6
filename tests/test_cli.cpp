// test_cli.cpp: the convncf command end to end (the built binary, run as a user would):
// exit codes and messages of bad input, nothing written on failure, the run folder's contents,
// pretraining, and that MF-BPR and ConvNCF learn the synthetic data's planted structure
// (they beat popularity on test NDCG@10).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
  EXPECT_NE(a.out.find("device auto: using the CPU engine"), std::string::npos) << a.out;
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
