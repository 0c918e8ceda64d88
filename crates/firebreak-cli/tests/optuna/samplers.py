"""Optuna's samplers and pruners through firebreak, held to Optuna's own
in-memory storage.

Usage: samplers.py HOST:PORT. For each sampler (and pruner), runs the same
seeded script once on `InMemoryStorage` and once through `GrpcStorageProxy`
to firebreak, in one process with n_jobs=1, and prints one JSON line per
case: whether every trial's state, parameters, values and intermediate values
are equal. Then runs TPE with n_jobs=4 through firebreak and prints its trial
count and numbers.
"""

import json
import sys

import optuna

optuna.logging.set_verbosity(optuna.logging.ERROR)
host, port = sys.argv[1].rsplit(":", 1)
N = 30


def objective(trial):
    x = trial.suggest_float("x", -5, 5)
    y = trial.suggest_int("y", -3, 3)
    kind = trial.suggest_categorical("kind", ["a", "b", "c"])
    return (x - 1) ** 2 + y * y + {"a": 0.0, "b": 0.5, "c": 1.0}[kind]


def two_objectives(trial):
    x = trial.suggest_float("x", 0, 2)
    y = trial.suggest_float("y", 0, 2)
    return x * x + y, (x - 2) ** 2 + y


def pruned(trial):
    x = trial.suggest_float("x", -5, 5)
    value = 0.0
    for step in range(8):
        value = (x - 1) ** 2 + 1.0 / (step + 1)
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def cases():
    yield "tpe", lambda: optuna.samplers.TPESampler(seed=7), None, objective, ["minimize"]
    yield "cmaes", lambda: optuna.samplers.CmaEsSampler(seed=7), None, \
        lambda t: (t.suggest_float("x", -5, 5) - 1) ** 2 + (t.suggest_float("y", -5, 5) + 2) ** 2, \
        ["minimize"]
    yield "nsga2", lambda: optuna.samplers.NSGAIISampler(seed=7, population_size=8), None, \
        two_objectives, ["minimize", "minimize"]
    yield "median", lambda: optuna.samplers.RandomSampler(seed=7), \
        lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1), pruned, ["minimize"]
    yield "hyperband", lambda: optuna.samplers.RandomSampler(seed=7), \
        lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=8), pruned, ["minimize"]


def summary(study):
    return [
        (t.number, t.state.name, sorted(t.params.items()), t.values,
         sorted(t.intermediate_values.items()))
        for t in study.trials
    ]


for name, sampler, pruner, fn, directions in cases():
    runs = []
    for storage in (optuna.storages.InMemoryStorage(),
                    optuna.storages.GrpcStorageProxy(host=host, port=int(port))):
        study = optuna.create_study(
            # The same name in both: Hyperband assigns brackets by it.
            study_name=name,
            storage=storage,
            sampler=sampler(),
            pruner=pruner() if pruner else None,
            directions=directions,
        )
        study.optimize(fn, n_trials=N)
        runs.append(summary(study))
    states = sorted({s for (_, s, _, _, _) in runs[1]})
    print(json.dumps({"case": name, "equal": runs[0] == runs[1], "trials": len(runs[1]),
                      "states": states}))

study = optuna.create_study(
    study_name="tpe-threads",
    storage=optuna.storages.GrpcStorageProxy(host=host, port=int(port)),
    sampler=optuna.samplers.TPESampler(seed=7),
)
study.optimize(objective, n_trials=40, n_jobs=4)
print(json.dumps({"case": "tpe-n_jobs-4", "trials": len(study.trials),
                  "numbers": sorted(t.number for t in study.trials),
                  "complete": sum(t.state.name == "COMPLETE" for t in study.trials)}))
