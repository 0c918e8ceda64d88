#!/usr/bin/env python3
"""The trial program `firebreak init` writes beside its example spec.

A one-hidden-layer MLP, in plain Python (no packages), on a synthetic task
generated from a fixed seed: three interleaved spirals in the plane, split into
training and validation points. It speaks firebreak's trial protocol:

- parameters: `--lr X --hidden N` on the command line (the spec's `command`),
  `FIREBREAK_PARAM_ACTIVATION` and `FIREBREAK_PARAM_MOMENTUM` (absent when the
  spec's condition leaves it inactive) in the environment;
- `FIREBREAK_SEED` seeds the weights and the shuffling;
- one JSON line per epoch, `{"step": e, "val_accuracy": ...}`, so a scheduler
  can stop the trial early, and a final `{"final": true, ...}` line.

Replace it with your own program: anything that prints those JSON lines works.
"""

import argparse
import json
import math
import os
import random

EPOCHS = 10
CLASSES = 3


def spirals(n_per_class, rng):
    points = []
    for label in range(CLASSES):
        for i in range(n_per_class):
            r = i / n_per_class
            angle = 4.0 * r + label * 2.0 * math.pi / CLASSES + rng.gauss(0.0, 0.25)
            points.append(([r * math.sin(angle), r * math.cos(angle)], label))
    rng.shuffle(points)
    return points


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--hidden", type=int, required=True)
    args = parser.parse_args()
    activation = os.environ.get("FIREBREAK_PARAM_ACTIVATION", "tanh")
    momentum = float(os.environ.get("FIREBREAK_PARAM_MOMENTUM", "0"))
    rng = random.Random(int(os.environ.get("FIREBREAK_SEED", "0")))

    data = spirals(200, random.Random(12345))  # the same task for every trial
    train, val = data[:450], data[450:]
    h = args.hidden
    w1 = [[rng.gauss(0.0, 1.0) for _ in range(2)] for _ in range(h)]
    b1 = [0.0] * h
    w2 = [[rng.gauss(0.0, 1.0 / math.sqrt(h)) for _ in range(h)] for _ in range(CLASSES)]
    b2 = [0.0] * CLASSES
    v1 = [[0.0, 0.0] for _ in range(h)]
    v2 = [[0.0] * h for _ in range(CLASSES)]

    def act(z):
        return max(z, 0.0) if activation == "relu" else math.tanh(z)

    def act_grad(z, a):
        return (1.0 if z > 0 else 0.0) if activation == "relu" else 1.0 - a * a

    def forward(x):
        z1 = [w1[j][0] * x[0] + w1[j][1] * x[1] + b1[j] for j in range(h)]
        a1 = [act(z) for z in z1]
        logits = [sum(w2[k][j] * a1[j] for j in range(h)) + b2[k] for k in range(CLASSES)]
        top = max(logits)
        exps = [math.exp(l - top) for l in logits]
        total = sum(exps)
        return z1, a1, [e / total for e in exps]

    def accuracy(points):
        right = sum(1 for x, y in points if max(range(CLASSES), key=forward(x)[2].__getitem__) == y)
        return right / len(points)

    for epoch in range(1, EPOCHS + 1):
        rng.shuffle(train)
        for x, y in train:
            z1, a1, p = forward(x)
            d2 = [p[k] - (1.0 if k == y else 0.0) for k in range(CLASSES)]
            d1 = [act_grad(z1[j], a1[j]) * sum(d2[k] * w2[k][j] for k in range(CLASSES)) for j in range(h)]
            for k in range(CLASSES):
                for j in range(h):
                    v2[k][j] = momentum * v2[k][j] - args.lr * d2[k] * a1[j]
                    w2[k][j] += v2[k][j]
                b2[k] -= args.lr * d2[k]
            for j in range(h):
                for i in range(2):
                    v1[j][i] = momentum * v1[j][i] - args.lr * d1[j] * x[i]
                    w1[j][i] += v1[j][i]
                b1[j] -= args.lr * d1[j]
        val_accuracy = accuracy(val)
        if not math.isfinite(sum(b2)):
            raise SystemExit("the weights diverged (learning rate too high for this model)")
        print(json.dumps({"step": epoch, "val_accuracy": val_accuracy}), flush=True)
    print(json.dumps({"final": True, "val_accuracy": val_accuracy, "train_accuracy": accuracy(train)}))


if __name__ == "__main__":
    main()
