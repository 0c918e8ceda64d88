"""GrpcStorageProxy with a firebreak API token in every call's metadata.

Usage: with_token.py HOST:PORT TOKEN STUDY. `TokenStorageProxy` is the recipe of
docs/optuna.md: Optuna's own proxy, its channel wrapped so each call carries
`authorization: Bearer TOKEN`. Creates STUDY and runs 3 trials; an empty TOKEN
sends none. Prints `ok`, or the gRPC status code and details.
"""

import sys

import grpc
import optuna


class _Bearer(grpc.UnaryUnaryClientInterceptor):
    def __init__(self, token):
        self._token = token

    def intercept_unary_unary(self, continuation, details, request):
        metadata = list(details.metadata or []) + [("authorization", f"Bearer {self._token}")]
        details = details._replace(metadata=metadata)
        return continuation(details, request)


class TokenStorageProxy(optuna.storages.GrpcStorageProxy):
    def __init__(self, *, host, port, token):
        self._token = token
        super().__init__(host=host, port=port)

    def _setup(self):
        super()._setup()
        if self._token:
            channel = grpc.intercept_channel(self._channel, _Bearer(self._token))
            self._stub = optuna.storages._grpc.auto_generated.api_pb2_grpc.StorageServiceStub(channel)
            self._cache = optuna.storages._grpc.client.GrpcClientCache(self._stub)


optuna.logging.set_verbosity(optuna.logging.ERROR)
host, port = sys.argv[1].rsplit(":", 1)
try:
    storage = TokenStorageProxy(host=host, port=int(port), token=sys.argv[2])
    study = optuna.create_study(study_name=sys.argv[3], storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    print("ok")
except grpc.RpcError as e:
    print(e.code().name, e.details())
except optuna.exceptions.DuplicatedStudyError as e:
    print("duplicated", e)
