#!/usr/bin/env bash
# engine_accuracy.sh: does an engine change what ConvNCF learns? Trains the same configuration
# (recbole preset, leave-one-out split by time, 999 sampled negatives, the same seed) on the CPU
# engine and on each CUDA engine (cudnn; fused in fp32, tf32 and bf16), then prints each one's
# test NDCG@10 and HR@10 and its relative difference from the CPU engine's NDCG@10. Issue 6's bar:
# within 1% relative.
#   tools/engine_accuracy.sh [PATH/TO/ml-100k.inter] [OUT_DIR] [EPOCHS] [EXTRA TRAIN ARGS...]
# The dataset, when not given: $CONVNCF_DATASETS/ml-100k/ml-100k.inter, else datasets/ml-100k/ in
# the repository (an ignored folder: carry it to a GPU machine, README "On a GPU machine"), else
# ../shared/datasets/ml-100k/ beside the repository.
# Exit codes: 0 every engine within 1%; 1 some engine outside; 66 no dataset or no build;
# 69 no usable GPU (the CPU run alone tells nothing); a failed training run's own code otherwise.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# ml-100k: the argument, else $CONVNCF_DATASETS/ml-100k, else the repository's ignored datasets/
# (the folder to carry to a GPU machine), else ../shared/datasets beside the repository
data=${1:-}
if [[ -z $data ]]; then
  for d in ${CONVNCF_DATASETS:-} "$here/datasets" "$here/../shared/datasets"; do
    data=$d/ml-100k/ml-100k.inter
    [[ -f $data ]] && break
  done
  [[ -n ${CONVNCF_DATASETS:-} ]] && data=$CONVNCF_DATASETS/ml-100k/ml-100k.inter
fi
out=${2:-runs/engine_accuracy}
epochs=${3:-20}
shift $(( $# < 3 ? $# : 3 ))
bin=$here/build/convncf
[ -x "$bin" ] || { echo "engine_accuracy: build first (cmake --preset default && cmake --build --preset default)" >&2; exit 66; }
[ -f "$data" ] || { echo "engine_accuracy: no dataset at $data" >&2; exit 66; }
if ! "$bin" info 2>/dev/null | grep -q "device auto would use: the CUDA engine"; then
  echo "engine_accuracy: no usable GPU (convncf info), nothing to compare the CPU engine with" >&2
  exit 69
fi
mkdir -p "$out"
common=(--model=ConvNCF --dataset="$data" --eval_args.split.LS=valid_and_test --eval_args.order=TO
        --eval_mode=uni999 --topk=[10] --epochs="$epochs" --stopping_step=0 --quiet "$@")
runs=(cpu:--device=cpu cudnn:--device=cuda fused-fp32:--device=cuda,--engine=fused,--precision=fp32
      fused-tf32:--device=cuda,--engine=fused,--precision=tf32 fused-bf16:--device=cuda,--engine=fused,--precision=bf16)
for r in "${runs[@]}"; do
  name=${r%%:*}
  IFS=, read -r -a extra <<< "${r#*:}"
  start=$(date +%s)
  "$bin" train "${common[@]}" "${extra[@]}" --out="$out/$name"
  echo "engine_accuracy: $name trained in $(( $(date +%s) - start )) s" >&2
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
def test_row(name):
    rows = [json.loads(l) for l in open(f"{out}/{name}/metrics.jsonl")]
    return [r for r in rows if r["event"] == "test"][-1]["test"]
cpu = test_row("cpu")
ok = True
print(f'{"engine":<12} {"ndcg@10":>8} {"hr@10":>8} {"vs cpu":>8}')
for name in ["cpu", "cudnn", "fused-fp32", "fused-tf32", "fused-bf16"]:
    t = test_row(name)
    rel = (t["ndcg@10"] - cpu["ndcg@10"]) / cpu["ndcg@10"]
    within = abs(rel) <= 0.01
    ok = ok and within
    print(f'{name:<12} {t["ndcg@10"]:>8.4f} {t["hit@10"]:>8.4f} {rel:>+8.2%}{"" if within else "  outside 1%"}')
sys.exit(0 if ok else 1)
PY
