"""Regenerates mnist1d_reference.json: statistics of MNIST-1D as the reference
package (PyPI `mnist1d`) generates it with the paper's default settings, which
tests/mnist1d.rs compares with firebreak's own generator.

    python3 -m venv /tmp/m1d && /tmp/m1d/bin/pip install mnist1d numpy scipy requests
    /tmp/m1d/bin/python crates/firebreak-data/tests/mnist1d_reference.py
"""
import json
import os

import numpy as np
from mnist1d.data import get_dataset_args, make_dataset


def stats(x, y):
    out = {}
    for c in range(10):
        v = x[y == c]
        out[str(c)] = {
            "mean": float(v.mean()),
            "std": float(v.std()),
            "roughness": float(np.abs(np.diff(v, axis=1)).mean()),
            "peak": float(np.abs(v).max(axis=1).mean()),
        }
    return out


args = get_dataset_args()
data = make_dataset(args)
x = np.concatenate([data["x"], data["x_test"]])
y = np.concatenate([data["y"], data["y_test"]])
result = {
    "package": "mnist1d 0.0.2.post1",
    "train": int(len(data["y"])),
    "test": int(len(data["y_test"])),
    "length": int(x.shape[1]),
    "per_class": stats(x, y),
}
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "mnist1d_reference.json"), "w") as f:
    json.dump(result, f, indent=1)
print(json.dumps(result)[:300])
