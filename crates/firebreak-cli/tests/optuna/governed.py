"""An Optuna user's ask-and-tell loop on a study firebreak governs.

Usage: governed.py HOST:PORT STUDY ATTEMPTS. Samples x in [-10, 10] with a
seeded random sampler; prints one JSON line per attempt: what happened
(`ok`, or the failing call with the gRPC status and details).
"""

import json
import sys

import grpc
import optuna

optuna.logging.set_verbosity(optuna.logging.ERROR)
host, port = sys.argv[1].rsplit(":", 1)
storage = optuna.storages.GrpcStorageProxy(host=host, port=int(port))
study = optuna.create_study(
    study_name=sys.argv[2],
    storage=storage,
    sampler=optuna.samplers.RandomSampler(seed=3),
)
for _ in range(int(sys.argv[3])):
    try:
        trial = study.ask()
    except grpc.RpcError as e:
        print(json.dumps({"call": "ask", "code": e.code().name, "details": e.details()}))
        continue
    try:
        x = trial.suggest_float("x", -10, 10)
    except grpc.RpcError as e:
        print(json.dumps({"call": "suggest", "code": e.code().name, "details": e.details()}))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        continue
    study.tell(trial, x * x)
    print(json.dumps({"call": "ok", "x": x}))
