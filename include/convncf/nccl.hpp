// nccl.hpp: NCCL for the CUDA engine's data-parallel steps (dist.hpp, gpu_engine.hpp).
//
// NCCL is not linked: libnccl.so.2 is loaded with dlopen the first time a communicator is made
// (or `convncf info` asks), so the binary starts and trains on one GPU where NCCL is absent. It is
// looked for, in order: CONVNCF_NCCL_LIBRARY (a file); the loader's own search (LD_LIBRARY_PATH,
// the cache); the CUDA toolkit's library folders (the one this was built with, /usr/local/cuda);
// PyPI's nvidia-nccl wheel (site-packages/nvidia/nccl/lib, which PyTorch installs) under the
// active virtual environment, conda, and the usual Python prefixes. The header is the toolkit's
// (nccl.h beside cuda_runtime.h): only its types and the functions' signatures are used.
//
// One communicator per process: every rank of the World makes it (collectively), rank 0 draws
// NCCL's unique id and World::bcast carries it to the others. With one rank it is a communicator
// of one (CONVNCF_FORCE_NCCL=1 trains through it on one GPU: the check of the exchange's code
// that tools/gpu_check.sh runs; the same bits as without it).
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace convncf {

class World;

// The library: where it was found and its version, or why it was not.
struct NcclInfo {
  bool found = false;
  std::string path, version;  // version "2.28.9"
  std::string why;            // not found: every place tried, one per line
};
// Loads it once (later calls return the first answer).
const NcclInfo& nccl_info();
// Tries `path` alone, without keeping it (the tests: a named file that is missing or not NCCL).
NcclInfo nccl_probe(const std::string& path);
// CONVNCF_FORCE_NCCL=1: the CUDA engine exchanges through NCCL even with one rank.
inline bool nccl_forced() {
  const char* e = std::getenv("CONVNCF_FORCE_NCCL");
  return e && std::strcmp(e, "1") == 0;
}

class NcclComm {
 public:
  // Collective over `world`: every rank calls it, with its device already current. Throws
  // Error(kExitUnavailable) when NCCL cannot be loaded, Error(kExitSoftware) when it fails.
  explicit NcclComm(const World& world);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  int rank() const { return m_rank; }
  int size() const { return m_size; }
  // "NCCL 2.28.9 (/path/libnccl.so.2), 2 ranks"
  std::string describe() const;

  // The collectives between group_begin and group_end are launched together (ncclGroupStart /
  // ncclGroupEnd); each is enqueued on `stream` and runs when the stream reaches it.
  void group_begin();
  void group_end();
  // Each adds what this rank sends to World's bytes_sent (its buffer, its part), so that a run's
  // bytes-per-step line counts the GPU ranks' exchange as it counts the CPU ranks'.
  // buf[0 .. n) summed over the ranks, in place, the same bits on every rank.
  void allreduce_sum(float* buf, size_t n, cudaStream_t stream);
  // Every rank's `bytes` bytes of `send`, in rank order, into `recv` (size() * bytes).
  void allgather(const void* send, void* recv, size_t bytes, cudaStream_t stream);
  // NCCL's asynchronous error, if any (a peer died, the network failed): Error naming it.
  void check_async() const;

 private:
  void* m_comm = nullptr;
  int m_rank = 0, m_size = 1;
};

}  // namespace convncf
