"""Two stripped-down prediction paths, to weigh what the gateway's request path costs
against each threading model's floor (`python -m benchmarks.request_path`).

- ``wsgi_app``: on granian's WSGI threads, as the gateway runs: read the body, tokenize,
  one blocking Predict call with the gateway's client, answer JSON.
- ``coalesced_wsgi_app``: the same, with concurrent requests sharing calls through the
  gateway's coalescer (2 calls in flight, up to 128 rows).
- ``asgi_app``: the same on one event loop per process, with gRPC's asyncio client.
- ``data_plane_wsgi_app``: the gateway's whole data plane (``DataPlane.predict``: validation,
  versions, rollouts, the coalescer, per-prediction metrics) with the gateway's settings, on
  the same threads, without Flask: what the HTTP layer costs.

No validation, metrics, keys, versions, rollouts or coalescing: what is left is the
cost of the hops themselves. The model server and the models folder come from the
gateway's variables (``GATEWAY_MODEL_SERVER``, ``GATEWAY_MODELS_DIR``); the newest LSTM
version answers.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from serving.gateway.data_plane import DataPlane, PredictRequest
from serving.gateway.routing.coalescing import Coalescer
from serving.gateway.routing.model_client import ModelServerClient, predict_request, probabilities
from serving.gateway.settings import Settings
from serving.tfs_apis import prediction_service_pb2_grpc
from text_contract.layout import version_dirs
from text_contract.tokenizer import Tokenizer, TokenizerContract

MODEL_NAME = "imdb_lstm"
TIMEOUT_SECONDS = 5.0


@cache
def _model() -> tuple[int, Tokenizer]:
    versions = version_dirs(Path(os.environ["GATEWAY_MODELS_DIR"]) / MODEL_NAME)
    newest = max(versions)
    return newest, Tokenizer(TokenizerContract.read(versions[newest]))


def _ids(body: bytes) -> tuple[int, np.ndarray]:
    version, tokenizer = _model()
    ids, _ = tokenizer.encode_batch([json.loads(body)["text"]])
    return version, ids


def _answer(probability: float) -> bytes:
    label = "positive" if probability >= 0.5 else "negative"
    return json.dumps({"predictions": [{"positive_probability": probability, "label": label}]}).encode()


# Clients are made in the worker that uses them (granian starts its workers as new
# processes), by its first request: the 1-client run, so no two threads race to make one.
@cache
def _client() -> ModelServerClient:
    return ModelServerClient(os.environ["GATEWAY_MODEL_SERVER"], TIMEOUT_SECONDS)


@cache
def _coalescer() -> Coalescer:
    return Coalescer(_client().predict, max_calls=2, max_rows=128)


@cache
def _async_stub() -> prediction_service_pb2_grpc.PredictionServiceStub:
    # Made on the first request, inside the worker's event loop, which it then belongs to.
    return prediction_service_pb2_grpc.PredictionServiceStub(grpc.aio.insecure_channel(os.environ["GATEWAY_MODEL_SERVER"]))


def _wsgi(predict: Callable[[str, int, np.ndarray, float], tuple[np.ndarray, int]]) -> Callable:
    def app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        version, ids = _ids(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
        probabilities_, _ = predict(MODEL_NAME, version, ids, TIMEOUT_SECONDS)
        payload = _answer(float(probabilities_[0]))
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]
    return app


wsgi_app = _wsgi(lambda *call: _client().predict(*call))
coalesced_wsgi_app = _wsgi(lambda *call: _coalescer().predict(*call))


@cache
def _data_plane() -> DataPlane:
    return DataPlane(Settings.from_env())


def data_plane_wsgi_app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
    body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
    predictions = _data_plane().predict(PredictRequest([body["text"]], body.get("model"), request_id=uuid.uuid4().hex))
    payload = json.dumps({"predictions": [p.to_json() for p in predictions]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


async def asgi_app(scope: dict[str, Any], receive: Callable, send: Callable) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    version, ids = _ids(body)
    response = await _async_stub().Predict(predict_request(MODEL_NAME, version, ids), timeout=TIMEOUT_SECONDS)
    payload = _answer(float(probabilities(response, MODEL_NAME, 1)[0]))
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
