#!/usr/bin/env bash
# consumer_test.sh BUILD_DIR SOURCE_DIR: installs BUILD_DIR into a fresh prefix, builds
# tests/consumer (a project of its own: find_package(convncf), convncf::core) against it, and
# runs it. Fails when the install, the package config, the link or the program fails.
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/convncf-consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log" || { cat "$work/install.log"; exit 1; }
test -f "$work/prefix/lib/cmake/convncf/convncfConfig.cmake" || { echo "no convncfConfig.cmake installed"; exit 1; }
test -x "$work/prefix/bin/convncf" || { echo "no convncf binary installed"; exit 1; }
args=(-S "$src/tests/consumer" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release)
[[ -n ${CONSUMER_CXX:-} ]] && args+=(-DCMAKE_CXX_COMPILER="$CONSUMER_CXX")
[[ -n ${CONSUMER_CUDA_ROOT:-} ]] && args+=(-DCUDAToolkit_ROOT="$CONSUMER_CUDA_ROOT")
cmake "${args[@]}" >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" -j2 >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
"$work/build/consumer"
