#!/usr/bin/env bash
# kernel_resources.sh: the ptxas resource report (registers, stack, spills, shared memory) of
# every kernel file and, where cuobjdump (with nvdisasm beside it or on PATH) is found, the count
# of tensor-core (HMMA) instructions in each kernel's SASS, for tests/test_kernel_resources.cpp
# and for reading by hand.
#   [CUOBJDUMP=path] tools/kernel_resources.sh NVCC ARCH INCLUDE_DIR OUT FILE.cu...
# ARCH is a CMake CUDA architecture (90, 90-real, 90a); the report is for sm_ARCH. CUOBJDUMP
# (the build passes what CMake found) defaults to cuobjdump on PATH. The CUDA toolkit here has
# none; PyPI's nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm wheels carry both (nvidia/cu13/bin).
# SASS lines of the report: "sass: MANGLED_NAME HMMA COUNT", or one "sass: unavailable: WHY".
set -euo pipefail
nvcc=$1 arch=${2%%-*} inc=$3 out=$4
shift 4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cuobjdump=${CUOBJDUMP:-}
[[ -z $cuobjdump ]] && cuobjdump=$(command -v cuobjdump || true)
sass_why=""
if [[ -z $cuobjdump || ! -x $cuobjdump ]]; then
  sass_why="cuobjdump not found (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm, or put it on PATH)"
fi
: > "$out.tmp"
for f in "$@"; do
  echo "== $f (sm_$arch)" >> "$out.tmp"
  "$nvcc" --resource-usage -std=c++17 -O3 -arch="sm_$arch" -I"$inc" -c "$f" -o "$tmp/k.o" >> "$out.tmp" 2>&1
  if [[ -z $sass_why ]]; then
    # nvdisasm is looked for beside cuobjdump first
    PATH="$(dirname "$cuobjdump"):$PATH" "$cuobjdump" -sass "$tmp/k.o" > "$tmp/k.sass" 2>&1 || true
    if grep -q "Function : " "$tmp/k.sass"; then
      awk '/Function : /{f=$3; n[f]=0} /HMMA/{n[f]++} END{for (k in n) print "sass: " k " HMMA " n[k]}' \
        "$tmp/k.sass" >> "$out.tmp"
    elif grep -q "Compiling entry function" "$out.tmp"; then
      sass_why="$cuobjdump printed no SASS (is nvdisasm beside it or on PATH?)"
    fi
  fi
done
[[ -n $sass_why ]] && echo "sass: unavailable: $sass_why" >> "$out.tmp"
mv "$out.tmp" "$out"
