# generate_emulated.cmake: writes the host-emulated copy of a CUDA source (tests/kernel_emulation).
#   cmake -DIN=kernels/fused_tower.cu -DOUT=fused_tower_emulated.cpp [-DDROP_SYNC_LINE=n] -P generate_emulated.cmake
# A mechanical, line-preserving transformation (a `#line 1` directive keeps diagnostics, and the
# barrier sites the emulator reports, at the .cu's own line numbers):
#   1. `#include <cuda_runtime.h>`           -> `#include "shim.hpp"`            (exactly once)
#   2. `#include "convncf/cuda_check.hpp"`   -> removed (shim.hpp has CUDA_CHECK) (exactly once)
#   3. `#include <mma.h>`, `#include <cuda_bf16.h>` -> removed (shim.hpp has wmma.hpp) (at most once each)
#   4. `extern __shared__ __align__(N) T name[];` -> `T* name = emu::shared_memory<T>(N);` (>= 1);
#      without __align__(N) the declaration guarantees only alignof(T): emu::shared_memory<T>(alignof(T))
#   5. `reinterpret_cast<float4*>(` / `reinterpret_cast<const float4*>(` -> `emu::float4_view(` /
#      `emu::float4_view_const(` (the alignment check of a float4 view)
#      and `#pragma unroll` -> a comment
#   6. `kernel<<<config>>>(args)`            -> `emu::launch(kernel, emu::LaunchConfig(config), args)` (>= 1)
# It fails (a build error) if a pattern is not found as often as stated, or if anything CUDA-only
# is left over afterwards (`<<<`, `>>>`, `__shared__`, another CUDA header, `__device__` variables,
# atomics, warp intrinsics other than __syncwarp(), other float4 casts), so that an edit of the .cu
# cannot silently escape the test: extend the shim and this script together with the kernel.
# DROP_SYNC_LINE (manual barrier-deletion check only): removes the __syncthreads() on that line of IN.
cmake_minimum_required(VERSION 3.25)
if(NOT DEFINED IN OR NOT DEFINED OUT)
  message(FATAL_ERROR "generate_emulated.cmake: pass -DIN=<file.cu> -DOUT=<file.cpp>")
endif()
file(READ "${IN}" src)

function(count_matches var regex text)
  string(REGEX MATCHALL "${regex}" _m "${text}")
  list(LENGTH _m _n)
  set(${var} ${_n} PARENT_SCOPE)
endfunction()

# require(<what> <count> <EQUAL|GREATER_EQUAL> <n>)
function(require what n_found op n_expected)
  if(NOT n_found ${op} n_expected)
    message(FATAL_ERROR "generate_emulated.cmake: ${IN}: pattern '${what}' found ${n_found} times, "
                        "expected ${op} ${n_expected}; update tests/kernel_emulation with the kernel")
  endif()
endfunction()

# Manual barrier deletion (before anything else, on the .cu's own line numbers).
if(DEFINED DROP_SYNC_LINE AND NOT DROP_SYNC_LINE STREQUAL "")
  set(_head "")
  set(_tail "${src}")
  math(EXPR _skip "${DROP_SYNC_LINE} - 1")
  foreach(_i RANGE 1 ${_skip})
    string(FIND "${_tail}" "\n" _p)
    math(EXPR _p "${_p} + 1")
    string(SUBSTRING "${_tail}" 0 ${_p} _l)
    string(SUBSTRING "${_tail}" ${_p} -1 _tail)
    string(APPEND _head "${_l}")
  endforeach()
  string(FIND "${_tail}" "\n" _p)
  string(SUBSTRING "${_tail}" 0 ${_p} _line)
  string(SUBSTRING "${_tail}" ${_p} -1 _tail)
  if(NOT _line MATCHES "__syncthreads\\(\\);")
    message(FATAL_ERROR "generate_emulated.cmake: line ${DROP_SYNC_LINE} of ${IN} has no __syncthreads();")
  endif()
  string(REPLACE "__syncthreads();" "/* barrier deleted */;" _line "${_line}")
  set(src "${_head}${_line}${_tail}")
endif()

# 1. the runtime header
count_matches(n "#include <cuda_runtime\\.h>" "${src}")
require("#include <cuda_runtime.h>" ${n} EQUAL 1)
string(REGEX REPLACE "#include <cuda_runtime\\.h>" "#include \"shim.hpp\"" src "${src}")

# 2. the error macros
count_matches(n "#include \"convncf/cuda_check\\.hpp\"" "${src}")
require("#include \"convncf/cuda_check.hpp\"" ${n} EQUAL 1)
string(REGEX REPLACE "#include \"convncf/cuda_check\\.hpp\"" "// (cuda_check.hpp: shim.hpp)" src "${src}")

# 3. the warp matrix and bf16 headers
foreach(header "mma.h" "cuda_bf16.h")
  string(REPLACE "." "\\." header_re "${header}")
  count_matches(n "#include <${header_re}>" "${src}")
  require("#include <${header}> (at most once)" ${n} LESS 2)
  string(REPLACE "#include <${header}>" "// (${header}: shim.hpp)" src "${src}")
endforeach()

# 4. dynamic shared memory, with its declared alignment
set(re_smem_al "extern __shared__ __align__\\(([0-9]+)\\) ([A-Za-z_][A-Za-z_0-9]*) ([A-Za-z_][A-Za-z_0-9]*)\\[\\];")
set(re_smem "extern __shared__ ([A-Za-z_][A-Za-z_0-9]*) ([A-Za-z_][A-Za-z_0-9]*)\\[\\];")
count_matches(n_al "${re_smem_al}" "${src}")
count_matches(n_plain "${re_smem}" "${src}")
math(EXPR n "${n_al} + ${n_plain}")
require("extern __shared__ [__align__(N)] T name[];" ${n} GREATER_EQUAL 1)
string(REGEX REPLACE "${re_smem_al}" "\\2* \\3 = emu::shared_memory<\\2>(\\1);" src "${src}")
string(REGEX REPLACE "${re_smem}" "\\1* \\2 = emu::shared_memory<\\1>(alignof(\\1));" src "${src}")

# nvcc's unroll hints mean nothing to the host compiler
string(REPLACE "#pragma unroll" "// (nvcc: #pragma unroll)" src "${src}")

# 5. float4 views
string(REPLACE "reinterpret_cast<float4*>(" "emu::float4_view(" src "${src}")
string(REPLACE "reinterpret_cast<const float4*>(" "emu::float4_view_const(" src "${src}")

# 6. launches: a kernel name (optionally with template arguments), the configuration up to
# `>>>(` without a `;` in between.
set(re_launch "([A-Za-z_][A-Za-z_0-9:]*(<[A-Za-z_0-9:, ]*>)?)<<<([^;]*)>>>\\(")
count_matches(n "${re_launch}" "${src}")
require("kernel<<<config>>>(" ${n} GREATER_EQUAL 1)
string(REGEX REPLACE "${re_launch}" "emu::launch(\\1, emu::LaunchConfig(\\3), " src "${src}")

# Nothing CUDA-only may be left.
foreach(residue "<<<" ">>>" "__shared__" "__constant__" "__device__ [A-Za-z_0-9:<>]+ [A-Za-z_0-9]+[;=[]"
                "#include <cu" "#include <cooperative" "#include <mma" "atomic[A-Z][a-z]*\\(" "__shfl"
                "__syncwarp\\([^)]" "__ballot" "__any_sync" "__all_sync" "__threadfence" "__ldg" "__fmaf?_r"
                "__f?mul_r" "__f?add_r" "__float2bfloat16" "__bfloat162" "__half" "cooperative_groups" "float4\\*>"
                "__syncthreads_(count|and|or)" "dim3")
  count_matches(n "${residue}" "${src}")
  require("${residue} (left after the transformation, not emulated)" ${n} EQUAL 0)
endforeach()

get_filename_component(in_abs "${IN}" ABSOLUTE)
set(out_text "// GENERATED by tests/kernel_emulation/generate_emulated.cmake from ${in_abs}: do not edit.\n#line 1 \"${in_abs}\"\n${src}")
file(WRITE "${OUT}" "${out_text}")
