// world.cpp: World (dist.hpp): one process, or MPI's world through libconvncf_mpi.so loaded with
// dlopen (mpi_module.h).
#include "convncf/dist.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "convncf/errors.hpp"
#include "mpi_module.h"

#ifndef CONVNCF_INSTALL_LIBDIR
#define CONVNCF_INSTALL_LIBDIR "lib"
#endif

namespace convncf {
namespace {

struct Module {
  void* handle = nullptr;
  convncf_mpi_allgatherv_fn allgatherv = nullptr;
  convncf_mpi_allgather_i64_fn allgather_i64 = nullptr;
  convncf_mpi_bcast_fn bcast = nullptr;
  convncf_mpi_barrier_fn barrier = nullptr;
  convncf_mpi_abort_fn abort = nullptr;
  convncf_mpi_finalize_fn finalize = nullptr;
  bool initialised = false;
};

Module g_mpi;
World g_world;

int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return -1;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  return (*end == 0 && x >= 0 && x < (1 << 30)) ? int(x) : -1;
}

// The folder of the running executable ("" when unknown).
std::string exe_dir() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  std::string p(buf, size_t(n));
  const size_t slash = p.rfind('/');
  return slash == std::string::npos ? "" : p.substr(0, slash);
}

template <typename F>
F symbol(void* h, const char* name, const std::string& path) {
  void* s = dlsym(h, name);
  if (!s) throw Error(kExitUnavailable, path + " has no " + name + ": not convncf's MPI module");
  return reinterpret_cast<F>(s);
}

// Loads the module: CONVNCF_MPI_MODULE, else beside the executable, else ../lib. Error with every
// place tried and dlopen's reason when none loads.
void load_module() {
  std::vector<std::string> tries;
  if (const char* e = std::getenv("CONVNCF_MPI_MODULE"); e && *e) tries.push_back(e);
  const std::string dir = exe_dir();
  if (!dir.empty()) {
    tries.push_back(dir + "/libconvncf_mpi.so");
    tries.push_back(dir + "/../" CONVNCF_INSTALL_LIBDIR "/libconvncf_mpi.so");  // an installed tree
  }
  std::string why;
  for (const std::string& path : tries) {
    if (access(path.c_str(), F_OK) != 0) {
      why += "\n  " + path + ": not found";
      continue;
    }
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);  // GLOBAL: MPI's own plugins resolve against it
    if (!h) {
      why += "\n  " + path + ": " + dlerror();
      continue;
    }
    const auto abi = symbol<convncf_mpi_abi_fn>(h, "convncf_mpi_abi", path);
    if (abi() != CONVNCF_MPI_MODULE_ABI)
      throw Error(kExitUnavailable, path + " is another version of convncf's MPI module (interface " +
                                        std::to_string(abi()) + ", expected " + std::to_string(CONVNCF_MPI_MODULE_ABI) + ")");
    g_mpi.handle = h;
    g_mpi.allgatherv = symbol<convncf_mpi_allgatherv_fn>(h, "convncf_mpi_allgatherv", path);
    g_mpi.allgather_i64 = symbol<convncf_mpi_allgather_i64_fn>(h, "convncf_mpi_allgather_i64", path);
    g_mpi.bcast = symbol<convncf_mpi_bcast_fn>(h, "convncf_mpi_bcast", path);
    g_mpi.barrier = symbol<convncf_mpi_barrier_fn>(h, "convncf_mpi_barrier", path);
    g_mpi.abort = symbol<convncf_mpi_abort_fn>(h, "convncf_mpi_abort", path);
    g_mpi.finalize = symbol<convncf_mpi_finalize_fn>(h, "convncf_mpi_finalize", path);
    return;
  }
  throw Error(kExitUnavailable,
              "launched as " + std::to_string(World::launched_size()) +
                  " ranks, but convncf's MPI module (libconvncf_mpi.so) could not be loaded; it is built where "
                  "CMake finds an MPI (Debian: libopenmpi-dev), or set CONVNCF_MPI_MODULE. Tried:" + why);
}

[[noreturn]] void mpi_failed(const char* what, int rc, const char* err) {
  throw Error(kExitSoftware, std::string(what) + " failed on rank " + std::to_string(g_world.rank()) + " (code " +
                                 std::to_string(rc) + "): " + err);
}

}  // namespace

World& World::get() { return g_world; }

int World::launched_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"}) {
    const int n = env_int(name);
    if (n > 0) return n;
  }
  // srun: SLURM_NTASKS is set for the whole allocation; a task of a step also has SLURM_STEP_ID
  if (std::getenv("SLURM_STEP_ID") && std::getenv("SLURM_PROCID")) {
    const int n = env_int("SLURM_NTASKS");
    if (n > 0) return n;
  }
  return 1;
}

void World::init(int* argc, char*** argv) {
  if (launched_size() <= 1 || g_mpi.initialised) return;
  load_module();
  auto init = symbol<convncf_mpi_init_fn>(g_mpi.handle, "convncf_mpi_init", "libconvncf_mpi.so");
  char version[256] = {0}, err[512] = {0};
  const int rc = init(argc, argv, &g_world.m_rank, &g_world.m_size, &g_world.m_local_rank, version, sizeof version,
                      err, sizeof err);
  if (rc != 0) throw Error(kExitUnavailable, std::string("MPI could not start: ") + err);
  g_mpi.initialised = true;
  // MPI_Get_library_version's first part names the library and its version ("Open MPI v4.1.4");
  // the rest (package, build date) would make every line that names the world long
  g_world.m_library = std::string(version).substr(0, std::string(version).find(','));
}

void World::finalize() {
  if (!g_mpi.initialised) return;
  g_mpi.initialised = false;
  g_mpi.finalize();
}

std::string World::describe() const {
  if (!distributed()) return "1 process";
  return std::to_string(m_size) + " ranks (" + (m_library.empty() ? "MPI" : m_library) + "), this is rank " +
         std::to_string(m_rank) + ", local rank " + std::to_string(m_local_rank);
}

std::vector<char> World::allgather_bytes(const void* in, int64_t bytes, std::vector<int64_t>* counts) const {
  if (!distributed()) {
    if (counts) *counts = {bytes};
    const char* p = static_cast<const char*>(in);
    return std::vector<char>(p, p + bytes);
  }
  std::vector<int64_t> c(static_cast<size_t>(m_size));
  char err[512] = {0};
  int rc = g_mpi.allgather_i64(bytes, c.data(), err, sizeof err);
  if (rc != 0) mpi_failed("gathering the part sizes", rc, err);
  int64_t total = 0;
  for (const int64_t x : c) total += x;
  std::vector<char> out(static_cast<size_t>(total));
  rc = g_mpi.allgatherv(in, bytes, out.data(), c.data(), err, sizeof err);
  if (rc != 0) mpi_failed("gathering the parts", rc, err);
  count_sent(bytes);
  if (counts) *counts = std::move(c);
  return out;
}

void World::bcast(void* buf, int64_t bytes, int root) const {
  if (!distributed()) return;
  char err[512] = {0};
  const int rc = g_mpi.bcast(buf, bytes, root, err, sizeof err);
  if (rc != 0) mpi_failed("broadcasting", rc, err);
  if (root == m_rank) count_sent(bytes);
}

void World::bcast_string(std::string& s, int root) const {
  if (!distributed()) return;
  int64_t n = int64_t(s.size());
  bcast(&n, sizeof n, root);
  s.resize(size_t(n));
  if (n) bcast(&s[0], n, root);
}

void World::barrier() const {
  if (!distributed()) return;
  char err[512] = {0};
  const int rc = g_mpi.barrier(err, sizeof err);
  if (rc != 0) mpi_failed("the barrier", rc, err);
}

void World::abort(int code) const {
  if (distributed() && g_mpi.initialised) g_mpi.abort(code);
  std::exit(code);
}

}  // namespace convncf
