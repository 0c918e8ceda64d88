#!/usr/bin/env python3
"""The agent's parent program: a deliberately plain digits classifier
(nearest class centroid), Python standard library only.

Reads  $FIREBREAK_DATA_DIR/train.jsonl       lines {"x": [64 values], "y": label}
       $FIREBREAK_DATA_DIR/val_inputs.jsonl  lines {"index": i, "x": [64 values]}
Writes $FIREBREAK_TRIAL_DIR/predictions.jsonl lines {"split": "val", "index": i, "label": k}
The engine scores the predictions; this program never sees validation labels.
"""
import json
import os

data = os.environ["FIREBREAK_DATA_DIR"]
out = os.environ["FIREBREAK_TRIAL_DIR"]


def rows(name):
    with open(os.path.join(data, name)) as f:
        return [json.loads(line) for line in f if line.strip()]


train = rows("train.jsonl")
val = rows("val_inputs.jsonl")

# One mean vector per class.
sums, counts = {}, {}
for row in train:
    y = row["y"]
    acc = sums.setdefault(y, [0.0] * len(row["x"]))
    for j, v in enumerate(row["x"]):
        acc[j] += v
    counts[y] = counts.get(y, 0) + 1
centroids = {y: [v / counts[y] for v in acc] for y, acc in sums.items()}


def predict(x):
    def distance(c):
        return sum((a - b) ** 2 for a, b in zip(x, c))
    return min(centroids, key=lambda y: distance(centroids[y]))


correct = sum(predict(row["x"]) == row["y"] for row in train)
with open(os.path.join(out, "predictions.jsonl"), "w") as f:
    for row in val:
        f.write(json.dumps({"split": "val", "index": row["index"], "label": predict(row["x"])}) + "\n")
print(json.dumps({"final": True, "train_accuracy": correct / len(train)}))
