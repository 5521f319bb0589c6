// mpi_shim.cpp: libconvncf_mpi.so, the only code built against MPI (mpi_module.h has its C
// interface; World in dist.hpp loads it with dlopen). Built where CMake finds an MPI; installed and
// built beside the convncf executable.
//
// Large buffers go in pieces of at most kPiece bytes per rank (and INT_MAX bytes in all), so that MPI's int counts never
// overflow; the pieces are gathered in order, so the result is the same as one call.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <vector>

#include "mpi_module.h"

namespace {

constexpr int64_t kPiece = int64_t(1) << 30;

int fail(int rc, const char* what, char* err, int err_len) {
  if (err && err_len > 0) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) std::snprintf(text, sizeof text, "MPI error %d", rc);
    std::snprintf(err, size_t(err_len), "%s: %s", what, text);
  }
  return rc == 0 ? -1 : rc;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int convncf_mpi_abi(void) { return CONVNCF_MPI_MODULE_ABI; }

__attribute__((visibility("default"))) int convncf_mpi_init(int* argc, char*** argv, int* rank, int* size,
                                                            int* local_rank, char* version, int version_len,
                                                            char* err, int err_len) {
  int provided = 0;
  int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  if (rc != MPI_SUCCESS) return fail(rc, "MPI_Init_thread", err, err_len);
  // Errors come back as codes (and become exceptions in World), instead of aborting inside MPI.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  if ((rc = MPI_Comm_rank(MPI_COMM_WORLD, rank)) != MPI_SUCCESS) return fail(rc, "MPI_Comm_rank", err, err_len);
  if ((rc = MPI_Comm_size(MPI_COMM_WORLD, size)) != MPI_SUCCESS) return fail(rc, "MPI_Comm_size", err, err_len);
  MPI_Comm node;
  rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, *rank, MPI_INFO_NULL, &node);
  if (rc != MPI_SUCCESS) return fail(rc, "MPI_Comm_split_type", err, err_len);
  MPI_Comm_rank(node, local_rank);
  MPI_Comm_free(&node);
  if (version && version_len > 0) {
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(v, &len);
    std::snprintf(version, size_t(version_len), "%s", v);
    char* nl = std::strchr(version, '\n');
    if (nl) *nl = 0;
  }
  return 0;
}

__attribute__((visibility("default"))) int convncf_mpi_allgather_i64(int64_t v, int64_t* out, char* err,
                                                                     int err_len) {
  const int rc = MPI_Allgather(&v, 1, MPI_INT64_T, out, 1, MPI_INT64_T, MPI_COMM_WORLD);
  return rc == MPI_SUCCESS ? 0 : fail(rc, "MPI_Allgather", err, err_len);
}

__attribute__((visibility("default"))) int convncf_mpi_allgatherv(const void* in, int64_t bytes, void* out,
                                                                  const int64_t* counts, char* err, int err_len) {
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int64_t most = 0;
  for (int r = 0; r < size; ++r) most = std::max(most, counts[r]);
  std::vector<int64_t> base(static_cast<size_t>(size) + 1, 0);
  for (int r = 0; r < size; ++r) base[size_t(r) + 1] = base[size_t(r)] + counts[r];
  // Piece k of every rank: bytes [k*kPiece, (k+1)*kPiece) of each rank's part, received into a
  // staging buffer and copied to where that rank's part lies in `out`.
  std::vector<int> recv_counts(static_cast<size_t>(size)), displs(static_cast<size_t>(size));
  std::vector<char> stage;
  // every rank holds the same counts, so all of them take the same number of pieces (none when
  // every part is empty)
  // a piece's parts sum to at most INT_MAX, so the int displacements cannot overflow either
  const int64_t piece = std::max<int64_t>(1, std::min<int64_t>(kPiece, INT_MAX / size));
  for (int64_t off = 0; off < most; off += piece) {
    int64_t total = 0;
    for (int r = 0; r < size; ++r) {
      const int64_t c = std::min(piece, std::max<int64_t>(0, counts[r] - off));
      recv_counts[size_t(r)] = int(c);
      displs[size_t(r)] = int(total);
      total += c;
    }
    stage.resize(size_t(std::max<int64_t>(total, 1)));
    const int64_t mine = std::min(piece, std::max<int64_t>(0, bytes - off));
    const int rc = MPI_Allgatherv(static_cast<const char*>(in) + (mine ? off : 0), int(mine), MPI_BYTE, stage.data(),
                                  recv_counts.data(), displs.data(), MPI_BYTE, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return fail(rc, "MPI_Allgatherv", err, err_len);
    for (int r = 0; r < size; ++r)
      if (recv_counts[size_t(r)])
        std::memcpy(static_cast<char*>(out) + base[size_t(r)] + off, stage.data() + displs[size_t(r)],
                    size_t(recv_counts[size_t(r)]));
  }
  return 0;
}

__attribute__((visibility("default"))) int convncf_mpi_bcast(void* buf, int64_t bytes, int root, char* err,
                                                             int err_len) {
  for (int64_t off = 0; off < bytes; off += kPiece) {
    const int rc = MPI_Bcast(static_cast<char*>(buf) + off, int(std::min(kPiece, bytes - off)), MPI_BYTE, root,
                             MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return fail(rc, "MPI_Bcast", err, err_len);
  }
  return 0;
}

__attribute__((visibility("default"))) int convncf_mpi_barrier(char* err, int err_len) {
  const int rc = MPI_Barrier(MPI_COMM_WORLD);
  return rc == MPI_SUCCESS ? 0 : fail(rc, "MPI_Barrier", err, err_len);
}

__attribute__((visibility("default"))) void convncf_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

__attribute__((visibility("default"))) int convncf_mpi_finalize(void) { return MPI_Finalize(); }

}  // extern "C"
