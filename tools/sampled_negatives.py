"""sampled_negatives: a run's test queries scored under two readings of "N uniform negatives".

    python3 tools/sampled_negatives.py EXPORT_DIR RUN_DIR/split.tsv [--n=999] [--draws=5]

For each test item of split.tsv (one query per test row), the exported model (tools/convncf_numpy.py)
ranks it among negatives drawn uniformly from the items its user never interacted with (train,
valid or test), either N distinct ones (convncf's uniN) or N draws with replacement whose repeats
collapse into one (RecBole 1.2.1's uniN: its score matrix has one column per item), and prints
HR@10 and NDCG@10 (ties count against the positive) averaged over the queries, as mean and sd
over `draws` seeds, with the distinct negatives per query. README "Compared with RecBole".
"""

import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convncf_numpy  # noqa: E402


def main(argv):
    opts = dict(a[2:].split("=", 1) for a in argv if a.startswith("--"))
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 64
    n, draws = int(opts.get("n", 999)), int(opts.get("draws", 5))
    model = convncf_numpy.load(args[0])
    used, queries = collections.defaultdict(set), []
    with open(args[1], encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or line.startswith("user\t"):
                continue
            u, i, part = line.rstrip("\n").split("\t")
            used[u].add(i)
            if part == "test":
                queries.append((u, i))
    all_items = np.arange(len(model.item_ids))

    def evaluate(seed, replace):
        rng = np.random.default_rng(seed)
        hit = ndcg = 0.0
        distinct = []
        for u, i in queries:
            cand = np.setdiff1d(all_items, [model.item_row[x] for x in used[u]])
            negs = np.unique(rng.choice(cand, n if replace else min(n, len(cand)), replace=replace))
            distinct.append(len(negs))
            row = model.user_row[u]
            pos = model.score_index([row], [model.item_row[i]])[0]
            rank = int(np.sum(model.score_index(np.full(len(negs), row), negs) >= pos))
            if rank < 10:
                hit += 1
                ndcg += 1 / np.log2(rank + 2)
        return hit / len(queries), ndcg / len(queries), float(np.mean(distinct))

    for replace, name in ((False, f"{n} distinct (convncf uni{n})"),
                          (True, f"{n} draws with replacement (RecBole uni{n})")):
        r = np.array([evaluate(s, replace) for s in range(draws)])
        print(f"{name}: HR@10 {r[:, 0].mean():.4f} (sd {r[:, 0].std():.4f})  NDCG@10 {r[:, 1].mean():.4f} "
              f"(sd {r[:, 1].std():.4f})  distinct negatives per query {r[:, 2].mean():.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
