"""convncf_numpy: score (user, item) pairs of an exported convncf model with NumPy alone.

`convncf export RUN_DIR --out=FOLDER` writes the model as .npy files and index.json; this module
reads that folder and computes the model's score from its definition (README "What it does",
shared/REFERENCE.md), in float64:

    ConvNCF  s(u, i) = w . sum_xy T(p_u (x) q_i) + b, where p_u (x) q_i is the E x E map
             M[a][b] = p_u[a] q_i[b] (one channel, a the row) and T the conv tower: per layer a
             k x k convolution with stride k and no padding, plus bias, then ReLU. network.npy is
             flat: per layer its weight (C_out, C_in, k, k) then its bias (C_out), then the output
             weight (C_last) and bias (1). No dropout: scores are evaluation scores.
    BPR      s(u, i) = p_u . q_i
    Pop      s(u, i) = the item's training count (item_popularity.npy)

    import convncf_numpy as cn
    model = cn.load("FOLDER")
    model.score(["17", "17"], ["50", "181"])      # raw ids as the data wrote them
    model.score_index([0, 0], [3, 9])             # row indices of user_ids.npy / item_ids.npy

Command line, for a quick look: python3 tools/convncf_numpy.py FOLDER USER ITEM [ITEM ...]
prints one `user<TAB>item<TAB>score` line per item. Tested against `convncf recommend
--format=jsonl` by tests/numpy_reference_test.py (ctest -R NumpyReference).
"""

import json
import os
import sys

import numpy as np


class Model:
    """An exported model: its kind, tables, id maps and (ConvNCF) tower."""

    def __init__(self, folder):
        with open(os.path.join(folder, "index.json"), encoding="utf-8") as f:
            self.index = json.load(f)
        self.kind = self.index["model"]
        files = self.index["files"]

        def array(name):
            return np.load(os.path.join(folder, files[name]))

        self.user_ids = [str(u) for u in array("user_ids")]
        self.item_ids = [str(i) for i in array("item_ids")]
        self.user_row = {u: r for r, u in enumerate(self.user_ids)}
        self.item_row = {i: r for r, i in enumerate(self.item_ids)}
        if self.kind == "Pop":
            self.popularity = array("item_popularity").astype(np.float64)
            return
        self.P = array("user_embeddings").astype(np.float64)  # (n_users, E)
        self.Q = array("item_embeddings").astype(np.float64)  # (n_items, E)
        if self.kind == "ConvNCF":
            self.layers, self.out_w, self.out_b = unpack_tower(
                array("network").astype(np.float64), self.index["cnn_channels"], self.index["cnn_kernels"])

    def score_index(self, users, items):
        """Scores of the pairs (users[k], items[k]) given as row indices; float64 array."""
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        if self.kind == "Pop":
            return self.popularity[items]
        p, q = self.P[users], self.Q[items]
        if self.kind == "BPR":
            return np.einsum("ne,ne->n", p, q)
        x = np.einsum("na,nb->nab", p, q)[:, None, :, :]  # (n, 1, E, E)
        for w, b in self.layers:
            x = np.maximum(conv_stride_k(x, w) + b[None, :, None, None], 0.0)
        return x.sum(axis=(2, 3)) @ self.out_w + self.out_b

    def score(self, users, items):
        """Scores of the pairs (users[k], items[k]) given as raw ids."""
        try:
            u = [self.user_row[str(x)] for x in users]
            i = [self.item_row[str(x)] for x in items]
        except KeyError as e:
            raise KeyError(f"id {e.args[0]!r} is not in the exported model") from None
        return self.score_index(u, i)


def unpack_tower(net, channels, kernels):
    """The flat network array as [(weight (C_out, C_in, k, k), bias (C_out,))], out_w, out_b."""
    layers, at = [], 0
    for l, k in enumerate(kernels):
        cin, cout = channels[l], channels[l + 1]
        w = net[at:at + cout * cin * k * k].reshape(cout, cin, k, k)
        at += w.size
        b = net[at:at + cout]
        at += cout
        layers.append((w, b))
    out_w = net[at:at + channels[-1]]
    out_b = net[at + channels[-1]]
    if at + channels[-1] + 1 != net.size:
        raise ValueError(f"network.npy has {net.size} values, the tower {channels} / {kernels} needs "
                         f"{at + channels[-1] + 1}")
    return layers, out_w, out_b


def conv_stride_k(x, w):
    """Convolution with stride = kernel size and no padding: x (n, C_in, H, W), w (C_out, C_in, k, k)."""
    n, cin, h, wd = x.shape
    k = w.shape[2]
    blocks = x[:, :, :h // k * k, :wd // k * k].reshape(n, cin, h // k, k, wd // k, k)
    return np.einsum("ncxrys,ocrs->noxy", blocks, w)


def load(folder):
    return Model(folder)


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: python3 tools/convncf_numpy.py FOLDER USER ITEM [ITEM ...]", file=sys.stderr)
        return 64
    model = load(argv[0])
    items = argv[2:]
    for item, s in zip(items, model.score([argv[1]] * len(items), items)):
        print(f"{argv[1]}\t{item}\t{s:.9g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
