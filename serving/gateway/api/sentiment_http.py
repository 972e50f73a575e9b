"""``POST /v1/sentiment``, the gateway's busiest route, answered in plain WSGI before Flask.

Flask's request and response machinery cost about as much CPU per prediction as the whole
data plane (docs/benchmarks.md, "The request path, layer by layer"), so this one route
skips it: it checks the key, reads and checks the body, asks the data plane, and answers
with the JSON, headers, metrics and access line every Flask route gives
(``responses.record_request``, ``responses.error_headers``; CORS headers from flask-cors's
own evaluation of the same options). Flask keeps the route's other methods (405 with
``Allow``, CORS preflights) and every other route.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus

from serving.gateway.access.api_keys import presented_key
from serving.gateway.access.request_ids import HEADER as REQUEST_ID_HEADER
from serving.gateway.access.request_ids import request_id
from serving.gateway.api.responses import INTERNAL_ERROR, error_document, error_headers, record_request
from serving.gateway.data_plane import DataPlane, PredictRequest
from serving.gateway.errors import GatewayError, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from serving.gateway.observability import metrics
from serving.gateway.settings import Settings

log = logging.getLogger(__name__)

PATH = "/v1/sentiment"
WsgiApp = Callable[[dict, Callable], Iterable[bytes]]
# Extra response headers for a request's environ: CORS, when the operator allows origins.
HeadersFor = Callable[[dict], list[tuple[str, str]]]


def decode_json(raw: bytes) -> object:
    try:
        return json.loads(raw)
    # RecursionError: nesting deeper than the parser's stack, e.g. [[[[...]]]]
    except (ValueError, RecursionError):
        raise InvalidInput("the body is not valid JSON") from None


def encode_json(document: dict) -> bytes:
    """Compact JSON with a final newline, as Flask's ``jsonify`` writes it."""
    return (json.dumps(document, separators=(",", ":")) + "\n").encode()


def is_json(content_type: str) -> bool:
    """Werkzeug's ``Request.is_json``: application/json or any +json type."""
    mimetype = content_type.split(";", 1)[0].strip().lower()
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


@dataclass(frozen=True)
class PredictionRequest:
    texts: list
    model: str | None
    version: int | None
    explain: bool
    explain_top_k: int | None


def parse_prediction_request(body: object) -> PredictionRequest:
    """The request in a decoded JSON body; InvalidInput names any problem."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    unknown = sorted(set(body) - {"text", "texts", "model", "version", "explain", "explain_top_k"})
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(unknown)}")
    if ("text" in body) == ("texts" in body):
        raise InvalidInput("give exactly one of 'text' (a string) or 'texts' (a list of strings)")
    if "text" in body:
        if not isinstance(body["text"], str):
            raise InvalidInput(f"'text' must be a string, got {_json_type(body['text'])}")
        texts = [body["text"]]
    else:
        if not isinstance(body["texts"], list):
            raise InvalidInput(f"'texts' must be a list of strings, got {_json_type(body['texts'])}")
        texts = body["texts"]
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidInput(f"'model' must be a string, got {_json_type(model)}")
    version = body.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise InvalidInput(f"'version' must be a positive integer, got {_json_type(version)}")
    explain = body.get("explain", False)
    if not isinstance(explain, bool):
        raise InvalidInput(f"'explain' must be true or false, got {_json_type(explain)}")
    top_k = body.get("explain_top_k")
    if "explain_top_k" in body and (isinstance(top_k, bool) or not isinstance(top_k, int)):
        raise InvalidInput(f"'explain_top_k' must be a whole number, got {_json_type(top_k)}")
    if top_k is not None and not explain:
        raise InvalidInput("'explain_top_k' needs 'explain': true")
    return PredictionRequest(texts, model, version, explain, top_k)


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


@dataclass
class _Known:
    """What the access line and the metrics learn of a request as it goes."""
    model: str = ""
    key_id: str | None = None
    version: int | None = None


class SentimentRoute:
    """WSGI middleware: answers ``POST /v1/sentiment`` and hands every other request to ``app``."""

    def __init__(self, app: WsgiApp, service: DataPlane, settings: Settings, extra_headers: HeadersFor | None) -> None:
        self.app = app
        self.service = service
        self.settings = settings
        self.extra_headers = extra_headers
        self._in_flight = metrics.IN_FLIGHT.labels("http")

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != PATH:
            return self.app(environ, start_response)
        started = time.perf_counter()
        given_id = request_id(environ.get("HTTP_X_REQUEST_ID"))
        known = _Known()
        self._in_flight.inc()
        try:
            headers: list[tuple[str, str]] = []
            try:
                status, document = 200, self._predict(environ, given_id, known)
            except GatewayError as error:
                status, document, headers = error.http_status, error_document(error.code, error.message), error_headers(error)
            except Exception:
                log.exception("unexpected error on POST %s (request id %s)", PATH, given_id)
                status, document = 500, error_document(*INTERNAL_ERROR)
            payload = encode_json(document)
            headers += [("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
                        (REQUEST_ID_HEADER, given_id)]
            if self.extra_headers is not None:
                headers += self.extra_headers(environ)
            start_response(f"{status} {HTTPStatus(status).phrase}", headers)
            record_request(PATH, status, started, access_log=self.settings.access_log, method="POST",
                           model=known.model, request_id=given_id, key_id=known.key_id, version=known.version,
                           length=len(payload))
            return [payload]
        finally:
            self._in_flight.dec()

    def _predict(self, environ: dict, given_id: str, known: _Known) -> dict:
        # The order of Flask's routes: the key, then the media type, then the body.
        known.key_id = self.service.authenticate(
            presented_key(environ.get("HTTP_AUTHORIZATION"), environ.get("HTTP_X_API_KEY")), "http")
        if not is_json(environ.get("CONTENT_TYPE", "")):
            raise UnsupportedMediaType("Content-Type must be application/json")
        declared = environ.get("CONTENT_LENGTH") or ""
        length = int(declared) if declared.isdigit() else 0
        if length > self.settings.max_body_bytes:
            raise PayloadTooLarge(f"request body over {self.settings.max_body_bytes} bytes")
        asked = parse_prediction_request(decode_json(environ["wsgi.input"].read(length)))
        known.model = self.service.model_label(asked.model)
        predictions = self.service.predict(PredictRequest(
            asked.texts, asked.model, asked.version, explain=asked.explain, top_k=asked.explain_top_k,
            request_id=given_id, transport="http", key_id=known.key_id,
        ))
        known.version = predictions[0].model_version
        return {"predictions": [p.to_json() for p in predictions]}
