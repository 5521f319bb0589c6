#!/usr/bin/env bash
# relocation_test.sh BUILD_DIR SOURCE_DIR: tools/gpu_check.sh as the GPU machine runs it, proven
# here without a GPU. Copies the repository as the device tool sends it (tracked and untracked,
# not ignored, files) to a fresh, deeper path, puts the build there pruned the way the README
# says (`tools/gpu_check.sh --slim-copy`, the same pruning as --slim), and runs the script there
# from another folder with OUT set. Fails unless:
#   - the copy (repository and pruned build) fits the device tool's 64 MiB;
#   - `gpu_check.sh --plan` fits its budget;
#   - the run exits 69 (no GPU here: a dry run; 0 where a GPU is present);
#   - what lands in OUT fits the device tool's return limits (at most 8 files, 16 MiB each,
#     64 MiB together, at most 2 folders down, names of letters, digits, '.', '_', '-');
#   - summary.txt has every step of the plan with a status and its seconds, and no step failed,
#     timed out or ran out of time;
#   - the ctest step listed and ran the whole suite (every test of BUILD_DIR but those labelled
#     fuzz, install or relocation) with none failing, the GPU tests skipping with their reason.
# ctest runs it in CUDA builds (label relocation; it runs the suite a second time, nested):
#   ctest --test-dir build -L relocation --output-on-failure
# RELOCATION_TIME_SCALE (default 25) is passed as GPU_CHECK_TIME_SCALE: the script's timeouts are
# sized for the GPU machine's 16 cores, and CI has 2, maybe shared (the nested suite took 4 to 17
# minutes on this project's shared 2-core machines).
set -uo pipefail
build=$(cd "$1" && pwd) src=$(cd "$2" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/convncf-relocation.XXXXXX")
keep=0  # set on a failure: the work folder stays for a look
trap '((keep)) && echo "kept for a look: $work" || rm -rf "$work"' EXIT
fails=0
# shellcheck disable=SC2034  # keep: read by the EXIT trap
fail() { echo "FAIL: $*"; fails=$((fails + 1)); keep=1; }
limit_mib=64

# 1. the repository as the device tool sends it, at a path the build never saw
repo=$work/elsewhere/deeper/repo
mkdir -p "$repo"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$src" && git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
     [[ -f $f || -L $f ]] && printf '%s\0' "$f"
   done | tar --null -T - -cf -) | tar -C "$repo" -xf - || { echo "copying the repository failed"; exit 1; }
else  # not a git checkout: everything but build folders and runs
  tar -C "$src" --exclude='./build*' --exclude=./runs -cf - . | tar -C "$repo" -xf - || exit 1
fi
# 2. the build, pruned as --slim prunes it
(cd "$src" && tools/gpu_check.sh --slim-copy "$repo/build" "$build") || { echo "--slim-copy failed"; exit 1; }
size=$(du -sb "$repo" | cut -f1)
echo "repository and pruned build: $((size / 1024 / 1024)) MiB ($(du -sb "$repo/build" | cut -f1) bytes of build)"
((size <= limit_mib * 1024 * 1024)) || fail "the carried tree is $((size / 1024 / 1024)) MiB, over ${limit_mib} MiB"

# 3. the plan fits its budget
plan=$("$repo/tools/gpu_check.sh" --plan) || fail "--plan says the steps do not fit: $plan"
echo "$plan"
steps=$(awk '/^step /{on=1; next} /^total/{on=0} on {print $1}' <<<"$plan")
[[ $(wc -l <<<"$steps") -ge 10 ]] || fail "--plan lists too few steps: $steps"

# 4. the run, from another folder
out=$work/out
mkdir -p "$out" "$work/cwd"
expect=69
nvidia-smi -L 2>/dev/null | grep -q '^GPU [0-9]' && expect=0
start=$(date +%s)
(cd "$work/cwd" && OUT=$out GPU_CHECK_TIME_SCALE=${RELOCATION_TIME_SCALE:-25} "$repo/tools/gpu_check.sh") >"$work/run.log" 2>&1
rc=$?
echo "gpu_check.sh ran $(($(date +%s) - start)) s, exit $rc"
((rc == expect)) || fail "gpu_check.sh exited $rc, expected $expect"

# 5. what lands in OUT fits the device tool's return limits
n=0 total=0
while IFS= read -r -d '' p; do
  rel=${p#"$out"/}
  [[ $rel =~ ^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$ ]] || fail "OUT/$rel: a name outside letters, digits, '.', '_', '-'"
  [[ -L $p ]] && fail "OUT/$rel is a link"
  if [[ -f $p ]]; then
    n=$((n + 1))
    s=$(stat -c %s "$p")
    total=$((total + s))
    ((s <= 16 * 1024 * 1024)) || fail "OUT/$rel is over 16 MiB"
    depth=$(tr -cd / <<<"$rel" | wc -c)
    ((depth <= 2)) || fail "OUT/$rel is $depth folders down"
  fi
done < <(find "$out" -mindepth 1 -print0)
((n <= 8)) || fail "OUT holds $n files, over 8"
((total <= 64 * 1024 * 1024)) || fail "OUT holds $total bytes, over 64 MiB"
for f in summary.txt logs.tar.gz; do [[ -s $out/$f ]] || fail "no OUT/$f"; done
echo "OUT: $n files, $total bytes: $(cd "$out" && find . -type f | sort | paste -sd' ')"

# 6. the summary: every step with a status and seconds, none failed
summary=$(cat "$out/summary.txt" 2>/dev/null)
echo "$summary"
for s in $steps; do
  line=$(grep -E "^$s +" <<<"$summary" | head -n 1)
  if [[ -z $line ]]; then
    fail "summary.txt has no line for step $s"
    continue
  fi
  status=$(cut -c14-23 <<<"$line" | sed 's/ *$//') secs=$(cut -c25-31 <<<"$line" | tr -d ' ')
  [[ -n $status ]] || fail "step $s has no status"
  [[ $secs =~ ^[0-9]+$ ]] || fail "step $s has no seconds ('$secs')"
  case $status in
    ok | skip | "NO GPU" | fallback) ;;
    *) fail "step $s: $status" ;;
  esac
done
grep -q '^total [0-9]* s of the' <<<"$summary" || fail "summary.txt has no total line (the run was cut off?)"

# 7. the ctest step ran the whole suite
logs=$work/logs
mkdir -p "$logs"
tar -C "$logs" -xzf "$out/logs.tar.gz" || fail "logs.tar.gz does not unpack"
clog=$logs/gpu_check_logs/ctest.log
# Listed from a copy of BUILD_DIR's ctest files (they include the test lists by absolute path): a
# ctest run in BUILD_DIR itself, even -N, replaces its Testing/Temporary/LastTest.log, which the
# ctest running this test is still writing.
listing=$work/listing
(cd "$build" && find . -name CTestTestfile.cmake -print0 | while IFS= read -r -d '' f; do
   mkdir -p "$listing/$(dirname "$f")" && cp "$f" "$listing/$f"
 done)
want=$("${RELOCATION_CTEST:-ctest}" --test-dir "$listing" -N -LE '^(fuzz|install|relocation)$' |
       sed -n 's/^Total Tests: //p')
got=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\)$/\1 \2/p' "$clog" 2>/dev/null)
echo "ctest step: '$got' (failed, out of); the suite here without fuzz, install, relocation: $want"
[[ -n $want && $want -gt 0 ]] || fail "cannot count this build's tests"
[[ $got == "0 $want" ]] || fail "the ctest step ran '${got:-nothing}' (failed, out of), not 0 of $want"
grep -q 'Relocation\.GpuCheckDryRun' "$clog" 2>/dev/null && fail "the nested run ran the relocation test itself"
if ((expect == 69)); then
  grep -qE '^ +[0-9]+  no usable CUDA device' "$clog" || fail "the ctest log gives no 'no usable CUDA device' skip reason"
  grep -q 'GpuEngine.RecBolePresetStepsMatchCpuEngine .*(Skipped)' "$clog" ||
    fail "GpuEngine.RecBolePresetStepsMatchCpuEngine is not listed as skipped"
fi
grep -q '^rewrote [0-9]* ctest files: ' "$logs/gpu_check_logs/relocate.log" 2>/dev/null ||
  fail "the relocate step rewrote no ctest file"

if ((fails)); then
  echo "--- the run's output (tail)"
  tail -n 60 "$work/run.log"
  echo "$fails check(s) failed"
  exit 1
fi
echo "relocated dry run: every check passed"
