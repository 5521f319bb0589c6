// engine_glue.hpp: the small data-movement kernels the GPU engine needs between its parts.
//   interleave_rows  out[2t] = rows[1][t], out[2t+1] = rows[2][t]: the item-row gradients of a
//                    batch in the CPU engine's order (positive, then negative, per triple), the
//                    order the pair arrays already have, so the combiner sums them as the CPU does
//   range_pairs      the pairs (users[j], item_lo + c), j < nu, c < n, row-major; pairs past nu*n
//                    up to cap are (0, 0) (padding for a fixed-size forward)
//   scale_add        y[i] += a * x[i] in float (the squared-norm regularizer's gradient, 2*l*w)
// CPU twins *_cpu. Kernels: kernels/engine_glue.cu. Tests: tests/test_engine_glue*.
#pragma once
#include <cstdint>

struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace convncf {

void interleave_rows(int64_t B_cap, int E, const float* __restrict__ rows,  // (3, B_cap, E)
                     float* __restrict__ out,                               // (2*B_cap, E)
                     cudaStream_t stream);
void range_pairs(int64_t nu, const int32_t* __restrict__ users,  // (nu,) device
                 int32_t item_lo, int32_t n, int64_t cap,
                 int32_t* __restrict__ pair_user,  // (cap,)
                 int32_t* __restrict__ pair_item,  // (cap,)
                 cudaStream_t stream);
void scale_add(int64_t n, float a, const float* __restrict__ x, float* __restrict__ y,
               cudaStream_t stream);

void interleave_rows_cpu(int64_t B_cap, int E, const float* rows, float* out);
void range_pairs_cpu(int64_t nu, const int32_t* users, int32_t item_lo, int32_t n, int64_t cap,
                     int32_t* pair_user, int32_t* pair_item);
void scale_add_cpu(int64_t n, float a, const float* x, float* y);

}  // namespace convncf
