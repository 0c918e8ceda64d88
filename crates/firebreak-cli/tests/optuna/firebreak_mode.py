"""A pytest plugin that runs Optuna's own storage tests against firebreak.

It adds the storage mode ``firebreak`` to Optuna's test helpers
(``optuna.testing.storages``): each test that asks for it gets a
``GrpcStorageProxy`` talking to a fresh ``firebreak serve-optuna`` over a new
SQLite database, and after the test the database's ledger must pass
``firebreak audit verify``. Every test's outcome is written, by node id, to the
JSON file ``FIREBREAK_OPTUNA_RESULTS`` names, so that the Rust test can hold
firebreak's results to those of Optuna's own gRPC proxy (mode ``grpc_rdb``) in
the same run.

Environment: ``FIREBREAK_BIN`` (the firebreak program), ``FIREBREAK_OPTUNA_MODES``
(comma-separated modes, default ``grpc_rdb,firebreak``),
``FIREBREAK_OPTUNA_RESULTS`` (where to write the outcomes).
"""

import json
import os
import subprocess
import tempfile

import optuna
import optuna.testing.storages as storages

FIREBREAK = os.environ["FIREBREAK_BIN"]
MODES = os.environ.get("FIREBREAK_OPTUNA_MODES", "grpc_rdb,firebreak").split(",")

# The test modules read this list when they are collected, after this plugin
# loads: changing it in place changes their parameters.
storages.STORAGE_MODES[:] = MODES

_optuna_enter = storages.StorageSupplier.__enter__
_optuna_exit = storages.StorageSupplier.__exit__


def _enter(self):
    if self.storage_specifier != "firebreak":
        return _optuna_enter(self)
    self._firebreak_dir = tempfile.TemporaryDirectory(prefix="firebreak-optuna-")
    self._firebreak_url = "sqlite://" + os.path.join(self._firebreak_dir.name, "firebreak.db")
    self._firebreak = subprocess.Popen(
        [FIREBREAK, "--storage", self._firebreak_url, "--quiet", "serve-optuna",
         "--bind", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    # The server prints the address it bound, once it listens.
    address = self._firebreak.stdout.readline().strip()
    if not address:
        raise RuntimeError("firebreak serve-optuna did not start")
    host, port = address.rsplit(":", 1)
    self.proxy = optuna.storages.GrpcStorageProxy(host=host, port=int(port))
    self.proxy.wait_server_ready(timeout=60)
    self.storage = self.proxy
    return self.proxy


def _exit(self, exc_type, exc_val, exc_tb):
    if self.storage_specifier != "firebreak":
        return _optuna_exit(self, exc_type, exc_val, exc_tb)
    self.proxy.close()
    self.proxy = None
    self._firebreak.terminate()
    self._firebreak.wait(timeout=30)
    # Whatever the test did, the ledger it left must verify and replay.
    audit = subprocess.run(
        [FIREBREAK, "--storage", self._firebreak_url, "audit", "verify"],
        capture_output=True,
        text=True,
    )
    self._firebreak_dir.cleanup()
    if audit.returncode != 0:
        raise AssertionError("audit verify failed after the test:\n" + audit.stdout + audit.stderr)


storages.StorageSupplier.__enter__ = _enter
storages.StorageSupplier.__exit__ = _exit

_outcomes = {}


def pytest_runtest_logreport(report):
    # A test's outcome is its call's, unless its setup or teardown failed or
    # skipped it.
    if report.when == "call" or report.outcome != "passed":
        previous = _outcomes.get(report.nodeid)
        if previous in (None, "passed"):
            _outcomes[report.nodeid] = report.outcome


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("FIREBREAK_OPTUNA_RESULTS")
    if path:
        with open(path, "w") as out:
            json.dump(_outcomes, out, indent=1, sort_keys=True)
