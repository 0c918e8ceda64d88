"""Optuna's side of bench/tpe_overhead.sh: Optuna 5's TPESampler with its default
options (multivariate, 24 EI candidates, 10 start-up trials, constant liar) on a
10-dimensional sphere over [-5, 5]^10, ask-and-tell, one worker; in memory, or
through the RDB storage at a SQLite file when DB_PATH is given. Prints one JSON
line: the seconds each trial's ask (with its ten suggestions) and tell took, in
trial order.

    tpe_overhead.py TRIALS [SEED] [DB_PATH]"""
import json
import os
import sys
import time

import optuna


def main():
    trials = int(sys.argv[1])
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    db = sys.argv[3] if len(sys.argv) > 3 else None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = None
    if db:
        if os.path.exists(db):
            os.remove(db)
        storage = f"sqlite:///{db}"
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed), storage=storage)
    space = {f"x{i}": optuna.distributions.FloatDistribution(-5.0, 5.0) for i in range(10)}
    seconds = []
    for _ in range(trials):
        start = time.perf_counter()
        trial = study.ask(space)
        xs = [trial.params[name] for name in space]
        asked = time.perf_counter()
        y = sum(x * x for x in xs)  # the objective, outside the timed parts
        told = time.perf_counter()
        study.tell(trial, y)
        seconds.append((asked - start) + (time.perf_counter() - told))
    if db:
        os.remove(db)
    print(json.dumps({"side": "optuna-sqlite" if db else "optuna", "version": optuna.__version__, "trials": trials,
                      "seed": seed, "seconds": seconds}))


if __name__ == "__main__":
    main()
