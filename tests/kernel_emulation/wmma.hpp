// wmma.hpp: a host emulation of the part of CUDA's warp matrix API (nvcuda::wmma, <mma.h>) and of
// the bf16 type that kernels/fused_tower.cu uses, at the tile level the CUDA C++ Programming
// Guide ("Warp Matrix Functions") documents. Included by shim.hpp; the scheduler side is in
// emu.cpp.
//
// What it checks, each failure reported with the call's source line (emu::report):
//   - every call is warp-collective (load_matrix_sync, store_matrix_sync, mma_sync,
//     fill_fragment, __syncwarp): all 32 lanes of the warp reach the same call (same line) with
//     the same warp-uniform arguments (pointer, ldm, layout, fill value) and their fragments at
//     the same place of their own stacks (the same variable); otherwise "lanes diverge";
//   - load/store pointers: 256-bit (32-byte) aligned, the tile inside the block's dynamic shared
//     memory or inside a device buffer the test registered (emu::register_device_buffer); in
//     shared memory, alignment counts from the base only as far as the kernel's
//     `extern __shared__ __align__(N)` declares it (N >= 32 needed);
//   - ldm a multiple of 16 bytes (4 floats, 8 bf16);
//   - mma_sync on tf32 fragments: every element a tf32 value (converted, or stored rounded);
// and what it models:
//   - fragment<...>::x[num_elements] per lane, num_elements = tile elements / 32; the element-to-
//     lane mapping is a permutation drawn from emu::frag_seed per fragment type, so code that
//     assumes a mapping reads the wrong elements (element-wise loops over x[i] stay correct);
//   - mma_sync: D = A.B + C, each element of D summed as acc = C(i,j); acc += A(i,k) * B(k,j) for
//     k in order, in float (the twins' order: kernels/fused_tower_cpu.cpp);
//   - shapes: m16n16k8 precision::tf32 and m16n16k16 __nv_bfloat16, row- and col-major, float
//     accumulators; anything else does not compile (static_assert).
// Not modeled: the memory visibility between lanes after store_matrix_sync without __syncwarp
// (the call completes for the whole warp before any lane goes on); __syncwarp with a mask.
#pragma once
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

struct __nv_bfloat16 {
  unsigned short x;
};
static_assert(sizeof(__nv_bfloat16) == 2, "bf16 is 2 bytes");

namespace emu {

void report(const std::string& error);

// One lane's arrival at a warp-collective call; body runs once for the warp, with all 32 lanes'
// calls, after the scheduler has checked that they agree.
struct WarpCall {
  const char* name = "";
  const char* file = "";
  int line = 0;
  const std::string* type = nullptr;   // the fragments' type (type_key)
  uintptr_t uniform[3] = {};           // the arguments that must be warp-uniform (pointer, ldm, layout / value)
  const void* frag[4] = {};            // this lane's fragments
  long frag_offset[4] = {};            // their offsets in the lane's stack (emu::stack_offset)
  std::function<void(WarpCall* const* lanes)> body;
};
void warp_call(WarpCall& call);  // returns when the warp's call is done
unsigned lane_id();
long stack_offset(const void* p);

// The running block's dynamic shared memory and its declared alignment (shim.hpp).
bool in_shared(const void* p, size_t bytes);
size_t shared_offset(const void* p);
extern size_t smem_declared_align;
bool in_device_buffer(const void* p, size_t bytes);

extern unsigned frag_seed;  // the fragments' element-to-lane permutations
// map[e] = lane * per_lane + slot for element e (row-major in the tile) of fragment type `type`.
const std::vector<int>& fragment_map(const std::string& type, int n_elems);

// "load_matrix_sync" checks of a tile's pointer, ldm and extent; false (after reporting) if bad.
bool check_tile(const char* call, const char* file, int line, const void* p, size_t elem, unsigned ldm, int rows,
                int cols, bool row_major);

}  // namespace emu

namespace nvcuda {
namespace wmma {

struct row_major;
struct col_major;
struct matrix_a;
struct matrix_b;
struct accumulator;
namespace precision {
struct tf32;
}
enum layout_t { mem_row_major, mem_col_major };

inline float __float_to_tf32(float in) {  // cvt.rna.tf32.f32: 10 mantissa bits, ties away
  uint32_t u;
  std::memcpy(&u, &in, sizeof u);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  float out;
  std::memcpy(&out, &u, sizeof out);
  return out;
}

namespace detail {

template <typename T>
struct Storage {
  using type = T;
};
template <>
struct Storage<precision::tf32> {
  using type = float;
};

template <typename Use, int m, int n, int k>
struct Shape;
template <int m, int n, int k>
struct Shape<matrix_a, m, n, k> {
  static constexpr int rows = m, cols = k;
  static constexpr const char* name = "matrix_a";
};
template <int m, int n, int k>
struct Shape<matrix_b, m, n, k> {
  static constexpr int rows = k, cols = n;
  static constexpr const char* name = "matrix_b";
};
template <int m, int n, int k>
struct Shape<accumulator, m, n, k> {
  static constexpr int rows = m, cols = n;
  static constexpr const char* name = "accumulator";
};

template <typename T>
const char* type_name() {
  if (std::is_same<T, precision::tf32>::value) return "tf32";
  if (std::is_same<T, __nv_bfloat16>::value) return "bf16";
  return "float";
}
template <typename L>
const char* layout_name() {
  if (std::is_same<L, row_major>::value) return "row_major";
  if (std::is_same<L, col_major>::value) return "col_major";
  return "";
}

inline float value(float x) { return x; }
inline float value(__nv_bfloat16 b) {
  const uint32_t u = uint32_t(b.x) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline uintptr_t address(const void* p) { return reinterpret_cast<uintptr_t>(p); }

}  // namespace detail

template <typename Use, int m, int n, int k, typename T, typename Layout = void>
class fragment {
  static_assert(m == 16 && n == 16 && (k == 8 || k == 16), "only m16n16k8 and m16n16k16 are emulated");
  static_assert(std::is_same<Use, accumulator>::value
                    ? std::is_same<T, float>::value && std::is_same<Layout, void>::value
                    : (k == 8 ? std::is_same<T, precision::tf32>::value : std::is_same<T, __nv_bfloat16>::value) &&
                          (std::is_same<Layout, row_major>::value || std::is_same<Layout, col_major>::value),
                "emulated: tf32 m16n16k8 or bf16 m16n16k16 with a layout, float accumulators without one");

 public:
  using Shape = detail::Shape<Use, m, n, k>;
  using element_type = T;
  using storage_element_type = typename detail::Storage<T>::type;
  enum { num_elements = Shape::rows * Shape::cols / 32, num_storage_elements = num_elements };
  storage_element_type x[num_elements];

  static const std::string& type_key() {
    static const std::string key = std::string(Shape::name) + " m" + std::to_string(m) + "n" + std::to_string(n) +
                                   "k" + std::to_string(k) + " " + detail::type_name<T>() + " " +
                                   detail::layout_name<Layout>();
    return key;
  }
  static const std::vector<int>& map() { return emu::fragment_map(type_key(), num_elements * 32); }
};

namespace detail {

// Element e (row-major in the tile) of the lanes' fragments in argument `which`, by map (F::map()).
template <typename F>
typename F::storage_element_type& element(emu::WarpCall* const* lanes, int which, const std::vector<int>& map, int e) {
  const int at = map[size_t(e)];
  F* f = static_cast<F*>(const_cast<void*>(lanes[at / F::num_elements]->frag[which]));
  return f->x[at % F::num_elements];
}

template <typename F, typename P>
void load(F& f, const P* p, unsigned ldm, bool row_major, const char* file, int line) {
  using S = typename F::storage_element_type;
  static_assert(std::is_same<S, P>::value, "load_matrix_sync: the pointer's type is the fragment's storage type");
  emu::WarpCall call;
  call.name = "load_matrix_sync";
  call.file = file;
  call.line = line;
  call.type = &F::type_key();
  call.uniform[0] = address(p);
  call.uniform[1] = ldm;
  call.uniform[2] = row_major;
  call.frag[0] = &f;
  call.frag_offset[0] = emu::stack_offset(&f);
  call.body = [p, ldm, row_major, file, line](emu::WarpCall* const* lanes) {
    constexpr int R = F::Shape::rows, C = F::Shape::cols;
    if (!emu::check_tile("load_matrix_sync", file, line, p, sizeof(P), ldm, R, C, row_major)) return;
    const std::vector<int>& map = F::map();
    for (int i = 0; i < R; ++i)
      for (int j = 0; j < C; ++j) {
        const P* a = row_major ? p + size_t(i) * ldm + j : p + i + size_t(j) * ldm;
        std::memcpy(&element<F>(lanes, 0, map, i * C + j), a, sizeof(P));
      }
  };
  emu::warp_call(call);
}

}  // namespace detail

template <typename Use, int m, int n, int k, typename T, typename Layout, typename P>
void load_matrix_sync(fragment<Use, m, n, k, T, Layout>& a, const P* p, unsigned ldm,
                      const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  static_assert(!std::is_same<Use, accumulator>::value, "an accumulator's load takes a layout_t");
  detail::load(a, p, ldm, std::is_same<Layout, row_major>::value, file, line);
}
template <int m, int n, int k>
void load_matrix_sync(fragment<accumulator, m, n, k, float>& a, const float* p, unsigned ldm, layout_t layout,
                      const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  detail::load(a, p, ldm, layout == mem_row_major, file, line);
}

template <int m, int n, int k>
void store_matrix_sync(float* p, const fragment<accumulator, m, n, k, float>& a, unsigned ldm, layout_t layout,
                       const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  using F = fragment<accumulator, m, n, k, float>;
  const bool row_major = layout == mem_row_major;
  emu::WarpCall call;
  call.name = "store_matrix_sync";
  call.file = file;
  call.line = line;
  call.type = &F::type_key();
  call.uniform[0] = detail::address(p);
  call.uniform[1] = ldm;
  call.uniform[2] = row_major;
  call.frag[0] = &a;
  call.frag_offset[0] = emu::stack_offset(&a);
  call.body = [p, ldm, row_major, file, line](emu::WarpCall* const* lanes) {
    if (!emu::check_tile("store_matrix_sync", file, line, p, sizeof(float), ldm, m, n, row_major)) return;
    const std::vector<int>& map = F::map();
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j)
        (row_major ? p[size_t(i) * ldm + j] : p[i + size_t(j) * ldm]) = detail::element<F>(lanes, 0, map, i * n + j);
  };
  emu::warp_call(call);
}

template <typename Use, int m, int n, int k, typename T, typename Layout>
void fill_fragment(fragment<Use, m, n, k, T, Layout>& f, const typename detail::Storage<T>::type& v,
                   const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  using F = fragment<Use, m, n, k, T, Layout>;
  using S = typename F::storage_element_type;
  S value = v;
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof value < sizeof bits ? sizeof value : sizeof bits);
  emu::WarpCall call;
  call.name = "fill_fragment";
  call.file = file;
  call.line = line;
  call.type = &F::type_key();
  call.uniform[0] = bits;
  call.frag[0] = &f;
  call.frag_offset[0] = emu::stack_offset(&f);
  call.body = [value](emu::WarpCall* const* lanes) {
    for (int l = 0; l < 32; ++l)
      for (S& x : static_cast<F*>(const_cast<void*>(lanes[l]->frag[0]))->x) x = value;
  };
  emu::warp_call(call);
}

template <int m, int n, int k, typename T, typename LA, typename LB>
void mma_sync(fragment<accumulator, m, n, k, float>& d, const fragment<matrix_a, m, n, k, T, LA>& a,
              const fragment<matrix_b, m, n, k, T, LB>& b, const fragment<accumulator, m, n, k, float>& c,
              const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  using FA = fragment<matrix_a, m, n, k, T, LA>;
  using FB = fragment<matrix_b, m, n, k, T, LB>;
  using FC = fragment<accumulator, m, n, k, float>;
  emu::WarpCall call;
  call.name = "mma_sync";
  call.file = file;
  call.line = line;
  call.type = &FA::type_key();
  call.uniform[0] = detail::address(&FB::type_key());
  const void* frags[4] = {&d, &a, &b, &c};
  for (int i = 0; i < 4; ++i) {
    call.frag[i] = frags[i];
    call.frag_offset[i] = emu::stack_offset(frags[i]);
  }
  call.body = [file, line](emu::WarpCall* const* lanes) {
    float A[m][k], B[k][n], C[m][n];
    const std::vector<int>&ma = FA::map(), &mb = FB::map(), &mc = FC::map();
    bool unrounded = false;
    auto tf32_value = [](float x) {
      uint32_t u;
      std::memcpy(&u, &x, sizeof u);
      return (u & 0x1fffu) == 0 || (u & 0x7f800000u) == 0x7f800000u;
    };
    for (int i = 0; i < m; ++i)
      for (int kk = 0; kk < k; ++kk) {
        A[i][kk] = detail::value(detail::element<FA>(lanes, 1, ma, i * k + kk));
        if (std::is_same<T, precision::tf32>::value && !tf32_value(A[i][kk])) unrounded = true;
      }
    for (int kk = 0; kk < k; ++kk)
      for (int j = 0; j < n; ++j) {
        B[kk][j] = detail::value(detail::element<FB>(lanes, 2, mb, kk * n + j));
        if (std::is_same<T, precision::tf32>::value && !tf32_value(B[kk][j])) unrounded = true;
      }
    if (unrounded)
      emu::report(std::string(file) + ":" + std::to_string(line) +
                  ": mma_sync: a tf32 operand is not a tf32 value (convert with __float_to_tf32)");
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) C[i][j] = detail::element<FC>(lanes, 3, mc, i * n + j);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        float acc = C[i][j];
        for (int kk = 0; kk < k; ++kk) acc += A[i][kk] * B[kk][j];
        detail::element<FC>(lanes, 0, mc, i * n + j) = acc;
      }
  };
  emu::warp_call(call);
}

}  // namespace wmma
}  // namespace nvcuda

// __syncwarp(): every lane of the warp waits for the others (full mask only).
inline void __syncwarp(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  emu::WarpCall call;
  call.name = "__syncwarp";
  call.file = file;
  call.line = line;
  call.body = [](emu::WarpCall* const*) {};
  emu::warp_call(call);
}
