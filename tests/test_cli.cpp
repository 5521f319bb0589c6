// test_cli.cpp: the convncf command end to end (the built binary, run as a user would):
// exit codes and messages of bad input, nothing written on failure, the run folder's contents,
// pretraining, and that MF-BPR and ConvNCF learn the synthetic data's planted structure
// (they beat popularity on test NDCG@10).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "convncf/model_io.hpp"

#ifndef CONVNCF_BINARY
#define CONVNCF_BINARY "convncf"
#endif

namespace {

struct Result {
  int code;
  std::string out;  // stdout and stderr together
};

Result run(const std::string& args) {
  const std::string cmd = std::string(CONVNCF_BINARY) + " " + args + " 2>&1";
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

const char* kQuick = "--eval_mode=uni99 --quiet";

}  // namespace

TEST(Cli, NoArgumentsPrintsUsage) {
  const Result r = run("");
  EXPECT_EQ(r.code, 64);
  EXPECT_NE(r.out.find("usage: convncf train"), std::string::npos);
  EXPECT_EQ(run("--help").code, 0);
  const Result h = run("train --help");
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.out.find("embedding_size"), std::string::npos);
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

TEST(Cli, DeviceCudaWithoutEngineExits69) {
  const std::string out = fresh_dir("cuda");
  const Result r = run("train --device=cuda --out=" + out);
  EXPECT_EQ(r.code, 69) << r.out;
  EXPECT_FALSE(exists(out));
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
                       "--cnn_kernels=[8,8] --cnn_strides=[8,8] --eval_mode=uni99 --out=" + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("epoch 1/2 (warm-up)"), std::string::npos) << r.out;
  const std::string cfg = read_file(out + "/config.yaml");
  EXPECT_NE(cfg.find("learner: adagrad"), std::string::npos) << cfg;
  EXPECT_NE(cfg.find("reg_type: squared"), std::string::npos) << cfg;
  const std::string m = read_file(out + "/metrics.jsonl");
  EXPECT_GT(json_number(m, "epoch", "loss"), 0.0);
  EXPECT_GE(json_number(m, "test", "best_epoch"), 1.0);
}
