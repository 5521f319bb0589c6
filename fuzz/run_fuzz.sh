#!/usr/bin/env bash
# run_fuzz.sh: configures and builds the fuzz targets (fuzz/CMakeLists.txt, clang++) in BUILD_DIR,
# then runs each for SECONDS on a fresh copy of its seed corpus (fuzz/corpus/TARGET/).
#   fuzz/run_fuzz.sh BUILD_DIR SECONDS [TARGET...]      (default: all four targets)
# Exit: 0 all ran clean; 1 a target crashed (input under BUILD_DIR/artifacts/, log BUILD_DIR/TARGET.log);
# 77 clang++ cannot build a libFuzzer binary here (ctest counts that as skipped).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [[ $# -lt 2 ]]; then
  echo "usage: $0 BUILD_DIR SECONDS [TARGET...]" >&2
  exit 2
fi
build="$1"
secs="$2"
shift 2
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(fuzz_atomic fuzz_delimited fuzz_ngcf fuzz_ncf_negatives)

mkdir -p "$build"
build="$(cd "$build" && pwd)"
cxx="${FUZZ_CXX:-clang++}"
if ! command -v "$cxx" >/dev/null; then
  echo "skipped: $cxx not found"
  exit 77
fi
probe="$build/probe"
if ! printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' |
     "$cxx" -x c++ -fsanitize=fuzzer - -o "$probe" 2>"$probe.log"; then
  echo "skipped: $cxx -fsanitize=fuzzer does not link here (see $probe.log)"
  exit 77
fi

cmake -S "$here" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build/configure.log"
cmake --build "$build" -j2 --target "${targets[@]}" >"$build/build.log" 2>&1 || {
  tail -40 "$build/build.log"
  exit 1
}

status=0
mkdir -p "$build/artifacts"
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  rm -rf "$corpus"
  mkdir -p "$corpus"
  cp "$here/corpus/$t/"* "$corpus/"
  log="$build/$t.log"
  if "$build/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$build/artifacts/$t-" "$corpus" >"$log" 2>&1; then
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    echo "$t: clean, $execs executions in ${secs} s, corpus $(ls "$corpus" | wc -l) inputs"
  else
    echo "$t: CRASH (log $log, input in $build/artifacts/)"
    grep -m1 -A30 -E 'ERROR|invariant failed|unexpected Error|runtime error' "$log" || tail -30 "$log"
    status=1
  fi
done
exit $status
