#!/usr/bin/env bash
# kernel_resources.sh: the ptxas resource report (registers, stack, spills, shared memory) of
# every kernel file, for tests/test_kernel_resources.cpp and for reading by hand.
#   tools/kernel_resources.sh NVCC ARCH INCLUDE_DIR OUT FILE.cu...
# ARCH is a CMake CUDA architecture (90, 90-real, 90a); the report is for sm_ARCH.
set -euo pipefail
nvcc=$1 arch=${2%%-*} inc=$3 out=$4
shift 4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: > "$out.tmp"
for f in "$@"; do
  echo "== $f (sm_$arch)" >> "$out.tmp"
  "$nvcc" --resource-usage -std=c++17 -O3 -arch="sm_$arch" -I"$inc" -c "$f" -o "$tmp/k.o" >> "$out.tmp" 2>&1
done
mv "$out.tmp" "$out"
