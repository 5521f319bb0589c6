#!/usr/bin/env python3
"""cpu_table.py: the CPU engine's training step next to the PyTorch peer's on the CPU, in one run.

Alternates, for --rounds rounds, build/bench/bench_cpu_engine --only=train --threads=T and the
PyTorch peer (bench/peer/convncf_torch.py --device cpu --threads T, eager) at the same batch
sizes and on a catalogue of the same size (943 users x 1,682 items, ml-100k's), so that both
see the same load on a shared machine. Prints, per preset and batch size, the median over the
rounds of each one's triples/s and their ratio (a markdown table, the README's Performance
rows), the CPU engine's GFLOP/s and share of the machine's FMA rate (bench_cpu_engine's
cpu_peak row), and writes every JSON line it collected to --lines. Standard library only.
From the repository root:

  python3 bench/cpu_table.py --python /path/to/venv-with-torch/bin/python [--threads 2]
        [--rounds 3] [--batches 512,2048] [--bench build/bench/bench_cpu_engine] [--lines FILE]
        [--peer-steps 5] [--peer-repeats 3] [--peer-warmup 2] [--modes eager]
  python3 bench/cpu_table.py --from-lines FILE [FILE ...]

--from-lines runs nothing: the table from lines already written (this script's --lines file).
Exit: 0 done; 64 bad option; 66 a file missing; 70 a run failed (the table has what was
measured). Without torch the peer's cells say "not run" and the run still exits 0.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PRESETS = ["recbole", "paper"]
USERS, ITEMS = 943, 1682  # bench_cpu_engine's synthetic data (ml-100k's size)


def run_lines(cmd, env=None, label=""):
    """Runs cmd, returns its stdout's JSON lines (dicts) and whether it exited 0."""
    print(f"cpu_table: {label}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    for ln in p.stdout.splitlines():
        ln = ln.strip()
        if ln.startswith("{"):
            try:
                lines.append(json.loads(ln))
            except json.JSONDecodeError:
                pass
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or [""])[-1]
        print(f"cpu_table: {label} exited {p.returncode}: {tail}", file=sys.stderr)
    return lines, p.returncode == 0


def table(lines, batches):
    """Markdown table from the collected lines (each tagged with "round")."""
    engine, peer, peak, gf = {}, {}, [], {}
    for r in lines:
        if r.get("bench") == "cpu_peak":
            peak.append(r["gflops"])
        elif r.get("bench") == "cpu_train_step" and r.get("preset") in PRESETS:
            engine.setdefault((r["preset"], r["batch"]), []).append(r["triples_per_second"])
            if "gflops" in r:
                gf.setdefault((r["preset"], r["batch"]), []).append(r["gflops"])
        elif r.get("bench") == "train_step" and r.get("engine", "").startswith("pytorch"):
            peer.setdefault((r["engine"], r["preset"], r["batch"]), []).append(r["triples_per_second"])
    threads = sorted({r.get("threads") or r.get("cpu_threads") for r in lines
                      if r.get("bench") in ("cpu_train_step", "train_step")} - {None})
    modes = sorted({k[0] for k in peer}) or ["pytorch-eager"]
    out = []
    pk = statistics.median(peak) if peak else None
    out.append(f"threads: {', '.join(map(str, threads)) or '?'}; rounds: "
               f"{max([r.get('round', 0) for r in lines] or [0])}; FMA rate (cpu_peak, median): "
               + (f"{pk:.0f} GFLOP/s" if pk else "not measured"))
    out.append("")
    head = "| preset | batch | CPU engine, triples/s | GFLOP/s (of peak) |"
    rule = "|---|---|---|---|"
    for m in modes:
        head += f" {m}, triples/s | CPU engine ÷ {m} |"
        rule += "---|---|"
    out += [head, rule]
    for preset in PRESETS:
        for b in batches:
            e = engine.get((preset, b))
            em = statistics.median(e) if e else None
            g = statistics.median(gf[(preset, b)]) if gf.get((preset, b)) else None
            row = f"| {preset} | {b} | " + (f"{em:,.0f}" if em else "not run") + " | "
            row += (f"{g:.0f}" + (f" ({g / pk:.0%})" if pk else "") if g else "") + " |"
            for m in modes:
                p = peer.get((m, preset, b))
                pm = statistics.median(p) if p else None
                row += (f" {pm:,.0f} |" if pm else " not run |")
                row += (f" {em / pm:.1f}× |" if em and pm else " |")
            out.append(row)
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", default=sys.executable, help="a Python with torch, for the peer")
    ap.add_argument("--bench", default="build/bench/bench_cpu_engine")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", default="512,2048")
    ap.add_argument("--modes", default="eager", help="the peer's modes: eager, compiled or both")
    ap.add_argument("--repeats", type=int, default=5, help="bench_cpu_engine --repeats")
    ap.add_argument("--peer-steps", type=int, default=5)
    ap.add_argument("--peer-repeats", type=int, default=3)
    ap.add_argument("--peer-warmup", type=int, default=2)
    ap.add_argument("--lines", metavar="FILE", help="write every JSON line collected here")
    ap.add_argument("--from-lines", nargs="+", metavar="FILE")
    a = ap.parse_args()
    try:
        batches = [int(b) for b in a.batches.split(",")]
    except ValueError:
        ap.error("--batches: comma-separated integers")
    if a.threads < 1 or a.rounds < 1 or min(batches) < 1:
        ap.error("--threads, --rounds and the batches must be >= 1")

    if a.from_lines:
        lines = []
        for f in a.from_lines:
            if not os.path.exists(f):
                print(f"cpu_table: {f}: no such file", file=sys.stderr)
                sys.exit(66)
            with open(f) as fh:
                lines += [json.loads(ln) for ln in fh if ln.strip().startswith("{")]
        print(table(lines, batches))
        return

    if not os.path.exists(a.bench):
        print(f"cpu_table: {a.bench}: no such file (build with the cpu preset, or give --bench)",
              file=sys.stderr)
        sys.exit(66)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    has_torch = subprocess.run([a.python, "-c", "import torch"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL).returncode == 0
    if not has_torch:
        print(f"cpu_table: {a.python} has no torch: the peer is not run", file=sys.stderr)
    lines, ok = [], True
    for rnd in range(1, a.rounds + 1):
        got, good = run_lines([a.bench, "--only=train", f"--threads={a.threads}", f"--repeats={a.repeats}"],
                              env, f"round {rnd}, CPU engine")
        ok &= good
        lines += [dict(r, round=rnd) for r in got]
        if has_torch:
            got, good = run_lines([a.python, os.path.join(HERE, "peer", "convncf_torch.py"), "--device", "cpu",
                                   "--threads", str(a.threads), "--modes", a.modes, "--batches", a.batches,
                                   "--users", str(USERS), "--items", str(ITEMS), "--steps", str(a.peer_steps),
                                   "--repeats", str(a.peer_repeats), "--warmup", str(a.peer_warmup)],
                                  env, f"round {rnd}, PyTorch")
            ok &= good
            lines += [dict(r, round=rnd) for r in got]
    if a.lines:
        with open(a.lines, "w") as fh:
            for r in lines:
                fh.write(json.dumps(r, separators=(",", ":")) + "\n")
    print(table(lines, batches))
    sys.exit(0 if ok else 70)


if __name__ == "__main__":
    main()
