// emulated_device.hpp: the emulated device's memory registry, shared by the fakes of this folder
// (fake_cudart.cpp defines it). Device memory is host memory, but every cudaMalloc block is
// recorded, so a launcher or a copy can check that a pointer it is given is device memory with
// room for the shape it is told: a wrong size, offset or a host pointer handed to a kernel throws
// here, naming the call and the argument, where on a GPU it would read or write out of bounds.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace convncf {
namespace emul {

// Throws Error(kExitSoftware) "<who>: <what> ..." unless [p, p + bytes) lies inside one live
// device allocation. bytes == 0 still requires p to be device memory (or null when allow_null).
void check_device(const void* p, size_t bytes, const char* who, const char* what,
                  bool allow_null = false);
// Element-count form: n elements of T (null is accepted for n <= 0; the launchers' own null
// checks are separate, as in kernels/*.cu).
template <typename T>
void check_elems(const T* p, int64_t n, const char* who, const char* what) {
  if (n < 0) n = 0;
  check_device(static_cast<const void*>(p), static_cast<size_t>(n) * sizeof(T), who, what, n == 0);
}
// An embedding table read by row ids: ids[0 .. n) must be >= 0 and rows 0 .. max id of the
// (?, E) table must fit in its allocation (ids are device memory too, checked here).
void check_table_rows(const float* table, int E, const int32_t* ids, int64_t n, const char* who,
                      const char* what);
// True for a pointer into a live device allocation.
bool is_device(const void* p);
// Throws unless s is the legacy default stream (null) or a live stream of cudaStreamCreate*.
void check_stream(cudaStream_t s, const char* who);
// Live device allocations and bytes (leak checks in the tests).
int64_t live_allocations();

// Ranks of a data-parallel run as threads of one test (fake_nccl.cpp): each thread joins the team
// with its rank before making its NcclComm; the communicator's collectives are rendezvous of the
// team's threads.
class Team {
 public:
  explicit Team(int ranks);
  ~Team();
  int ranks() const { return m_ranks; }
  void barrier();
  // the rank's buffer for the collective under way, read by the others after the next barrier
  void deposit(int rank, const void* p, size_t bytes);
  const void* input(int rank) const;
  size_t bytes(int rank) const;

 private:
  struct State;
  int m_ranks;
  std::unique_ptr<State> m_state;
};
void join_team(Team* team, int rank);  // null: leave it

}  // namespace emul
}  // namespace convncf
