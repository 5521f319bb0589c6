// fake_nccl.cpp: NCCL on the emulated device (nccl.hpp; host/cuda/nccl.cpp is not built here), so
// that the CUDA engine's data-parallel step (gpu_engine.cpp: shares, exchange, reassembly) runs in
// CI. Several ranks are threads of one test: each joins a Team (emulated_device.hpp) before it
// makes its communicator, and every collective is a rendezvous of the team's threads, executed at
// once as the emulated device executes everything: the sum in rank order, the gather in rank
// order. Several processes (the emulated command, convncf_emulated, under mpirun: dist_test.py's
// emulated_gpu case) exchange through World's MPI collectives instead, the emulated device's
// memory being host memory; the constructor broadcasts an id from rank 0 as NCCL's does and
// checks that every rank received it. A thread outside a team in one process gets a
// communicator of one rank (CONVNCF_FORCE_NCCL's case). Every buffer is checked to be device
// memory of the size the call is told.
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "convncf/dist.hpp"
#include "convncf/errors.hpp"
#include "convncf/nccl.hpp"
#include "emulated_device.hpp"

namespace convncf {
namespace emul {

struct Team::State {
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  uint64_t generation = 0;
  std::vector<const void*> in;  // each rank's buffer for the collective under way
  std::vector<size_t> bytes;
};

Team::Team(int ranks) : m_ranks(ranks), m_state(std::make_unique<State>()) {
  m_state->in.assign(size_t(ranks), nullptr);
  m_state->bytes.assign(size_t(ranks), 0);
}
Team::~Team() = default;

void Team::deposit(int rank, const void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(m_state->mu);
  m_state->in[size_t(rank)] = p;
  m_state->bytes[size_t(rank)] = bytes;
}
const void* Team::input(int rank) const { return m_state->in[size_t(rank)]; }
size_t Team::bytes(int rank) const { return m_state->bytes[size_t(rank)]; }

void Team::barrier() {
  State& s = *m_state;
  std::unique_lock<std::mutex> lock(s.mu);
  const uint64_t gen = s.generation;
  if (++s.arrived == m_ranks) {
    s.arrived = 0;
    ++s.generation;
    s.cv.notify_all();
  } else {
    s.cv.wait(lock, [&] { return s.generation != gen; });
  }
}

namespace {
thread_local Team* t_team = nullptr;
thread_local int t_rank = 0;
}  // namespace

void join_team(Team* team, int rank) {
  t_team = team;
  t_rank = rank;
}

}  // namespace emul

const NcclInfo& nccl_info() {
  static const NcclInfo info = [] {
    NcclInfo i;
    i.found = true;
    i.path = "emulated";
    i.version = "emulated";
    return i;
  }();
  return info;
}

NcclInfo nccl_probe(const std::string&) { return nccl_info(); }

namespace {
// m_comm of a communicator over World's processes (the others: null, one rank; a Team)
int g_world_comm = 0;
}  // namespace

NcclComm::NcclComm(const World& world) : m_rank(world.rank()), m_size(world.size()) {
  if (emul::t_team) {
    m_rank = emul::t_rank;
    m_size = emul::t_team->ranks();
    m_comm = emul::t_team;
    return;
  }
  if (!world.distributed()) return;
  // NCCL's unique id: rank 0's, broadcast (nccl.cpp); every rank must hold the same
  char id[128] = {0};
  if (m_rank == 0) std::snprintf(id, sizeof id, "emulated nccl id %d", int(getpid()));
  world.bcast(id, sizeof id, 0);
  for (const std::vector<char>& other : world.allgather(std::vector<char>(id, id + sizeof id)))
    if (std::memcmp(other.data(), id, sizeof id) != 0)
      throw Error(kExitSoftware, "emulated ncclCommInitRank: the ranks hold different ids");
  m_comm = &g_world_comm;
}
NcclComm::~NcclComm() = default;

std::string NcclComm::describe() const {
  return "NCCL emulated, " + std::to_string(m_size) + " ranks";
}
void NcclComm::group_begin() {}
void NcclComm::group_end() {}
void NcclComm::check_async() const {}

void NcclComm::allreduce_sum(float* buf, size_t n, cudaStream_t stream) {
  emul::check_stream(stream, "ncclAllReduce");
  emul::check_device(buf, n * sizeof(float), "ncclAllReduce", "buf");
  if (!m_comm) return;            // one rank: the sum is the buffer
  if (m_comm == &g_world_comm) {  // processes: every rank's buffer, summed in rank order
    const std::vector<std::vector<float>> all =
        World::get().allgather(std::vector<float>(buf, buf + n));
    for (size_t i = 0; i < n; ++i) {
      float x = all[0][i];
      for (size_t q = 1; q < all.size(); ++q) x += all[q][i];
      buf[i] = x;
    }
    return;
  }
  emul::Team& team = *static_cast<emul::Team*>(m_comm);
  team.deposit(m_rank, buf, n * sizeof(float));
  team.barrier();
  std::vector<float> sum(n, 0.0f);
  for (int q = 0; q < m_size; ++q) {
    if (team.bytes(q) != n * sizeof(float))
      throw Error(kExitSoftware,
                  "ncclAllReduce: rank " + std::to_string(q) + " reduces another count");
    const float* x = static_cast<const float*>(team.input(q));
    for (size_t i = 0; i < n; ++i) sum[i] = q == 0 ? x[i] : sum[i] + x[i];
  }
  team.barrier();  // every rank has read every input before any is overwritten
  std::memcpy(buf, sum.data(), n * sizeof(float));
}

void NcclComm::allgather(const void* send, void* recv, size_t bytes, cudaStream_t stream) {
  emul::check_stream(stream, "ncclAllGather");
  emul::check_device(send, bytes, "ncclAllGather", "send");
  emul::check_device(recv, bytes * size_t(m_size), "ncclAllGather", "recv");
  if (!m_comm) {
    std::memmove(recv, send, bytes);
    return;
  }
  if (m_comm == &g_world_comm) {
    std::vector<int64_t> counts;
    const std::vector<char> all = World::get().allgather_bytes(send, int64_t(bytes), &counts);
    for (const int64_t c : counts)
      if (size_t(c) != bytes)
        throw Error(kExitSoftware, "ncclAllGather: the ranks send different counts");
    std::memcpy(recv, all.data(), all.size());
    return;
  }
  emul::Team& team = *static_cast<emul::Team*>(m_comm);
  team.deposit(m_rank, send, bytes);
  team.barrier();
  for (int q = 0; q < m_size; ++q) {
    if (team.bytes(q) != bytes)
      throw Error(kExitSoftware,
                  "ncclAllGather: rank " + std::to_string(q) + " sends another count");
    std::memcpy(static_cast<char*>(recv) + size_t(q) * bytes, team.input(q), bytes);
  }
  team.barrier();
}

}  // namespace convncf
