#!/usr/bin/env python3
"""Writes bench/results/generations.md from the campaigns bench/generations.sh ran:
per arm (students taught by the promoted champion, students from labels alone) and
seed, the best student's validation accuracy, parameters and trial CPU per
generation, and a one-sided Mann-Whitney U test (exact, by enumerating every split
of the pooled values) that the taught students are better.

    python3 bench/generations_report.py WORK MANIFEST SEEDS CORES
"""
import itertools
import json
import statistics
import sys
import time


def mann_whitney_greater(xs, ys):
    """U of xs over ys (ties count half) and the exact one-sided p-value of
    P(U >= observed) when both samples come from one distribution."""

    def u_of(a, b):
        return sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b)

    observed = u_of(xs, ys)
    pooled = xs + ys
    n = len(xs)
    splits = 0
    as_large = 0
    for chosen in itertools.combinations(range(len(pooled)), n):
        picked = set(chosen)
        a = [pooled[i] for i in chosen]
        b = [pooled[i] for i in range(len(pooled)) if i not in picked]
        splits += 1
        if u_of(a, b) >= observed - 1e-12:
            as_large += 1
    return observed, as_large / splits


def main():
    work, manifest, seeds, cores = sys.argv[1:5]
    runs = [json.loads(line) for line in open(manifest) if line.strip()]
    rows = []
    for run in runs:
        name = run["campaign"]
        trials = json.load(open(f"{work}/{name}.trials.json"))
        lineage = json.load(open(f"{work}/{name}.lineage.json"))
        by_gen = {}
        for t in trials:
            by_gen.setdefault(t.get("generation"), []).append(t)
        complete = lambda ts: [t for t in ts if t["state"] == "complete"]
        students = complete(by_gen.get(2, []) + by_gen.get(3, []))
        best = max(students, key=lambda t: t["metrics"]["val_accuracy"], default=None)
        teachers = complete(by_gen.get(1, []))
        teacher = max(teachers, key=lambda t: t["metrics"]["val_accuracy"], default=None)
        gens = []
        for g in lineage["generations"]:
            mine = by_gen.get(g["generation"], [])
            gens.append({
                "generation": g["generation"],
                "state": g["state"],
                "teacher": g["teacher"],
                "best": max((t["metrics"]["val_accuracy"] for t in complete(mine)), default=None),
                "params": statistics.median([t["metrics"]["params"] for t in complete(mine)])
                if complete(mine) else None,
                "cpu": sum(t.get("cpu_seconds") or 0.0 for t in mine),
            })
        rows.append({**run, "best": best, "teacher": teacher, "gens": gens})

    taught = [r for r in rows if r["arm"] == "taught" and r["best"]]
    labels = [r for r in rows if r["arm"] == "labels" and r["best"]]
    xs = [r["best"]["metrics"]["val_accuracy"] for r in taught]
    ys = [r["best"]["metrics"]["val_accuracy"] for r in labels]

    print("# Recursive generations: students taught by the promoted champion\n")
    print(f"Written {time.strftime('%Y-%m-%d %H:%M')} by `SEEDS={seeds} bench/generations.sh` "
          f"(bench/generations.sh, bench/generations_report.py); release build, {cores} cores, "
          "shared with other work (times vary with load). examples/generations.toml as shipped "
          "(arm *taught*) against the same spec with `seed_next = [\"parent\", \"narrow\"]` (arm *labels*: "
          "no teacher), on the same campaign seeds and budgets. Accuracies are on MNIST-1D's "
          "validation split, the split every choice here is made on; the test split is not read "
          "for this comparison.\n")
    print(f"Campaigns: {len(rows)}; exit 0: {sum(r['exit'] == 0 for r in rows)}; "
          f"`audit verify` passes: {sum(r['verify'] == 0 for r in rows)}.\n")
    print("## The best small student (generations 2 and 3), per seed\n")
    print("| seed | taught: val_accuracy | params | labels alone: val_accuracy | params | "
          "teacher (generation 1 champion) val_accuracy | params |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for seed in sorted({r["seed"] for r in rows}):
        t = next((r for r in taught if r["seed"] == seed), None)
        l = next((r for r in labels if r["seed"] == seed), None)
        cell = lambda r: (f"{r['best']['metrics']['val_accuracy']:.4f}",
                          f"{r['best']['metrics']['params']:.0f}") if r else ("—", "—")
        teacher = (t or l or {}).get("teacher")
        tv = (f"{teacher['metrics']['val_accuracy']:.4f}", f"{teacher['metrics']['params']:.0f}") \
            if teacher else ("—", "—")
        print(f"| {seed} | {' | '.join(cell(t))} | {' | '.join(cell(l))} | {' | '.join(tv)} |")
    if xs and ys:
        u, p = mann_whitney_greater(xs, ys)
        print(f"\nMedian best student: taught **{statistics.median(xs):.4f}**, labels alone "
              f"**{statistics.median(ys):.4f}** (difference {statistics.median(xs) - statistics.median(ys):+.4f}).")
        print(f"One-sided Mann-Whitney U (taught > labels alone), exact over every split of the "
              f"{len(xs) + len(ys)} values: U = {u:.1f} of {len(xs) * len(ys)}, **p = {p:.4f}** "
              f"({'below' if p < 0.05 else 'not below'} 0.05).\n")
    print("## Per generation (median over seeds)\n")
    print("| arm | generation | best val_accuracy | median params of its trials | trial CPU seconds | "
          "promoted (of seeds) |")
    print("|---|---:|---:|---:|---:|---:|")
    for arm in ("taught", "labels"):
        mine = [r for r in rows if r["arm"] == arm]
        for g in sorted({g["generation"] for r in mine for g in r["gens"]}):
            gs = [x for r in mine for x in r["gens"] if x["generation"] == g]
            best = [x["best"] for x in gs if x["best"] is not None]
            params = [x["params"] for x in gs if x["params"] is not None]
            print(f"| {arm} | {g} | {statistics.median(best):.4f} | {statistics.median(params):.0f} | "
                  f"{statistics.median([x['cpu'] for x in gs]):.1f} | "
                  f"{sum(x['state'] == 'promoted' for x in gs)} of {len(gs)} |")
    walls = [r["wall"] for r in rows]
    print(f"\nWall time per campaign: median {statistics.median(walls):.0f} s, "
          f"longest {max(walls):.0f} s.")


main()
