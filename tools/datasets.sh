# datasets.sh: sourced by the tools that read ml-100k (ml100k_table.sh, engine_accuracy.sh).
# ml100k_path ARG: ARG when given, else $CONVNCF_DATASETS/ml-100k/ml-100k.inter when that variable
# is set, else the repository's ignored datasets/ folder (the one to carry to a GPU machine, README
# "On a GPU machine"), else ../shared/datasets beside the repository. Prints the path; the caller
# checks that it exists.
ml100k_path() {
  local repo d
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if [[ -n ${1:-} ]]; then echo "$1"; return; fi
  if [[ -n ${CONVNCF_DATASETS:-} ]]; then echo "$CONVNCF_DATASETS/ml-100k/ml-100k.inter"; return; fi
  for d in "$repo/datasets" "$repo/../shared/datasets"; do
    [[ -f $d/ml-100k/ml-100k.inter ]] && { echo "$d/ml-100k/ml-100k.inter"; return; }
  done
  echo "$repo/../shared/datasets/ml-100k/ml-100k.inter"
}
