"""Optuna's side of bench/tpe_overhead.sh: Optuna 5's TPESampler with its default
options (multivariate, 24 EI candidates, 10 start-up trials, constant liar) on a
10-dimensional sphere over [-5, 5]^10, in memory, ask-and-tell, one worker.
Prints one JSON line: the seconds each trial's ask (with its ten suggestions) and
tell took, in trial order.

    tpe_overhead.py TRIALS [SEED]"""
import json
import sys
import time

import optuna


def main():
    trials = int(sys.argv[1])
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
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
    print(json.dumps({"side": "optuna", "version": optuna.__version__, "trials": trials,
                      "seed": seed, "seconds": seconds}))


if __name__ == "__main__":
    main()
