"""recbole_convert: convncf models to RecBole checkpoints and RecBole's MF-BPR back.

    to-recbole  RUN_OR_EXPORT_DIR --out=FILE.pth [--convncf=BINARY] RECBOLE_ARGS...
        A convncf run folder (exported first with `convncf export`) or an export folder becomes a
        RecBole 1.2 checkpoint of RecBole's ConvNCF or BPR: its state_dict names, RecBole's [PAD]
        row 0 (zeros) in each embedding table, every RecBole id mapped through its raw token to the
        convncf row of the same raw id. RECBOLE_ARGS are RecBole's own command line (--dataset=ml-100k
        --config_files="a.yaml b.yaml" --data_path=... --KEY=VALUE), for the dataset RecBole will use
        the checkpoint on; the embedding size and the tower come from the model. The checkpoint
        loads with RecBole's load_data_and_model and scores with full_sort_topk.
    from-recbole FILE.pth --out=MODEL.bin RECBOLE_ARGS...
        A RecBole BPR checkpoint becomes a convncf model file (model.bin format, README "The model
        file") in raw ids, for pre_model_path (after_pretrain) without the C++ side parsing pickles.
        RecBole's dataset is rebuilt from the checkpoint's config (RECBOLE_ARGS --KEY=VALUE override
        its keys, e.g. --data_path=DIR when DIR/NAME/NAME.inter moved) to learn the raw tokens behind
        its ids.

Needs torch and recbole 1.2 (and NumPy). RecBole 1.2.1 on current torch and NumPy needs the
workarounds applied by recbole_compat() below (README "Leaving convncf"). Tested by
tests/recbole_roundtrip_test.py (ctest -R RecBoleRoundTrip), which skips without torch and recbole.
"""

import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import convncf_numpy  # noqa: E402

MAGIC = b"CONVNCF\0"
MODEL_VERSION = 1
KIND = {"ConvNCF": 0, "BPR": 1, "Pop": 2}


def recbole_compat():
    """What RecBole 1.2.1 needs on torch >= 2.6 and NumPy >= 2 (and setuptools >= 81 for ray)."""
    # torch.load's weights_only default became True in torch 2.6; RecBole's checkpoints pickle its
    # Config, and load_data_and_model calls torch.load(path) without the argument.
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    # NumPy 2 removed aliases that RecBole's Config.compatibility_settings (np.float_, np.complex_,
    # np.unicode_), its metrics (np.float) and ray's logger (np.bool8) still use.
    for name, value in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_),
                        ("bool8", np.bool_), ("float", float), ("int", int), ("bool", bool),
                        ("complex", complex), ("object", object), ("str", str), ("long", int),
                        ("unicode", str)):
        if name not in np.__dict__:
            setattr(np, name, value)


def fnv1a(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def model_bytes(kind, P, Q, user_ids, item_ids, net=None, channels=(), kernels=()):
    """The model.bin image (include/convncf/model_io.hpp): little-endian, FNV-1a at the end."""
    P = np.ascontiguousarray(P, dtype="<f4")
    Q = np.ascontiguousarray(Q, dtype="<f4")
    net = np.ascontiguousarray(np.zeros(0) if net is None else net, dtype="<f4")
    E = P.shape[1] if P.ndim == 2 else 0
    out = bytearray(MAGIC)
    out += struct.pack("<IIii", MODEL_VERSION, KIND[kind], E, len(kernels))
    out += struct.pack(f"<{len(channels)}i", *channels) + struct.pack(f"<{len(kernels)}i", *kernels)
    out += struct.pack("<iiQ", len(user_ids), len(item_ids), net.size)
    out += P.tobytes() + Q.tobytes() + net.tobytes()
    for s in list(user_ids) + list(item_ids):
        b = s.encode("utf-8")
        out += struct.pack("<I", len(b)) + b
    out += struct.pack("<Q", fnv1a(bytes(out)))
    return bytes(out)


def split_args(argv, ours):
    """(our --KEY=VALUE options, the rest: RecBole's command line)."""
    mine, rest = {}, []
    for a in argv:
        key = a[2:].split("=", 1)[0] if a.startswith("--") else None
        if key in ours:
            if "=" not in a:
                raise SystemExit(f"recbole_convert: --{key} needs a value (--{key}=...)")
            mine[key] = a.split("=", 1)[1]
        else:
            rest.append(a)
    return mine, rest


def recbole_dataset(model, recbole_args, config_dict):
    """RecBole's Config, dataset and training data for RecBole's command line, as run_recbole.py builds them."""
    recbole_compat()
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    config_files, dataset, rest = None, None, []
    for a in recbole_args:
        if a.startswith("--config_files="):
            config_files = a.split("=", 1)[1].strip().split()
        elif a.startswith("--dataset="):
            dataset = a.split("=", 1)[1]
        else:
            rest.append(a)
    if dataset is None:
        raise SystemExit("recbole_convert: RecBole's --dataset=NAME is needed")
    saved_argv = sys.argv
    sys.argv = [saved_argv[0]] + rest  # RecBole's Config reads --KEY=VALUE from sys.argv
    try:
        config = Config(model=model, dataset=dataset, config_file_list=config_files, config_dict=config_dict)
    finally:
        sys.argv = saved_argv
    init_seed(config["seed"], config["reproducibility"])
    ds = create_dataset(config)
    train_data, _, _ = data_preparation(config, ds)
    return config, ds, train_data


def rows_for(tokens, row_of, what):
    """convncf rows of RecBole's ids 1..n-1 (tokens[0] is [PAD])."""
    missing = [t for t in tokens[1:] if t not in row_of]
    if missing:
        raise SystemExit(f"recbole_convert: RecBole's dataset has {len(missing)} {what}s the convncf model does not "
                         f"know (e.g. {missing[0]!r}): the model was trained on other data")
    return np.array([row_of[t] for t in tokens[1:]], dtype=np.int64)


def to_recbole(argv):
    mine, rest = split_args(argv, {"out", "convncf"})
    if not rest or rest[0].startswith("--") or "out" not in mine:
        raise SystemExit("usage: recbole_convert.py to-recbole RUN_OR_EXPORT_DIR --out=FILE.pth RECBOLE_ARGS...")
    src, recbole_args = rest[0], rest[1:]
    tmp = None
    if not os.path.exists(os.path.join(src, "index.json")):
        if not os.path.exists(os.path.join(src, "model.bin")):
            raise SystemExit(f"recbole_convert: {src} is neither a run folder (model.bin) nor an export (index.json)")
        binary = mine.get("convncf") or os.path.join(HERE, "..", "build", "convncf")
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"recbole_convert: {binary} is not an executable convncf: build it, pass --convncf=BINARY, "
                             f"or give an export folder (convncf export RUN --out=FOLDER)")
        tmp = tempfile.mkdtemp(prefix="convncf_export_")
        r = subprocess.run([binary, "export", src, f"--out={tmp}/e"], capture_output=True, text=True)
        if r.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise SystemExit(f"recbole_convert: {binary} export {src} failed ({r.returncode}): {r.stderr.strip()}")
        src = f"{tmp}/e"
    m = convncf_numpy.load(src)
    if m.kind not in ("ConvNCF", "BPR"):
        raise SystemExit(f"recbole_convert: only ConvNCF and BPR models convert, not {m.kind}")
    import torch

    config_dict = {"embedding_size": int(m.P.shape[1]), "train_method": "no_pretrain"}
    if m.kind == "ConvNCF":
        config_dict.update({"cnn_channels": list(m.index["cnn_channels"]), "cnn_kernels": list(m.index["cnn_kernels"]),
                            "cnn_strides": list(m.index["cnn_strides"])})
    config, ds, train_data = recbole_dataset(m.kind, recbole_args, config_dict)
    from recbole.utils import get_model

    model = get_model(config["model"])(config, train_data._dataset)
    sd = model.state_dict()

    def table(src_rows, tokens, row_of, what):
        t = np.zeros((len(tokens), src_rows.shape[1]), dtype=np.float32)  # row 0: [PAD]
        t[1:] = src_rows[rows_for(tokens, row_of, what)]
        return torch.from_numpy(t)

    new = {"user_embedding.weight": table(m.P, list(ds.field2id_token[ds.uid_field]), m.user_row, "user"),
           "item_embedding.weight": table(m.Q, list(ds.field2id_token[ds.iid_field]), m.item_row, "item")}
    if m.kind == "ConvNCF":
        conv = [k for k in sd if k.startswith("cnn_layers.")]
        head = [k for k in sd if k.startswith("predict_layers.")]
        want = []
        for w, b in m.layers:
            want += [w, b]
        if len(conv) != len(want) or len(head) != 2:
            raise SystemExit(f"recbole_convert: RecBole's ConvNCF has {len(conv)} conv tensors, the model {len(want)}")
        for k, v in zip(conv, want):
            new[k] = torch.from_numpy(np.asarray(v, dtype=np.float32))
        new[head[0]] = torch.from_numpy(np.asarray(m.out_w, dtype=np.float32).reshape(1, -1))
        new[head[1]] = torch.tensor([float(m.out_b)], dtype=torch.float32)
    for k, v in new.items():
        if k not in sd or tuple(sd[k].shape) != tuple(v.shape):
            raise SystemExit(f"recbole_convert: {k}: RecBole expects {tuple(sd[k].shape) if k in sd else 'nothing'}, "
                             f"the model gives {tuple(v.shape)}")
    if set(new) != set(sd):
        raise SystemExit(f"recbole_convert: RecBole's {m.kind} has tensors the conversion does not fill: "
                         f"{sorted(set(sd) - set(new))}")
    model.load_state_dict(new)
    torch.save({"config": config, "epoch": 0, "cur_step": 0, "best_valid_score": 0.0, "state_dict": model.state_dict(),
                "other_parameter": model.other_parameter(), "optimizer": None}, mine["out"])
    print(f"wrote {mine['out']}: RecBole {m.kind}, {len(ds.field2id_token[ds.uid_field]) - 1} users and "
          f"{len(ds.field2id_token[ds.iid_field]) - 1} items of {config['dataset']} mapped from {src}")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


def from_recbole(argv):
    mine, rest = split_args(argv, {"out"})
    if not rest or rest[0].startswith("--") or "out" not in mine:
        raise SystemExit("usage: recbole_convert.py from-recbole FILE.pth --out=MODEL.bin RECBOLE_ARGS...")
    recbole_compat()
    import torch

    ck = torch.load(rest[0], map_location="cpu", weights_only=False)
    config, sd = ck["config"], ck["state_dict"]
    if config["model"] != "BPR":
        raise SystemExit(f"recbole_convert: from-recbole reads RecBole BPR checkpoints (pretraining), not "
                         f"{config['model']}")
    overrides = {}
    for a in rest[1:]:
        if not a.startswith("--") or "=" not in a:
            raise SystemExit(f"recbole_convert: expected --KEY=VALUE, found {a!r}")
        k, v = a[2:].split("=", 1)
        overrides[k] = v
    for k, v in overrides.items():
        # RecBole's Config keeps data_path joined with the dataset name, as an override here is
        config[k] = os.path.join(v, config["dataset"]) if k == "data_path" else v
    from recbole.data import create_dataset

    ds = create_dataset(config)
    users = list(ds.field2id_token[ds.uid_field])[1:]
    items = list(ds.field2id_token[ds.iid_field])[1:]
    P = sd["user_embedding.weight"].float().numpy()[1:]
    Q = sd["item_embedding.weight"].float().numpy()[1:]
    if P.shape[0] != len(users) or Q.shape[0] != len(items):
        raise SystemExit(f"recbole_convert: the checkpoint has {P.shape[0]} users and {Q.shape[0]} items, the dataset "
                         f"{len(users)} and {len(items)}: the checkpoint was made on other data")
    data = model_bytes("BPR", P, Q, [str(u) for u in users], [str(i) for i in items])
    tmp = mine["out"] + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, mine["out"])
    print(f"wrote {mine['out']}: convncf BPR model, {len(users)} users and {len(items)} items, E {P.shape[1]}, "
          f"from {rest[0]}")


def main(argv):
    if not argv or argv[0] not in ("to-recbole", "from-recbole"):
        print(__doc__.strip(), file=sys.stderr)
        return 64
    (to_recbole if argv[0] == "to-recbole" else from_recbole)(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
