// nccl.cpp: libnccl.so.2 loaded with dlopen, and the communicator of the ranks (nccl.hpp).
#include "convncf/nccl.hpp"

#include <dlfcn.h>
#include <glob.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "convncf/dist.hpp"
#include "convncf/errors.hpp"

#if CONVNCF_HAVE_NCCL
#include <nccl.h>

#ifndef CONVNCF_CUDA_LIBRARY_DIR
#define CONVNCF_CUDA_LIBRARY_DIR "/usr/local/cuda/lib64"
#endif

namespace convncf {
namespace {

// The functions used, resolved from the loaded library.
struct Api {
  void* handle = nullptr;
  decltype(&ncclGetVersion) get_version = nullptr;
  decltype(&ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&ncclCommInitRank) comm_init_rank = nullptr;
  decltype(&ncclCommDestroy) comm_destroy = nullptr;
  decltype(&ncclCommAbort) comm_abort = nullptr;
  decltype(&ncclCommGetAsyncError) comm_get_async_error = nullptr;
  decltype(&ncclGetErrorString) get_error_string = nullptr;
  decltype(&ncclGetLastError) get_last_error = nullptr;  // NCCL 2.13 on; may be absent
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclAllGather) all_gather = nullptr;
  decltype(&ncclGroupStart) group_start = nullptr;
  decltype(&ncclGroupEnd) group_end = nullptr;
};

Api g_api;

std::string version_string(int v) {
  // NCCL >= 2.9: major * 10000 + minor * 100 + patch; before: major * 1000 + minor * 100 + patch
  const int major = v >= 10000 ? v / 10000 : v / 1000;
  const int minor = v >= 10000 ? (v % 10000) / 100 : (v % 1000) / 100;
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(v % 100);
}

// Opens `path` (a file, or a bare name for the loader's search) and resolves the API into `api`;
// false with the reason in *why when it is not there or not NCCL.
bool open_library(const std::string& path, Api* api, NcclInfo* info, std::string* why) {
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    *why = path + ": " + (e ? e : "dlopen failed");
    return false;
  }
  Api a;
  a.handle = h;
  bool ok = true;
  auto need = [&](auto& fn, const char* name) {
    void* s = dlsym(h, name);
    if (!s && ok) {
      *why = path + ": has no " + name + " (not NCCL 2)";
      ok = false;
    }
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(s);
  };
  need(a.get_version, "ncclGetVersion");
  need(a.get_unique_id, "ncclGetUniqueId");
  need(a.comm_init_rank, "ncclCommInitRank");
  need(a.comm_destroy, "ncclCommDestroy");
  need(a.comm_abort, "ncclCommAbort");
  need(a.comm_get_async_error, "ncclCommGetAsyncError");
  need(a.get_error_string, "ncclGetErrorString");
  need(a.all_reduce, "ncclAllReduce");
  need(a.all_gather, "ncclAllGather");
  need(a.group_start, "ncclGroupStart");
  need(a.group_end, "ncclGroupEnd");
  a.get_last_error = reinterpret_cast<decltype(a.get_last_error)>(dlsym(h, "ncclGetLastError"));
  int v = 0;
  if (ok && a.get_version(&v) != ncclSuccess) {
    *why = path + ": ncclGetVersion failed";
    ok = false;
  }
  if (ok && v < 20000 && v / 1000 < 2) {
    *why = path + ": NCCL " + version_string(v) + " is older than NCCL 2";
    ok = false;
  }
  if (!ok) {
    dlclose(h);
    return false;
  }
  // which file the loader picked (a bare name may resolve anywhere on its path)
  Dl_info where{};
  info->path = dladdr(reinterpret_cast<void*>(a.get_version), &where) && where.dli_fname
                   ? where.dli_fname
                   : path;
  info->version = version_string(v);
  info->found = true;
  if (api)
    *api = a;
  else
    dlclose(h);
  return true;
}

std::vector<std::string> globbed(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g{};
  if (glob(pattern.c_str(), 0, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  globfree(&g);
  return out;
}

// Every place NCCL is looked for, in order (nccl.hpp).
std::vector<std::string> candidates() {
  std::vector<std::string> c;
  if (const char* e = std::getenv("CONVNCF_NCCL_LIBRARY"); e && *e)
    return {e};                 // that file or nothing
  c.push_back("libnccl.so.2");  // the loader's search
  for (const char* dir : {CONVNCF_CUDA_LIBRARY_DIR, "/usr/local/cuda/lib64", "/usr/local/cuda/lib",
                          "/usr/local/cuda/targets/x86_64-linux/lib"})
    c.push_back(std::string(dir) + "/libnccl.so.2");
  std::vector<std::string> sites;
  for (const char* var : {"VIRTUAL_ENV", "CONDA_PREFIX"})
    if (const char* p = std::getenv(var); p && *p)
      sites.push_back(std::string(p) + "/lib/python3*/site-packages");
  if (const char* home = std::getenv("HOME"); home && *home)
    sites.push_back(std::string(home) + "/.local/lib/python3*/site-packages");
  for (const char* s :
       {"/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages",
        "/usr/lib/python3*/dist-packages", "/usr/lib/python3/dist-packages",
        "/opt/conda/lib/python3*/site-packages", "/opt/*/.venv/lib/python3*/site-packages"})
    sites.push_back(s);
  for (const std::string& s : sites)
    for (const std::string& lib : globbed(s + "/nvidia/nccl/lib/libnccl.so.2")) c.push_back(lib);
  std::vector<std::string> unique;
  for (const std::string& p : c) {
    bool seen = false;
    for (const std::string& u : unique) seen = seen || u == p;
    if (!seen) unique.push_back(p);
  }
  return unique;
}

std::once_flag g_once;
NcclInfo g_info;

void load() {
  std::string tried;
  for (const std::string& path : candidates()) {
    if (path.find('/') != std::string::npos && access(path.c_str(), F_OK) != 0) {
      tried += "\n  " + path + ": not found";
      continue;
    }
    std::string why;
    if (open_library(path, &g_api, &g_info, &why)) return;
    tried += "\n  " + why;
  }
  g_info.why = "libnccl.so.2 not found or not usable (set CONVNCF_NCCL_LIBRARY to the file; it "
               "comes with the CUDA toolkit or PyPI's nvidia-nccl-cu13). Tried:" +
               tried;
}

[[noreturn]] void failed(const char* what, ncclResult_t r, ncclComm_t comm, int rank) {
  std::string msg = std::string("NCCL: ") + what + " failed on rank " + std::to_string(rank) +
                    ": " + g_api.get_error_string(r);
  if (g_api.get_last_error) {
    const char* last = g_api.get_last_error(comm);
    if (last && *last) msg += " (" + std::string(last) + ")";
  }
  throw Error(kExitSoftware, msg);
}

}  // namespace

const NcclInfo& nccl_info() {
  std::call_once(g_once, load);
  return g_info;
}

NcclInfo nccl_probe(const std::string& path) {
  NcclInfo info;
  if (access(path.c_str(), F_OK) != 0) {
    info.why = path + ": not found";
    return info;
  }
  open_library(path, nullptr, &info, &info.why);
  return info;
}

NcclComm::NcclComm(const World& world) : m_rank(world.rank()), m_size(world.size()) {
  const NcclInfo& info = nccl_info();
  if (!info.found)
    throw Error(kExitUnavailable, "the CUDA engine with " + std::to_string(m_size) +
                                      (m_size == 1 ? " rank" : " ranks") +
                                      " exchanges gradients through NCCL, but " + info.why);
  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (m_rank == 0) {
    const ncclResult_t r = g_api.get_unique_id(&id);
    if (r != ncclSuccess) failed("ncclGetUniqueId", r, nullptr, m_rank);
  }
  world.bcast(&id, int64_t(sizeof id), 0);
  ncclComm_t comm = nullptr;
  const ncclResult_t r = g_api.comm_init_rank(&comm, m_size, id, m_rank);
  if (r == ncclInvalidUsage)  // e.g. two ranks on one GPU
    failed("ncclCommInitRank (one rank per GPU: does this host run more ranks than the GPUs it "
           "sees?)",
           r, comm, m_rank);
  if (r != ncclSuccess) failed("ncclCommInitRank", r, comm, m_rank);
  m_comm = comm;
}

NcclComm::~NcclComm() {
  if (!m_comm) return;
  ncclComm_t comm = static_cast<ncclComm_t>(m_comm);
  // a communicator with an error pending (a peer died) is aborted: destroying it would wait on it
  ncclResult_t async = ncclSuccess;
  if (g_api.comm_get_async_error(comm, &async) != ncclSuccess || async != ncclSuccess)
    g_api.comm_abort(comm);
  else
    g_api.comm_destroy(comm);
}

std::string NcclComm::describe() const {
  const NcclInfo& info = nccl_info();
  return "NCCL " + info.version + " (" + info.path + "), " + std::to_string(m_size) +
         (m_size == 1 ? " rank" : " ranks");
}

void NcclComm::group_begin() {
  const ncclResult_t r = g_api.group_start();
  if (r != ncclSuccess) failed("ncclGroupStart", r, static_cast<ncclComm_t>(m_comm), m_rank);
}

void NcclComm::group_end() {
  const ncclResult_t r = g_api.group_end();
  if (r != ncclSuccess) failed("ncclGroupEnd", r, static_cast<ncclComm_t>(m_comm), m_rank);
}

void NcclComm::allreduce_sum(float* buf, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  const ncclResult_t r =
      g_api.all_reduce(buf, buf, n, ncclFloat32, ncclSum, static_cast<ncclComm_t>(m_comm), stream);
  if (r != ncclSuccess) failed("ncclAllReduce", r, static_cast<ncclComm_t>(m_comm), m_rank);
  World::get().count_sent(int64_t(n * sizeof(float)));
}

void NcclComm::allgather(const void* send, void* recv, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
  const ncclResult_t r =
      g_api.all_gather(send, recv, bytes, ncclUint8, static_cast<ncclComm_t>(m_comm), stream);
  if (r != ncclSuccess) failed("ncclAllGather", r, static_cast<ncclComm_t>(m_comm), m_rank);
  World::get().count_sent(int64_t(bytes));
}

void NcclComm::check_async() const {
  ncclComm_t comm = static_cast<ncclComm_t>(m_comm);
  ncclResult_t async = ncclSuccess;
  const ncclResult_t r = g_api.comm_get_async_error(comm, &async);
  if (r != ncclSuccess) failed("ncclCommGetAsyncError", r, comm, m_rank);
  if (async != ncclSuccess && async != ncclInProgress) failed("a collective", async, comm, m_rank);
}

}  // namespace convncf

#else  // built without nccl.h (CMakeLists.txt did not find it): NCCL is never available

namespace convncf {
namespace {
const char* kNoHeader =
    "this convncf was built without NCCL's header (nccl.h was not found beside the CUDA toolkit's "
    "headers or in PyPI's nvidia-nccl wheel): rebuild where it is to train several ranks on GPUs";
}  // namespace

const NcclInfo& nccl_info() {
  static const NcclInfo info = [] {
    NcclInfo i;
    i.why = kNoHeader;
    return i;
  }();
  return info;
}
NcclInfo nccl_probe(const std::string&) { return nccl_info(); }
NcclComm::NcclComm(const World&) {
  throw Error(kExitUnavailable, std::string("the CUDA engine with several ranks: ") + kNoHeader);
}
NcclComm::~NcclComm() = default;
std::string NcclComm::describe() const { return "no NCCL"; }
void NcclComm::group_begin() {}
void NcclComm::group_end() {}
void NcclComm::allreduce_sum(float*, size_t, cudaStream_t) {}
void NcclComm::allgather(const void*, void*, size_t, cudaStream_t) {}
void NcclComm::check_async() const {}

}  // namespace convncf
#endif
