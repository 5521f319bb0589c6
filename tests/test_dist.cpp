// test_dist.cpp: World (dist.hpp) as one process: every collective is a copy or nothing, so the
// training loop and the engine run the same code with and without MPI. The multi-rank behaviour
// is tested through mpirun by tests/dist_test.py (Dist.*).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "convncf/dist.hpp"

using namespace convncf;

TEST(Dist, OneProcessWorldCopies) {
  World& w = World::get();
  if (World::launched_size() > 1) GTEST_SKIP() << "run under a launcher";
  World::init(nullptr, nullptr);  // no launcher: stays one process, loads nothing
  EXPECT_FALSE(w.distributed());
  EXPECT_EQ(w.size(), 1);
  EXPECT_EQ(w.rank(), 0);
  EXPECT_EQ(w.describe(), "1 process");
  const std::vector<int> v{3, 1, 4};
  const auto all = w.allgather(v);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0], v);
  std::vector<int64_t> counts;
  const std::vector<char> bytes = w.allgather_bytes("abc", 3, &counts);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "abc");
  EXPECT_EQ(counts, std::vector<int64_t>{3});
  std::string s = "unchanged";
  w.bcast_string(s, 0);
  EXPECT_EQ(s, "unchanged");
  w.barrier();
  World::finalize();  // nothing to finalize
}
