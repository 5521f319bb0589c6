"""NumpyReference.MatchesRecommend: tools/convncf_numpy.py against `convncf recommend`.

Trains small models with the convncf binary (ConvNCF under both presets, MF-BPR, popularity) on a
generated data file, exports each, and checks that the NumPy module's score of every (user, item)
that `convncf recommend --format=jsonl` lists equals the listed score within 1e-5 relative, and
that the list is in descending NumPy order. "Relative" is to the score, or to 1% of the listed
scores' RMS for a score near 0, where float32 sums cancel. Exit 77 (skipped) when no Python with NumPy is found.
    python3 tests/numpy_reference_test.py build/convncf      (ctest -R NumpyReference)
"""

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))


def python_with_numpy():
    try:
        import numpy  # noqa: F401
        return None
    except ImportError:
        pass
    for cand in ("/usr/bin/python3", "python3"):  # Debian's python3-numpy is /usr/bin/python3's
        path = shutil.which(cand)
        if path and os.path.realpath(path) != os.path.realpath(sys.executable) and \
                subprocess.run([path, "-c", "import numpy"], capture_output=True).returncode == 0:
            return path
    print("skipped: no Python here imports numpy (Debian: apt-get install python3-numpy)")
    sys.exit(SKIP)


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"FAILED: {' '.join(cmd)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def write_data(path, n_users=40, n_items=60, per_user=15, seed=5):
    rng = random.Random(seed)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    t = 0
    for u in range(n_users):
        for i in rng.sample(range(n_items), per_user):
            t += 1
            lines.append(f"u{u}\ti{(i * 7) % n_items}\t{t}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


CASES = [
    ("recbole", ["--model=ConvNCF", "--preset=recbole", "--embedding_size=16", "--cnn_channels=[1,8,8]",
                 "--cnn_kernels=[4,4]", "--cnn_strides=[4,4]", "--epochs=2", "--learning_rate=0.01"]),
    ("paper", ["--model=ConvNCF", "--preset=paper", "--embedding_size=16", "--cnn_channels=[1,4,4,4,4]",
               "--cnn_kernels=[2,2,2,2]", "--cnn_strides=[2,2,2,2]", "--epochs=2", "--eval_step=1",
               "--train_batch_size=128"]),
    ("recbole-default-tower", ["--model=ConvNCF", "--epochs=1"]),
    ("bpr", ["--model=BPR", "--epochs=3"]),
    ("pop", ["--model=Pop"]),
]


def main():
    binary = os.path.abspath(sys.argv[1])
    sys.path.insert(0, os.path.join(HERE, "..", "tools"))
    import numpy as np
    import convncf_numpy

    work = tempfile.mkdtemp(prefix="convncf_numpy_")
    try:
        data = os.path.join(work, "toy.inter")
        write_data(data)
        users = ["u0", "u3", "u17", "u39"]
        checked = 0
        for name, args in CASES:
            out, exp = os.path.join(work, name), os.path.join(work, name + "-export")
            run([binary, "train", f"--dataset={data}", f"--out={out}", "--device=cpu", "--quiet",
                 "--eval_args={split: {RS: [0.8, 0.1, 0.1]}, mode: full}", "--threads=2"] + args)
            run([binary, "export", out, f"--out={exp}"])
            lines = run([binary, "recommend", out, "--users=" + ",".join(users), "--topk=20", "--format=jsonl",
                         "--device=cpu"]).splitlines()
            model = convncf_numpy.load(exp)
            assert len(lines) == len(users), f"{name}: {len(lines)} recommendation lines for {len(users)} users"
            worst = 0.0
            for line in lines:
                rec = json.loads(line)
                got = np.asarray(rec["scores"], dtype=np.float64)
                ref = model.score([rec["user"]] * len(rec["items"]), rec["items"])
                assert len(ref) == 20, f"{name}: {len(ref)} items for {rec['user']}"
                assert np.any(ref != 0), f"{name}: every reference score is 0"
                # relative to the score, or to 1% of the scores' RMS where one is near 0 (float32 sums cancel)
                err = np.abs(got - ref) / np.maximum(np.abs(ref), 1e-2 * np.sqrt(np.mean(ref ** 2)))
                worst = max(worst, float(err.max()))
                if not np.all(err <= 1e-5):
                    k = int(err.argmax())
                    raise SystemExit(f"FAILED {name}: user {rec['user']} item {rec['items'][k]}: recommend "
                                     f"{got[k]!r}, numpy {ref[k]!r} (relative {err[k]:.3g})")
                # best first, as NumPy sees it too (up to the same tolerance)
                assert np.all(np.diff(ref) <= 1e-5 * np.maximum(np.abs(ref[1:]), 1e-6)), \
                    f"{name}: recommend's order is not descending by the NumPy scores for {rec['user']}"
                checked += len(ref)
            print(f"{name}: {model.kind}, {len(lines)} users x 20 items, largest relative difference {worst:.2e}")
        print(f"{checked} scores checked: NumPy reference equals convncf recommend")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: numpy_reference_test.py CONVNCF_BINARY", file=sys.stderr)
        sys.exit(64)
    other = python_with_numpy()
    if other:
        os.execv(other, [other] + sys.argv)
    main()
