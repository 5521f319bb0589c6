#!/usr/bin/env python3
"""bench_table.py: the one benchmark command. Runs build/bench/bench_gpu (kernels, training
throughput of the cudnn and fused engines, full-ranking evaluation) and the PyTorch peer
(bench/peer/convncf_torch.py, eager and compiled), collects their JSON lines and prints:
  - training throughput per engine x preset x batch: triples/s, % of the FP32 floor, % of the
    tensor-core floor, speed-up over pytorch-eager at the same preset and batch;
  - the full-ranking evaluation time of a 30,000-user x 41,000-item catalogue per engine;
  - the issue's targets (H100, recbole preset), each met / not met / not measured.
Standard library only. From the repository root:

  python3 bench/bench_table.py [--quick] [--out DIR] [--json-out FILE] [--bench-gpu PATH]
                               [--python PATH] [--engines LIST] [--time-budget S]
                               [--baseline FILE | --baseline-dir DIR] [--tolerance-floor F]
  python3 bench/bench_table.py --from-lines FILE [--from-lines FILE ...] [--json-out FILE]
                               [--baseline FILE]

--from-lines runs nothing: it builds the table from JSON lines already written (bench_gpu's,
the peer's, or the "rows" this script writes), which is how tests/fixtures exercise it.
--baseline FILE (a table.json this script wrote, or JSON lines) compares this run with a recorded
one row by row: each kernel (kernel x shape), each engine x preset x batch, each engine's full
ranking. Every row carries its repeats (bench_gpu times each kernel R times, the training steps and
the ranked users in up to 5 chunks); their spread, (max - min) / median of the times, is the
row's run-to-run noise. A row is "slower" when its median time exceeds the baseline's by more than
the larger spread of the two rows (at least --tolerance-floor, default 0.03); "faster" the other
way. Lines of one row given several times (several --from-lines files of repeated runs) pool their
repeats. --baseline-dir DIR takes DIR/<card>.json for the GPU that ran (h100, h200, h100-pcie, ...;
card_of()), and says so when there is none.
Outputs (run mode): DIR/table.md, DIR/table.json (or --json-out), DIR/lines.jsonl (every line
collected), DIR/<run>.log (each run's stderr). The table also goes to stdout.
Exit: 0 done; 1 a row is slower than the baseline beyond its spread (the table is written, with the
comparison); 64 bad option; 65 a --from-lines or --baseline file holds a malformed JSON line (a
--baseline-dir file is read after the runs: the table is written, with a note); 66
bench_gpu, a --from-lines or a --baseline file missing; 69 no usable GPU (bench_gpu said so: nothing is written);
70 bench_gpu failed or timed out, the peer crashed, or a score check failed (the table is
written with what was measured and names the failure); 128+N stopped by signal N (the run in
progress is stopped with it, nothing written). A peer that cannot run (no torch, torch without
CUDA) or runs out of time is not a failure: its rows say "not run: <reason>".
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

# The floors, as bench_gpu and the peer compute them (REFERENCE.md): training FLOP per triple
# (conv multiply-adds x 2 FLOP x 2 pairs x 3 for forward + backward), and the H100 SXM's dense
# peaks (the H200 is the same chip). fp32 engines are held to the TF32 tensor-core peak.
FLOP_PER_TRIPLE = {"recbole": 5.0e6, "paper": 18.6e6}
PEAK_FP32 = 67e12
PEAK_TC = {"fp32": 495e12, "tf32": 495e12, "bf16": 989e12}

ENGINES = ["pytorch-eager", "pytorch-compiled", "cudnn", "fused fp32", "fused tf32", "fused bf16"]
CONVNCF_ENGINES = ENGINES[2:]
BENCH_GPU_ENGINES = {"cudnn": "cudnn", "fused-fp32": "fused fp32", "fused-tf32": "fused tf32",
                     "fused-bf16": "fused bf16"}
PRESETS = ["recbole", "paper"]
QUICK_BATCHES = [2048, 16384]
FULL_BATCHES = [512, 2048, 4096, 8192, 16384]

# The targets, for an H100 and the recbole preset. "tensor_cores": only rows that did not
# run on FP32 cores count (bench_gpu's "tensor_cores": false, the fused tower's variant 2).
TARGETS = [
    {"id": "fused_fp32_rate", "text": "fused fp32 >= 6.5 M triples/s", "kind": "rate",
     "engines": ["fused fp32"], "threshold": 6.5e6},
    {"id": "fused_tc_rate", "text": "fused tf32 or bf16 >= 25 M triples/s", "kind": "rate",
     "engines": ["fused tf32", "fused bf16"], "threshold": 25e6, "tensor_cores": True},
    {"id": "fused_tf32_goal", "text": "goal: fused tf32 >= 40 M triples/s", "kind": "rate",
     "engines": ["fused tf32"], "threshold": 40e6, "tensor_cores": True},
    {"id": "fused_bf16_goal", "text": "goal: fused bf16 >= 80 M triples/s", "kind": "rate",
     "engines": ["fused bf16"], "threshold": 80e6, "tensor_cores": True},
    {"id": "speedup_vs_eager", "text": ">= 50x pytorch-eager (best convncf engine, same batch)",
     "kind": "speedup", "engines": CONVNCF_ENGINES, "threshold": 50.0},
    {"id": "full_ranking", "text": "full ranking 30k users x 41k items < 30 s", "kind": "eval",
     "engines": CONVNCF_ENGINES, "threshold": 30.0},
]
TARGET_PRESET = "recbole"

EXIT_SLOWER, EXIT_USAGE, EXIT_DATA, EXIT_NO_INPUT, EXIT_UNAVAILABLE, EXIT_SOFTWARE = 1, 64, 65, 66, 69, 70
TOLERANCE_FLOOR = 0.03  # the least relative change counted as slower or faster
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class InputError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------- parsing and merging
def parse_lines(text, source, problems=None):
    """The JSON objects of `text`, one per line; lines not starting with '{' are skipped (logs).
    A line that starts with '{' and does not parse is an error naming source:line; with a list
    `problems` it is reported there and skipped instead (a run cut off mid-line)."""
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not an object")
        except ValueError as e:
            msg = f"{source}:{n}: not a JSON object ({e})"
            if problems is None:
                raise InputError(EXIT_DATA, msg) from None
            problems.append(msg + "; line skipped")
            continue
        rows.append(row)
    return rows


def engine_label(row):
    """'fused bf16', 'cudnn', 'pytorch-eager', ...; a peer line that fell back from compiled to
    eager is the compiled engine's (it is not an eager measurement to compare against)."""
    e = row.get("engine", "?")
    if e == "fused":
        return f"fused {row.get('precision', '?')}"
    if row.get("fallback_from") == "compiled":
        return "pytorch-compiled"
    return e


def precision_of(row):
    if row.get("engine") in ("fused", "cudnn"):
        return row.get("precision", "fp32")
    return "tf32" if row.get("tf32") else "fp32"  # the peer: TF32 only with --tf32


def status_of(row):
    """None for a measurement, else the text shown instead of a rate."""
    if row.get("fallback_from") == "compiled":
        return (f"not run: torch.compile failed ({row.get('fallback_reason', '?')}); "
                f"eager was timed instead")
    for key, word in (("not_run", "not run"), ("skipped", "skipped"), ("error", "error")):
        if key in row:
            return f"{word}: {row[key]}"
    return None


def cores_of(row):
    """'tensor cores' or 'FP32 cores' where bench_gpu says which the fused tower ran on
    ("tensor_cores", with "fused_variant"), else None."""
    tc = row.get("tensor_cores")
    if tc is None:
        return None
    return "tensor cores" if tc else "FP32 cores"


def train_entry(row):
    label, preset = engine_label(row), row.get("preset", "?")
    e = {"engine": label, "preset": preset, "batch": row.get("batch"), "status": status_of(row),
         "cores": cores_of(row), "fused_variant": row.get("fused_variant")}
    tps = row.get("triples_per_second")
    if e["status"] is None and isinstance(tps, (int, float)):
        # Recomputed from the rate with the constants above (bench_gpu's and the peer's), so every
        # row has both fractions at full precision; the lines' own fields are rounded.
        flop, prec = FLOP_PER_TRIPLE.get(preset), precision_of(row)
        e["triples_per_second"], e["precision"] = float(tps), prec
        e["of_fp32_floor"] = tps * flop / PEAK_FP32 if flop else None
        e["of_tc_floor"] = tps * flop / PEAK_TC.get(prec, PEAK_TC["fp32"]) if flop else None
    elif e["status"] is None:
        e["status"] = "error: no triples_per_second in the line"
    return e


def eval_entry(row):
    e = {"engine": engine_label(row), "preset": row.get("preset", "?"), "status": status_of(row)}
    for k in ("users", "items", "queries", "queries_timed", "seconds", "measured_seconds",
              "extrapolated", "pairs_per_second", "score_check_rel_err"):
        if k in row:
            e[k] = row[k]
    if e["status"] is None and not isinstance(e.get("seconds"), (int, float)):
        e["status"] = "error: no seconds in the line"
    return e


def merge(rows):
    """Training and evaluation entries keyed by (engine, preset, batch) / (engine, preset); a
    later line replaces an earlier one with the same key. Speed-ups against pytorch-eager at the
    same preset and batch are added."""
    train, evals, meta = {}, {}, {}
    for row in rows:
        b = row.get("bench")
        if b == "train_step":
            e = train_entry(row)
            train[(e["engine"], e["preset"], e["batch"])] = e
        elif b == "eval_full":
            e = eval_entry(row)
            evals[(e["engine"], e["preset"])] = e
        else:
            continue
        if row.get("engine") in ("cudnn", "fused"):  # bench_gpu's lines name the GPU first
            meta.update({k: row[k] for k in ("gpu", "sm_clock_mhz", "cuda_runtime", "cudnn") if k in row})
        elif "torch" in row:
            meta["torch"] = row["torch"]
            if row.get("gpu"):
                meta.setdefault("gpu", row["gpu"])
    for (eng, preset, batch), e in train.items():
        base = train.get(("pytorch-eager", preset, batch))
        if "triples_per_second" in e and base and base.get("triples_per_second"):
            e["speedup_vs_eager"] = e["triples_per_second"] / base["triples_per_second"]

    def order(key):
        eng, preset = key[0], key[1]
        return (PRESETS.index(preset) if preset in PRESETS else 99, preset,
                key[2] if len(key) > 2 and isinstance(key[2], int) else 0,
                ENGINES.index(eng) if eng in ENGINES else 99, eng)
    return ([train[k] for k in sorted(train, key=order)],
            [evals[k] for k in sorted(evals, key=lambda k: order(k + (0,)))], meta)


# ---------------------------------------------------------------- targets
def verdicts(train, evals, preset=TARGET_PRESET):
    out = []
    for t in TARGETS:
        best, where, extrapolated = None, "", False
        if t["kind"] in ("rate", "speedup"):
            key = "triples_per_second" if t["kind"] == "rate" else "speedup_vs_eager"
            for e in train:
                if t.get("tensor_cores") and e.get("cores") == "FP32 cores":
                    continue
                if e["preset"] == preset and e["engine"] in t["engines"] and key in e:
                    if best is None or e[key] > best:
                        best, where = e[key], f"{e['engine']}, batch {e['batch']}"
            met = best is not None and best >= t["threshold"]
        else:
            for e in evals:
                if e["preset"] == preset and e["engine"] in t["engines"] and e["status"] is None:
                    if best is None or e["seconds"] < best:
                        best, where = e["seconds"], e["engine"]
                        extrapolated = bool(e.get("extrapolated"))
            met = best is not None and best < t["threshold"]
        if best is None:
            verdict = "not measured"
        else:
            verdict = ("met" if met else "not met") + (" (extrapolated)" if extrapolated else "")
        out.append({"id": t["id"], "kind": t["kind"], "target": t["text"], "threshold": t["threshold"], "preset": preset,
                    "measured": best, "where": where, "extrapolated": extrapolated, "verdict": verdict})
    return out


# ---------------------------------------------------------------- comparison with a baseline
def card_of(gpu):
    """A short file name for a GPU: 'NVIDIA H100 80GB HBM3' -> 'h100', 'NVIDIA H200' -> 'h200',
    'NVIDIA H100 PCIe' -> 'h100-pcie', 'NVIDIA H200 NVL' -> 'h200-nvl'; else the whole name in
    lower case with '-' for each run of other characters."""
    words = re.findall(r"[a-z0-9]+", str(gpu).lower())
    model = next((w for w in words if re.fullmatch(r"[a-z]{1,3}[0-9]{2,4}[a-z]?", w)), None)
    if model is None:
        return "-".join(words) or "unknown"
    return "-".join([model] + [w for w in ("pcie", "nvl") if w in words])


def _median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def measured_rows(rows):
    """The rows a comparison can use, keyed for matching: {key: {"what", "unit", "times", "value"}}.
    Times are the repeats as seconds-like numbers where larger is slower (ms of a kernel, 1/rate of a
    training row, seconds of a full ranking); a line without repeats counts its one value. Lines of
    the same key pool their repeats; "value" is the median of the lines' own values."""
    out = {}
    for r in rows:
        b = r.get("bench")
        if status_of(r) is not None or "error" in r:
            continue
        if b == "kernel" and isinstance(r.get("ms"), (int, float)):
            key = ("kernel", r.get("kernel", "?"), r.get("shape", ""))
            what, unit, value, samples = f"kernel {key[1]} ({key[2]})", "ms", r["ms"], r.get("samples_ms")
            times = [float(x) for x in samples] if samples else [float(value)]
        elif b == "train_step" and isinstance(r.get("triples_per_second"), (int, float)):
            key = ("train_step", engine_label(r), r.get("preset", "?"), r.get("batch"))
            what, unit, value = f"train {key[1]} {key[2]} batch {key[3]}", "triples/s", r["triples_per_second"]
            samples = r.get("samples_tps") or [value]
            times = [1.0 / float(x) for x in samples if x]
        elif b == "eval_full" and isinstance(r.get("seconds"), (int, float)):
            key = ("eval_full", engine_label(r), r.get("preset", "?"))
            what, unit, value, samples = f"full ranking {key[1]} {key[2]}", "s", r["seconds"], r.get("samples_seconds")
            times = [float(x) for x in samples] if samples else [float(value)]
        else:
            continue
        if not times or not all(t > 0 for t in times):
            continue
        e = out.setdefault(key, {"what": what, "unit": unit, "times": [], "values": []})
        e["times"] += times
        e["values"].append(float(value))
    for e in out.values():
        e["value"] = _median(e.pop("values"))
        med = _median(e["times"])
        e["spread"] = (max(e["times"]) - min(e["times"])) / med
        e["repeats"] = len(e["times"])
        e["time"] = med
    return out


def compare(base_rows, rows, floor=TOLERANCE_FLOOR):
    """Row-by-row comparison: a list of {"key", "what", "unit", "baseline", "value", "change",
    "tolerance", "verdict"} in the table's order, verdict "slower" / "faster" / "same" / "new" /
    "missing". change: the median time's relative change (+0.20: 20% slower)."""
    base, cur = measured_rows(base_rows), measured_rows(rows)
    kinds = {"kernel": 0, "train_step": 1, "eval_full": 2}

    def order(key):
        return (kinds[key[0]],) + tuple((0, x) if isinstance(x, int) else (1, str(x)) for x in key[1:])
    out = []
    for key in sorted(set(base) | set(cur), key=order):
        b, c = base.get(key), cur.get(key)
        e = {"key": list(key), "what": (c or b)["what"], "unit": (c or b)["unit"],
             "baseline": b["value"] if b else None, "value": c["value"] if c else None,
             "baseline_spread": b["spread"] if b else None, "spread": c["spread"] if c else None,
             "repeats": c["repeats"] if c else 0, "baseline_repeats": b["repeats"] if b else 0}
        if b and c:
            change = c["time"] / b["time"] - 1.0
            tol = max(b["spread"], c["spread"], floor)
            e.update(change=change, tolerance=tol,
                     verdict="slower" if change > tol else "faster" if change < -tol else "same")
        else:
            e.update(change=None, tolerance=None, verdict="new" if c else "missing")
        out.append(e)
    return out


def load_baseline(path):
    """The JSON lines of a baseline: a table.json's "lines", or a JSON-lines file."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise InputError(EXIT_NO_INPUT, f"{path}: no such baseline file") from None
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        if not isinstance(doc.get("lines"), list):
            raise InputError(EXIT_DATA, f"{path}: a JSON object without \"lines\" (not a table.json)")
        return [r for r in doc["lines"] if isinstance(r, dict)], doc.get("meta", {})
    rows = parse_lines(text, path)
    _, _, meta = merge(rows)
    return rows, meta


def render_comparison(cmp, label, base_meta, meta):
    L = ["", f"## Against the baseline {label}", ""]
    bg, g = base_meta.get("gpu", "unknown GPU"), meta.get("gpu", "unknown GPU")
    if bg != g:
        L += [f"Note: the baseline ran on {bg}, this run on {g}.", ""]
    L.append("change: of the median time (kernels, full ranking) or of the rate (training); slower or "
             "faster only beyond the tolerance, the larger spread ((max - min) / median of the times) of the "
             "two rows' repeats, at least the floor. repeats: this run / the baseline.")
    L.append("")
    L.append("| row | baseline | this run | change | tolerance | repeats | verdict |")
    L.append("|---|---:|---:|---:|---:|---:|---|")

    def num(x, unit):
        if x is None:
            return "-"
        return f"{x:,.0f} {unit}" if unit == "triples/s" else f"{x:.4g} {unit}"
    for e in cmp:
        if e["change"] is None:
            ch = "-"
        elif e["unit"] == "triples/s":
            ch = f"{100 * (e['value'] / e['baseline'] - 1):+.1f}% rate"
        else:
            ch = f"{100 * e['change']:+.1f}% time"
        tol = "-" if e["tolerance"] is None else f"{100 * e['tolerance']:.1f}%"
        verdict = e["verdict"].upper() if e["verdict"] == "slower" else e["verdict"]
        L.append(f"| {cell(e['what'])} | {num(e['baseline'], e['unit'])} | {num(e['value'], e['unit'])} | "
                 f"{ch} | {tol} | {e['repeats']} / {e['baseline_repeats']} | {verdict} |")
    if not cmp:
        L.append("| (no measured rows on either side) | | | | | | |")
    n = {v: sum(e["verdict"] == v for e in cmp) for v in ("slower", "faster", "same", "new", "missing")}
    L += ["", f"{n['slower']} slower beyond the spread, {n['faster']} faster, {n['same']} within it, "
              f"{n['new']} new, {n['missing']} missing from this run."]
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------- formatting
def cell(text):
    """Text safe inside a Markdown table cell (messages may hold '|')."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def fmt_rate(x):
    return f"{x:,.0f}"


def fmt_pct(x):
    if x is None:
        return "-"
    pct = 100 * x
    return f"{pct:.1f}%" if pct >= 1 else f"{pct:.2f}%" if pct >= 0.01 else "<0.01%"


def fmt_measured(t):
    m = t["measured"]
    if m is None:
        return "-"
    if t["kind"] == "rate":
        s = f"{m / 1e6:.2f} M triples/s"
    elif t["kind"] == "speedup":
        s = f"{m:.1f}x"
    else:
        s = f"{m:.1f} s"
    return f"{s} ({t['where']})"


def render(train, evals, targets, meta, notes=()):
    L = []
    gpu = meta.get("gpu", "unknown GPU")
    L.append(f"## Training throughput, triples/s ({gpu})")
    L.append("")
    L.append("Floors at the H100 SXM's dense peaks (the H200's are the same): FP32 67 TFLOP/s; tensor "
             "cores TF32 495 TFLOP/s (fp32 and tf32 engines), BF16 989 TFLOP/s; training FLOP per triple "
             "5.0 M (recbole), 18.6 M (paper).")
    L.append("")
    L.append("| engine | preset | batch | triples/s | % FP32 floor | % tensor-core floor | x pytorch-eager |")
    L.append("|---|---|---:|---:|---:|---:|---:|")
    for e in train:
        name = e["engine"] + (f" ({e['cores']})" if e.get("cores") else "")
        if e["status"]:
            L.append(f"| {name} | {e['preset']} | {e['batch']} | {cell(e['status'])} | | | |")
            continue
        sp = e.get("speedup_vs_eager")
        L.append(f"| {name} | {e['preset']} | {e['batch']} | {fmt_rate(e['triples_per_second'])} | "
                 f"{fmt_pct(e.get('of_fp32_floor'))} | {fmt_pct(e.get('of_tc_floor'))} | "
                 f"{'-' if sp is None else f'{sp:.1f}x'} |")
    if not train:
        L.append("| (no training results) | | | | | | |")
    L.append("")
    L.append("## Full-ranking evaluation, 30,000 users x 41,000 items")
    L.append("")
    L.append("| engine | preset | seconds | users timed | pairs/s | note |")
    L.append("|---|---|---:|---:|---:|---|")
    for e in evals:
        if e["status"]:
            L.append(f"| {e['engine']} | {e['preset']} | {cell(e['status'])} | | | |")
            continue
        timed = f"{e.get('queries_timed', '?')} of {e.get('queries', '?')}"
        note = (f"extrapolated from {e.get('measured_seconds', '?')} s" if e.get("extrapolated")
                else "all users")
        pps = e.get("pairs_per_second")
        L.append(f"| {e['engine']} | {e['preset']} | {e['seconds']:.2f} | {timed} | "
                 f"{'-' if pps is None else f'{pps:.3g}'} | {note} |")
    if not evals:
        L.append("| (no evaluation results) | | | | | |")
    L.append("")
    L.append(f"## Targets (H100, preset {TARGET_PRESET}; measured on {gpu})")
    L.append("")
    L.append("| target | measured | verdict |")
    L.append("|---|---|---|")
    for t in targets:
        L.append(f"| {t['target']} | {fmt_measured(t)} | {t['verdict']} |")
    for n in notes:
        L.append("")
        L.append(f"Note: {n}")
    return "\n".join(L) + "\n"


def summary(rows, notes=(), runs=(), quick=None, baseline=None, floor=TOLERANCE_FLOOR):
    """The table's text and table.json's document. baseline: (label, rows, meta) to compare with;
    the comparison goes under doc["baseline"] (its "slower" count decides exit 1)."""
    train, evals, meta = merge(rows)
    targets = verdicts(train, evals)
    doc = {"generated_by": "bench/bench_table.py", "quick": quick, "meta": meta, "train": train,
           "eval": evals, "targets": targets, "runs": list(runs), "notes": list(notes), "lines": rows}
    text = render(train, evals, targets, meta, notes)
    if baseline is not None:
        label, base_rows, base_meta = baseline
        cmp = compare(base_rows, rows, floor)
        text += render_comparison(cmp, label, base_meta, meta)
        doc["baseline"] = {"file": label, "gpu": base_meta.get("gpu"), "tolerance_floor": floor, "rows": cmp,
                           "slower": sum(e["verdict"] == "slower" for e in cmp)}
    return text, doc


def find_baseline(args, meta, notes):
    """(label, rows, meta) of --baseline, or of --baseline-dir's file for this GPU; None (with a note)
    when --baseline-dir has none for it."""
    if args.baseline:
        rows, bmeta = load_baseline(args.baseline)
        return args.baseline, rows, bmeta
    if not args.baseline_dir:
        return None
    gpu = meta.get("gpu")
    if not gpu:
        notes.append("no GPU name in the lines: no baseline chosen")
        return None
    path = os.path.join(args.baseline_dir, card_of(gpu) + ".json")
    if not os.path.isfile(path):
        notes.append(f"no baseline for this card ({gpu}): {path} does not exist; this run's table.json, "
                     f"copied there, becomes it (bench/README.md)")
        return None
    rows, bmeta = load_baseline(path)
    return path, rows, bmeta


# ---------------------------------------------------------------- running the benchmarks
_child = None  # the run in progress: its process group goes with us on SIGTERM / SIGINT


def _stop(signum, _frame):
    if _child is not None:
        try:
            os.killpg(_child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    sys.exit(128 + signum)


def run(name, cmd, limit, logdir_logs):
    """Runs cmd in its own process group for at most `limit` seconds; returns a record with its
    stdout lines' text, exit code ('timeout' when killed) and seconds. stderr is kept in
    logdir_logs[name]."""
    print(f"bench_table: {name}: {' '.join(cmd)} (limit {limit:.0f} s)", file=sys.stderr, flush=True)
    global _child
    t0 = time.monotonic()
    try:  # a session of its own, so that a time-out ends torch.compile's workers too
        p = _child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      start_new_session=True, cwd=REPO)
    except OSError as e:
        return {"name": name, "cmd": cmd, "exit": "not started", "reason": str(e), "seconds": 0.0,
                "stdout": ""}
    try:
        out, err = p.communicate(timeout=limit)
        code = p.returncode
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
        code = "timeout"
    _child = None
    rec = {"name": name, "cmd": cmd, "exit": code, "seconds": round(time.monotonic() - t0, 1),
           "stdout": out}
    logdir_logs[name] = err
    tail = [ln for ln in err.splitlines() if ln.strip()][-3:]
    print(f"bench_table: {name}: exit {code} after {rec['seconds']} s" +
          ("".join(f"\n  {ln}" for ln in tail) if code != 0 else ""), file=sys.stderr, flush=True)
    return rec


def torch_probe(python, timeout):
    """None when `python` imports torch and torch sees a GPU, else why the peer cannot run."""
    code = ("import sys\ntry:\n import torch\nexcept Exception as e:\n print(f'import torch failed: "
            "{type(e).__name__}: {e}'); sys.exit(3)\nif not torch.cuda.is_available():\n"
            " print(f'torch {torch.__version__} sees no CUDA device'); sys.exit(3)\n")
    try:
        p = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{python}: {e}"
    if p.returncode == 0:
        return None
    said = (p.stdout.strip() or p.stderr.strip()).splitlines()
    return said[-1] if said else f"{python} exited {p.returncode} when importing torch"


def not_run_rows(engine, presets, batches, reason):
    return [{"bench": "train_step", "engine": engine, "preset": p, "batch": b, "not_run": reason}
            for p in presets for b in batches]


def missing_rows(rows, engine, presets, batches, reason):
    have = {(r.get("preset"), r.get("batch")) for r in rows
            if r.get("bench") == "train_step" and engine_label(r) == engine}
    return [r for r in not_run_rows(engine, presets, batches, reason)
            if (r["preset"], r["batch"]) not in have]


def run_all(args):
    """Runs bench_gpu, then the peer (eager, then compiled) within the time budget. Returns
    (rows, notes, runs, logs, failed) or raises InputError for 66 / 69."""
    quick = args.quick
    bench_gpu = args.bench_gpu
    if not os.path.isfile(bench_gpu) or not os.access(bench_gpu, os.X_OK):
        raise InputError(EXIT_NO_INPUT, f"{bench_gpu}: no bench_gpu binary there (build it: cmake --build "
                         "build --target bench_gpu, or pass --bench-gpu PATH)")
    batches = QUICK_BATCHES if quick else FULL_BATCHES
    budget = args.time_budget if args.time_budget is not None else (115.0 if quick else 0.0)
    t0 = time.monotonic()

    def limit(own):
        if budget <= 0:
            return own
        return min(own, budget - (time.monotonic() - t0))

    rows, notes, runs, logs, failed = [], [], [], {}, False
    cmd = [bench_gpu, "--batches=" + ",".join(map(str, batches))]
    if quick:
        cmd += ["--quick", "--repeats=10"]
    if args.engines:
        cmd.append("--engines=" + args.engines)
    rec = run("bench_gpu", cmd, limit(90.0 if quick else 3600.0), logs)
    runs.append(rec)
    if rec["exit"] == EXIT_UNAVAILABLE:
        why = [ln for ln in logs.get("bench_gpu", "").splitlines() if ln.strip()][-1:] or ["?"]
        raise InputError(EXIT_UNAVAILABLE, f"no usable GPU ({why[0]}): nothing measured, nothing written")
    rows += parse_lines(rec["stdout"], "bench_gpu stdout", notes)
    if rec["exit"] != 0:
        failed = True
        notes.append(f"bench_gpu exited {rec['exit']} after {rec['seconds']} s; the rows it had not "
                     f"printed by then are missing (its stderr: {args.out}/bench_gpu.log)")
        chosen = ([BENCH_GPU_ENGINES[k] for k in args.engines.split(",")] if args.engines
                  else list(BENCH_GPU_ENGINES.values()))
        why = f"bench_gpu stopped ({rec['exit']}) first"
        for eng in chosen:  # what bench_gpu never reached: say so rather than leave a gap
            rows += missing_rows(rows, eng, PRESETS, batches, why)
            if not any(r.get("bench") == "eval_full" and engine_label(r) == eng for r in rows):
                fused, _, prec = eng.partition(" ")
                rows.append({"bench": "eval_full", "engine": "fused" if prec else fused,
                             "precision": prec or "fp32", "preset": "recbole", "not_run": why})

    # The peer: eager for every (preset, batch), compiled at fewer sizes in --quick (each batch
    # size after the first costs torch.compile a recompilation).
    peer = os.path.join(REPO, "bench", "peer", "convncf_torch.py")
    plans = [("pytorch-eager", "eager", PRESETS, batches, 45.0 if quick else 1200.0),
             ("pytorch-compiled", "compiled", ["recbole"] if quick else PRESETS,
              batches[:1] if quick else batches, 60.0 if quick else 2400.0)]
    reason = torch_probe(args.python, max(5.0, limit(60.0)))
    for engine, mode, presets, bs, own in plans:
        if reason:
            rows += not_run_rows(engine, presets, bs, reason)
            continue
        lim = limit(own)
        if lim < 15:
            rows += not_run_rows(engine, presets, bs, f"no time left in the {budget:.0f} s budget")
            continue
        cmd = [args.python, peer, "--device", "cuda", "--modes", mode, "--presets", ",".join(presets),
               "--batches", ",".join(map(str, bs))]
        if quick:
            cmd += ["--steps", "5", "--repeats", "3", "--warmup", "3"]
        rec = run("peer_" + mode, cmd, lim, logs)
        runs.append(rec)
        got = parse_lines(rec["stdout"], f"peer {mode} stdout", notes)
        rows += got
        if rec["exit"] == "timeout":
            rows += missing_rows(got, engine, presets, bs, f"timed out after {lim:.0f} s")
            notes.append(f"the peer's {mode} run timed out after {lim:.0f} s")
        elif rec["exit"] != 0:
            failed = True
            rows += missing_rows(got, engine, presets, bs, f"the peer exited {rec['exit']}")
            notes.append(f"the peer's {mode} run exited {rec['exit']} (its stderr: {args.out}/peer_{mode}.log)")
    if any("error" in r for r in rows):
        failed = True
        notes.append("a check failed: see the rows marked error")
    if quick:
        notes.append(f"quick run: batches {', '.join(map(str, batches))} and fewer steps; pytorch-compiled "
                     f"at recbole {batches[0]} only; the evaluation time is extrapolated from 1000 users")
    return rows, notes, runs, logs, failed


# ---------------------------------------------------------------- main
class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"bench_table: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def write_outputs(args, text, doc, logs=None):
    out_dir = args.out
    json_out = args.json_out or (os.path.join(out_dir, "table.json") if out_dir else None)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "table.md"), "w", encoding="utf-8") as f:
            f.write(text)
        with open(os.path.join(out_dir, "lines.jsonl"), "w", encoding="utf-8") as f:
            for r in doc["lines"]:
                f.write(json.dumps(r, separators=(",", ":")) + "\n")
        for name, err in (logs or {}).items():
            with open(os.path.join(out_dir, name + ".log"), "w", encoding="utf-8") as f:
                f.write(err)
    if json_out:
        d = os.path.dirname(json_out)
        if d:
            os.makedirs(d, exist_ok=True)
        with open(json_out, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    return json_out


def main(argv=None):
    ap = Parser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="exit: 0 done; 1 slower than the baseline; 64 bad option; 65 malformed line; "
                       "66 missing input; 69 no GPU; 70 a run or check failed")
    ap.add_argument("--quick", action="store_true",
                    help="batches 2048 and 16384, fewer steps, evaluation on 1000 users (extrapolated), "
                         "compiled peer at recbole 2048 only; about 2 minutes in all")
    ap.add_argument("--bench-gpu", default=os.path.join(REPO, "build", "bench", "bench_gpu"),
                    help="the bench_gpu binary (default: build/bench/bench_gpu)")
    ap.add_argument("--python", default=sys.executable or "python3",
                    help="the Python that has torch, for the peer (default: this one)")
    ap.add_argument("--out", help="folder for table.md, table.json, lines.jsonl and the runs' logs "
                                  "(run mode default: build/bench_table)")
    ap.add_argument("--json-out", help="the JSON summary (default: OUT/table.json)")
    ap.add_argument("--engines", help="bench_gpu's engines, e.g. cudnn,fused-bf16 (default: all)")
    ap.add_argument("--time-budget", type=float,
                    help="seconds for all runs together; later runs are cut or not run "
                         "(default: 115 with --quick, none otherwise)")
    ap.add_argument("--from-lines", action="append", metavar="FILE",
                    help="build the table from these JSON-lines files; run nothing")
    ap.add_argument("--baseline", metavar="FILE",
                    help="compare with a recorded run (its table.json, or JSON lines); exit 1 when a row "
                         "is slower beyond its spread")
    ap.add_argument("--baseline-dir", metavar="DIR",
                    help="compare with DIR/<card>.json for the GPU that ran, when it exists "
                         "(tools/gpu_check.sh: bench/baselines)")
    ap.add_argument("--tolerance-floor", type=float, default=TOLERANCE_FLOOR, metavar="F",
                    help=f"the least relative change counted as slower or faster (default {TOLERANCE_FLOOR})")
    args = ap.parse_args(argv)
    if args.baseline and args.baseline_dir:
        ap.error("--baseline and --baseline-dir: give one")
    if not 0.0 <= args.tolerance_floor < 1.0:
        ap.error(f"--tolerance-floor: {args.tolerance_floor} is not in [0, 1)")
    if args.engines:
        bad = [e for e in args.engines.split(",") if e not in BENCH_GPU_ENGINES]
        if bad:
            ap.error(f"--engines: unknown {bad}; choose from {','.join(BENCH_GPU_ENGINES)}")
    try:
        if args.from_lines:
            rows = []
            for path in args.from_lines:
                try:
                    with open(path, encoding="utf-8") as f:
                        rows += parse_lines(f.read(), path)
                except FileNotFoundError:
                    raise InputError(EXIT_NO_INPUT, f"{path}: no such file") from None
            notes = []
            base = find_baseline(args, merge(rows)[2], notes)
            text, doc = summary(rows, notes, baseline=base, floor=args.tolerance_floor)
            print(text, end="")
            write_outputs(args, text, doc)
            return EXIT_SLOWER if doc.get("baseline", {}).get("slower") else 0
        if not args.out:
            args.out = os.path.join(REPO, "build", "bench_table")
        signal.signal(signal.SIGTERM, _stop)  # e.g. gpu_check.sh's timeout
        signal.signal(signal.SIGINT, _stop)
        if args.baseline:  # a bad baseline file fails before the runs, not after them
            load_baseline(args.baseline)
        rows, notes, runs, logs, failed = run_all(args)
    except InputError as e:
        print(f"bench_table: {e}", file=sys.stderr)
        return e.code
    base_error = None
    try:  # after the runs, a bad baseline file must not cost the table
        base = find_baseline(args, merge(rows)[2], notes)
    except InputError as e:
        base, base_error = None, e.code
        notes.append(f"not compared with a baseline: {e}")
        print(f"bench_table: {e}", file=sys.stderr)
    for r in runs:
        r.pop("stdout", None)
    text, doc = summary(rows, notes, runs, args.quick, base, args.tolerance_floor)
    print(text, end="")
    path = write_outputs(args, text, doc, logs)
    print(f"bench_table: wrote {args.out}/table.md and {path}", file=sys.stderr)
    if failed:
        return EXIT_SOFTWARE
    if base_error:
        return base_error
    return EXIT_SLOWER if doc.get("baseline", {}).get("slower") else 0


if __name__ == "__main__":
    sys.exit(main())
