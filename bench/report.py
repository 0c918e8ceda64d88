"""Summarises bench/quality.sh's JSON lines: median and quartiles of the final
score per problem, engine and proposer; one-sided Mann-Whitney U tests of
firebreak's TPE, CMA-ES and GP-BO against Optuna's samplers of the same kind,
and of firebreak's regularized evolution against its random search on the tables
(normal approximation with tie correction); results are grouped by problem and
budget (the length of the curve), so a table run at two budgets gets two sections;
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


def name(problem, budget):
    return "%s, %d evaluations" % (problem.replace("table:", ""), budget)


def compare(a, b, maximize):
    """(p(a worse than b), p(a better than b), verdict) by one-sided Mann-Whitney U."""
    if maximize:
        a, b = [-v for v in a], [-v for v in b]
    worse, better = mann_whitney_less(b, a), mann_whitney_less(a, b)
    verdict = "worse" if worse < 0.05 else ("better" if better < 0.05 else "no significant difference")
    return worse, better, verdict


def short(verdict):
    return "n.s." if verdict == "no significant difference" else "**%s**" % verdict


def main():
    results, out = sys.argv[1], sys.argv[2]
    # Grouped by (problem, budget): the same table may run at several budgets.
    runs = defaultdict(list)
    order = []
    for line in open(results):
        r = json.loads(line)
        key = (r["problem"], len(r["curve"]))
        if key not in order:
            order.append(key)
        runs[key + (r["engine"], r["proposer"])].append(r["final"])
    lines = ["# Proposer quality, firebreak and Optuna 5 side by side", "",
             "Final score: for tables the mean over the table's seeds of the best-observed configuration; "
             "for functions the best value found (minimised). Median (quartiles) over seeds. "
             "Verdicts: one-sided Mann-Whitney U (normal approximation, tie-corrected), p < 0.05; "
             "firebreak's TPE, CMA-ES and GP-BO against Optuna's sampler of the same kind, and on tables "
             "firebreak's regularized evolution against firebreak's random search.", ""]
    sections, summary = [], []
    for problem, budget in order:
        maximize = problem.endswith(":maximize")
        sections.append("## " + name(problem, budget))
        sections.append("")
        sections.append("| engine | proposer | seeds | median | quartiles |")
        sections.append("|---|---|---|---|---|")
        for (p, b, engine, proposer), values in sorted(runs.items()):
            if (p, b) != (problem, budget):
                continue
            q1, med, q3 = quartiles(values)
            sections.append("| %s | %s | %d | %.6g | %.6g – %.6g |" % (engine, proposer, len(values), med, q1, q3))
        verdicts, cells = [], {}
        for proposer, label in (("tpe", "TPE"), ("cmaes", "CMA-ES"), ("gp", "GP")):
            ours = runs.get((problem, budget, "firebreak", proposer))
            theirs = runs.get((problem, budget, "optuna", proposer))
            if not (ours and theirs):
                continue
            worse, better, verdict = compare(ours, theirs, maximize)
            cells[proposer] = "%s (%.3g / %.3g)" % (short(verdict), worse, better)
            verdicts.append("- firebreak %s vs Optuna %s (%d vs %d seeds): one-sided Mann-Whitney p(worse) = %.3g, "
                            "p(better) = %.3g: **%s**." % (label, label, len(ours), len(theirs), worse, better, verdict))
        evolution = runs.get((problem, budget, "firebreak", "evolution"))
        random_search = runs.get((problem, budget, "firebreak", "random"))
        if evolution and random_search:
            worse, better, verdict = compare(evolution, random_search, maximize)
            cells["evolution"] = "%s (%.3g / %.3g)" % (short(verdict), worse, better)
            verdicts.append("- firebreak regularized evolution vs firebreak random search (%d vs %d seeds): one-sided "
                            "Mann-Whitney p(worse) = %.3g, p(better) = %.3g: **%s**."
                            % (len(evolution), len(random_search), worse, better, verdict))
        if verdicts:
            sections.append("")
            sections.extend(verdicts)
        sections.append("")
        summary.append("| %s | %d | %s |" % (problem.replace("table:", ""), budget, " | ".join(
            cells.get(k, "–") for k in ("tpe", "cmaes", "gp", "evolution"))))
    lines.append("## Summary")
    lines.append("")
    lines.append("Verdict of the first against the second: better, worse or n.s. (no significant difference), "
                 "with (p(worse) / p(better)).")
    lines.append("")
    lines.append("| problem | evaluations | firebreak TPE vs Optuna TPE | firebreak CMA-ES vs Optuna CMA-ES "
                 "| firebreak GP vs Optuna GP | firebreak evolution vs firebreak random |")
    lines.append("|---|---|---|---|---|---|")
    lines.extend(summary)
    lines.append("")
    text = "\n".join(lines + sections)
    open(out, "w").write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
