#!/usr/bin/env python3
"""dist_test.py: data-parallel training over MPI against one process (README "Several processes").

    dist_test.py CONVNCF_BINARY CASE

CASE is one of
  two_ranks     mpirun -np 2 ... --threads=1 against one process with --threads=2: model.bin,
                checkpoint.bin and metrics.jsonl (without its timings) bit-identical; ConvNCF, then
                MF-BPR evaluated by full ranking
  three_ranks   the same with 3 ranks and 3 threads
  kill_resume   the whole 2-rank job killed with SIGKILL after its first checkpoint, then resumed
                with --resume on 2 ranks: the same end as one uninterrupted process
  dying_rank    rank 1 fails mid-epoch (CONVNCF_TEST_DIE, by an error, then by SIGKILL): the job
                fails naming rank 1, and the last checkpoint is intact (resuming it gives the same end)
  emulated_gpu  CONVNCF_BINARY is convncf_emulated (tests/emulated: the CUDA engine on the emulated
                device, NCCL's collectives over MPI): 2 ranks with --device=cuda against one
                process. MF-BPR (full ranking) bit-identical; ConvNCF's losses within rounding (the network's
                gradient is summed per rank, then over the ranks), and one process forced through
                the exchange (CONVNCF_FORCE_NCCL=1) bit-identical to one process

Skips (exit 77) with the reason when mpirun or the MPI module (libconvncf_mpi.so beside the
binary, or CONVNCF_MPI_MODULE) is missing. The data is the built-in synthetic set with a tiny tower, so that each case
takes seconds. ConvNCF there trains its MF-BPR stage first (after_pretrain, the built-in data's
default), so the ConvNCF cases cover both stages of the one-run recipe, pretrain.bin included.
"""
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

SKIP = 77

TINY = ["--embedding_size=8", "--cnn_channels=[1,4,4]", "--cnn_kernels=[4,2]", "--cnn_strides=[4,2]",
        "--device=cpu", "--eval_args.split.LS=valid_and_test", "--eval_args.order=TO", "--eval_mode=uni99",
        "--quiet"]
TIMINGS = ("seconds", "eval_seconds", "triples_per_second", "peak_memory_bytes")


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def mpirun_cmd(n):
    cmd = [shutil.which("mpirun"), "-np", str(n), "--oversubscribe"]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    return cmd


def run(cmd, cwd, env=None, expect_ok=True):
    e = dict(os.environ)
    e["OMP_NUM_THREADS"] = "1"  # the --threads flag decides; no oversubscription from the default
    if env:
        e.update(env)
    r = subprocess.run(cmd, cwd=cwd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=300)
    if expect_ok and r.returncode != 0:
        fail("%s exited with %d:\n%s" % (" ".join(cmd), r.returncode, r.stdout))
    return r


def metrics(path):
    out = []
    with open(path) as f:
        for line in f:
            j = json.loads(line)
            for k in TIMINGS:
                j.pop(k, None)
            out.append(j)
    return out


def checkpoint_parts(path):
    """(config lines but threads and out, every byte after the config but the checksum)."""
    b = open(path, "rb").read()
    at = 8 + 4
    (n,) = struct.unpack_from("<Q", b, at)
    cfg = b[at + 8:at + 8 + n].decode()
    lines = [l for l in cfg.splitlines() if not l.startswith(("threads:", "out:"))]
    return lines, b[at + 8 + n:-8]


def same_run(a, b, what):
    for f in ("model.bin",):
        if open(os.path.join(a, f), "rb").read() != open(os.path.join(b, f), "rb").read():
            fail("%s: %s differs between %s and %s" % (what, f, a, b))
    ma, mb = metrics(os.path.join(a, "metrics.jsonl")), metrics(os.path.join(b, "metrics.jsonl"))
    if ma != mb:
        fail("%s: metrics.jsonl differs:\n%s\n%s" % (what, ma, mb))
    ca, cb = checkpoint_parts(os.path.join(a, "checkpoint.bin")), checkpoint_parts(os.path.join(b, "checkpoint.bin"))
    if ca[0] != cb[0]:
        fail("%s: the checkpoints' configurations differ beyond threads and out: %s" %
             (what, [l for l in set(ca[0]) ^ set(cb[0])]))
    if ca[1] != cb[1]:
        fail("%s: checkpoint.bin differs (beyond the threads and out keys of its configuration)" % what)
    print("%s: model.bin, checkpoint.bin and metrics.jsonl (%d lines) identical" % (what, len(ma)))


def ranks_vs_threads(binary, tmp, n, model_args, epochs, tag):
    base = [binary, "train"] + [a for a in TINY if not any(a.split("=")[0] == m.split("=")[0] for m in model_args)]
    base += model_args + ["--epochs=%d" % epochs]
    one = os.path.join(tmp, tag + "-1x%d" % n)
    many = os.path.join(tmp, tag + "-%dx1" % n)
    run(base + ["--threads=%d" % n, "--out=" + one], tmp)
    run(mpirun_cmd(n) + base + ["--threads=1", "--out=" + many], tmp)
    same_run(one, many, "%s: %d ranks x 1 thread vs 1 process x %d threads" % (tag, n, n))


def descendants(pid):
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    s = f.read()
                ppid = int(s[s.rindex(")") + 2:].split()[1])
                kids.setdefault(ppid, []).append(int(p))
            except (OSError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        q = todo.pop()
        out.append(q)
        todo.extend(kids.get(q, []))
    return out


def kill_resume(binary, tmp):
    epochs = 4
    base = [binary, "train", "--model=ConvNCF"] + TINY + ["--epochs=%d" % epochs]
    ref = os.path.join(tmp, "ref")
    run(base + ["--threads=2", "--out=" + ref], tmp)
    job = os.path.join(tmp, "job")
    e = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.Popen(mpirun_cmd(2) + base + ["--threads=1", "--out=" + job], cwd=tmp, env=e,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = os.path.join(job, "checkpoint.bin")
    t0 = time.time()
    while not os.path.exists(ck) and p.poll() is None and time.time() - t0 < 120:
        time.sleep(0.02)
    if p.poll() is not None:
        fail("the job ended (code %s) before it could be killed" % p.returncode)
    procs = descendants(p.pid)
    for q in procs:  # mpirun and every rank: the whole job, as a node failure or scancel -s KILL would
        try:
            os.kill(q, signal.SIGKILL)
        except ProcessLookupError:
            pass
    p.wait()
    time.sleep(0.3)  # the ranks, reparented, are gone too
    done = [json.loads(l) for l in open(os.path.join(job, "metrics.jsonl")) if l.strip()]
    if any(j.get("event") == "test" for j in done):
        fail("the job finished before the kill landed: nothing was tested")
    print("killed %d processes of the job after %d epoch line(s)" % (len(procs), len(done)))
    run(mpirun_cmd(2) + [binary, "train", "--resume=" + job, "--quiet"], tmp)
    same_run(ref, job, "kill -9 of the 2-rank job, then --resume on 2 ranks, vs one process")


def dying_rank(binary, tmp):
    epochs = 3
    base = [binary, "train", "--model=ConvNCF"] + TINY + ["--epochs=%d" % epochs]
    ref = os.path.join(tmp, "ref")
    run(base + ["--threads=2", "--out=" + ref], tmp)
    for mode in ("", ":kill"):
        job = os.path.join(tmp, "job" + mode.replace(":", "-"))
        # step 60: in epoch 2 (48 batches an epoch), after epoch 1's checkpoint
        r = run(mpirun_cmd(2) + base + ["--threads=1", "--out=" + job], tmp, env={"CONVNCF_TEST_DIE": "1:60" + mode},
                expect_ok=False)
        if r.returncode == 0:
            fail("rank 1 died (CONVNCF_TEST_DIE=1:60%s) but the job succeeded:\n%s" % (mode, r.stdout))
        want = "rank 1: CONVNCF_TEST_DIE" if not mode else "rank 1"
        if want not in r.stdout:
            fail("the job's output does not name rank 1 (%r):\n%s" % (want, r.stdout))
        if not mode and "convncf: rank 1 of 2 failed (exit code 70)" not in r.stdout:
            fail("no line saying that rank 1 ended the job:\n%s" % r.stdout)
        lines = [json.loads(l) for l in open(os.path.join(job, "metrics.jsonl")) if l.strip()]
        print("CONVNCF_TEST_DIE=1:60%s: exit %d, %d epoch line(s), the job named rank 1" % (mode, r.returncode, len(lines)))
        # the checkpoint of epoch 1 is intact: resuming from it ends where one process does
        run(mpirun_cmd(2) + [binary, "train", "--resume=" + job, "--quiet"], tmp)
        same_run(ref, job, "after rank 1 died%s, --resume on 2 ranks vs one process" % (" by SIGKILL" if mode else ""))


def emulated_gpu(binary, tmp):
    base = [binary, "train"] + [a for a in TINY if not a.startswith(("--device=", "--quiet"))]
    base += ["--device=cuda", "--threads=1", "--epochs=2"]
    # MF-BPR has no network: the ranks' rows are the single device's, summed in the same order;
    # evaluated by full ranking (ConvNCF below: sampled), each rank ranking its share of the users
    bpr = [a for a in base if not a.startswith("--eval_mode=")] + ["--model=BPR", "--eval_mode=full"]
    one, two = os.path.join(tmp, "bpr-1"), os.path.join(tmp, "bpr-2")
    run(bpr + ["--out=" + one], tmp)
    r = run(mpirun_cmd(2) + bpr + ["--out=" + two], tmp)
    if "data parallel: rank 0 trains shares of up to" not in r.stdout:
        fail("the 2-rank run did not say that its CUDA engine exchanges (no 'data parallel'):\n" + r.stdout)
    # each step sends the rank's padded share, (8 + 12 E) bytes per triple (README "Several processes")
    share = -(-2048 // 2)  # train_batch_size 2048, one negative per positive, 2 ranks
    want = "(%d bytes, mean over" % (share * (8 + 12 * 8))
    if want not in r.stdout:
        fail("the 2-rank run's bytes per step are not the share's %s:\n%s" % (want, r.stdout))
    same_run(one, two, "MF-BPR on the emulated device: 2 ranks vs 1 process")
    # ConvNCF (after its MF-BPR stage): the same losses within rounding
    conv = base + ["--model=ConvNCF", "--quiet"]
    one, two, forced = (os.path.join(tmp, "conv-" + t) for t in ("1", "2", "forced"))
    run(conv + ["--out=" + one], tmp)
    run(mpirun_cmd(2) + conv + ["--out=" + two], tmp)
    m1, m2 = metrics(os.path.join(one, "metrics.jsonl")), metrics(os.path.join(two, "metrics.jsonl"))
    l1 = [j["loss"] for j in m1 if "loss" in j]
    l2 = [j["loss"] for j in m2 if "loss" in j]
    if len(l1) != len(l2) or not l1:
        fail("ConvNCF: %d epoch losses on 1 process, %d on 2 ranks" % (len(l1), len(l2)))
    worst = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(l1, l2))
    if worst > 1e-4:
        fail("ConvNCF: the 2 ranks' losses %s are not one process's %s (worst relative %.3g)" % (l2, l1, worst))
    print("ConvNCF on the emulated device: 2 ranks' %d losses within %.3g (relative) of one process's" % (len(l1), worst))
    run(conv + ["--out=" + forced], tmp, env={"CONVNCF_FORCE_NCCL": "1"})
    same_run(one, forced, "ConvNCF on the emulated device: one process through the exchange vs without")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 64
    binary, case = os.path.abspath(sys.argv[1]), sys.argv[2]
    if not shutil.which("mpirun"):
        print("mpirun not found (Debian: openmpi-bin): skipped")
        return SKIP
    if not os.environ.get("CONVNCF_MPI_MODULE") and \
            not os.path.exists(os.path.join(os.path.dirname(binary), "libconvncf_mpi.so")):
        print("libconvncf_mpi.so not built beside %s (no MPI found at configure time; Debian: libopenmpi-dev): skipped"
              % binary)
        return SKIP
    if not os.path.exists(binary):  # tools/gpu_check.sh --slim drops convncf_emulated from the carried build
        print("%s not found (a pruned build): skipped" % binary)
        return SKIP
    tmp = tempfile.mkdtemp(prefix="convncf-dist-")
    try:
        if case == "two_ranks":
            ranks_vs_threads(binary, tmp, 2, ["--model=ConvNCF"], 2, "ConvNCF")
            # full ranking: the ranks score blocks of their own users
            ranks_vs_threads(binary, tmp, 2, ["--model=BPR", "--eval_mode=full"], 2, "BPR")
        elif case == "three_ranks":
            ranks_vs_threads(binary, tmp, 3, ["--model=ConvNCF"], 2, "ConvNCF")
        elif case == "kill_resume":
            kill_resume(binary, tmp)
        elif case == "dying_rank":
            dying_rank(binary, tmp)
        elif case == "emulated_gpu":
            emulated_gpu(binary, tmp)
        else:
            print("unknown case " + case)
            return 64
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
