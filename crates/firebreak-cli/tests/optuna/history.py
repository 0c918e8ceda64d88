"""Optuna histories for the import and export round trip.

Usage:
  history.py make STORAGE           write the study `hist` (12 trials: complete,
                                    pruned and failed ones, intermediate values,
                                    attributes, an infinite value) to STORAGE
  history.py compare STORAGE STORAGE  print one JSON line: whether study `hist`
                                    holds the same trials in both
STORAGE: `sqlite:///PATH` or `journal:PATH`.
"""

import json
import math
import sys

import optuna

optuna.logging.set_verbosity(optuna.logging.ERROR)


def storage_of(text):
    if text.startswith("journal:"):
        backend = optuna.storages.journal.JournalFileBackend(text[len("journal:"):])
        return optuna.storages.JournalStorage(backend)
    return optuna.storages.RDBStorage(text)


def objective(trial):
    x = trial.suggest_float("x", -4, 4)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    n = trial.suggest_int("n", 1, 8, log=True)
    trial.set_user_attr("note", {"n": n, "tags": ["x", kind]})
    if trial.number == 4:
        raise ValueError("a failing trial")
    for step in range(4):
        trial.report((x - 1) ** 2 + 1 / (step + 1), step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return float("inf") if trial.number == 7 else (x - 1) ** 2 + n


def make(target):
    study = optuna.create_study(
        study_name="hist",
        storage=storage_of(target),
        sampler=optuna.samplers.TPESampler(seed=5),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2),
    )
    study.set_user_attr("owner", "research")
    study.optimize(objective, n_trials=12, catch=(ValueError,))


def key(value):
    return "nan" if isinstance(value, float) and math.isnan(value) else value


def summary(target):
    study = optuna.load_study(study_name="hist", storage=storage_of(target))
    return {
        "directions": [d.name for d in study.directions],
        "user_attrs": study.user_attrs,
        "trials": [
            [t.number, t.state.name, sorted(t.params.items()), [key(v) for v in (t.values or [])],
             sorted(t.intermediate_values.items()), t.user_attrs,
             t.datetime_start is not None, t.datetime_complete is not None]
            for t in study.trials
        ],
    }


if sys.argv[1] == "make":
    make(sys.argv[2])
else:
    a, b = summary(sys.argv[2]), summary(sys.argv[3])
    states = sorted({t[1] for t in a["trials"]})
    print(json.dumps({"equal": a == b, "trials": len(a["trials"]), "states": states,
                      "a": a if a != b else None, "b": b if a != b else None}))
