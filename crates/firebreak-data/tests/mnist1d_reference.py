"""Regenerates mnist1d_reference.json: statistics of MNIST-1D as the reference
package (PyPI `mnist1d`, Apache-2.0) generates it with the paper's default
settings, over 20 seeds, so that tests/mnist1d.rs can compare firebreak's own
generator with the reference's mean of each statistic, in units of its
seed-to-seed standard deviation. Only these statistics are committed; no code
or data of the package is.

    python3 -m venv /tmp/m1d && /tmp/m1d/bin/pip install mnist1d==0.0.2.post1
    /tmp/m1d/bin/python crates/firebreak-data/tests/mnist1d_reference.py

Statistics (the whole dataset, train and test together, as generated:
standardised to mean 0 and standard deviation 1 over all values):
- class<c>.mean, .std: mean and standard deviation of class c's values;
- class<c>.roughness: mean |x[t+1] - x[t]| over class c;
- class<c>.peak: mean over class c's examples of max_t |x[t]|;
- bucket<b>.mean, .abs: mean of x and of |x| at positions 5b..5b+4, all classes;
- class<c>.bucket<b>: mean of x of class c at positions 5b..5b+4.
"""
import json
import os

import numpy as np
from mnist1d.data import get_dataset_args, make_dataset

SEEDS = list(range(20))
BUCKETS = 8


def stats(x, y):
    out = {}
    width = x.shape[1] // BUCKETS
    for c in range(10):
        v = x[y == c]
        out[f"class{c}.mean"] = v.mean()
        out[f"class{c}.std"] = v.std()
        out[f"class{c}.roughness"] = np.abs(np.diff(v, axis=1)).mean()
        out[f"class{c}.peak"] = np.abs(v).max(axis=1).mean()
        for b in range(BUCKETS):
            out[f"class{c}.bucket{b}"] = v[:, b * width:(b + 1) * width].mean()
    for b in range(BUCKETS):
        part = x[:, b * width:(b + 1) * width]
        out[f"bucket{b}.mean"] = part.mean()
        out[f"bucket{b}.abs"] = np.abs(part).mean()
    return {k: float(v) for k, v in out.items()}


runs = []
for seed in SEEDS:
    args = get_dataset_args()
    args.seed = seed
    data = make_dataset(args)
    x = np.concatenate([data["x"], data["x_test"]])
    y = np.concatenate([data["y"], data["y_test"]])
    runs.append(stats(x, y))
result = {
    "package": "mnist1d 0.0.2.post1",
    "seeds": SEEDS,
    "train": int(len(data["y"])),
    "test": int(len(data["y_test"])),
    "length": int(x.shape[1]),
    "buckets": BUCKETS,
    "stats": {
        name: {
            "mean": float(np.mean([r[name] for r in runs])),
            "sd": float(np.std([r[name] for r in runs], ddof=1)),
        }
        for name in runs[0]
    },
}
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "mnist1d_reference.json"), "w") as f:
    json.dump(result, f, indent=1, sort_keys=True)
    f.write("\n")
print(len(result["stats"]), "statistics over", len(SEEDS), "seeds")
