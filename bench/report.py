"""Summarises bench/quality.sh's JSON lines: median and quartiles of the final
score per problem, engine and proposer; one-sided Mann-Whitney U tests of
firebreak's TPE, CMA-ES and GP-BO against Optuna's samplers of the same kind
(normal approximation with tie correction);
writes Markdown to the file given and prints it."""
import json
import math
import statistics
import sys
from collections import defaultdict


def quartiles(values):
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], statistics.median(values), q[2]


def mann_whitney_less(a, b):
    """P-value of H1: values of `a` tend to be smaller than those of `b`."""
    pooled = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks = [0.0] * len(pooled)
    i, ties = 0, 0.0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    n1, n2 = len(a), len(b)
    r1 = sum(r for r, (_, g) in zip(ranks, pooled) if g == 0)
    u1 = r1 - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return 1.0
    z = (u1 - mean + 0.5) / math.sqrt(var)
    return 0.5 * math.erfc(-z / math.sqrt(2))


def main():
    results, out = sys.argv[1], sys.argv[2]
    runs = defaultdict(list)
    for line in open(results):
        r = json.loads(line)
        runs[(r["problem"], r["engine"], r["proposer"])].append(r["final"])
    problems = sorted({k[0] for k in runs})
    lines = ["# Proposer quality, firebreak and Optuna 5 side by side", "",
             "Final score: for tables the mean over the table's seeds of the best-observed configuration; "
             "for functions the best value found (minimised). Median (quartiles) over seeds.", ""]
    for problem in problems:
        maximize = problem.endswith(":maximize")
        lines.append("## " + problem.replace("table:", ""))
        lines.append("")
        lines.append("| engine | proposer | seeds | median | quartiles |")
        lines.append("|---|---|---|---|---|")
        for (p, engine, proposer), values in sorted(runs.items()):
            if p != problem:
                continue
            q1, med, q3 = quartiles(values)
            lines.append("| %s | %s | %d | %.6g | %.6g – %.6g |" % (engine, proposer, len(values), med, q1, q3))
        compared = False
        for proposer, label in (("tpe", "TPE"), ("cmaes", "CMA-ES"), ("gp", "GP")):
            ours, theirs = runs.get((problem, "firebreak", proposer)), runs.get((problem, "optuna", proposer))
            if not (ours and theirs):
                continue
            worse = mann_whitney_less(ours, theirs) if maximize else mann_whitney_less([-v for v in ours], [-v for v in theirs])
            better = mann_whitney_less(theirs, ours) if maximize else mann_whitney_less([-v for v in theirs], [-v for v in ours])
            verdict = "worse" if worse < 0.05 else ("better" if better < 0.05 else "no significant difference")
            if not compared:
                lines.append("")
                compared = True
            lines.append("- firebreak %s vs Optuna %s (%d vs %d seeds): one-sided Mann-Whitney p(worse) = %.3g, p(better) = %.3g: **%s**."
                         % (label, label, len(ours), len(theirs), worse, better, verdict))
        lines.append("")
    text = "\n".join(lines)
    open(out, "w").write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
