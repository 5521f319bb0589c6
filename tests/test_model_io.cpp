// test_model_io.cpp: model.bin round trip, and refusal of missing, corrupt, truncated files.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>

#include "convncf/errors.hpp"
#include "convncf/model_io.hpp"

using namespace convncf;

namespace {
ModelFile sample() {
  ModelFile m;
  m.params.model = ModelKind::ConvNCF;
  m.params.E = 2;
  m.params.n_users = 2;
  m.params.n_items = 3;
  m.params.P = {1, 2, 3, 4};
  m.params.Q = {-1, -2, -3, -4, 0.5f, 0.25f};
  m.params.net = {9, 8, 7};
  m.channels = {1, 4};
  m.kernels = {2};
  m.user_ids = {"alice", "b\xc3\xb6"};
  m.item_ids = {"1", "22", "333"};
  return m;
}
std::string read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
void write_all(const std::string& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << s;
}
int load_code(const std::string& p, std::string* msg) {
  try {
    load_model(p);
  } catch (const Error& e) {
    *msg = e.what();
    return e.code();
  }
  return 0;
}
}  // namespace

TEST(ModelIo, RoundTrip) {
  const std::string p = ::testing::TempDir() + "/convncf_model_rt.bin";
  const ModelFile m = sample();
  save_model(p, m);
  const ModelFile r = load_model(p);
  EXPECT_EQ(r.params.model, m.params.model);
  EXPECT_EQ(r.params.E, 2);
  EXPECT_EQ(r.params.P, m.params.P);
  EXPECT_EQ(r.params.Q, m.params.Q);
  EXPECT_EQ(r.params.net, m.params.net);
  EXPECT_EQ(r.channels, m.channels);
  EXPECT_EQ(r.kernels, m.kernels);
  EXPECT_EQ(r.user_ids, m.user_ids);
  EXPECT_EQ(r.item_ids, m.item_ids);
  std::ifstream tmp(p + ".tmp");
  EXPECT_FALSE(tmp.good()) << "temporary file left behind";
}

TEST(ModelIo, RefusesBadFiles) {
  const std::string p = ::testing::TempDir() + "/convncf_model_bad.bin";
  save_model(p, sample());
  const std::string good = read_all(p);
  std::string msg;
  EXPECT_EQ(load_code(p + ".missing", &msg), kExitNoInput);
  std::string flipped = good;
  flipped[40] ^= 1;
  write_all(p, flipped);
  EXPECT_EQ(load_code(p, &msg), kExitData);
  EXPECT_NE(msg.find("checksum"), std::string::npos) << msg;
  write_all(p, good.substr(0, good.size() / 2));
  EXPECT_EQ(load_code(p, &msg), kExitData);
  write_all(p, "not a model at all, just text");
  EXPECT_EQ(load_code(p, &msg), kExitData);
  EXPECT_NE(msg.find("magic"), std::string::npos) << msg;
  write_all(p, "");
  EXPECT_EQ(load_code(p, &msg), kExitData);
}
