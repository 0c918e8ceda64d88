#!/usr/bin/env python3
"""A firebreak trial program: a one-hidden-layer MLP on the bundled digits data.

Run by firebreak under the trial protocol (see the README); to run it by hand:
    FIREBREAK_PARAM_LR=0.05 FIREBREAK_PARAM_HIDDEN=32 FIREBREAK_PARAM_ACTIVATION=relu \
        python3 examples/digits/train.py

Pure Python, no packages: the point is the protocol, not speed. It reads its
parameters from FIREBREAK_PARAM_*, seeds itself from FIREBREAK_SEED, prints one
JSON line per epoch ({"step": e, "val_accuracy": ...}) so schedulers can stop it,
saves a checkpoint each epoch to FIREBREAK_CHECKPOINT_DIR and resumes from
FIREBREAK_RESUME_FROM when set, and ends with a {"final": true, ...} line.
Proposers only ever see validation metrics; test accuracy is reported for people.
"""

import gzip
import json
import math
import os
import random
import sys
from itertools import repeat
from operator import add, mul

HERE = os.path.dirname(os.path.abspath(__file__))
EPOCHS = int(os.environ.get("DIGITS_EPOCHS", "8"))


def param(name, default, kind=float):
    value = os.environ.get("FIREBREAK_PARAM_" + name.upper())
    return default if value is None else kind(value)


def load_splits():
    """Fixed stratified 60/20/20 split with its own seed, the same for every trial."""
    with gzip.open(os.path.join(HERE, "data", "digits.csv.gz"), "rt") as f:
        rows = [list(map(float, line.split(","))) for line in f if line.strip()]
    by_class = {}
    for row in rows:
        by_class.setdefault(int(row[-1]), []).append(([v / 16.0 for v in row[:-1]], int(row[-1])))
    split_rng = random.Random(20260101)
    train, val, test = [], [], []
    for label in sorted(by_class):
        items = by_class[label]
        split_rng.shuffle(items)
        a, b = int(0.6 * len(items)), int(0.8 * len(items))
        train += items[:a]
        val += items[a:b]
        test += items[b:]
    return train, val, test


def forward(net, x):
    w1, b1, w2, b2, act = net
    pre = [sum(map(mul, x, row)) + b for row, b in zip(w1, b1)]
    h = [max(0.0, p) for p in pre] if act == "relu" else [math.tanh(p) for p in pre]
    logits = [sum(map(mul, h, row)) + b for row, b in zip(w2, b2)]
    top = max(logits)
    exps = [math.exp(z - top) for z in logits]
    total = sum(exps)
    return pre, h, [e / total for e in exps]


def evaluate(net, data):
    loss, correct = 0.0, 0
    for x, y in data:
        _, _, p = forward(net, x)
        loss -= math.log(max(p[y], 1e-12))
        correct += max(range(10), key=p.__getitem__) == y
    return correct / len(data), loss / len(data)


def train_epoch(net, data, lr, l2, rng):
    w1, b1, w2, b2, act = net
    order = list(range(len(data)))
    rng.shuffle(order)
    decay = 1.0 - lr * l2
    for i in order:
        x, y = data[i]
        pre, h, p = forward(net, x)
        p[y] -= 1.0  # dLoss/dlogits
        dh = [0.0] * len(h)
        for k, g in enumerate(p):
            row = w2[k]
            for j, hj in enumerate(h):
                dh[j] += g * row[j]
            w2[k] = list(map(add, map(mul, row, repeat(decay)), map(mul, h, repeat(-lr * g))))
            b2[k] -= lr * g
        for j, g in enumerate(dh):
            g *= (1.0 if pre[j] > 0 else 0.0) if act == "relu" else (1.0 - h[j] * h[j])
            if g != 0.0:
                w1[j] = list(map(add, map(mul, w1[j], repeat(decay)), map(mul, x, repeat(-lr * g))))
                b1[j] -= lr * g


def main():
    lr = param("lr", 0.05)
    hidden = param("hidden", 32, int)
    act = param("activation", "relu", str)
    l2 = param("l2", 1e-5)
    seed = int(os.environ.get("FIREBREAK_SEED", "0"))
    rng = random.Random(seed)
    train, val, test = load_splits()
    scale1, scale2 = 1.0 / math.sqrt(64), 1.0 / math.sqrt(hidden)
    net = [
        [[rng.gauss(0, scale1) for _ in range(64)] for _ in range(hidden)],
        [0.0] * hidden,
        [[rng.gauss(0, scale2) for _ in range(hidden)] for _ in range(10)],
        [0.0] * 10,
        act,
    ]
    start = 0
    resume = os.environ.get("FIREBREAK_RESUME_FROM")
    if resume and os.path.exists(os.path.join(resume, "state.json")):
        with open(os.path.join(resume, "state.json")) as f:
            state = json.load(f)
        net[:4], start = state["net"], state["epoch"]
        print(f"resumed from epoch {start}", file=sys.stderr)
    checkpoints = os.environ.get("FIREBREAK_CHECKPOINT_DIR")
    val_acc = val_loss = None
    for epoch in range(start + 1, EPOCHS + 1):
        train_epoch(net, train, lr, l2, rng)
        val_acc, val_loss = evaluate(net, val)
        if not math.isfinite(val_loss):
            val_loss = float("nan")
        # Save before reporting: a scheduler may stop the trial as soon as it reads
        # the report, and a paused or copied trial must find this epoch saved.
        if checkpoints:
            tmp = os.path.join(checkpoints, "state.json.tmp")
            with open(tmp, "w") as f:
                json.dump({"net": net[:4], "epoch": epoch}, f)
            os.replace(tmp, os.path.join(checkpoints, "state.json"))
        print(json.dumps({"step": epoch, "val_accuracy": val_acc, "val_loss": val_loss}), flush=True)
    if val_acc is None:
        val_acc, val_loss = evaluate(net, val)
    test_acc, test_loss = evaluate(net, test)
    print(json.dumps({"final": True, "val_accuracy": val_acc, "val_loss": val_loss,
                      "test_accuracy": test_acc, "test_loss": test_loss}), flush=True)


if __name__ == "__main__":
    main()
