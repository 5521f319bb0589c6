#!/usr/bin/env bash
# tools/gpu_check.sh: the one command to run on a lent GPU machine (H100/H200 with the CUDA
# toolkit, cuDNN, cuBLAS and PyTorch, but no GoogleTest and no internet), from the repo root:
#   tools/gpu_check.sh
# It uses the build carried in ./build (built here with `cmake --preset ci && cmake --build
# --preset ci`; gtest is linked statically, so the tests run there), or, if there is none,
# configures with -DCONVNCF_BUILD_TESTS=OFF and builds the convncf binary alone. Steps:
#   versions   GPU, driver, CUDA, cuDNN
#   build      only when ./build/convncf is missing
#   libs       where this machine's cuDNN and cuBLAS are (the toolkit's, or PyTorch's pip wheels
#              under site-packages/nvidia/*/lib), put on LD_LIBRARY_PATH for every later step
#   ctest      all tests (GPU tests included), when build/convncf_tests exists
#   memcheck   the GPU tests under compute-sanitizer --tool memcheck
#   racecheck  the kernels with shared memory under --tool racecheck
#   selftest   build/convncf gpu-selftest (each kernel of the binary against its CPU twin)
#   bench      bench/bench_table.py --quick (about 2 minutes): build/bench/bench_gpu (kernel times
#              against their floors; training throughput of the cudnn and fused fp32/tf32/bf16
#              engines, both presets, batches 2048 and 16384; full-ranking time of 30k x 41k
#              extrapolated from 1000 users) and the PyTorch peer (eager, and compiled at recbole
#              2048, when torch imports and sees the GPU), in one table with the targets; files
#              in $LOGS/bench/ (table.md, table.json, lines.jsonl, each run's stderr)
#   smoke      build/convncf train --device=cuda (ConvNCF, 2 epochs, the built-in synthetic data)
#   smoke_fused  the same with --engine=fused --precision=tf32
# Every step has a timeout and the whole run stays under 8 minutes. A failing step does not stop
# the others; the exit status is non-zero if any failed. Logs go to $OUT (if set) or
# build/gpu_check/, one file per step; the summary and the benchmark table are printed last.
#
# Carrying a build: the device tool carries at most 64 MiB, and build/ after a full ctest run is
# larger (the fuzz build, object files). `tools/gpu_check.sh --slim` prunes build/ here to what
# this script needs (binaries, CMakeCache, the ctest files, kernel_resources.txt; about 45 MiB)
# and exits; carry `build` afterwards. (The next `cmake --build` here rebuilds what was pruned.)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

if [[ ${1:-} == --slim ]]; then
  [[ -d build ]] || { echo "no build/ to slim" >&2; exit 66; }
  rm -rf build/fuzz build/Testing build/gpu_check
  find build -name '*.o' -delete
  find build -name '*.a' -delete
  du -sh build
  exit 0
fi

export PATH="/usr/local/cuda/bin:$PATH"
T0=$(date +%s)
BUDGET=470  # seconds for the whole script (8 minutes, less a margin)
LOGS="${OUT:-build/gpu_check}"
mkdir -p "$LOGS"
SUMMARY=()
FAILED=0

# run_step NAME TIMEOUT_S COMMAND...: runs COMMAND with its output in $LOGS/NAME.log (and the
# tail on the terminal), records status and seconds. The timeout is cut to the budget left.
run_step() {
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET - ($(date +%s) - T0)))
  ((limit > left)) && limit=$left
  if ((limit < 5)); then
    SUMMARY+=("$(printf '%-10s %-8s %6s' "$name" "NO TIME" 0)")
    FAILED=1
    return
  fi
  echo "== $name (timeout ${limit}s)"
  local t rc
  t=$(date +%s)
  [[ $1 == bash ]] || echo "\$ $*" >"$LOGS/$name.log"
  timeout --kill-after=10 "$limit" "$@" >>"$LOGS/$name.log" 2>&1
  rc=$?
  tail -n 25 "$LOGS/$name.log"
  local status=ok
  if ((rc == 124 || rc == 137)); then
    status=TIMEOUT
  elif ((rc != 0)); then
    status="FAIL($rc)"
  fi
  # On a GPU machine a skipped GPU test means the device was not usable: that is a failure.
  if [[ $status == ok && $name =~ check$ ]] && grep -q '^\[  SKIPPED \]' "$LOGS/$name.log"; then
    status=SKIPPED
  fi
  [[ $status != ok ]] && FAILED=1
  SUMMARY+=("$(printf '%-10s %-8s %6d' "$name" "$status" $(($(date +%s) - t)))")
}

skip_step() {  # skip_step NAME REASON
  echo "== $1: skipped ($2)"
  SUMMARY+=("$(printf '%-10s %-8s %6s  %s' "$1" "skip" "-" "$2")")
}

# shellcheck disable=SC2317  # runs through `bash -c "$(declare -f versions); versions"`
versions() {
  echo "--- nvidia-smi"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,compute_cap --format=csv ||
    echo "nvidia-smi failed"
  nvidia-smi | head -n 4 | tail -n 2
  echo "--- nvcc"
  nvcc --version | tail -n 2 || echo "nvcc not found"
  echo "--- cuDNN"
  local h
  h=$(find /usr/include /usr/local/cuda/include /usr/local/cuda/targets/*/include \
      /usr/include/x86_64-linux-gnu /usr/local/lib/python3*/dist-packages/nvidia/cudnn/include \
      /usr/lib/python3*/site-packages/nvidia/cudnn/include -maxdepth 1 -name cudnn_version.h \
      2>/dev/null | head -n 1)
  if [[ -n $h ]]; then
    echo "$h: $(grep -E '#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ' "$h" | awk '{print $3}' | paste -sd.)"
  else
    echo "cudnn_version.h not found; PyTorch's cuDNN:"
    python3 -c 'import torch; print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version())' ||
      echo "python3/torch not available"
  fi
  echo "--- compute-sanitizer"
  echo "${SAN:-compute-sanitizer not found}"
}

# A build carried from another machine names its source folder by absolute path (CMakeCache,
# CTestTestfile, the discovered test lists). If that folder does not exist here, point it at
# this checkout so that ctest finds the test binary.
fix_build_path() {
  local src
  src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' build/CMakeCache.txt 2>/dev/null)
  if [[ -n $src && $src != "$PWD" && ! -e $src ]]; then
    mkdir -p "$(dirname "$src")" && ln -s "$PWD" "$src" &&
      echo "linked $src -> $PWD (the carried build's source folder)"
  fi
}

# shellcheck disable=SC2317  # runs through `bash -c`, like versions
build_binary() {
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCONVNCF_BUILD_TESTS=OFF \
    -DCONVNCF_BUILD_BENCH=OFF && cmake --build build -j "$(nproc)" --target convncf
}

# cuDNN and cuBLAS: the toolkit's lib64, else the nvidia-* pip wheels PyTorch brings.
find_libs() {
  local d dirs=()
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu \
    /usr/local/lib/python3*/dist-packages/nvidia/{cudnn,cublas,cuda_runtime}/lib \
    /usr/lib/python3*/site-packages/nvidia/{cudnn,cublas,cuda_runtime}/lib \
    "$HOME"/.local/lib/python3*/site-packages/nvidia/{cudnn,cublas,cuda_runtime}/lib \
    /opt/conda/lib/python3*/site-packages/nvidia/{cudnn,cublas,cuda_runtime}/lib; do
    [[ -d $d ]] && compgen -G "$d/libcu*.so*" >/dev/null && dirs+=("$d")
  done
  local py
  py=$(python3 -c 'import os, nvidia; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null || true)
  [[ -n $py ]] && for d in "$py"/nvidia/{cudnn,cublas}/lib; do [[ -d $d ]] && dirs+=("$d"); done
  local IFS=:
  echo "${dirs[*]}"
}
LIBS=$(find_libs)
export LD_LIBRARY_PATH="${LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# The tests that launch kernels (memcheck), and those whose kernels use shared memory (racecheck).
# (cuDNN's own conv tests, ConvLayerPlans.*, are left to ctest: the sanitizer makes cuDNN slow.)
# The fused tower's kernels (whole-tower activations in shared memory) go under both tools on
# the small towers only: FusedTowerGpu.PresetTowersMatchTwins (the 64-wide presets) is left to
# ctest, as its CPU twins and launches would take minutes under the sanitizers.
GPU_TESTS='*Gpu*:*Kernel*:GpuEngine.*:PairLayout.*:BiasGrad.*:GatherBatch.*:Reduce.*:RowGradCombiner.*:-Cli.*:FusedTowerGpu.PresetTowers*'
SHARED_MEMORY_TESTS='OuterProductFwd.Kernel2*:OuterProductBwd.*:HeadBwd.*:BiasGrad.*:RowGradCombiner.*:Reduce*:CountBeating*:TopK*:FusedTowerGpu.SmallTowers*:FusedTowerGpu.Empty*'
SAN=$(command -v compute-sanitizer || true)
[[ -z $SAN && -x /usr/local/cuda/compute-sanitizer/compute-sanitizer ]] &&
  SAN=/usr/local/cuda/compute-sanitizer/compute-sanitizer
export SAN

run_step versions 30 bash -c "$(declare -f versions); versions"
# shellcheck disable=SC2317
libs() {
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  for l in libcudnn.so.9 libcublas.so.13 libcublasLt.so.13; do
    local found=""
    for d in ${LD_LIBRARY_PATH//:/ }; do [[ -e $d/$l ]] && found=$d/$l && break; done
    echo "$l: ${found:-NOT FOUND}"
    [[ -n $found ]] || return 1
  done
  [[ -x build/convncf ]] && ldd build/convncf | grep -E 'cudnn|cublas|not found'
  return 0
}
run_step libs 20 bash -c "$(declare -f libs); libs"

if [[ -x build/convncf ]]; then
  fix_build_path
  skip_step build "using the carried build/"
else
  run_step build 300 bash -c "$(declare -f build_binary); build_binary"
fi

if [[ -x build/convncf_tests ]]; then
  if compgen -G 'build/convncf_tests*_tests.cmake' >/dev/null; then
    run_step ctest 170 ctest --test-dir build --output-on-failure --no-tests=error -j 8
  else  # the carried build lost ctest's test lists: run the GoogleTest binary itself
    run_step ctest 170 build/convncf_tests
  fi
  if [[ -n $SAN ]]; then
    # Every test that launches a kernel: the GPU test files' suites and the engine's.
    run_step memcheck 110 "$SAN" --tool memcheck --error-exitcode 1 \
      build/convncf_tests --gtest_filter="$GPU_TESTS"
    run_step racecheck 80 "$SAN" --tool racecheck --error-exitcode 1 \
      build/convncf_tests --gtest_filter="$SHARED_MEMORY_TESTS"
  else
    skip_step memcheck "compute-sanitizer not found"
    skip_step racecheck "compute-sanitizer not found"
  fi
else
  skip_step ctest "no build/convncf_tests (carry ./build to run the tests)"
  skip_step memcheck "no build/convncf_tests"
  skip_step racecheck "no build/convncf_tests"
fi

if [[ -x build/convncf ]]; then
  run_step selftest 30 build/convncf gpu-selftest
  # bench_table keeps its runs inside 115 s (--time-budget) and says "not run" for the peer
  # without torch; it exits 69 without a GPU, 70 if a run or a score check failed.
  rm -rf "$LOGS/bench"
  if [[ ! -x build/bench/bench_gpu ]]; then
    skip_step bench "no build/bench/bench_gpu"
  elif ! command -v python3 >/dev/null; then
    skip_step bench "no python3 for bench/bench_table.py"
  else
    run_step bench 130 python3 bench/bench_table.py --quick --bench-gpu build/bench/bench_gpu \
      --out "$LOGS/bench"
  fi
  rm -rf "$LOGS/smoke_run" "$LOGS/smoke_fused_run"
  run_step smoke 60 build/convncf train --device=cuda --verbose --epochs=2 --out="$LOGS/smoke_run"
  run_step smoke_fused 60 build/convncf train --device=cuda --engine=fused --precision=tf32 --verbose --epochs=2 \
    --out="$LOGS/smoke_fused_run"
else
  skip_step selftest "no build/convncf"
  skip_step bench "no build/convncf"
  skip_step smoke "no build/convncf"
  skip_step smoke_fused "no build/convncf"
  FAILED=1
fi

{
  echo
  echo "== gpu_check summary ($(($(date +%s) - T0)) s in all; logs in $LOGS)"
  printf '%-10s %-8s %6s\n' step status seconds
  printf '%s\n' "${SUMMARY[@]}"
  if [[ -s $LOGS/bench/table.md ]]; then
    echo
    cat "$LOGS/bench/table.md"
  fi
} | tee "$LOGS/summary.txt"
exit "$FAILED"
