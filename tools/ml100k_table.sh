#!/usr/bin/env bash
# ml100k_table.sh: the README's ml-100k table. Trains popularity, MF-BPR, ConvNCF without
# pretraining and ConvNCF initialized from the MF-BPR run, all with the recbole preset on the
# same leave-one-out split (by time) and 999 sampled negatives (the paper's protocol), prints
# HR@10 / NDCG@10 per model, and plots ConvNCF from MF-BPR next to MF-BPR (tools/plot_run.py,
# when a python3 with matplotlib is found) into OUT_DIR/convncf_vs_bpr.png.
#   tools/ml100k_table.sh [PATH/TO/ml-100k.inter] [OUT_DIR] [CONVNCF_EPOCHS]
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
out=${2:-runs/ml100k}
epochs=${3:-30}
bin=$here/build/convncf
[ -x "$bin" ] || { echo "build first: cmake --preset default && cmake --build --preset default" >&2; exit 66; }
[ -f "$data" ] || { echo "no dataset at $data" >&2; exit 66; }
mkdir -p "$out"
common=(--dataset="$data" --eval_args.split.LS=valid_and_test --eval_args.order=TO --eval_mode=uni999
        --topk=[5,10,20] --quiet)
"$bin" train --model=Pop "${common[@]}" --out="$out/pop"
"$bin" train --model=BPR "${common[@]}" --out="$out/bpr"
"$bin" train --model=ConvNCF "${common[@]}" --epochs="$epochs" --out="$out/convncf"
"$bin" train --model=ConvNCF "${common[@]}" --epochs="$epochs" --train_method=after_pretrain \
  --pre_model_path="$out/bpr" --out="$out/convncf_pretrained"
printf '%-22s %8s %8s %8s %10s\n' model best_epoch hr@10 ndcg@10 triples/s
for m in pop bpr convncf convncf_pretrained; do
  python3 - "$out/$m/metrics.jsonl" "$m" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
test = [r for r in rows if r["event"] == "test"][-1]
tps = [r["triples_per_second"] for r in rows if r["event"] == "epoch"]
med = sorted(tps)[len(tps) // 2] if tps else float("nan")
print(f'{sys.argv[2]:<22} {test["best_epoch"]:>8} {test["test"]["hit@10"]:>8.4f} {test["test"]["ndcg@10"]:>8.4f} {med:>10.0f}')
PY
done
for py in /usr/bin/python3 python3; do
  if "$py" -c 'import matplotlib' 2>/dev/null; then
    "$py" "$here/tools/plot_run.py" "$out/convncf_pretrained" "$out/bpr" --out="$out/convncf_vs_bpr.png"
    break
  fi
done
