"""Plots bench/quality.sh's anytime curves: for each problem and budget, the
median (line) and quartiles (band) over seeds of the best score found after each
evaluation, one colour per engine and proposer. Writes a PNG; needs matplotlib
(installed into the benchmark's venv by bench/quality.sh).

    bench/.venv/bin/python bench/plot.py bench/results/quality.jsonl bench/results/quality.png
"""
import json
import math
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def percentile(sorted_values, q):
    position = (len(sorted_values) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def main():
    results, out = sys.argv[1], sys.argv[2]
    curves = defaultdict(list)
    problems = []
    for line in open(results):
        r = json.loads(line)
        # Grouped by (problem, budget): the same table may run at several budgets.
        problem = (r["problem"], len(r["curve"]))
        if problem not in problems:
            problems.append(problem)
        curves[(problem, r["engine"] + " " + r["proposer"])].append(r["curve"])
    # One colour per engine and proposer across all panels.
    labels = sorted({label for _, label in curves})
    palette = plt.get_cmap("tab10")
    colour = {label: palette(i % 10) for i, label in enumerate(labels)}
    columns = 3
    rows = math.ceil(len(problems) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows), squeeze=False)
    for axis, problem in zip(axes.flat, problems):
        for (p, label), runs in sorted(curves.items()):
            if p != problem:
                continue
            length = min(len(c) for c in runs)
            steps = range(1, length + 1)
            columns_at = [sorted(c[i] for c in runs) for i in range(length)]
            axis.plot(steps, [percentile(v, 0.5) for v in columns_at], label="%s (%d)" % (label, len(runs)),
                      color=colour[label])
            axis.fill_between(steps, [percentile(v, 0.25) for v in columns_at],
                              [percentile(v, 0.75) for v in columns_at], alpha=0.2, color=colour[label])
        # Tables by file name (the directory is where the data happened to be).
        title = problem[0].replace("table:", "").rsplit("/", 1)[-1]
        axis.set_title("%s, %d evaluations" % (title, problem[1]), fontsize=9)
        axis.set_xlabel("evaluations")
        axis.tick_params(labelsize=7)
        if not problem[0].endswith(":maximize") and all(
                min(min(c) for c in runs) > 0 for (p, _), runs in curves.items() if p == problem):
            axis.set_yscale("log")
        axis.legend(fontsize=6)
    for axis in list(axes.flat)[len(problems):]:
        axis.axis("off")
    figure.suptitle("Best score so far: median and quartiles over seeds (firebreak vs Optuna 5)")
    figure.tight_layout(rect=(0, 0, 1, 0.98))
    figure.savefig(out, dpi=90)


if __name__ == "__main__":
    main()
