#!/usr/bin/env bash
# tools/gpu_check.sh: the one command to run on a lent GPU machine (H100/H200 with the CUDA
# toolkit, cuDNN, cuBLAS and PyTorch, but no GoogleTest, no Debian libraries and no internet). It
# runs from a copy of the repository at a path not known in advance, with the build made here
# carried in ./build:
#   here:   cmake --preset ci && cmake --build --preset ci && tools/gpu_check.sh --slim
#   there:  tools/gpu_check.sh                  (carry: build; device time: see --plan)
#   tools/gpu_check.sh --plan                   the steps, their timeouts and the total; runs nothing
#   tools/gpu_check.sh --only ctest,bench       these steps only (versions and libs always run)
#   tools/gpu_check.sh --slim                   prune ./build in place to what this script needs
#   tools/gpu_check.sh --slim-copy DIR [BUILD]  the same pruned build (of BUILD, default ./build)
#                                               copied to DIR, the original untouched
# Steps, in the order a lease needs them (each with a timeout; --plan prints them):
#   versions     GPU, driver, CUDA, the cuDNN headers, compute-sanitizer, the ml-100k dataset
#   libs         what the binaries NEED (readelf -d) and where each is found: the loader's path,
#                the toolkit's lib64/lib, PyPI's wheels (site-packages/nvidia/cu13/lib,
#                nvidia/cudnn/lib); cuDNN's own libraries and NVRTC (libnvrtc.so.13, which cuDNN
#                loads for its runtime-compiled engines). Says which copy it found; fails only when
#                a library a binary needs is absent. The folders go on LD_LIBRARY_PATH.
#   relocate     points the carried build's ctest files at this checkout (the test binaries find
#                their files relative to themselves, test_paths.hpp) and checks that the binaries
#                start; when one cannot (another glibc, a missing library), the build step runs
#   build        only then: configures build/gpu_check/fallback here (cuDNN from the toolkit or the
#                wheels, nlohmann/json from the copy --slim carried) and builds convncf and bench_gpu
#   ctest        the whole suite without a sanitizer (GPU tests included) but for the tests that
#                need the build machine (labels fuzz, install) and the relocation test; skipped
#                tests are listed with their reason; on a GPU machine a GPU test that skips fails it
#   selftest     convncf gpu-selftest (each kernel of the binary against its CPU twin)
#   bench        bench/bench_table.py --quick: kernel times, training throughput of each engine,
#                full ranking, the PyTorch peer; compared with bench/baselines/<card>.json when
#                there is one (a row slower beyond its measured spread fails the step)
#   smoke        convncf train --device=cuda, 2 epochs of the built-in synthetic data (ConvNCF
#                from N(0,1), validated every epoch, as before the one-run after_pretrain
#                default of issue 15, so the step's time and what it checks stay as measured)
#   smoke_nccl   smoke again through the CUDA engine's data-parallel exchange on an NCCL
#                communicator of one rank (CONVNCF_FORCE_NCCL=1): its model must be smoke's, byte
#                for byte (libs finds libnccl.so.2 in the toolkit or PyPI's nvidia-nccl wheel)
#   smoke_fused  the same with --engine=fused --precision=tf32
#   memcheck     compute-sanitizer memcheck on the small kernel tests (no cuDNN, no preset towers)
#   racecheck    compute-sanitizer racecheck on the kernels with shared memory, small cases
# Every step's result is written as the step ends ($OUT/summary.txt and $OUT/logs.tar.gz are
# rewritten), so a run cut off by the device tool still returns everything before the cut. A
# failing step does not stop the others.
# What lands in $OUT (the device tool returns at most 8 files, 2 folders down): summary.txt (the
# steps: status, seconds, note), table.md and table.json (the benchmark), logs.tar.gz (every log,
# the skipped tests' reasons, the benchmark's lines and the smoke runs' folders). Without OUT:
# build/gpu_check/out.
# Environment: OUT; GPU_CHECK_TIME_SCALE=N multiplies every timeout and the budget (a slow
# machine, e.g. the relocation test's CI run; default 1); CONVNCF_DATASETS, a folder holding
# ml-100k/ml-100k.inter (else ./datasets/, README "Data").
# Exit: 0 every step passed; 1 a step failed, timed out, ran out of time or was slower than the
# baseline; 64 bad usage; 66 --slim without a build; 69 no GPU here (the GPU steps said so and
# nothing else failed: a dry run).
# shellcheck disable=SC2317  # the step functions run in `bash -c` (export -f)
# shellcheck disable=SC2016  # ... with their arguments expanded there
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
export PATH="/usr/local/cuda/bin:$PATH"

usage() {
  sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
  exit 64
}

# ------------------------------------------------------------------------------------------- plan
# name|timeout (s, before GPU_CHECK_TIME_SCALE)|paths|what. paths: c the carried build runs it,
# f the fallback build does (the fallback build has no test binaries).
STEPS=(
  "versions|10|cf|GPU, driver, CUDA, cuDNN headers, compute-sanitizer, dataset"
  "libs|15|cf|libraries the binaries need, cuDNN's own, NVRTC: which copy"
  "relocate|10|cf|point the carried ctest files here; do the binaries start?"
  "build|200|f|fallback build of convncf and bench_gpu (only if they cannot start)"
  "ctest|125|c|the whole suite, no sanitizer (GPU tests included)"
  "selftest|30|cf|convncf gpu-selftest"
  "bench|80|cf|bench_table.py --quick, against bench/baselines/<card>.json"
  "smoke|35|cf|2 epochs --device=cuda (cudnn)"
  "smoke_nccl|30|cf|smoke through NCCL with one rank (CONVNCF_FORCE_NCCL=1): smoke's model"
  "smoke_fused|30|cf|2 epochs --engine=fused --precision=tf32"
  "memcheck|40|c|compute-sanitizer memcheck, small kernel tests"
  "racecheck|30|c|compute-sanitizer racecheck, shared-memory kernels"
)
BUDGET_BASE=470  # seconds for the whole run: 8 minutes less a margin, of a 15-minute lease
GRACE=2          # timeout's wait between SIGTERM and SIGKILL
OVERHEAD=1       # per step: the summary and the log archive
SCALE=${GPU_CHECK_TIME_SCALE:-1}
if ! [[ $SCALE =~ ^[1-9][0-9]?$ ]]; then
  echo "gpu_check: GPU_CHECK_TIME_SCALE must be a whole number from 1 to 99, not '$SCALE'" >&2
  exit 64
fi
BUDGET=$((BUDGET_BASE * SCALE))

step_field() {  # step_field NAME FIELD(2 timeout, 3 paths, 4 what)
  local s
  for s in "${STEPS[@]}"; do
    [[ ${s%%|*} == "$1" ]] && { cut -d'|' -f"$2" <<<"$s"; return; }
  done
}
step_names() { local s; for s in "${STEPS[@]}"; do echo "${s%%|*}"; done; }
timeout_of() { echo $(($(step_field "$1" 2) * SCALE)); }

ONLY=""
selected() {  # versions and libs always run: later steps need their LD_LIBRARY_PATH
  [[ -z $ONLY || $1 == versions || $1 == libs || $1 == relocate || ,$ONLY, == *,$1,* ]]
}

plan() {
  printf 'gpu_check plan: budget %d s (%d s x time scale %d); each step also counts %d s of\n' \
    "$BUDGET" "$BUDGET_BASE" "$SCALE" $((GRACE + OVERHEAD))
  printf 'kill grace and bookkeeping. c: runs with the carried build, f: with the fallback build.\n'
  printf '%-12s %8s %5s  %s\n' step timeout path what
  local s name path tot_c=0 tot_f=0 n_c=0 n_f=0 t
  for s in "${STEPS[@]}"; do
    IFS='|' read -r name _ path _ <<<"$s"
    selected "$name" || continue
    t=$(timeout_of "$name")
    printf '%-12s %7ds %5s  %s\n' "$name" "$t" "$path" "$(step_field "$name" 4)"
    [[ $path == *c* ]] && tot_c=$((tot_c + t + GRACE + OVERHEAD)) n_c=$((n_c + 1))
    [[ $path == *f* ]] && tot_f=$((tot_f + t + GRACE + OVERHEAD)) n_f=$((n_f + 1))
  done
  local fits=0
  printf 'total, carried build:  %d steps, %d s of %d s\n' "$n_c" "$tot_c" "$BUDGET"
  printf 'total, fallback build: %d steps, %d s of %d s\n' "$n_f" "$tot_f" "$BUDGET"
  if ((tot_c > BUDGET || tot_f > BUDGET)); then
    echo "gpu_check: the steps do not fit the budget" >&2
    fits=1
  fi
  return $fits
}

# ------------------------------------------------------------------------------------------- slim
# What --slim drops from a build folder: what this script and ctest never read there (ctest's
# Dist.EmulatedGpu skips without mpirun, which the GPU machine lacks, or without its binary).
# Kept: the binaries, CMakeCache.txt, the ctest files, kernel_resources.txt and the Makefiles (so
# the next `cmake --build` here rebuilds what was pruned).
SLIM_DROP_DIRS=(fuzz Testing gpu_check)
SLIM_DROP_FILES=('*.o' '*.a' '*.d' 'bench_cpu_engine' 'bench_eval' 'bench_load' '*.ptx' '*.cubin' '*.fatbin*'
                 'convncf_emulated'  # the emulated command: only Dist.EmulatedGpu runs it, under mpirun
                 '*.ii' '*.cudafe1.*' 'a.out' 'CMakeDetermineCompilerABI_*.bin')  # CMake's compiler identification
json_header_dir() { sed -n 's/^CONVNCF_JSON_HEADER_DIR:INTERNAL=//p' "$1/CMakeCache.txt" 2>/dev/null; }
slim_deps() {  # slim_deps BUILD: nlohmann/json's headers for a fallback build on the GPU machine
  local inc
  inc=$(json_header_dir "$1")
  if [[ -n $inc && -f $inc/nlohmann/json.hpp ]]; then
    mkdir -p "$1/gpu_check_deps/include" && cp -r "$inc/nlohmann" "$1/gpu_check_deps/include/"
  else
    echo "gpu_check: nlohmann/json.hpp not found through $1/CMakeCache.txt: a fallback build there will fail" >&2
  fi
}
slim_in_place() {
  [[ -f build/CMakeCache.txt ]] || { echo "gpu_check: no build/ to slim (cmake --preset ci && cmake --build --preset ci)" >&2; exit 66; }
  local d f
  for d in "${SLIM_DROP_DIRS[@]}"; do rm -rf "build/${d:?}"; done
  for f in "${SLIM_DROP_FILES[@]}"; do find build -name "$f" -type f -delete; done
  slim_deps build
  du -sh build
}
slim_copy() {  # slim_copy DEST [BUILD]: DEST becomes the pruned copy of BUILD (default ./build)
  local dest=$1 from=${2:-build}
  [[ -f $from/CMakeCache.txt ]] || { echo "gpu_check: no $from/CMakeCache.txt to copy (cmake --preset ci && cmake --build --preset ci)" >&2; exit 66; }
  [[ -e $dest ]] && { echo "gpu_check: $dest exists; --slim-copy makes a new folder" >&2; exit 64; }
  local ex=() d f
  for d in "${SLIM_DROP_DIRS[@]}"; do ex+=(--exclude="./$d"); done
  for f in "${SLIM_DROP_FILES[@]}"; do ex+=(--exclude="$f"); done
  mkdir -p "$dest" && tar -C "$from" -cf - "${ex[@]}" . | tar -C "$dest" -xf - || exit 1
  slim_deps "$dest"
  du -sh "$dest"
}

# ------------------------------------------------------------------------------------------ options
while (($#)); do
  case $1 in
    --plan) PLAN=1 ;;
    --slim) slim_in_place; exit 0 ;;
    --slim-copy) (($# >= 2)) || usage; slim_copy "$2" "${3:-build}"; exit 0 ;;
    --only)
      (($# >= 2)) || usage
      ONLY=$2
      shift
      for n in ${ONLY//,/ }; do
        step_names | grep -qx "$n" || { echo "gpu_check: --only: no step '$n' ($(step_names | paste -sd' '))" >&2; exit 64; }
      done ;;
    -h | --help) usage ;;
    *) echo "gpu_check: unknown argument '$1'" >&2; usage ;;
  esac
  shift
done
if [[ -n ${PLAN:-} ]]; then
  plan
  exit
fi

# ------------------------------------------------------------------------------------- the run
T0=$(date +%s)
GC=build/gpu_check
OUT=${OUT:-$GC/out}
LOGS=$GC/logs            # everything that goes into logs.tar.gz
if ! mkdir -p "$OUT" || ! OUT=$(cd "$OUT" && pwd); then
  echo "gpu_check: cannot make OUT=$OUT" >&2
  exit 64
fi
rm -rf "$LOGS" && mkdir -p "$LOGS" || exit 1
LOGS=$(cd "$LOGS" && pwd)
export CONVNCF_SOURCE_DIR=$PWD  # the test binaries' source tree (test_paths.hpp), whatever the build's path
SUMMARY=()
STATUSES=()
RUNNING=""
STEP_RC=0
HAVE_GPU=0
nvidia-smi -L 2>/dev/null | grep -q '^GPU [0-9]' && HAVE_GPU=1
# ml-100k for the two tests that read it (and tools/engine_accuracy.sh): CONVNCF_DATASETS, else
# the repository's ignored datasets/ folder (carry it), else ../shared/datasets.
if [[ -z ${CONVNCF_DATASETS:-} && -f datasets/ml-100k/ml-100k.inter ]]; then
  export CONVNCF_DATASETS=$PWD/datasets
fi

write_summary() {  # summary.txt: what has ended so far (and what is running), rewritten each time
  {
    echo "gpu_check on $(hostname 2>/dev/null || echo ?), $(date -u '+%Y-%m-%d %H:%M UTC'), $(pwd)"
    if ((HAVE_GPU)); then
      echo "GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
    else
      echo "GPU: none (nvidia-smi -L lists no GPU)"
    fi
    echo "budget ${BUDGET} s, time scale ${SCALE}; logs: logs.tar.gz (gpu_check_logs/<step>.log)"
    echo
    printf '%-12s %-10s %7s  %s\n' step status seconds note
    printf '%s\n' "${SUMMARY[@]}"
    [[ -n $RUNNING ]] && echo "$RUNNING"
    [[ -n ${1:-} ]] && { echo; echo "$1"; }
  } >"$OUT/summary.txt.tmp" && mv "$OUT/summary.txt.tmp" "$OUT/summary.txt"
}
archive_logs() {  # logs.tar.gz, at most 16 MiB: large files (run folders' checkpoints) go first
  cp "$OUT/summary.txt" "$LOGS/summary.txt" 2>/dev/null
  local ex=()
  tar -C "$(dirname "$LOGS")" -czf "$OUT/logs.tar.gz.tmp" --transform "s,^$(basename "$LOGS"),gpu_check_logs," \
    "$(basename "$LOGS")" 2>/dev/null
  if (($(stat -c %s "$OUT/logs.tar.gz.tmp" 2>/dev/null || echo 0) > 15 * 1024 * 1024)); then
    ex=(--exclude='*.bin' --exclude='*.npy' --exclude='checkpoint*' --exclude='*LastTest.log')
    tar -C "$(dirname "$LOGS")" -czf "$OUT/logs.tar.gz.tmp" "${ex[@]}" \
      --transform "s,^$(basename "$LOGS"),gpu_check_logs," "$(basename "$LOGS")" 2>/dev/null
  fi
  mv "$OUT/logs.tar.gz.tmp" "$OUT/logs.tar.gz"
}
record() {  # record NAME STATUS SECONDS NOTE
  SUMMARY+=("$(printf '%-12s %-10s %7s  %s' "$1" "$2" "$3" "$4")")
  STATUSES+=("$2")
  RUNNING=""
  echo "== $1: $2 after $3 s${4:+ ($4)}"
  write_summary
  archive_logs
}
skip_step() { record "$1" skip 0 "$2"; }

# run_step NAME [NO_GPU_CODE] -- COMMAND...: runs COMMAND with its output in $LOGS/NAME.log (the
# tail on the terminal) under the step's timeout, cut to the budget left; records status and
# seconds. NO_GPU_CODE: the command's exit code for "no usable GPU" (status NO GPU).
run_step() {
  local name=$1 nogpu=""
  shift
  [[ $1 != -- ]] && { nogpu=$1; shift; }
  shift
  local limit left
  limit=$(timeout_of "$name")
  left=$((BUDGET - ($(date +%s) - T0) - GRACE - OVERHEAD))
  ((limit > left)) && limit=$left
  if ((limit < 3)); then
    STEP_RC=124
    record "$name" "NO TIME" 0 "the ${BUDGET} s budget is spent"
    return
  fi
  echo "== $name (timeout ${limit} s): $(step_field "$name" 4)"
  RUNNING=$(printf '%-12s %-10s %7s  %s' "$name" running "-" "started at +$(($(date +%s) - T0)) s, timeout ${limit} s")
  write_summary
  local t rc log=$LOGS/$name.log
  t=$(date +%s)
  printf '$ %s\n' "$*" >"$log"
  STEP_LIMIT=$limit timeout --kill-after=$GRACE "$limit" "$@" >>"$log" 2>&1
  rc=$?
  tail -n 20 "$log"
  local status=ok note=""
  if ((rc == 124 || rc == 137)); then
    status=TIMEOUT note="killed at ${limit} s"
  elif [[ -n $nogpu ]] && ((rc == nogpu)) && ((HAVE_GPU == 0)); then
    status="NO GPU" note="exit $rc: no usable GPU here"
  elif ((rc == 3)) && [[ $name =~ ^(ctest|memcheck|racecheck)$ ]]; then
    status="GPU SKIP" note="a GPU is present but GPU tests skipped (see the log)"
  elif ((rc == 3)) && [[ $name == bench ]]; then
    status=SLOWER note="rows slower than the baseline beyond their spread (table.md)"
  elif ((rc == 10)) && [[ $name == relocate ]]; then
    status=fallback note="$(grep -m1 '^cannot start:' "$log" | cut -c15-)"
  elif ((rc != 0)); then
    status="FAIL($rc)"
  fi
  [[ -z $note ]] && note=$(grep -m1 '^note: ' "$log" | cut -c7-)
  STEP_RC=$rc
  record "$name" "$status" $(($(date +%s) - t)) "$note"
}

# --------------------------------------------------------------------------------------- versions
versions() {
  echo "--- nvidia-smi"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,compute_cap --format=csv ||
      echo "nvidia-smi failed"
  else
    echo "nvidia-smi not found: no NVIDIA driver here"
  fi
  echo "--- nvcc"
  if command -v nvcc >/dev/null; then nvcc --version | tail -n 2; else echo "nvcc not found"; fi
  echo "--- cuDNN headers (the runtime copy: libs step)"
  local h
  for h in /usr/local/cuda/include/cudnn_version.h /usr/local/cuda/targets/*/include/cudnn_version.h \
    /usr/include/cudnn_version.h /usr/include/x86_64-linux-gnu/cudnn_version.h \
    $(site_dirs | sed 's,$,/nvidia/cudnn/include/cudnn_version.h,'); do
    [[ -f $h ]] && echo "$h: $(grep -E '#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ' "$h" | awk '{print $3}' | paste -sd.)"
  done
  echo "--- compute-sanitizer"
  echo "${SAN:-not found}"
  echo "--- ml-100k (the two tests that read it skip without it; README \"Data\")"
  local d found=""
  for d in ${CONVNCF_DATASETS:-} datasets ../shared/datasets; do
    [[ -f $d/ml-100k/ml-100k.inter ]] && { found=$d/ml-100k/ml-100k.inter; break; }
  done
  echo "CONVNCF_DATASETS=${CONVNCF_DATASETS:-(unset)}: ${found:-not found (carry datasets/, or set CONVNCF_DATASETS)}"
  local gpu
  gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
  echo "note: GPU ${gpu:-none}; ml-100k ${found:+found}${found:-absent}"
}

# ------------------------------------------------------------------------------------------- libs
site_dirs() {  # Python's site-packages folders (PyPI's NVIDIA wheels live there)
  {
    python3 -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null
    ls -d /usr/local/lib/python3*/dist-packages /usr/lib/python3*/dist-packages /opt/*/.venv/lib/python3*/site-packages \
      /opt/conda/lib/python3*/site-packages 2>/dev/null
  } | awk '!seen[$0]++'
}
# Where libraries are looked for, in order: LD_LIBRARY_PATH as given, the toolkit, the wheels
# (CUDA 13's consolidated nvidia/cu13/lib, cuDNN's nvidia/cudnn/lib, older per-package lib/).
lib_dirs() {
  local d
  {
    tr ':' '\n' <<<"${LD_LIBRARY_PATH:-}"
    echo /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib | tr ' ' '\n'
    for d in $(site_dirs); do
      echo "$d/nvidia/cu13/lib" "$d/nvidia/cudnn/lib" "$d/nvidia/cuda_nvrtc/lib" "$d/nvidia/cuda_runtime/lib" \
        "$d/nvidia/nccl/lib" | tr ' ' '\n'
    done
  } | awk 'NF && !seen[$0]++' | while read -r d; do [[ -d $d ]] && echo "$d"; done
}
find_lib() {  # find_lib NAME: the first copy in lib_dirs, else the loader's cache, else ""
  local d
  for d in $LIB_DIRS; do [[ -e $d/$1 ]] && { echo "$d/$1"; return; }; done
  ldconfig -p 2>/dev/null | awk -v n="$1" '$1 == n {print $NF; exit}'
}
needed() { readelf -d "$1" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
libs() {
  local missing=0 bins=() b l p dirs=()
  for b in build/convncf build/tests/convncf_tests build/bench/bench_gpu; do [[ -x $b ]] && bins+=("$b"); done
  echo "searched, in order: $(echo "$LIB_DIRS" | paste -sd' '), then the loader's cache"
  if ((${#bins[@]} == 0)); then
    echo "no carried binaries to check; cuDNN is looked for for the fallback build"
    bins=()
  fi
  local libs_needed
  libs_needed=$( { for b in "${bins[@]}"; do needed "$b"; done; echo libcudnn.so.9; } | sort -u)
  echo "--- what ${bins[*]:-the fallback build} NEED (readelf -d)"
  for l in $libs_needed; do
    p=$(find_lib "$l")
    if [[ -n $p ]]; then
      echo "$l: $p$( [[ $(readlink -f "$p") != "$p" ]] && echo " -> $(readlink -f "$p")")"
      grep -qx "$(dirname "$p")" <<<"$LIB_DIRS" && dirs+=("$(dirname "$p")")
    else
      echo "$l: NOT FOUND"
      missing=1
    fi
  done
  echo "--- cuDNN's own libraries (libcudnn.so.9 loads them from its folder)"
  local cudnn_dir
  cudnn_dir=$(dirname "$(find_lib libcudnn.so.9)" 2>/dev/null)
  if [[ -n $(find_lib libcudnn.so.9) ]]; then
    for l in libcudnn_graph.so.9 libcudnn_engines_precompiled.so.9 libcudnn_engines_runtime_compiled.so.9 \
      libcudnn_heuristic.so.9; do
      if [[ -e $cudnn_dir/$l ]]; then
        local miss
        miss=$(LD_LIBRARY_PATH="$(printf '%s:' "${dirs[@]}")${LD_LIBRARY_PATH:-}" ldd "$cudnn_dir/$l" 2>&1 |
          awk '/not found/ {print $1}' | paste -sd' ')
        echo "$l: $cudnn_dir/$l${miss:+ (needs, NOT FOUND: $miss)}"
        [[ -n $miss ]] && missing=1
      else
        echo "$l: NOT FOUND beside libcudnn.so.9"
        missing=1
      fi
    done
  fi
  echo "--- NVRTC (cuDNN's runtime-compiled engines: the fused conv + bias + ReLU graphs)"
  local nvrtc nvrtc_note=""
  nvrtc=$(find_lib libnvrtc.so.13)
  if [[ -n $nvrtc ]]; then
    dirs+=("$(dirname "$nvrtc")")
    echo "libnvrtc.so.13: $nvrtc"
    local bi
    bi=$(compgen -G "$(dirname "$nvrtc")/libnvrtc-builtins.so.13*" | head -n 1)
    echo "libnvrtc-builtins.so.13.*: ${bi:-NOT FOUND beside it (NVRTC needs it)}"
  else
    echo "libnvrtc.so.13: NOT FOUND: cuDNN's runtime-compiled engines are unavailable; the cuDNN engine"
    echo "  then runs each convolution unfused with the bias + ReLU kernel (slower, still correct)"
    nvrtc_note="; no NVRTC: cuDNN's runtime-compiled engines unavailable"
  fi
  echo "--- NCCL (loaded at run time by the CUDA engine with several ranks, or CONVNCF_FORCE_NCCL=1)"
  local nccl nccl_note=""
  nccl=$(find_lib libnccl.so.2)
  if [[ -n $nccl ]]; then
    echo "libnccl.so.2: $nccl (CONVNCF_NCCL_LIBRARY for the later steps)"
    echo "$nccl" >"$GC/nccl_library"
  else
    echo "libnccl.so.2: NOT FOUND: the NCCL test and smoke_nccl will fail"
    nccl_note="; no NCCL"
  fi
  local path
  path=$(printf '%s\n' "${dirs[@]}" | awk 'NF && !seen[$0]++' | paste -sd:)
  echo "$path" >"$GC/ld_library_path"
  echo "LD_LIBRARY_PATH for the later steps: $path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if ((missing)); then
    echo "note: a library the binaries need is missing (NOT FOUND above)$nvrtc_note$nccl_note"
    return 1
  fi
  echo "note: cuDNN $(find_lib libcudnn.so.9)$nvrtc_note${nccl:+; NCCL $nccl}$nccl_note"
}

# --------------------------------------------------------------------------------------- relocate
# The sanitizers' tests: small cases, no cuDNN (GpuEngine, EvalGpu's large tables, ConvLayerPlans
# and the preset towers are left to ctest: under a sanitizer they take minutes).
MEMCHECK_TESTS='BprLossGrad.*:MfBprFwdBwd.*:MfScorePairs.*:BiasReluFwd.*:ReluBwd.*:BiasGrad.*:HeadFwd.Kernel1MatchesCpu:HeadBwd.Kernel1MatchesCpu:HeadBwd.Kernel1EmptyBatchWritesZeroSums:OptimGpu.*:OuterProductFwd.*:OuterProductBwd.*:MakePairs.*:GatherRowGrads.*:PairLayout.*:CountBeating.*:TopKMerge.*:Reduce.*:RowsSquaredReg.*:GatherBatch.*:RowGradCombiner.*:FusedTowerGpu.SmallTowersMatchTwins:FusedTowerGpu.EmptyBatchZeroFills'
RACECHECK_TESTS='OuterProductFwd.Kernel2*:OuterProductBwd.*:HeadBwd.Kernel1MatchesCpu:BiasGrad.*:RowGradCombiner.*:Reduce.*:CountBeating.*:TopKMerge.*:FusedTowerGpu.SmallTowersMatchTwins:FusedTowerGpu.EmptyBatchZeroFills'
# ctest labels left out on the GPU machine: the fuzz run and the install test build code with this
# machine's compilers and libraries (clang, nlohmann-json, the pruned static library), and the
# relocation test is what runs this script.
CTEST_EXCLUDE='^(fuzz|install|relocation)$'

sed_re() { printf '%s' "$1" | sed 's/[][\.*^$|/]/\\&/g'; }
sed_repl() { printf '%s' "$1" | sed 's/[\&|/]/\\&/g'; }
relocate() {
  local cache=build/CMakeCache.txt
  [[ -f $cache ]] || { echo "no $cache: not a carried CMake build"; echo "cannot start: no carried build"; return 10; }
  # Where the ctest files point now: the build machine's paths, or the last relocation's.
  local old_bin old_src new_bin=$PWD/build new_src=$PWD
  if [[ -f build/gpu_check_relocated ]]; then
    { read -r old_bin; read -r old_src; } <build/gpu_check_relocated
  else
    old_bin=$(sed -n 's/^CMAKE_CACHEFILE_DIR:INTERNAL=//p' "$cache")
    old_src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$cache")
  fi
  if [[ $old_bin == "$new_bin" && $old_src == "$new_src" ]]; then
    echo "build/ points here already ($new_bin): nothing to rewrite"
  else
    local files
    files=$(find build \( -name CTestTestfile.cmake -o -name '*_include.cmake' -o -name '*_tests.cmake' \
      -o -name DartConfiguration.tcl \) -type f)
    # both old paths to placeholders first, so that a new path holding an old one is not rewritten twice
    local prog
    prog="s|$(sed_re "$old_bin")|@GPU_CHECK_BIN@|g; s|$(sed_re "$old_src")|@GPU_CHECK_SRC@|g;"
    prog+=" s|@GPU_CHECK_BIN@|$(sed_repl "$new_bin")|g; s|@GPU_CHECK_SRC@|$(sed_repl "$new_src")|g"
    # shellcheck disable=SC2086
    sed -i "$prog" $files || return 1
    printf '%s\n%s\n' "$new_bin" "$new_src" >build/gpu_check_relocated
    echo "rewrote $(wc -w <<<"$files") ctest files: $old_bin -> $new_bin, $old_src -> $new_src"
    echo "note: carried build, relocated from $old_bin"
  fi
  local b out bad=""
  for b in build/convncf build/tests/convncf_tests build/bench/bench_gpu; do
    [[ -e $b ]] || { echo "$b: missing"; [[ $b == build/convncf ]] && bad="$b is missing"; continue; }
    case $b in
      */convncf_tests) out=$(timeout 20 "$b" --gtest_list_tests 2>&1 >/dev/null) ;;
      */bench_gpu) out=$(timeout 20 "$b" --help 2>&1 >/dev/null) ;;  # exits before any device call
      *) out=$(timeout 20 "$b" --version 2>&1 >/dev/null) ;;
    esac
    local rc=$?
    if ((rc == 0)); then
      echo "$b: starts"
      [[ $b == build/convncf ]] && echo "  $(timeout 20 "$b" info 2>&1 | grep -m1 '^CUDA driver') (the copy the loader picked)"
    else
      echo "$b: does not start (exit $rc): ${out:0:300}"
      [[ -z $bad ]] && bad=${out%%$'\n'*} && [[ $bad != *"$b"* ]] && bad="$b: ${bad:-exit $rc}"
    fi
  done
  if [[ -z $bad && -x build/tests/convncf_tests ]]; then
    # every pattern of the sanitizer steps' filters must name a test (a renamed test drops out)
    local f p n
    for f in MEMCHECK_TESTS RACECHECK_TESTS; do
      for p in ${!f//:/ }; do
        n=$(build/tests/convncf_tests --gtest_list_tests --gtest_filter="$p" | grep -c '^  ')
        ((n > 0)) || { echo "$f: '$p' matches no test"; bad="$f names no test '$p'"; }
      done
      echo "$f: $(build/tests/convncf_tests --gtest_list_tests --gtest_filter="${!f}" | grep -c '^  ') tests"
    done
    [[ -n $bad ]] && { echo "note: $bad"; return 1; }
  fi
  if [[ -n $bad ]]; then
    echo "cannot start: ${bad:0:150}"
    return 10
  fi
}

# ------------------------------------------------------------------------------------------ build
build_fallback() {
  local dir=$GC/fallback args=(-DCMAKE_BUILD_TYPE=Release -DCONVNCF_BUILD_TESTS=OFF -DCONVNCF_BUILD_BENCH=ON
    -DCONVNCF_STATIC_RUNTIME=OFF)
  [[ -f build/gpu_check_deps/include/nlohmann/json.hpp ]] &&
    args+=(-DCONVNCF_JSON_INCLUDE_DIR="$PWD/build/gpu_check_deps/include")
  # cuDNN: the toolkit's, else the wheel's (CMakeLists.txt also looks in site-packages/nvidia/cudnn)
  local root
  for root in $(site_dirs); do
    [[ -f $root/nvidia/cudnn/include/cudnn.h ]] && ! [[ -f /usr/local/cuda/include/cudnn.h ]] &&
      args+=(-DCONVNCF_CUDNN_ROOT="$root/nvidia/cudnn") && break
  done
  echo "cmake -S . -B $dir ${args[*]}"
  cmake -S . -B "$dir" "${args[@]}" && cmake --build "$dir" -j "$(nproc)" --target convncf bench_gpu || return 1
  echo "note: built here in $dir (the carried binaries could not start)"
}

# ------------------------------------------------------------------------------------------ ctest
ctest_step() {
  local stop rc
  # ctest stops its tests some seconds before the step's limit, so that its summary is printed
  stop=$(date -d "+$((STEP_LIMIT - 8)) seconds" '+%H:%M:%S')
  ctest --test-dir build --output-on-failure --no-tests=error -j "$(nproc)" -LE "$CTEST_EXCLUDE" \
    --stop-time "$stop"
  rc=$?
  local last=build/Testing/Temporary/LastTest.log
  [[ -f $last ]] && cp "$last" "$LOGS/ctest_LastTest.log"
  echo "--- skipped tests by reason (each test's output: ctest_LastTest.log)"
  local reasons
  reasons=$(awk '/: Skipped$/ { if ((getline r) > 0) n[r]++ } END { for (r in n) printf "%5d  %s\n", n[r], r }' \
    "$last" 2>/dev/null | sort -rn)
  echo "${reasons:-    (none)}"
  local total skipped
  total=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#' "$LOGS/ctest.log")
  skipped=$(awk '{ s += $1 } END { print s + 0 }' <<<"$reasons")
  echo "note: $total tests ran, $skipped skipped$( ((rc)) && echo ", some failed")"
  ((rc)) && return "$rc"
  if ((HAVE_GPU)) && grep -q 'no CUDA device' <<<"$reasons"; then return 3; fi
  return 0
}

sanitizer_step() {  # sanitizer_step TOOL FILTER
  "$SAN" --tool "$1" --error-exitcode 1 build/tests/convncf_tests --gtest_filter="$2"
  local rc=$?
  ((rc)) && return "$rc"
  if ((HAVE_GPU)) && grep -q 'no CUDA device' "$LOGS/$1.log"; then return 3; fi
  return 0
}

bench_step() {
  rm -rf "$GC/bench"
  python3 bench/bench_table.py --quick --bench-gpu "$BIN/bench/bench_gpu" --out "$GC/bench" \
    --time-budget $((STEP_LIMIT - 10)) --baseline-dir bench/baselines
  local rc=$?
  local f
  for f in table.md table.json; do [[ -f $GC/bench/$f ]] && cp "$GC/bench/$f" "$OUT/$f"; done
  [[ -d $GC/bench ]] && cp -r "$GC/bench" "$LOGS/bench"
  # bench_table: 1 slower than the baseline, 69 no GPU, 70 a run or a check failed
  ((rc == 1)) && return 3
  return "$rc"
}

smoke_step() {  # smoke_step NAME ARGS...
  local name=$1
  shift
  rm -rf "$GC/${name}_run"
  "$BIN/convncf" train --device=cuda --verbose --epochs=2 --train_method=no_pretrain --eval_step=1 "$@" \
    --out="$GC/${name}_run"
  local rc=$?
  [[ -d $GC/${name}_run ]] && cp -r "$GC/${name}_run" "$LOGS/${name}_run"
  return "$rc"
}

# smoke_nccl: smoke's run again through the data-parallel exchange with a communicator of one rank;
# the model it writes must be smoke's, byte for byte (GpuEngine.OneRankThroughNcclIsTheSingleGpuStep
# checks the same on the test cases)
smoke_nccl_step() {
  CONVNCF_FORCE_NCCL=1 smoke_step smoke_nccl 2>&1 | tee "$GC/smoke_nccl.out"
  local rc=${PIPESTATUS[0]}
  ((rc)) && return "$rc"
  if ! grep -q "data parallel" "$GC/smoke_nccl.out"; then
    echo "note: the engine did not say it exchanges through NCCL (no 'data parallel' in its description)"
    return 1
  fi
  if [[ ! -f $GC/smoke_run/model.bin ]]; then
    echo "note: ran through NCCL, but smoke wrote no model.bin to compare with"
    return 1
  fi
  if cmp "$GC/smoke_run/model.bin" "$GC/smoke_nccl_run/model.bin"; then
    echo "note: one rank through NCCL wrote smoke's model, byte for byte"
  else
    echo "note: the model trained through NCCL differs from smoke's"
    return 1
  fi
}

export -f versions site_dirs lib_dirs find_lib needed libs relocate sed_re sed_repl build_fallback \
  ctest_step sanitizer_step bench_step smoke_step smoke_nccl_step
export GC LOGS OUT HAVE_GPU MEMCHECK_TESTS RACECHECK_TESTS CTEST_EXCLUDE

SAN=$(command -v compute-sanitizer || true)
[[ -z $SAN && -x /usr/local/cuda/compute-sanitizer/compute-sanitizer ]] &&
  SAN=/usr/local/cuda/compute-sanitizer/compute-sanitizer
export SAN

LIB_DIRS=$(lib_dirs)
export LIB_DIRS
write_summary
run_step versions -- bash -c versions
run_step libs -- bash -c libs
if [[ -s $GC/ld_library_path ]]; then
  LD_LIBRARY_PATH="$(cat "$GC/ld_library_path")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export LD_LIBRARY_PATH
fi
if [[ -z ${CONVNCF_NCCL_LIBRARY:-} && -s $GC/nccl_library ]]; then
  CONVNCF_NCCL_LIBRARY=$(cat "$GC/nccl_library")
  export CONVNCF_NCCL_LIBRARY
fi

BIN=build
TESTS_OK=0  # the carried test binaries run here
# relocate: 0 done; 1 done, but a sanitizer filter names no test; 10 a binary cannot start
run_step relocate -- bash -c relocate
case $STEP_RC in
  0 | 1) TESTS_OK=1; skip_step build "the carried binaries start here" ;;
  10) run_step build -- bash -c build_fallback
      ((STEP_RC == 0)) && BIN=$GC/fallback ;;
  *) skip_step build "relocate did not finish" ;;
esac
export BIN

if ! selected ctest; then :
elif ((TESTS_OK)); then run_step ctest -- bash -c ctest_step
else skip_step ctest "no carried test binary that runs here"
fi
if ! selected selftest; then :
elif [[ -x $BIN/convncf ]]; then run_step selftest 69 -- "$BIN/convncf" gpu-selftest
else skip_step selftest "no $BIN/convncf"
fi
if ! selected bench; then :
elif [[ ! -x $BIN/bench/bench_gpu ]]; then skip_step bench "no $BIN/bench/bench_gpu"
elif ! command -v python3 >/dev/null; then skip_step bench "no python3 for bench/bench_table.py"
else run_step bench 69 -- bash -c bench_step
fi
for s in smoke smoke_nccl smoke_fused; do
  if ! selected $s; then :
  elif [[ ! -x $BIN/convncf ]]; then skip_step $s "no $BIN/convncf"
  elif [[ $s == smoke ]]; then run_step smoke 69 -- bash -c 'smoke_step smoke'
  elif [[ $s == smoke_nccl ]]; then run_step smoke_nccl 69 -- bash -c smoke_nccl_step
  else run_step smoke_fused 69 -- bash -c 'smoke_step smoke_fused --engine=fused --precision=tf32'
  fi
done
for s in memcheck racecheck; do
  if ! selected $s; then :
  elif ((!TESTS_OK)); then skip_step $s "no carried test binary that runs here"
  elif [[ -z $SAN ]]; then skip_step $s "compute-sanitizer not found"
  elif [[ $s == memcheck ]]; then run_step memcheck -- bash -c 'sanitizer_step memcheck "$MEMCHECK_TESTS"'
  else run_step racecheck -- bash -c 'sanitizer_step racecheck "$RACECHECK_TESTS"'
  fi
done

# ----------------------------------------------------------------------------------------- result
failed=0 nogpu=0
for status in "${STATUSES[@]}"; do
  case $status in
    ok | skip | fallback) ;;
    "NO GPU") nogpu=1 ;;
    *) failed=1 ;;
  esac
done
rc=0
((nogpu)) && rc=69
((failed)) && rc=1
case $rc in
  0) verdict="every step passed" ;;
  69) verdict="no GPU here: a dry run; the GPU steps said so" ;;
  *) verdict="a step failed: see its log in logs.tar.gz" ;;
esac
write_summary "$(printf 'total %d s of the %d s budget; exit %d (%s)' $(($(date +%s) - T0)) "$BUDGET" "$rc" "$verdict")"
archive_logs
[[ -s $OUT/table.md ]] && { echo; cat "$OUT/table.md"; }
echo
cat "$OUT/summary.txt"
exit "$rc"
