#!/usr/bin/env python3
"""plot_run.py: training loss and validation metrics per epoch of one or several convncf runs.

usage: tools/plot_run.py RUN_DIR [RUN_DIR ...] [--out=FILE.png] [--metric=NAME@K ...]

Reads each RUN_DIR/metrics.jsonl (its "main" stage: a one-run after_pretrain's MF-BPR stage is left
out) and config.yaml (for the label) and draws, one line per run:
the mean BPR loss per epoch, and each validation metric (default: the runs' valid_metric, plus
ndcg@10 and hit@10 when present) against the epoch. The test result of a finished run is
written into its legend entry. Needs matplotlib; writes FILE.png (default: runs.png).
Exit codes: 0 ok, 64 usage, 65 a metrics.jsonl line that is not JSON, 66 a missing run folder.
"""
import json
import os
import sys


def die(code, msg):
    print("plot_run.py: error: " + msg, file=sys.stderr)
    sys.exit(code)


def read_run(d):
    path = os.path.join(d, "metrics.jsonl")
    if not os.path.isfile(path):
        die(66, d + " is not a run folder: no metrics.jsonl")
    epochs, test, label, valid_metric = [], None, os.path.basename(os.path.normpath(d)), None
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                e = json.loads(line)
            except json.JSONDecodeError as err:
                die(65, "%s:%d: not a JSON line (%s)" % (path, n, err))
            if e.get("stage", "main") != "main":
                continue  # the MF-BPR stage of a one-run after_pretrain: plot its own run for it
            if e.get("event") == "epoch":
                epochs.append(e)
            elif e.get("event") == "test":
                test = e
    cfg = os.path.join(d, "config.yaml")
    if os.path.isfile(cfg):
        with open(cfg) as f:
            for line in f:
                if line.startswith("model: "):
                    label = line.split(":", 1)[1].strip() + " (" + label + ")"
                if line.startswith("valid_metric: "):
                    valid_metric = line.split(":", 1)[1].strip()
    return {"dir": d, "label": label, "epochs": epochs, "test": test, "valid_metric": valid_metric}


def main(argv):
    out, dirs, metrics = "runs.png", [], []
    for a in argv:
        if a in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        if a.startswith("--out="):
            out = a[6:]
        elif a.startswith("--metric="):
            metrics.append(a[9:].lower())
        elif a.startswith("--"):
            die(64, "unknown option " + a + " (see --help)")
        else:
            dirs.append(a)
    if not dirs:
        die(64, "name at least one run folder (see --help)")
    runs = [read_run(d) for d in dirs]
    if not metrics:
        for r in runs:
            if r["valid_metric"] and r["valid_metric"] not in metrics:
                metrics.append(r["valid_metric"])
        for m in ("ndcg@10", "hit@10"):
            if m not in metrics and any(m in e.get("valid", {}) for r in runs for e in r["epochs"]):
                metrics.append(m)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        die(69, "matplotlib is not installed (pip install matplotlib, or apt install python3-matplotlib)")

    fig, axes = plt.subplots(1, 1 + len(metrics), figsize=(5 * (1 + len(metrics)), 4), squeeze=False)
    axes = axes[0]
    for r in runs:
        xs = [e["epoch"] for e in r["epochs"]]
        label = r["label"]
        if r["test"]:
            t = r["test"].get("test", {})
            shown = [m for m in metrics if m in t]
            if shown:
                label += ": test " + ", ".join("%s %.4f" % (m, t[m]) for m in shown)
        axes[0].plot(xs, [e["loss"] for e in r["epochs"]], marker=".", label=label)
        for ax, m in zip(axes[1:], metrics):
            pts = [(e["epoch"], e["valid"][m]) for e in r["epochs"] if m in e.get("valid", {})]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=r["label"])
    axes[0].set_title("training loss (mean BPR per triple)")
    axes[0].set_xlabel("epoch")
    axes[0].legend(fontsize=7)
    for ax, m in zip(axes[1:], metrics):
        ax.set_title("validation " + m)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print("wrote " + out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
