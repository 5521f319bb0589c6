#!/usr/bin/env python3
"""test_bench_table.py: CPU tests of bench/bench_table.py's parsing, merging, formatting and
target verdicts, on the fixture lines in bench/testdata/ (bench_gpu's and the peer's shapes,
numbers chosen so that every speed-up and percentage is exact), of its comparison with a baseline
(baseline_lines.jsonl against regressed_lines.jsonl, which plants a 20% throughput regression among
rows that moved within their spread), and of its run mode against stand-in bench_gpu and python
executables (no GPU, no torch needed). Standard library only.

  python3 bench/test_bench_table.py        # ctest: BenchTable.FromLines
  python3 bench/test_bench_table.py Baseline   # the comparison alone
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_table  # noqa: E402

SCRIPT = os.path.join(HERE, "bench_table.py")
GPU_LINES = os.path.join(HERE, "testdata", "bench_table_lines.jsonl")
PEER_LINES = os.path.join(HERE, "testdata", "peer_lines.jsonl")
BASELINE_LINES = os.path.join(HERE, "testdata", "baseline_lines.jsonl")
REGRESSED_LINES = os.path.join(HERE, "testdata", "regressed_lines.jsonl")


def read_rows(path):
    with open(path, encoding="utf-8") as f:
        return bench_table.parse_lines(f.read(), path)


def fixture_rows():
    rows = []
    for path in (GPU_LINES, PEER_LINES):
        with open(path, encoding="utf-8") as f:
            rows += bench_table.parse_lines(f.read(), path)
    return rows


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=timeout)


def executable(folder, name, body):
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return path


class Merge(unittest.TestCase):
    def setUp(self):
        self.train, self.evals, self.meta = bench_table.merge(fixture_rows())
        self.by = {(e["engine"], e["preset"], e["batch"]): e for e in self.train}

    def test_parse_skips_log_lines_and_counts_rows(self):
        rows = fixture_rows()
        self.assertEqual(len(rows), 17 + 6)  # the peer file's stderr line is not a row
        self.assertEqual(sum(r["bench"] == "kernel" for r in rows), 1)

    def test_speedups_against_eager_at_same_preset_and_batch(self):
        want = {("cudnn", "recbole", 2048): 20.0, ("fused fp32", "recbole", 2048): 70.0,
                ("fused tf32", "recbole", 2048): 200.0, ("fused bf16", "recbole", 2048): 300.0,
                ("pytorch-compiled", "recbole", 2048): 1.6, ("pytorch-eager", "recbole", 2048): 1.0,
                ("cudnn", "recbole", 16384): 20.0, ("fused fp32", "recbole", 16384): 48.0,
                ("fused tf32", "recbole", 16384): 192.0, ("cudnn", "paper", 2048): 20.0,
                ("fused fp32", "paper", 2048): 40.0}
        for key, sp in want.items():
            self.assertAlmostEqual(self.by[key]["speedup_vs_eager"], sp, places=9, msg=str(key))

    def test_compile_fallback_is_not_the_eager_baseline(self):
        # paper 2048: the peer's fallback line (41,000/s, engine pytorch-eager) must neither
        # replace the real eager line (40,000/s) nor count as a compiled measurement.
        self.assertEqual(self.by[("pytorch-eager", "paper", 2048)]["triples_per_second"], 40000)
        comp = self.by[("pytorch-compiled", "paper", 2048)]
        self.assertIn("torch.compile failed (BackendCompilerFailed: no C compiler)", comp["status"])
        self.assertNotIn("triples_per_second", comp)

    def test_skipped_and_not_run_rows_keep_their_message(self):
        self.assertTrue(self.by[("fused bf16", "recbole", 16384)]["status"].startswith(
            "skipped: fused tower: 240 KiB of shared memory"))
        self.assertEqual(self.by[("pytorch-compiled", "recbole", 16384)]["status"],
                         "not run: timed out after 60 s")
        self.assertNotIn("speedup_vs_eager", self.by[("fused bf16", "recbole", 16384)])

    def test_floors(self):
        e = self.by[("pytorch-eager", "recbole", 2048)]  # peer line: no of_tc_floor of its own
        self.assertAlmostEqual(e["of_fp32_floor"], 1e5 * 5e6 / 67e12)
        self.assertAlmostEqual(e["of_tc_floor"], 1e5 * 5e6 / 495e12)
        b = self.by[("fused bf16", "recbole", 2048)]
        self.assertAlmostEqual(b["of_tc_floor"], 30e6 * 5e6 / 989e12)  # BF16 peak for bf16
        f = self.by[("fused fp32", "paper", 2048)]
        self.assertAlmostEqual(f["of_tc_floor"], 1.6e6 * 18.6e6 / 495e12)  # TF32 peak for fp32

    def test_order_presets_batches_engines(self):
        keys = [(e["preset"], e["batch"], e["engine"]) for e in self.train]
        self.assertEqual(keys[:6], [("recbole", 2048, e) for e in bench_table.ENGINES])
        self.assertEqual(keys[-1], ("paper", 2048, "fused bf16"))
        self.assertEqual(self.meta["gpu"], "NVIDIA H100 80GB HBM3")


class Targets(unittest.TestCase):
    def verdicts(self, rows):
        train, evals, _ = bench_table.merge(rows)
        return {t["id"]: t for t in bench_table.verdicts(train, evals)}

    def test_fixture_meets_every_target(self):
        v = self.verdicts(fixture_rows())
        self.assertEqual(v["fused_fp32_rate"]["verdict"], "met")
        self.assertEqual(v["fused_fp32_rate"]["measured"], 7e6)
        self.assertEqual(v["fused_fp32_rate"]["where"], "fused fp32, batch 2048")
        self.assertEqual(v["fused_tc_rate"]["measured"], 30e6)
        self.assertEqual(v["speedup_vs_eager"]["measured"], 300.0)
        self.assertEqual(v["speedup_vs_eager"]["verdict"], "met")
        self.assertEqual(v["full_ranking"]["measured"], 12.5)  # the errored tf32 line is ignored
        self.assertEqual(v["full_ranking"]["verdict"], "met (extrapolated)")

    def test_not_met_and_not_measured(self):
        rows = [
            {"bench": "train_step", "engine": "pytorch-eager", "preset": "recbole", "batch": 2048,
             "triples_per_second": 100000},
            {"bench": "train_step", "engine": "cudnn", "precision": "fp32", "preset": "recbole",
             "batch": 2048, "triples_per_second": 4999999},
            {"bench": "train_step", "engine": "fused", "precision": "fp32", "preset": "recbole",
             "batch": 2048, "skipped": "does not fit"},
            {"bench": "train_step", "engine": "fused", "precision": "bf16", "preset": "paper",
             "batch": 2048, "triples_per_second": 99e6},  # another preset: not the target's
            {"bench": "eval_full", "engine": "cudnn", "precision": "fp32", "preset": "recbole",
             "seconds": 30.0, "extrapolated": False},
        ]
        v = self.verdicts(rows)
        self.assertEqual(v["fused_fp32_rate"]["verdict"], "not measured")
        self.assertIsNone(v["fused_fp32_rate"]["measured"])
        self.assertEqual(v["fused_tc_rate"]["verdict"], "not measured")
        self.assertEqual(v["speedup_vs_eager"]["verdict"], "not met")  # 49.99999x
        self.assertAlmostEqual(v["speedup_vs_eager"]["measured"], 49.99999)
        self.assertEqual(v["full_ranking"]["verdict"], "not met")  # 30 s is not below 30 s

    def test_boundaries(self):  # rates and speed-ups: at least the target; evaluation: below it
        rows = [
            {"bench": "train_step", "engine": "fused", "precision": "fp32", "preset": "recbole",
             "batch": 512, "triples_per_second": 6.5e6},
            {"bench": "train_step", "engine": "fused", "precision": "tf32", "preset": "recbole",
             "batch": 1024, "triples_per_second": 24999999},  # no eager at 1024: no speed-up
            {"bench": "train_step", "engine": "pytorch-eager", "preset": "recbole", "batch": 512,
             "triples_per_second": 130000},
            {"bench": "eval_full", "engine": "fused", "precision": "bf16", "preset": "recbole",
             "seconds": 29.99, "extrapolated": False},
        ]
        v = self.verdicts(rows)
        self.assertEqual(v["fused_fp32_rate"]["verdict"], "met")
        self.assertEqual(v["fused_tc_rate"]["verdict"], "not met")
        self.assertEqual(v["speedup_vs_eager"]["verdict"], "met")  # 6.5e6 / 130000 = 50x
        self.assertEqual(v["speedup_vs_eager"]["where"], "fused fp32, batch 512")
        self.assertEqual(v["full_ranking"]["verdict"], "met")
        self.assertEqual(v["full_ranking"]["where"], "fused bf16")

    def test_tensor_core_rows(self):  # bench_gpu says where the fused tower ran
        rows = [
            {"bench": "train_step", "engine": "fused", "precision": "tf32", "preset": "recbole",
             "batch": 16384, "triples_per_second": 41e6, "fused_variant": 3, "tensor_cores": True},
            {"bench": "train_step", "engine": "fused", "precision": "bf16", "preset": "recbole",
             "batch": 16384, "triples_per_second": 90e6, "fused_variant": 2, "tensor_cores": False},
            {"bench": "train_step", "engine": "fused", "precision": "bf16", "preset": "recbole",
             "batch": 2048, "triples_per_second": 79.9e6, "fused_variant": 3, "tensor_cores": True},
        ]
        v = self.verdicts(rows)
        self.assertEqual(v["fused_tc_rate"]["measured"], 79.9e6)  # the FP32-core row does not count
        self.assertEqual(v["fused_tc_rate"]["where"], "fused bf16, batch 2048")
        self.assertEqual(v["fused_tf32_goal"]["verdict"], "met")
        self.assertEqual(v["fused_bf16_goal"]["verdict"], "not met")
        train, evals, _ = bench_table.merge(rows)
        text = bench_table.render(train, evals, bench_table.verdicts(train, evals), {})
        self.assertIn("| fused tf32 (tensor cores) | recbole | 16384 | 41,000,000 |", text)
        self.assertIn("| fused bf16 (FP32 cores) | recbole | 16384 | 90,000,000 |", text)

    def test_no_eager_no_speedup(self):
        rows = [{"bench": "train_step", "engine": "cudnn", "precision": "fp32", "preset": "recbole",
                 "batch": 2048, "triples_per_second": 9e9}]
        self.assertEqual(self.verdicts(rows)["speedup_vs_eager"]["verdict"], "not measured")


class Baseline(unittest.TestCase):
    def verdicts(self, base, cur, floor=bench_table.TOLERANCE_FLOOR):
        return {e["what"]: e for e in bench_table.compare(base, cur, floor)}

    def test_planted_regression_and_nothing_else_is_slower(self):
        v = self.verdicts(read_rows(BASELINE_LINES), read_rows(REGRESSED_LINES))
        slower = sorted(w for w, e in v.items() if e["verdict"] == "slower")
        # the planted 20% drop in throughput (+25% time) and an 8% slowdown of a row whose repeats
        # spread by 1%; nothing that moved within its spread or the floor
        self.assertEqual(slower, ["train cudnn recbole batch 2048", "train fused tf32 recbole batch 2048"])
        tf32 = v["train fused tf32 recbole batch 2048"]
        self.assertAlmostEqual(tf32["change"], 0.25)
        self.assertAlmostEqual(tf32["value"] / tf32["baseline"], 0.8)
        self.assertAlmostEqual(v["train cudnn recbole batch 2048"]["change"], 0.08, places=4)
        head = v["kernel head_fwd (pairs=4096 C=32)"]  # +6%, within its own 10% spread
        self.assertEqual(head["verdict"], "same")
        self.assertGreater(head["change"], 0.05)
        self.assertAlmostEqual(head["tolerance"], (0.0117 - 0.0106) / 0.0111)
        self.assertEqual(v["kernel outer_product_fwd_kernel2 (pairs=4096 E=64)"]["verdict"], "same")  # +1% < floor
        self.assertEqual(v["kernel outer_product_fwd_kernel2 (pairs=4096 E=64)"]["tolerance"], 0.03)
        self.assertEqual(v["full ranking fused fp32 recbole"]["verdict"], "same")  # +2% < floor
        self.assertEqual(v["train fused bf16 recbole batch 16384"]["verdict"], "faster")
        self.assertEqual(v["kernel adam_dense (n=2560000)"]["verdict"], "missing")
        self.assertEqual(v["kernel bpr_loss_grad (triples=2048)"]["verdict"], "new")
        self.assertNotIn("train fused bf16 paper batch 16384", v)  # skipped there: nothing to compare
        self.assertEqual(tf32["repeats"], 5)

    def test_same_run_is_not_slower_and_floor_moves_the_line(self):
        base = read_rows(BASELINE_LINES)
        self.assertEqual({e["verdict"] for e in bench_table.compare(base, base)}, {"same"})
        v = self.verdicts(read_rows(BASELINE_LINES), read_rows(REGRESSED_LINES), floor=0.1)
        self.assertEqual(v["train cudnn recbole batch 2048"]["verdict"], "same")  # 8% < 10%
        self.assertEqual(v["train fused tf32 recbole batch 2048"]["verdict"], "slower")

    def test_repeats_of_several_runs_pool(self):
        base = read_rows(BASELINE_LINES)
        one = [r for r in read_rows(REGRESSED_LINES) if r.get("kernel") == "outer_product_fwd_kernel2"]
        other = [dict(one[0], samples_ms=[0.0190, 0.0230], ms=0.0210)]  # a noisy second run
        e = self.verdicts(base, one + other)["kernel outer_product_fwd_kernel2 (pairs=4096 E=64)"]
        self.assertEqual(e["repeats"], 7)
        self.assertAlmostEqual(e["spread"], (0.0230 - 0.0190) / 0.0204)
        self.assertAlmostEqual(e["value"], (0.0204 + 0.0210) / 2)  # the median of the two lines' values

    def test_lines_without_repeats_use_the_floor(self):
        base = [{"bench": "kernel", "kernel": "k", "shape": "s", "ms": 1.0}]
        self.assertEqual(self.verdicts(base, [dict(base[0], ms=1.02)])["kernel k (s)"]["verdict"], "same")
        self.assertEqual(self.verdicts(base, [dict(base[0], ms=1.04)])["kernel k (s)"]["verdict"], "slower")

    def test_card_names(self):
        for gpu, card in [("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA H200", "h200"),
                          ("NVIDIA H100 PCIe", "h100-pcie"), ("NVIDIA H200 NVL", "h200-nvl"),
                          ("NVIDIA A100-SXM4-80GB", "a100"), ("NVIDIA L40S", "l40s"),
                          ("NVIDIA GeForce RTX 4090", "nvidia-geforce-rtx-4090")]:
            self.assertEqual(bench_table.card_of(gpu), card, gpu)

    def test_cli_exits_1_and_names_the_rows(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "t.json")
            p = cli("--from-lines", REGRESSED_LINES, "--baseline", BASELINE_LINES, "--json-out", out)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("| train fused tf32 recbole batch 2048 | 20,000,000 triples/s | 16,000,000 triples/s | "
                          "-20.0% rate | 3.0% | 5 / 5 | SLOWER |", p.stdout)
            self.assertIn("2 slower beyond the spread, 1 faster, 3 within it, 1 new, 1 missing", p.stdout)
            with open(out, encoding="utf-8") as f:
                doc = json.load(f)
            self.assertEqual(doc["baseline"]["slower"], 2)
            # a table.json is a baseline too; against itself nothing is slower
            self.assertEqual(cli("--from-lines", REGRESSED_LINES, "--baseline", out).returncode, 0)
            p = cli("--from-lines", BASELINE_LINES, "--baseline", BASELINE_LINES)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("0 slower beyond the spread", p.stdout)

    def test_baseline_dir_picks_the_card(self):
        with tempfile.TemporaryDirectory() as d:
            p = cli("--from-lines", REGRESSED_LINES, "--baseline-dir", d)  # no h100.json there
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn(f"no baseline for this card (NVIDIA H100 80GB HBM3): {d}/h100.json does not exist",
                          p.stdout)
            self.assertNotIn("Against the baseline", p.stdout)
            with open(BASELINE_LINES) as src, open(os.path.join(d, "h100.json"), "w") as dst:
                dst.write(src.read())
            p = cli("--from-lines", REGRESSED_LINES, "--baseline-dir", d)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(f"## Against the baseline {d}/h100.json", p.stdout)

    def test_bad_baselines(self):
        with tempfile.TemporaryDirectory() as d:
            self.assertEqual(cli("--from-lines", REGRESSED_LINES, "--baseline", os.path.join(d, "no.json")).returncode, 66)
            bad = os.path.join(d, "bad.json")
            with open(bad, "w") as f:
                f.write('{"meta": {}}\n')
            p = cli("--from-lines", REGRESSED_LINES, "--baseline", bad)
            self.assertEqual(p.returncode, 65)
            self.assertIn("not a table.json", p.stderr)
            self.assertEqual(cli("--from-lines", REGRESSED_LINES, "--baseline", bad, "--baseline-dir", d).returncode, 64)
            self.assertEqual(cli("--from-lines", REGRESSED_LINES, "--tolerance-floor", "1.5").returncode, 64)
            # run mode: a bad baseline fails before anything runs
            gpu = executable(d, "bench_gpu", "echo ran > " + os.path.join(d, "ran") + "\n")
            p = cli("--quick", "--bench-gpu", gpu, "--baseline", bad, "--out", os.path.join(d, "o"))
            self.assertEqual(p.returncode, 65)
            self.assertFalse(os.path.exists(os.path.join(d, "ran")))

    def test_run_mode_bad_baseline_in_dir_keeps_the_table(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "h100.json"), "w") as f:
                f.write('{"bench": oops\n')
            gpu = executable(d, "bench_gpu", f"cat '{REGRESSED_LINES}'\nexit 0\n")
            out = os.path.join(d, "o")
            p = cli("--quick", "--bench-gpu", gpu, "--python", os.path.join(d, "absent"), "--out", out,
                    "--baseline-dir", d)
            self.assertEqual(p.returncode, 65, p.stderr)
            self.assertIn("h100.json:1: not a JSON object", p.stderr)
            with open(os.path.join(out, "table.md"), encoding="utf-8") as f:
                self.assertIn("Note: not compared with a baseline:", f.read())

    def test_run_mode_compares_and_exits_1(self):
        with tempfile.TemporaryDirectory() as d:
            gpu = executable(d, "bench_gpu", f"cat '{REGRESSED_LINES}'\nexit 0\n")
            py = executable(d, "python", "echo 'import torch failed: no torch'\nexit 3\n")
            p = cli("--quick", "--bench-gpu", gpu, "--python", py, "--out", os.path.join(d, "o"),
                    "--baseline", BASELINE_LINES)
            self.assertEqual(p.returncode, 1, p.stderr)
            with open(os.path.join(d, "o", "table.md"), encoding="utf-8") as f:
                self.assertIn("| train fused tf32 recbole batch 2048 |", f.read())


class Cli(unittest.TestCase):
    def test_from_lines_table_and_json(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "t.json")
            p = cli("--from-lines", GPU_LINES, "--from-lines", PEER_LINES, "--json-out", out)
            self.assertEqual(p.returncode, 0, p.stderr)
            for row in [
                "| pytorch-eager | recbole | 2048 | 100,000 | 0.75% | 0.10% | 1.0x |",
                "| cudnn | recbole | 2048 | 2,000,000 | 14.9% | 2.0% | 20.0x |",
                "| fused bf16 | recbole | 2048 | 30,000,000 | 223.9% | 15.2% | 300.0x |",
                "| fused fp32 | recbole | 16384 | 6,000,000 | 44.8% | 6.1% | 48.0x |",
                "| fused bf16 | recbole | 16384 | skipped: fused tower: 240 KiB",
                "| pytorch-compiled | recbole | 16384 | not run: timed out after 60 s | | | |",
                "| fused fp32 | recbole | 12.50 | 1000 of 30000 | 9.83e+07 | extrapolated from 0.417 s |",
                "max \\|gpu - cpu\\| / max \\|cpu\\|",  # a '|' in a message does not split the cell
                "| fused fp32 >= 6.5 M triples/s | 7.00 M triples/s (fused fp32, batch 2048) | met |",
                "| goal: fused tf32 >= 40 M triples/s | 24.00 M triples/s (fused tf32, batch 16384) | not met |",
                "| >= 50x pytorch-eager (best convncf engine, same batch) | 300.0x (fused bf16, batch "
                "2048) | met |",
                "| full ranking 30k users x 41k items < 30 s | 12.5 s (fused fp32) | met (extrapolated) |",
            ]:
                self.assertIn(row, p.stdout)
            with open(out, encoding="utf-8") as f:
                doc = json.load(f)
            self.assertEqual([t["verdict"] for t in doc["targets"]],
                             ["met", "met", "not met", "not met", "met", "met (extrapolated)"])
            self.assertEqual(len(doc["lines"]), 23)
            self.assertEqual(len(doc["train"]), 18)
            self.assertEqual(len(doc["eval"]), 4)

    def test_input_errors(self):
        with tempfile.TemporaryDirectory() as d:
            self.assertEqual(cli("--from-lines", os.path.join(d, "absent.jsonl")).returncode, 66)
            bad = os.path.join(d, "bad.jsonl")
            with open(bad, "w") as f:
                f.write('{"bench":"train_step"}\n{"bench": oops\n')
            p = cli("--from-lines", bad)
            self.assertEqual(p.returncode, 65)
            self.assertIn("bad.jsonl:2", p.stderr)
            self.assertEqual(cli("--no-such-flag").returncode, 64)
            self.assertEqual(cli("--engines", "cudnn,warp").returncode, 64)
            p = cli("--bench-gpu", os.path.join(d, "absent"), "--out", os.path.join(d, "o"))
            self.assertEqual(p.returncode, 66)
            self.assertFalse(os.path.exists(os.path.join(d, "o")))

    def test_no_gpu_exits_69_and_writes_nothing(self):
        with tempfile.TemporaryDirectory() as d:
            gpu = executable(d, "bench_gpu", "echo 'bench_gpu: no CUDA device: test' >&2\nexit 69\n")
            out = os.path.join(d, "out")
            p = cli("--quick", "--bench-gpu", gpu, "--out", out, "--json-out", os.path.join(d, "t.json"))
            self.assertEqual(p.returncode, 69, p.stderr)
            self.assertIn("no usable GPU (bench_gpu: no CUDA device: test)", p.stderr)
            self.assertEqual(p.stdout, "")
            self.assertEqual(os.listdir(d), ["bench_gpu"])

    def test_run_without_torch(self):
        with tempfile.TemporaryDirectory() as d:
            gpu = executable(d, "bench_gpu", f"grep -v '\"error\"' '{GPU_LINES}'\nexit 0\n")
            py = executable(d, "python", "echo 'import torch failed: ModuleNotFoundError: no torch'\nexit 3\n")
            out = os.path.join(d, "out")
            p = cli("--quick", "--bench-gpu", gpu, "--python", py, "--out", out)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("| pytorch-eager | paper | 16384 | not run: import torch failed: "
                          "ModuleNotFoundError: no torch | | | |", p.stdout)
            self.assertIn("| pytorch-compiled | recbole | 2048 | not run: import torch failed", p.stdout)
            self.assertIn("| cudnn | recbole | 2048 | 2,000,000 | 14.9% | 2.0% | - |", p.stdout)
            self.assertIn("| >= 50x pytorch-eager (best convncf engine, same batch) | - | not measured |",
                          p.stdout)
            self.assertEqual(sorted(os.listdir(out)), ["bench_gpu.log", "lines.jsonl", "table.json", "table.md"])
            with open(os.path.join(out, "table.json"), encoding="utf-8") as f:
                doc = json.load(f)
            self.assertEqual(doc["runs"][0]["exit"], 0)
            self.assertTrue(doc["quick"])
            self.assertIn("--batches=2048,16384", doc["runs"][0]["cmd"])

    def test_failed_score_check_exits_70(self):
        with tempfile.TemporaryDirectory() as d:
            gpu = executable(d, "bench_gpu", f"cat '{GPU_LINES}'\nexit 0\n")  # holds an "error" line
            p = cli("--quick", "--bench-gpu", gpu, "--python", os.path.join(d, "absent"), "--out", d)
            self.assertEqual(p.returncode, 70, p.stderr)
            self.assertIn("Note: a check failed: see the rows marked error", p.stdout)

    def test_bench_gpu_failure_exits_70_with_the_table(self):
        with tempfile.TemporaryDirectory() as d:
            gpu = executable(d, "bench_gpu", f"head -n 3 '{GPU_LINES}'\nprintf '{{\"bench\":\"trai'\n"
                             "echo 'bench_gpu: boom' >&2\nexit 70\n")  # cut off mid-line
            out = os.path.join(d, "out")
            p = cli("--quick", "--bench-gpu", gpu, "--python", os.path.join(d, "absent"), "--out", out)
            self.assertEqual(p.returncode, 70, p.stderr)
            self.assertIn("| fused fp32 | recbole | 2048 | 7,000,000 |", p.stdout)
            self.assertIn("| fused bf16 | paper | 16384 | not run: bench_gpu stopped (70) first |", p.stdout)
            self.assertIn("| cudnn | recbole | not run: bench_gpu stopped (70) first |", p.stdout)  # eval
            self.assertIn("Note: bench_gpu exited 70", p.stdout)
            self.assertIn("Note: bench_gpu stdout:4: not a JSON object", p.stdout)
            with open(os.path.join(out, "bench_gpu.log")) as f:
                self.assertIn("boom", f.read())


if __name__ == "__main__":
    unittest.main(verbosity=2)
