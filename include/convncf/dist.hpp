// dist.hpp: the processes of a data-parallel run. Launched by mpirun (or srun) with more than one
// rank, the world is MPI's; otherwise it is this one process, and every call below is a copy.
//
// MPI is not linked into the library or the command: the build makes a small module,
// libconvncf_mpi.so (host/dist/mpi_shim.cpp, only where an MPI implementation is found), and
// World::init loads it with dlopen when the launcher's environment says there are several ranks
// (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_SIZE, or SLURM_NTASKS inside an srun step). So the binary
// starts on a machine without MPI (the GPU machines: one rank), and a multi-rank launch of a build
// without MPI is refused with the reason. The module is looked for where CONVNCF_MPI_MODULE says,
// beside the executable, or in the installed tree's library folder (../lib beside bin/).
//
// Every collective is blocking and ordered: the ranks call the same collectives in the same order
// (the training loop does: the schedule is a function of the seed). Data is exchanged as bytes and
// reassembled in rank order, so sums taken over gathered parts in that order are the same bits on
// every rank, and the same bits as one process whose threads took the same parts.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace convncf {

class World {
 public:
  // The process's world; init() first (main does, before any thread starts), else one process.
  static World& get();
  // Reads the launcher's environment and, with several ranks, loads MPI and joins its world.
  // Error(kExitUnavailable) when several ranks are launched but MPI cannot be loaded.
  static void init(int* argc, char*** argv);
  // MPI_Finalize where MPI was initialised (main, on a normal exit).
  static void finalize();

  int rank() const { return m_rank; }
  int size() const { return m_size; }
  int local_rank() const { return m_local_rank; }
  bool distributed() const { return m_size > 1; }
  // "1 process" or "4 ranks (MPI: Open MPI v4.1.4 ...), this is rank 2, local rank 0".
  std::string describe() const;
  // The launcher's world size from the environment (1 without one), for `info`.
  static int launched_size();

  // Every rank's `bytes` bytes, concatenated in rank order, on every rank; `counts` (optional)
  // receives each rank's byte count.
  std::vector<char> allgather_bytes(const void* in, int64_t bytes, std::vector<int64_t>* counts = nullptr) const;
  // Typed: every rank's vector in rank order (one vector per rank).
  template <typename T>
  std::vector<std::vector<T>> allgather(const std::vector<T>& in) const {
    std::vector<int64_t> counts;
    const std::vector<char> all = allgather_bytes(in.data(), int64_t(in.size() * sizeof(T)), &counts);
    std::vector<std::vector<T>> out(counts.size());
    int64_t at = 0;
    for (size_t r = 0; r < counts.size(); ++r) {
      out[r].resize(size_t(counts[r]) / sizeof(T));
      if (counts[r]) std::memcpy(out[r].data(), all.data() + at, size_t(counts[r]));
      at += counts[r];
    }
    return out;
  }
  // The same values on every rank: rank `root`'s bytes (the sizes must agree).
  void bcast(void* buf, int64_t bytes, int root) const;
  // Rank `root`'s string on every rank (its length first).
  void bcast_string(std::string& s, int root) const;
  void barrier() const;
  // Bytes this rank has sent into collectives so far (its parts of allgathers, its broadcasts),
  // those that went another way included: count_sent adds the CUDA engine's NCCL collectives
  // (nccl.hpp: its buffer of an all-reduce, its part of an all-gather), counted as these are.
  int64_t bytes_sent() const { return m_bytes_sent; }
  void count_sent(int64_t bytes) const { m_bytes_sent += bytes; }
  // Ends every rank of the job with `code` (MPI_Abort); one process: std::exit(code).
  [[noreturn]] void abort(int code) const;

 private:
  int m_rank = 0, m_size = 1, m_local_rank = 0;
  std::string m_library;  // MPI's own version string
  mutable int64_t m_bytes_sent = 0;
};

}  // namespace convncf
