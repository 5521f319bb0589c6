#!/usr/bin/env bash
# bench/dist_scaling.sh: data-parallel training over MPI on this machine (README "Several
# processes"): for each preset, one epoch of ConvNCF on the built-in synthetic data with 1 rank and
# with 2 ranks of 1 thread (mpirun), the training seconds of each (metrics.jsonl) and the bytes that
# each step sent per rank (the run's own count, rank 0's mean over the steps).
#   bench/dist_scaling.sh BUILD_DIR [EPOCHS]
# Needs mpirun and BUILD_DIR/libconvncf_mpi.so. Prints one line per preset and rank count.
set -euo pipefail
build=$(cd "${1:?usage: bench/dist_scaling.sh BUILD_DIR [EPOCHS]}" && pwd)
epochs=${2:-1}
bin=$build/convncf
command -v mpirun >/dev/null || { echo "mpirun not found (Debian: openmpi-bin)"; exit 1; }
[[ -e $build/libconvncf_mpi.so ]] || { echo "$build/libconvncf_mpi.so not built (no MPI at configure time)"; exit 1; }
root=()
[[ $(id -u) -eq 0 ]] && root=(--allow-run-as-root)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1
printf '%-8s %5s %7s %12s %16s\n' preset ranks threads train_s bytes_per_step
for preset in recbole paper; do
  args=(train --preset=$preset --model=ConvNCF --device=cpu --epochs=$epochs --eval_args.split.LS=valid_and_test
        --eval_args.order=TO --eval_mode=uni99 --show_progress=false --quiet=false)
  for ranks in 1 2; do
    out=$tmp/$preset-$ranks
    if ((ranks == 1)); then
      "$bin" "${args[@]}" --threads=1 --out="$out" >"$out.log" 2>&1
    else
      mpirun "${root[@]}" --oversubscribe -np $ranks "$bin" "${args[@]}" --threads=1 --out="$out" >"$out.log" 2>&1
    fi
    secs=$(python3 -c 'import json,sys; print(sum(json.loads(l).get("seconds",0) for l in open(sys.argv[1])))' "$out/metrics.jsonl")
    bytes=$(sed -n 's/.*per training step (\([0-9]*\) bytes.*/\1/p' "$out.log")
    printf '%-8s %5s %7s %12.2f %16s\n' $preset $ranks 1 "$secs" "${bytes:--}"
  done
done
