"""Optuna's side of bench/spine.sh: a trivial objective, the random sampler, one
storage, n_jobs threads; prints one JSON object. Run by bench/spine.sh in the
venv it creates (Optuna 5).

Durability is Optuna's default for each storage, reported in the output:
RDBStorage on SQLite leaves SQLite's defaults (rollback journal, synchronous =
FULL: every commit synced); JournalFileBackend fsyncs every append."""
import json
import sys
import time

import optuna


def main():
    kind, n_trials, n_jobs, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if kind == "rdb":
        storage = optuna.storages.RDBStorage("sqlite:///" + path)
        with storage.engine.connect() as conn:
            durability = {name: str(conn.exec_driver_sql(f"PRAGMA {name}").scalar())
                          for name in ("journal_mode", "synchronous")}
    elif kind == "journal":
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
        durability = {"file": "append + fsync per write (JournalFileBackend)"}
    else:
        sys.exit("kind must be rdb or journal")
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        x = trial.suggest_float("x", -10.0, 10.0)
        return x * x

    start = time.perf_counter()
    study.optimize(objective, n_trials=n_trials, n_jobs=n_jobs)
    seconds = time.perf_counter() - start
    print(json.dumps({"storage": kind, "optuna": optuna.__version__, "trials": n_trials,
                      "parallelism": n_jobs, "seconds": seconds, "durability": durability,
                      "trials_per_second": n_trials / seconds}))


if __name__ == "__main__":
    main()
