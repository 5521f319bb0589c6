// test_checkpoint.cpp: checkpoint.bin round trip, every kind of damage refused with exit 65, and
// the early-stopping rule kept in the checkpoint
// (the SIGKILL and resume-identity tests are in test_cli.cpp).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "convncf/checkpoint.hpp"
#include "convncf/early_stopping.hpp"
#include "convncf/errors.hpp"

using namespace convncf;

namespace {

Checkpoint sample() {
  Checkpoint c;
  c.config_yaml = "model: ConvNCF\nepochs: 7\n";
  c.data_fingerprint = 0x1234567890abcdefull;
  c.epoch = 3;
  c.global_step = 147;
  c.best_epoch = 2;
  c.best_value = 0.125;
  c.evals_without_gain = 1;
  c.stopped = true;
  for (ModelFile* m : {&c.latest, &c.best}) {
    m->params.model = ModelKind::BPR;
    m->params.E = 2;
    m->params.n_users = 2;
    m->params.n_items = 3;
    m->params.P = {1, 2, 3, 4};
    m->params.Q = {5, 6, 7, 8, 9, 10};
    m->user_ids = {"u1", "u2"};
    m->item_ids = {"a", "b", "c"};
  }
  c.best.params.P[0] = -1;
  c.optimizers = {{5, {0.5f, 0.25f}, {}}, {5, {1, 2, 3}, {4, 5, 6}}, {0, {}, {}}};
  return c;
}

std::string path_of(const char* name) { return ::testing::TempDir() + "/convncf_ckpt_" + name; }

void expect_data_error(const std::string& path, const std::string& part) {
  try {
    load_checkpoint(path);
    ADD_FAILURE() << "loaded a damaged checkpoint (" << part << ")";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitData) << e.what();
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

std::string bytes_of(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
void write_bytes(const std::string& p, const std::string& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << b;
}

}  // namespace

TEST(Checkpoint, RoundTripsEveryField) {
  const std::string p = path_of("round.bin");
  const Checkpoint a = sample();
  save_checkpoint(p, a);
  const Checkpoint b = load_checkpoint(p);
  EXPECT_EQ(b.config_yaml, a.config_yaml);
  EXPECT_EQ(b.data_fingerprint, a.data_fingerprint);
  EXPECT_EQ(b.epoch, 3);
  EXPECT_EQ(b.global_step, 147u);
  EXPECT_EQ(b.best_epoch, 2);
  EXPECT_EQ(b.best_value, 0.125);
  EXPECT_EQ(b.evals_without_gain, 1);
  EXPECT_TRUE(b.stopped);
  EXPECT_EQ(b.latest.params.P, a.latest.params.P);
  EXPECT_EQ(b.best.params.P, a.best.params.P);
  EXPECT_EQ(b.latest.params.Q, a.latest.params.Q);
  EXPECT_EQ(b.best.item_ids, a.best.item_ids);
  ASSERT_EQ(b.optimizers.size(), 3u);
  EXPECT_EQ(b.optimizers[1].steps, 5);
  EXPECT_EQ(b.optimizers[1].s1, (std::vector<float>{4, 5, 6}));
  EXPECT_EQ(b.optimizers[0].s0, (std::vector<float>{0.5f, 0.25f}));
  EXPECT_FALSE(std::ifstream(p + ".tmp").good()) << "the temporary file is renamed away";
  std::remove(p.c_str());
}

TEST(Checkpoint, DamageIsRefusedWithExit65) {
  const std::string p = path_of("damage.bin");
  save_checkpoint(p, sample());
  const std::string good = bytes_of(p);
  // every truncation point, and a flipped bit at every 7th byte
  for (size_t n = 0; n < good.size(); n += 3) {
    write_bytes(p, good.substr(0, n));
    expect_data_error(p, p);
  }
  for (size_t i = 0; i < good.size(); i += 7) {
    std::string bad = good;
    bad[i] = char(bad[i] ^ 0x10);
    write_bytes(p, bad);
    expect_data_error(p, i < 8 ? "bad magic" : "checksum");
  }
  write_bytes(p, "CONVNCF\0 a model file, not a checkpoint");
  expect_data_error(p, "not a convncf checkpoint");
  std::remove(p.c_str());
  try {
    load_checkpoint(p);
    ADD_FAILURE() << "loaded a missing checkpoint";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitNoInput);
  }
}

TEST(EarlyStopping, RecBoleSemantics) {
  // values 0.1 0.3 0.3 0.2 0.25 0.2 with stopping_step 2: the tie at epoch 3 is a gain (best moves
  // to 3), epochs 4 and 5 are not, epoch 6 is the third in a row: stop.
  EarlyStopping es;
  bool gained = false;
  EXPECT_FALSE(es.update(0.1, 1, 2, &gained));
  EXPECT_TRUE(gained);
  EXPECT_FALSE(es.update(0.3, 2, 2, &gained));
  EXPECT_FALSE(es.update(0.3, 3, 2, &gained));
  EXPECT_TRUE(gained);
  EXPECT_EQ(es.best_epoch, 3);
  EXPECT_FALSE(es.update(0.2, 4, 2, &gained));
  EXPECT_FALSE(gained);
  EXPECT_FALSE(es.update(0.25, 5, 2, &gained));
  EXPECT_EQ(es.evals_without_gain, 2);
  EXPECT_TRUE(es.update(0.2, 6, 2, &gained));
  EXPECT_EQ(es.best_epoch, 3);
  EXPECT_EQ(es.best_value, 0.3);
  // stopping_step 0 never stops
  EarlyStopping never;
  never.update(1.0, 1, 0, &gained);
  for (int e = 2; e < 50; ++e) EXPECT_FALSE(never.update(0.0, e, 0, &gained));
}
