"""One worker of several separate processes on one study through firebreak.

Usage: processes.py HOST:PORT STUDY TRIALS. Loads the study (created by
whichever process comes first) and runs TRIALS trials of TPE on it.
"""

import sys

import optuna

optuna.logging.set_verbosity(optuna.logging.ERROR)
host, port = sys.argv[1].rsplit(":", 1)
study = optuna.create_study(
    study_name=sys.argv[2],
    storage=optuna.storages.GrpcStorageProxy(host=host, port=int(port)),
    sampler=optuna.samplers.TPESampler(),
    load_if_exists=True,
)
study.optimize(lambda t: (t.suggest_float("x", -5, 5) - 1) ** 2, n_trials=int(sys.argv[3]))
