"""Optuna's storages against firebreak's endpoint, one Optuna script for all.

Usage:
  optuna_storage.py run --firebreak BIN --trials N --procs "1 4" --repeats R --out FILE
  optuna_storage.py worker MODE ADDRESS STUDY N   (internal: one worker process)

The script (every mode): `RandomSampler`, a trivial objective x**2 on one float,
`study.optimize` of its share of N trials, in separate processes on one study.
Modes:
  grpc_rdb   Optuna's GrpcStorageProxy -> Optuna's own gRPC proxy server
             (`run_grpc_proxy_server`) over RDBStorage on a SQLite file;
  rdb        RDBStorage on a SQLite file, directly;
  journal    JournalStorage on a JournalFileBackend file;
  firebreak  Optuna's GrpcStorageProxy -> `firebreak serve-optuna` on its
             SQLite store, every call a ledger entry.
Each worker times its own `optimize` (after imports and connecting); a run's
rate is N over the span from the first worker's start to the last one's end.
Medians over the repeats; ratios of medians. After each firebreak run, the
ledger must hold N `trial_created` entries and pass `audit verify`.
"""

import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import optuna

optuna.logging.set_verbosity(optuna.logging.ERROR)
MODES = ["grpc_rdb", "rdb", "journal", "firebreak"]


def storage_of(mode, address):
    if mode in ("grpc_rdb", "firebreak"):
        host, port = address.rsplit(":", 1)
        return optuna.storages.GrpcStorageProxy(host=host, port=int(port))
    if mode == "rdb":
        return optuna.storages.RDBStorage(
            address, engine_kwargs={"connect_args": {"timeout": 300}}
        )
    if mode == "journal":
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(address))
    raise ValueError(mode)


def worker(mode, address, study_name, n):
    import warnings

    warnings.simplefilter("ignore")
    study = optuna.load_study(
        study_name=study_name,
        storage=storage_of(mode, address),
        sampler=optuna.samplers.RandomSampler(),
    )
    start = time.time()
    study.optimize(lambda t: t.suggest_float("x", -10, 10) ** 2, n_trials=n)
    print(json.dumps({"start": start, "end": time.time()}))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def one_run(mode, firebreak, trials, procs):
    work = tempfile.mkdtemp(prefix=f"optuna-bench-{mode}-")
    server = None
    if mode == "grpc_rdb":
        port = free_port()
        url = f"sqlite:///{work}/rdb.db"
        server = subprocess.Popen(
            [sys.executable, "-W", "ignore", "-c",
             "import optuna, sys\n"
             "optuna.logging.set_verbosity(optuna.logging.ERROR)\n"
             f"s = optuna.storages.RDBStorage({url!r})\n"
             f"optuna.storages.run_grpc_proxy_server(s, host='127.0.0.1', port={port})\n"],
        )
        wait_port(port)
        address = f"127.0.0.1:{port}"
    elif mode == "firebreak":
        store = f"sqlite://{work}/firebreak.db"
        server = subprocess.Popen(
            [firebreak, "--storage", store, "--quiet", "serve-optuna", "--bind", "127.0.0.1:0"],
            stdout=subprocess.PIPE, text=True,
        )
        address = server.stdout.readline().strip()
    elif mode == "rdb":
        address = f"sqlite:///{work}/rdb.db"
    else:
        address = f"{work}/journal.log"
    try:
        optuna.create_study(study_name="bench", storage=storage_of(mode, address))
        share = [trials // procs + (1 if i < trials % procs else 0) for i in range(procs)]
        workers = [
            subprocess.Popen(
                [sys.executable, "-W", "ignore", __file__, "worker", mode, address, "bench", str(n)],
                stdout=subprocess.PIPE, text=True,
            )
            for n in share
        ]
        spans = []
        for w in workers:
            out, _ = w.communicate()
            if w.returncode != 0:
                raise RuntimeError(f"{mode} worker failed")
            spans.append(json.loads(out.strip().splitlines()[-1]))
        rate = trials / (max(s["end"] for s in spans) - min(s["start"] for s in spans))
    finally:
        if server is not None:
            server.terminate()
            server.wait()
    if mode == "firebreak":
        db = sqlite3.connect(f"{work}/firebreak.db")
        created = db.execute(
            "SELECT count(*) FROM ledger WHERE kind = 'optuna' AND payload LIKE '%\"op\":\"trial_created\"%'"
        ).fetchone()[0]
        db.close()
        if created != trials:
            raise RuntimeError(f"firebreak ledgered {created} trials, not {trials}")
        verify = subprocess.run([firebreak, "--storage", store, "audit", "verify"],
                                capture_output=True, text=True)
        if verify.returncode != 0:
            raise RuntimeError("audit verify failed: " + verify.stdout + verify.stderr)
    return rate


def run(firebreak, trials, procs_list, repeats, out):
    rates = {}
    for procs in procs_list:
        for r in range(repeats):
            # Interleaved, so that the machine's drift touches every mode alike.
            for mode in MODES:
                rate = one_run(mode, firebreak, trials, procs)
                rates.setdefault((mode, procs), []).append(rate)
                print(f"procs={procs} round={r + 1} {mode}: {rate:.0f} trials/s", flush=True)
    lines = [
        "# Optuna's storages and firebreak's endpoint",
        "",
        f"Produced by `bench/optuna_storage.sh` (Optuna {optuna.__version__}; {trials} trials of",
        "`RandomSampler` on x**2, `study.optimize` in separate processes on one study; medians",
        f"of {repeats} rounds, modes interleaved). Every firebreak run ledgered each trial and",
        "passed `audit verify`.",
        "",
        "| processes | Optuna gRPC proxy on RDB (SQLite) | Optuna RDB (SQLite) | Optuna journal file | firebreak serve-optuna | firebreak / gRPC proxy | firebreak / journal |",
        "|---|---|---|---|---|---|---|",
    ]
    for procs in procs_list:
        med = {m: statistics.median(rates[(m, procs)]) for m in MODES}
        lines.append(
            f"| {procs} | {med['grpc_rdb']:.0f} | {med['rdb']:.0f} | {med['journal']:.0f} | "
            f"{med['firebreak']:.0f} | {med['firebreak'] / med['grpc_rdb']:.1f}x | "
            f"{med['firebreak'] / med['journal']:.2f}x |"
        )
    lines += ["", "Trials per second; every round:", ""]
    for (mode, procs), values in sorted(rates.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        lines.append(f"- {procs} process(es), {mode}: " + ", ".join(f"{v:.0f}" for v in values))
    text = "\n".join(lines) + "\n"
    with open(out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        args = dict(zip(sys.argv[2::2], sys.argv[3::2]))
        run(
            args["--firebreak"],
            int(args["--trials"]),
            [int(p) for p in args["--procs"].split()],
            int(args["--repeats"]),
            args["--out"],
        )
