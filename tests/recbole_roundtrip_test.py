"""RecBoleRoundTrip.ConvertLoadScore: tools/recbole_convert.py both ways, with RecBole itself.

Trains a small ConvNCF and an MF-BPR with the convncf binary on a generated RecBole atomic dataset,
converts each to a RecBole checkpoint (to-recbole), loads it with RecBole's load_data_and_model,
and checks that RecBole's scores (model.predict, full_sort_scores) equal the NumPy reference's
(tools/convncf_numpy.py) within 1e-5 relative for the same raw ids (relative to the score, or
where float32 sums cancel to the size of the summands: MF-BPR's sum_k |p_k q_k|, 1% of ConvNCF's
score RMS), and that full_sort_topk
answers. Then the BPR checkpoint goes back (from-recbole) to a model file that convncf loads as
pre_model_path: the embeddings it starts from equal the original ones bit for bit.
Needs a Python with torch and recbole: this one, or $CONVNCF_RECBOLE_PYTHON; else exit 77 (skipped).
    CONVNCF_RECBOLE_PYTHON=/path/venv/bin/python python3 tests/recbole_roundtrip_test.py build/convncf
"""

import os
import random
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, "..", "tools")


def has_recbole(python):
    return subprocess.run([python, "-c", "import numpy, torch, recbole"], capture_output=True).returncode == 0


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"FAILED: {' '.join(cmd)} exited {r.returncode}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r.stdout


def write_dataset(root, name="toy", n_users=50, n_items=70, per_user=14, seed=3):
    rng = random.Random(seed)
    os.makedirs(os.path.join(root, name))
    path = os.path.join(root, name, name + ".inter")
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    t = 0
    for u in rng.sample(range(n_users), n_users):  # users and items in no particular order
        for i in rng.sample(range(n_items), per_user):
            t += 1
            lines.append(f"{1000 + u}\t{5000 + i}\t{1 + t % 5}\t{t}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def main():
    binary = os.path.abspath(sys.argv[1])
    sys.path.insert(0, TOOLS)
    import numpy as np
    import recbole_convert
    recbole_convert.recbole_compat()
    import convncf_numpy
    import torch
    from recbole.quick_start import load_data_and_model
    from recbole.utils.case_study import full_sort_scores, full_sort_topk

    work = tempfile.mkdtemp(prefix="convncf_recbole_")
    home = os.getcwd()
    os.chdir(work)  # RecBole's logger writes ./log/
    try:
        data = write_dataset(work)
        rb_args = ["--dataset=toy", f"--data_path={work}", "--use_gpu=False", f"--checkpoint_dir={work}/saved",
                   "--state=ERROR", "--show_progress=False"]
        cases = [("ConvNCF", ["--embedding_size=16", "--cnn_channels=[1,8,8]", "--cnn_kernels=[4,4]",
                              "--cnn_strides=[4,4]", "--epochs=2", "--learning_rate=0.01"]),
                 ("BPR", ["--epochs=3"])]
        for kind, args in cases:
            out, exp, pth = (os.path.join(work, kind + s) for s in ("-run", "-export", ".pth"))
            run([binary, "train", f"--model={kind}", f"--dataset={data}", f"--out={out}", "--device=cpu", "--quiet",
                 "--threads=2"] + args)
            run([binary, "export", out, f"--out={exp}"])
            print(run([sys.executable, os.path.join(TOOLS, "recbole_convert.py"), "to-recbole", out, f"--out={pth}",
                       f"--convncf={binary}"] + rb_args).strip())
            ref = convncf_numpy.load(exp)
            config, model, dataset, train_data, valid_data, test_data = load_data_and_model(pth)
            model.eval()
            assert config["model"] == kind, config["model"]
            utok = list(dataset.field2id_token[dataset.uid_field])
            itok = list(dataset.field2id_token[dataset.iid_field])
            assert utok[0] == "[PAD]" and itok[0] == "[PAD]"
            # every RecBole user against every item, through predict
            uid = np.repeat(np.arange(1, len(utok)), len(itok) - 1)
            iid = np.tile(np.arange(1, len(itok)), len(utok) - 1)
            from recbole.data.interaction import Interaction
            inter = Interaction({dataset.uid_field: torch.from_numpy(uid), dataset.iid_field: torch.from_numpy(iid)})
            with torch.no_grad():
                got = model.predict(inter).double().numpy()
            want = ref.score([utok[u] for u in uid], [itok[i] for i in iid])
            # relative to the score, or where float32 sums cancel to the size of what was summed: for
            # BPR sum_k |p_k q_k|, for ConvNCF 1% of the scores' RMS
            if kind == "BPR":
                floor = np.einsum("ne,ne->n", np.abs(ref.P[[ref.user_row[utok[u]] for u in uid]]),
                                  np.abs(ref.Q[[ref.item_row[itok[i]] for i in iid]]))
            else:
                floor = 1e-2 * np.sqrt(np.mean(want ** 2))
            err = np.abs(got - want) / np.maximum(np.abs(want), floor)
            assert np.any(want != 0)
            if not np.all(err <= 1e-5):
                k = int(err.argmax())
                raise SystemExit(f"FAILED {kind}: user {utok[uid[k]]} item {itok[iid[k]]}: RecBole {got[k]!r}, "
                                 f"NumPy {want[k]!r}")
            # full ranking as RecBole serves it: full_sort_scores / full_sort_topk on test users
            users = np.array([1, 2, 3])
            with torch.no_grad():
                fs = full_sort_scores(users, model, test_data, device=torch.device("cpu")).double().numpy()
                top_scores, top_items = full_sort_topk(users, model, test_data, k=5, device=torch.device("cpu"))
            for r, u in enumerate(users):
                finite = np.isfinite(fs[r])
                items = np.nonzero(finite)[0]
                w = ref.score([utok[u]] * len(items), [itok[i] for i in items])
                scale = np.max(floor) if kind == "BPR" else np.sqrt(np.mean(want ** 2))
                assert np.allclose(fs[r][items], w, rtol=1e-5, atol=1e-5 * scale), \
                    f"{kind}: full_sort_scores of {utok[u]}"
                best = np.sort(fs[r][finite])[::-1][:5]
                assert np.allclose(top_scores[r].double().numpy(), best, rtol=1e-6), f"{kind}: full_sort_topk"
            print(f"{kind}: RecBole's predict equals the NumPy reference on {len(got)} pairs "
                  f"(largest relative difference {err.max():.2e}); full_sort_topk of user {utok[1]}: "
                  f"{[str(itok[i]) for i in top_items[0].tolist()]}")
            if kind != "BPR":
                continue
            # back: the BPR checkpoint as a convncf model file, used as pre_model_path
            back = os.path.join(work, "bpr-from-recbole.bin")
            print(run([sys.executable, os.path.join(TOOLS, "recbole_convert.py"), "from-recbole", pth,
                       f"--out={back}", f"--data_path={work}"]).strip())
            cnn, cnn_exp = os.path.join(work, "cnn-pre-run"), os.path.join(work, "cnn-pre-export")
            run([binary, "train", "--model=ConvNCF", f"--dataset={data}", f"--out={cnn}", "--device=cpu", "--quiet",
                 "--embedding_size=" + str(ref.P.shape[1]), "--cnn_channels=[1,8,8,8]", "--cnn_kernels=[4,4,4]",
                 "--cnn_strides=[4,4,4]", "--epochs=0", "--train_method=after_pretrain", f"--pre_model_path={back}"])
            run([binary, "export", cnn, f"--out={cnn_exp}"])
            start = convncf_numpy.load(cnn_exp)
            for table, rows_a, rows_b, ids in ((ref.P, start.P, ref.user_row, start.user_ids),
                                               (ref.Q, start.Q, ref.item_row, start.item_ids)):
                for r, raw in enumerate(ids):
                    if not np.array_equal(rows_a[r], table[rows_b[raw]]):
                        raise SystemExit(f"FAILED: the embedding of {raw} changed on the way back")
            print(f"from-recbole: ConvNCF started from the converted MF-BPR embeddings, {len(start.user_ids)} users "
                  f"and {len(start.item_ids)} items bit for bit")
        print("RecBole round trip: ok")
    finally:
        os.chdir(home)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: recbole_roundtrip_test.py CONVNCF_BINARY", file=sys.stderr)
        sys.exit(64)
    if not has_recbole(sys.executable):
        other = os.environ.get("CONVNCF_RECBOLE_PYTHON", "")
        if other and has_recbole(other):
            os.execv(other, [other] + sys.argv)
        print("skipped: torch and recbole do not import here (set CONVNCF_RECBOLE_PYTHON to a Python that has "
              "them; README \"Leaving convncf\" has the setup)")
        sys.exit(SKIP)
    main()
