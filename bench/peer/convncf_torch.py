#!/usr/bin/env python3
"""convncf_torch.py: the PyTorch peer benchmark for convncf's training step.

A PyTorch ConvNCF written from the project's model notes (../shared/REFERENCE.md), not copied from RecBole: embeddings
P (users, E) and Q (items, E); the interaction map p_u (x) q_i as a (N, 1, E, E) batched outer
product; a conv tower (Conv2d with bias, then ReLU; kernel = stride, no padding); the spatial sum;
Linear C->1. BPR loss summed over the batch as softplus(-(s_pos - s_neg)) plus the preset's
regularization; presets
  recbole  channels [1,32,32,32,32], kernels [4,4,2,2], dropout 0.2 before the Linear, N(0,1)
           embeddings, reg 0.1*(|P|+|Q|) + 0.1*sum |W| (plain Frobenius norms of whole tables,
           biases excluded), torch.optim.Adam lr 1e-3
  paper    six 2x2 layers of 32 channels, no dropout, the official code's truncated-normal init,
           reg 0.01*(|p_u|^2+|q_i+|^2+|q_i-|^2 over batch rows) + 10*|out|^2 + 1*sum |conv|^2
           + 1*|out|^2 (squared, biases included), Adagrad lr 0.05, accumulator 0.1, eps 0
It times one full training step (forward, backward, optimizer.step, zero_grad) on random
(user, pos, neg) triples over a 30,000 x 40,000 catalogue: warm-up, then the median over repeats
(CUDA events on a GPU, perf_counter on the CPU). One JSON line per result, shaped like
bench_gpu's train_step lines. TF32 is off unless --tf32. Needs only torch.

  python3 bench/peer/convncf_torch.py --check                  # float64 self-check, no GPU needed
  python3 bench/peer/convncf_torch.py --json peer.jsonl        # both presets, eager + compiled
  python3 bench/peer/convncf_torch.py --batches 64 --steps 3 --repeats 3 --modes eager   # smoke
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    "recbole": dict(channels=[1, 32, 32, 32, 32], kernels=[4, 4, 2, 2], dropout=0.2, reg=[0.1, 0.1]),
    "paper": dict(channels=[1] + [32] * 6, kernels=[2] * 6, dropout=0.0, reg=[0.01, 10.0, 1.0]),
}
FLOP_PER_TRIPLE = {"recbole": 5.0e6, "paper": 18.6e6}  # REFERENCE.md, forward + backward, 2 pairs
FP32_PEAK = 67e12  # H100/H200 dense FP32 CUDA cores, as bench_gpu uses


class ConvNCF(nn.Module):
    def __init__(self, n_users, n_items, emb, channels, kernels, dropout, paper_init=False):
        super().__init__()
        self.P = nn.Embedding(n_users, emb)  # PyTorch default init: N(0, 1)
        self.Q = nn.Embedding(n_items, emb)
        self.convs = nn.ModuleList(nn.Conv2d(ci, co, k, stride=k)
                                   for ci, co, k in zip(channels[:-1], channels[1:], kernels))
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()  # no mask work for p = 0
        self.out = nn.Linear(channels[-1], 1)
        if paper_init:  # the official TF code; truncated at 2 std like tf.truncated_normal
            tn = lambda t, s: nn.init.trunc_normal_(t, std=s, a=-2 * s, b=2 * s)
            tn(self.P.weight, 0.01), tn(self.Q.weight, 0.01)
            for c in self.convs:
                tn(c.weight, 0.1), nn.init.constant_(c.bias, 0.1)
            tn(self.out.weight, 0.1), tn(self.out.bias, 0.1)

    def score(self, p, q):  # p, q: (N, E) -> (N,)
        m = torch.bmm(p.unsqueeze(2), q.unsqueeze(1)).unsqueeze(1)  # (N, 1, E, E)
        for c in self.convs:
            m = F.relu(c(m))
        return self.out(self.drop(m.sum(dim=(2, 3)))).squeeze(1)  # spatial sum, then C -> 1

    def forward(self, u, i, j):  # one tower call over the 2B pairs of a batch
        p, qi, qj = self.P(u), self.Q(i), self.Q(j)
        s = self.score(torch.cat([p, p]), torch.cat([qi, qj]))
        return s[: u.shape[0]], s[u.shape[0]:], p, qi, qj


def loss_fn(model, preset, u, i, j):
    s_pos, s_neg, p, qi, qj = model(u, i, j)
    bpr = F.softplus(-(s_pos - s_neg)).sum()  # = sum log(1 + exp(-(s+ - s-))), stable
    reg = PRESETS[preset]["reg"]
    if preset == "recbole":
        ws = [c.weight for c in model.convs] + [model.out.weight]
        return bpr + reg[0] * (model.P.weight.norm() + model.Q.weight.norm()) + reg[1] * sum(w.norm() for w in ws)
    sq = lambda t: t.pow(2).sum()
    out2 = sq(model.out.weight) + sq(model.out.bias)
    conv2 = sum(sq(c.weight) + sq(c.bias) for c in model.convs)
    return bpr + reg[0] * (sq(p) + sq(qi) + sq(qj)) + reg[1] * out2 + reg[2] * (conv2 + out2)


def make_model(preset, n_users, n_items, emb, device, dtype=torch.float32, **over):
    cfg = dict(PRESETS[preset], **over)
    m = ConvNCF(n_users, n_items, emb, cfg["channels"], cfg["kernels"], cfg["dropout"], preset == "paper")
    return m.to(device=device, dtype=dtype)


def make_optimizer(preset, model):
    if preset == "recbole":
        return torch.optim.Adam(model.parameters(), lr=1e-3)
    # TensorFlow's Adagrad: accumulator starts at 0.1, no epsilon. The official code's two
    # optimizers (embeddings, network) both use lr 0.05, so one optimizer is the same update.
    return torch.optim.Adagrad(model.parameters(), lr=0.05, initial_accumulator_value=0.1, eps=0.0)


# ---------------------------------------------------------------- self-check (float64, CPU)
def loop_score(model, u, i):
    """The definition, element by element: outer product, each k x k block summed against the
    kernel plus bias, ReLU, spatial sum, linear."""
    p, q = model.P.weight[u].tolist(), model.Q.weight[i].tolist()
    x = [[[p[a] * q[b] for b in range(len(q))] for a in range(len(p))]]  # [channel][row][col]
    for c in model.convs:
        W, bias, k = c.weight.tolist(), c.bias.tolist(), c.kernel_size[0]
        n = len(x[0]) // k
        x = [[[max(0.0, bias[co] + sum(W[co][ci][r][s] * x[ci][k * a + r][k * b + s]
                                       for ci in range(len(x)) for r in range(k) for s in range(k)))
               for b in range(n)] for a in range(n)] for co in range(len(W))]
    h = [sum(sum(row) for row in ch) for ch in x]
    return model.out.bias.item() + sum(w * v for w, v in zip(model.out.weight[0].tolist(), h))


def self_check():
    torch.manual_seed(7)
    ok = True
    towers = {"recbole": dict(channels=[1, 3, 2], kernels=[4, 2]),  # 8 -> 2 -> 1
              "paper": dict(channels=[1, 2, 3, 2], kernels=[2, 2, 2])}  # 8 -> 4 -> 2 -> 1
    for preset, tower in towers.items():
        model = make_model(preset, 5, 7, 8, "cpu", torch.float64, **tower).eval()  # dropout off
        with torch.no_grad():  # with either init this tiny tower is mostly dead (score = bias);
            for prm in model.parameters():  # these values make ReLUs switch both ways
                prm.normal_(0, 0.7)
        u, i, j = torch.tensor([0, 3, 3, 1]), torch.tensor([2, 5, 0, 6]), torch.tensor([4, 1, 2, 3])
        with torch.no_grad():
            got = model.score(model.P(u), model.Q(i))
        want = torch.tensor([loop_score(model, a, b) for a, b in zip(u.tolist(), i.tolist())], dtype=torch.float64)
        err = (got - want).abs().max().item()
        live = len(set(want.tolist())) == len(want)  # distinct scores: the tower is not dead
        good = err <= 1e-12 * (1 + want.abs().max().item()) and live
        print(f"check {preset} forward vs loop: max |diff| {err:.2e} over {len(want)} pairs: {'ok' if good else 'MISMATCH'}")
        ok &= good
        # the loss against its definition, from the loop scores and the tables' plain values
        d = [loop_score(model, a, b) - loop_score(model, a, n) for a, b, n in zip(u.tolist(), i.tolist(), j.tolist())]
        want_loss = sum(math.log1p(math.exp(-x)) for x in d)
        n2 = lambda t: float((t.detach() ** 2).sum())
        ws = [c.weight for c in model.convs] + [model.out.weight]
        if preset == "recbole":
            want_loss += 0.1 * (n2(model.P.weight) ** 0.5 + n2(model.Q.weight) ** 0.5) + 0.1 * sum(n2(w) ** 0.5 for w in ws)
        else:
            rows = n2(model.P.weight[u]) + n2(model.Q.weight[i]) + n2(model.Q.weight[j])
            out2 = n2(model.out.weight) + n2(model.out.bias)
            want_loss += 0.01 * rows + 10 * out2 + 1 * (sum(n2(c.weight) + n2(c.bias) for c in model.convs) + out2)
        model.zero_grad()
        loss = loss_fn(model, preset, u, i, j)
        good = abs(loss.item() - want_loss) <= 1e-12 * (1 + abs(want_loss))
        print(f"check {preset} loss vs definition: {loss.item():.12f} vs {want_loss:.12f}: {'ok' if good else 'MISMATCH'}")
        ok &= good
        loss.backward()
        # P[4]'s gradient is the regularizer's alone: recbole 0.1 * P[4][0] / |P|, paper 0
        reg_only = 0.1 * model.P.weight[4, 0].item() / n2(model.P.weight) ** 0.5 if preset == "recbole" else 0.0
        good = abs(model.P.weight.grad[4, 0].item() - reg_only) <= 1e-12
        print(f"check {preset} d loss / d P[4][0] (not in the batch) = {reg_only:.9f} by hand: {'ok' if good else 'MISMATCH'}")
        ok &= good
        # P[3] and Q[2] are in the batch; P[4] is not: recbole's whole-table norm still gives it a
        # gradient, the paper's per-row form none (a zero the finite difference must also find).
        for name, table, row, col in [("P", model.P.weight, 3, 5), ("Q", model.Q.weight, 2, 1), ("P", model.P.weight, 4, 0)]:
            h = 1e-6
            with torch.no_grad():
                old = table[row, col].item()
                table[row, col] = old + h
                lp = loss_fn(model, preset, u, i, j).item()
                table[row, col] = old - h
                lm = loss_fn(model, preset, u, i, j).item()
                table[row, col] = old
            fd, ag = (lp - lm) / (2 * h), table.grad[row, col].item()
            good = abs(fd - ag) <= 1e-6 * (1 + abs(fd))
            print(f"check {preset} d loss / d {name}[{row}][{col}]: autograd {ag:.9f} finite difference {fd:.9f}: "
                  f"{'ok' if good else 'MISMATCH'}")
            ok &= good
    print("self-check:", "ok" if ok else "MISMATCH")
    return ok


# ---------------------------------------------------------------- timing
def bench(args, preset, mode, batches, device, meta):
    """One model, optimizer and (compiled) loss per preset and mode; yields a result per batch size.
    torch.compile specializes on the first batch size and recompiles once with a dynamic batch
    dimension on the second (its default), so five sizes cost two compilations, not five."""
    cuda = device.type == "cuda"
    torch.manual_seed(2020)
    model = make_model(preset, args.users, args.items, args.embedding, device).train()
    opt = make_optimizer(preset, model)
    fn, fallback = (torch.compile(loss_fn) if mode == "compiled" else loss_fn), None

    def step(u, i, j):
        fn(model, preset, u, i, j).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for B in batches:
        pool = [tuple(torch.randint(n, (B,), device=device) for n in (args.users, args.items, args.items))
                for _ in range(args.steps)]  # fresh triples for every timed step, made before timing
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        try:
            for k in range(args.warmup):
                step(*pool[k % len(pool)])
        except Exception as e:  # noqa: BLE001 -- torch.compile fails in many ways (no compiler, ...)
            if fn is loss_fn:
                raise
            fallback = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"[:300]
            print(f"convncf_torch: torch.compile failed for preset {preset} at batch {B} ({fallback}); falling "
                  f"back to eager: reported as engine pytorch-eager with \"fallback_from\":\"compiled\"",
                  file=sys.stderr)
            fn = loss_fn
            opt.zero_grad(set_to_none=True)
            for k in range(args.warmup):
                step(*pool[k % len(pool)])
        if cuda:
            torch.cuda.synchronize()
        warm_s = time.perf_counter() - t0
        ms = []
        for _ in range(args.repeats):
            if cuda:
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                for k in range(args.steps):
                    step(*pool[k])
                b.record()
                b.synchronize()
                ms.append(a.elapsed_time(b))
            else:
                t = time.perf_counter()
                for k in range(args.steps):
                    step(*pool[k])
                ms.append((time.perf_counter() - t) * 1e3)
        med = statistics.median(ms)
        tps = B * args.steps / (med / 1e3)
        r = {"bench": "train_step", "engine": "pytorch-eager" if fallback or mode == "eager" else "pytorch-compiled",
             "preset": preset, "batch": B, "steps": args.steps, "repeats": args.repeats,
             "triples_per_second": round(tps), "ms_per_step": round(med / args.steps, 4)}
        if cuda:
            r["of_fp32_floor"] = round(tps * FLOP_PER_TRIPLE[preset] / FP32_PEAK, 4)
            r["max_memory_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        r["warmup_s"] = round(warm_s, 2)  # includes torch.compile's compile time
        if fallback:
            r["fallback_from"], r["fallback_reason"] = "compiled", fallback
        r.update(meta)
        yield r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="float64 self-check against the definition, then exit")
    ap.add_argument("--presets", default="recbole,paper")
    ap.add_argument("--modes", default="eager,compiled", help="eager, compiled, or both")
    ap.add_argument("--batches", default="512,2048,4096,8192,16384")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    ap.add_argument("--repeats", type=int, default=5, help="the median over these is reported")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    ap.add_argument("--users", type=int, default=30000)
    ap.add_argument("--items", type=int, default=40000)
    ap.add_argument("--embedding", type=int, default=64)
    ap.add_argument("--tf32", action="store_true", help="allow TF32 in matmuls and convolutions (default: off)")
    ap.add_argument("--device", default="auto", help="auto (cuda when available), cuda or cpu")
    ap.add_argument("--json", metavar="FILE", help="also append the JSON lines to FILE")
    ap.add_argument("--threads", type=int, default=0,
                    help="CPU threads (torch.set_num_threads); 0: torch's default (OMP_NUM_THREADS, else the cores)")
    args = ap.parse_args()
    if args.check:
        sys.exit(0 if self_check() else 1)

    presets, modes = args.presets.split(","), args.modes.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    bad = [p for p in presets if p not in PRESETS] + [m for m in modes if m not in ("eager", "compiled")]
    if bad or min(batches) < 1 or min(args.steps, args.repeats, args.warmup) < 1:
        ap.error(f"unknown preset or mode {bad}" if bad else "batches, steps, repeats, warmup must be >= 1")
    if args.threads < 0:
        ap.error("--threads must be >= 0")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cudnn.benchmark = True  # let cuDNN pick its fastest algorithms, as a user would
    cuda = device.type == "cuda"
    meta = {"gpu": torch.cuda.get_device_name(device) if cuda else "cpu", "torch": torch.__version__,
            "cuda": torch.version.cuda if cuda else None,
            "cudnn": torch.backends.cudnn.version() if cuda else None, "tf32": args.tf32}
    if not cuda:
        meta["cpu_threads"] = torch.get_num_threads()
    print(f"convncf_torch: device {meta['gpu']}, torch {meta['torch']}, TF32 {'on' if args.tf32 else 'off'}",
          file=sys.stderr)
    out = open(args.json, "a") if args.json else None
    for preset in presets:
        for mode in modes:
            for r in bench(args, preset, mode, batches, device, meta):
                line = json.dumps(r, separators=(",", ":"))
                print(line, flush=True)
                if out:
                    out.write(line + "\n")
                    out.flush()
    if out:
        out.close()


if __name__ == "__main__":
    main()
