"""Optuna's side of bench/workers.sh: many worker processes sharing one study in
PostgreSQL through RDBStorage; prints one JSON object.

    python bench/optuna_workers.py postgresql+psycopg2://postgres@127.0.0.1:PORT/DB N_TRIALS PROCS

This process creates the study (random sampler, `x` uniform in [-10, 10],
minimise x²; the tables are created here, untimed) and disposes of its
connections; then PROCS processes (forked, so Optuna is imported already) each
`load_study` and `optimize` their share of N_TRIALS (split as evenly as
possible: no process reads the study to decide when to stop). The clock runs
from the first process's start to the last one's exit, as firebreak's side
does. `duplicates` counts trial numbers in 0..N_TRIALS missing from the complete
trials, plus trials beyond N_TRIALS: it must be 0. Durability is PostgreSQL's,
the same server as firebreak's side."""
import json
import multiprocessing
import sys
import time

import optuna
import sqlalchemy


def objective(trial):
    x = trial.suggest_float("x", -10.0, 10.0)
    return x * x


def work(url, name, n_trials, seed):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=url,
                              sampler=optuna.samplers.RandomSampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)


def main():
    url, n_trials, procs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = "workers"
    storage = optuna.storages.RDBStorage(url)
    optuna.create_study(study_name=name, storage=storage,
                        sampler=optuna.samplers.RandomSampler(seed=0))
    storage.engine.dispose()
    del storage
    shares = [n_trials // procs + (1 if i < n_trials % procs else 0) for i in range(procs)]
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=work, args=(url, name, share, i + 1))
               for i, share in enumerate(shares)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - start
    if any(w.exitcode != 0 for w in workers):
        sys.exit("a worker process failed")
    # Checked after the clock stops.
    trials = optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
    complete = {t.number for t in trials if t.state == optuna.trial.TrialState.COMPLETE}
    missing = sum(1 for k in range(n_trials) if k not in complete)
    duplicates = missing + max(0, len(trials) - n_trials)
    print(json.dumps({"optuna": optuna.__version__, "sqlalchemy": sqlalchemy.__version__,
                      "trials": n_trials, "procs": procs, "seconds": round(seconds, 4),
                      "trials_per_s": round(n_trials / seconds, 2), "duplicates": duplicates,
                      "per_process": shares}))


if __name__ == "__main__":
    main()
