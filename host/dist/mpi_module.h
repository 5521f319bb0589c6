/* mpi_module.h: the C interface of libconvncf_mpi.so (mpi_shim.cpp), which World (dist.hpp)
 * loads with dlopen. Plain C types only, so that the command never sees MPI's headers or ABI.
 * Every function returns 0 on success, else an MPI error code (and writes a message into err,
 * NUL-terminated, at most err_len bytes, where it takes one). */
#ifndef CONVNCF_MPI_MODULE_H
#define CONVNCF_MPI_MODULE_H
#include <stdint.h>

#define CONVNCF_MPI_MODULE_ABI 1

#ifdef __cplusplus
extern "C" {
#endif

/* CONVNCF_MPI_MODULE_ABI of the module, checked before anything else is called. */
typedef int (*convncf_mpi_abi_fn)(void);
/* MPI_Init_thread(FUNNELED) on MPI_COMM_WORLD; rank, size, the node-local rank, MPI's version. */
typedef int (*convncf_mpi_init_fn)(int* argc, char*** argv, int* rank, int* size, int* local_rank,
                                   char* version, int version_len, char* err, int err_len);
/* Every rank's `bytes` bytes concatenated in rank order into `out`, whose size is the sum of
 * `counts` (each rank's byte count, known to all beforehand). */
typedef int (*convncf_mpi_allgatherv_fn)(const void* in, int64_t bytes, void* out, const int64_t* counts,
                                         char* err, int err_len);
/* Each rank's one int64, in rank order, into out[size]. */
typedef int (*convncf_mpi_allgather_i64_fn)(int64_t v, int64_t* out, char* err, int err_len);
typedef int (*convncf_mpi_bcast_fn)(void* buf, int64_t bytes, int root, char* err, int err_len);
typedef int (*convncf_mpi_barrier_fn)(char* err, int err_len);
typedef void (*convncf_mpi_abort_fn)(int code);
typedef int (*convncf_mpi_finalize_fn)(void);

#ifdef __cplusplus
}
#endif
#endif
