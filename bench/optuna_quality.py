"""Optuna's side of bench/quality.sh: the same problems as the `quality` example
(see its header), Optuna 5's samplers with default options, one JSON line per seed.

    optuna_quality.py PROBLEM SAMPLER BUDGET SEEDS [FIRST_SEED]

SAMPLER is tpe, random, cmaes (needs the `cmaes` package) or gp (needs torch and
scipy; bench/optuna_gp_reference.sh runs it and commits its results)."""
import csv
import json
import math
import random
import sys

import optuna


def table_problem(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    params = [i for i, h in enumerate(header) if not h.startswith("seed")]
    seeds = [i for i, h in enumerate(header) if h.startswith("seed")]

    def typed(text):
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    choices = {header[i]: [] for i in params}
    scores = {}
    for row in body:
        for i in params:
            value = typed(row[i])
            if value not in choices[header[i]]:
                choices[header[i]].append(value)
        key = tuple(typed(row[i]) for i in params)
        scores[key] = [float(row[i]) for i in seeds if row[i] != ""]
    names = [header[i] for i in params]
    return names, choices, scores


FUNCTIONS = {
    "branin": (2, -5.0, 15.0),
    "hartmann6": (6, 0.0, 1.0),
    "rosenbrock10": (10, -5.0, 10.0),
    "ackley10": (10, -32.768, 32.768),
    "styblinski_tang10": (10, -5.0, 5.0),
}


# The mixed problem, as in the `quality` example's header: floats x0, x1 in [-5, 5];
# ints n0..n3 in [-10, 10]; int n4 in [1, 64] on a log scale; categoricals shift,
# shape, weight. With z the distance of (x0, x1) from (1, -2):
#   f = cost(shift) + offset(weight)
#       + m(weight) * (sum_k w_k (n_k - t_k - s(shift))^2 + 2 (log2(n4) - 3)^2) + shape(z)
# Global minimum 0 at shift=right, weight=heavy, shape=wave, n=(5, -1, 8, -4, 8),
# x=(1, -2).
MIXED_SHIFTS = {"left": (-3.0, 2.0), "none": (0.0, 1.0), "right": (3.0, 0.0)}  # s, cost
MIXED_SHAPES = ["bowl", "cone", "wave"]
MIXED_WEIGHTS = {"light": (0.25, 3.0), "medium": (1.0, 1.0), "heavy": (2.0, 0.0)}  # m, offset
MIXED_INTS = [(2.0, 1.0), (-4.0, 1.5), (5.0, 2.0), (-7.0, 2.5)]  # t_k, w_k


def suggest_mixed(trial):
    p = {"x0": trial.suggest_float("x0", -5.0, 5.0), "x1": trial.suggest_float("x1", -5.0, 5.0)}
    for k in range(4):
        p["n%d" % k] = trial.suggest_int("n%d" % k, -10, 10)
    p["n4"] = trial.suggest_int("n4", 1, 64, log=True)
    p["shift"] = trial.suggest_categorical("shift", list(MIXED_SHIFTS))
    p["shape"] = trial.suggest_categorical("shape", MIXED_SHAPES)
    p["weight"] = trial.suggest_categorical("weight", list(MIXED_WEIGHTS))
    return p


def evaluate_mixed(p):
    s, cost = MIXED_SHIFTS[p["shift"]]
    m, offset = MIXED_WEIGHTS[p["weight"]]
    ints = 2 * (math.log2(p["n4"]) - 3) ** 2
    for k, (t, w) in enumerate(MIXED_INTS):
        ints += w * (p["n%d" % k] - t - s) ** 2
    z = math.hypot(p["x0"] - 1, p["x1"] + 2)
    shape = {"bowl": z * z + 1, "cone": 2 * z + 0.5,
             "wave": z * z + 4 * math.sin(math.pi * z) ** 2}[p["shape"]]
    return cost + offset + m * ints + shape


def evaluate_function(name, x):
    if name == "branin":
        a, b = x[0] * 0.75 - 1.25, x[1] * 0.75 + 3.75
        return (b - 5.1 / (4 * math.pi ** 2) * a * a + 5 / math.pi * a - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(a) + 10
    if name == "hartmann6":
        A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
        P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886], [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
             [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650], [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]
        alpha = [1.0, 1.2, 3.0, 3.2]
        return -sum(alpha[i] * math.exp(-sum(A[i][j] * (x[j] - P[i][j]) ** 2 for j in range(6))) for i in range(4))
    if name == "rosenbrock10":
        return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(len(x) - 1))
    if name == "ackley10":
        n = len(x)
        s1 = sum(v * v for v in x) / n
        s2 = sum(math.cos(2 * math.pi * v) for v in x) / n
        return -20 * math.exp(-0.2 * math.sqrt(s1)) - math.exp(s2) + 20 + math.e
    if name == "styblinski_tang10":
        return sum(v ** 4 - 16 * v * v + 5 * v for v in x) / 2
    raise SystemExit("unknown problem " + name)


def sampler(name, seed):
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        # Default behaviour; only the per-trial warning that categoricals are drawn
        # independently (by the RandomSampler) is silenced.
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)  # needs torch and scipy
    raise SystemExit("unknown sampler " + name)


def main():
    problem, name, budget, seeds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    first = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for seed in range(first, first + seeds):
        curve = []
        if problem.startswith("table:"):
            path, direction = problem[len("table:"):].rsplit(":", 1)
            names, choices, scores = table_problem(path)
            noise = random.Random(seed)
            study = optuna.create_study(direction=direction, sampler=sampler(name, seed))

            def objective(trial):
                key = tuple(trial.suggest_categorical(n, choices[n]) for n in names)
                return noise.choice(scores[key])

            def record(study, trial):
                best = study.best_trial
                key = tuple(best.params[n] for n in names)
                curve.append(sum(scores[key]) / len(scores[key]))
        else:
            study = optuna.create_study(direction="minimize", sampler=sampler(name, seed))
            if problem == "mixed":
                def objective(trial):
                    return evaluate_mixed(suggest_mixed(trial))
            else:
                d, low, high = FUNCTIONS[problem]

                def objective(trial):
                    return evaluate_function(problem, [trial.suggest_float("x%02d" % i, low, high) for i in range(d)])

            def record(study, trial):
                curve.append(study.best_value)
        study.optimize(objective, n_trials=budget, callbacks=[record])
        print(json.dumps({"engine": "optuna", "problem": problem, "proposer": name, "seed": seed,
                          "final": curve[-1], "curve": curve}), flush=True)


if __name__ == "__main__":
    main()
