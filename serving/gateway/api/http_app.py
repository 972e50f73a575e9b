"""The HTTP API (Flask). Routes:

    POST /v1/sentiment   {"text": "..."} or {"texts": [...]}, optional "model", "version",
                         "explain", "explain_top_k"
    GET  /v1/models      served models, versions and states
    GET  /healthz        liveness: the process answers
    GET  /readyz         readiness: model server reachable, every model AVAILABLE
    GET  /metrics        Prometheus metrics
    GET  /openapi.yaml   the OpenAPI document of this API, from the running settings (also .json)
    GET  /docs           interactive API documentation (Swagger UI, packaged)
    GET  /               the demo page (static/, the public API only)
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import yaml
from flask import Flask, Response, abort, g, jsonify, request, send_from_directory
from flask_cors import CORS
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import HTTPException

from serving.gateway.access.api_keys import presented_key
from serving.gateway.access.request_ids import HEADER as REQUEST_ID_HEADER
from serving.gateway.access.request_ids import request_id
from serving.gateway.api.body_limit import WholeBody
from serving.gateway.api.openapi import openapi_document
from serving.gateway.api.responses import json_response
from serving.gateway.api.v2_http import open_inference_blueprint
from serving.gateway.data_plane import DataPlane, PredictRequest
from serving.gateway.errors import GatewayError, InvalidInput, Unauthenticated
from serving.gateway.observability import metrics
from serving.gateway.observability.logs import log_access
from serving.gateway.settings import Settings

log = logging.getLogger(__name__)

_HTTP_ERROR_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


SWAGGER_UI_ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js"})

# Routes anyone may call when the gateway asks for API keys: probes, metrics (the edge does
# not forward them), the documents and the demo page; V2's server health is a probe too.
OPEN_ENDPOINTS = frozenset({
    "liveness", "readiness", "prometheus_metrics", "openapi_yaml", "openapi_json", "demo_page", "api_docs",
    "swagger_ui_asset", "static", "open_inference.live", "open_inference.ready",
})


def error_response(status: int, code: str, message: str, retry_after: int | None = None) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status, retry_after)


def decode_json(raw: bytes) -> object:
    try:
        return json.loads(raw)
    # RecursionError: nesting deeper than the parser's stack, e.g. [[[[...]]]]
    except (ValueError, RecursionError):
        raise InvalidInput("the body is not valid JSON") from None


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


def create_app(settings: Settings | None = None, service: DataPlane | None = None) -> Flask:
    settings = settings or Settings.from_env()
    service = service or DataPlane(settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()
        g.request_id = request_id(request.headers.get(REQUEST_ID_HEADER))
        g.model = ""
        metrics.IN_FLIGHT.labels("http").inc()
        # A CORS preflight (OPTIONS) carries no credentials by design: it is answered, not checked.
        if request.method != "OPTIONS" and request.endpoint is not None and request.endpoint not in OPEN_ENDPOINTS:
            g.key_id = service.authenticate(
                presented_key(request.headers.get("Authorization"), request.headers.get("X-API-Key")), "http")

    @app.after_request
    def record(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        duration = time.perf_counter() - g.get("started", 0)
        metrics.REQUESTS.labels("http", route, g.get("model", ""), str(response.status_code)).inc()
        metrics.REQUEST_DURATION.labels("http", route).observe(duration)
        response.headers[REQUEST_ID_HEADER] = g.get("request_id") or request_id(None)
        if settings.access_log:
            log_access(request.method, route, str(response.status_code), transport="http",
                       request_id=response.headers[REQUEST_ID_HEADER], key_id=g.get("key_id"),
                       model=g.get("model") or None, version=g.get("version"), duration_s=round(duration, 6),
                       bytes=response.content_length)
        return response

    @app.teardown_request
    def finish(_error) -> None:
        if "started" in g:
            metrics.IN_FLIGHT.labels("http").dec()

    @app.errorhandler(GatewayError)
    def gateway_error(error: GatewayError) -> Response:
        response = error_response(error.http_status, error.code, error.message, error.retry_after)
        if isinstance(error, Unauthenticated):
            response.headers["WWW-Authenticate"] = 'Bearer realm="sentiment"'
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 400
        message = error.description or error.name
        if status == 404:
            message = f"no route {request.path}; see /openapi.yaml"
        elif status == 405:
            message = f"method {request.method} is not allowed on {request.path}"
        elif status == 413:
            message = f"request body over {settings.max_body_bytes} bytes"
        response = error_response(status, _HTTP_ERROR_CODES.get(status, "bad_request"), message)
        if status == 405:  # RFC 9110: a 405 lists the methods the resource supports
            response.headers["Allow"] = ", ".join(getattr(error, "valid_methods", None) or ())
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unexpected error on %s %s (request id %s)", request.method, request.path, g.get("request_id"))
        return error_response(500, "internal_error", "internal error; the failure was logged")

    @app.post("/v1/sentiment")
    def predict() -> Response:
        if not request.is_json:
            return error_response(415, "unsupported_media_type", "Content-Type must be application/json")
        asked = parse_prediction_request(decode_json(request.get_data()))
        g.model = service.model_label(asked.model)
        predictions = service.predict(PredictRequest(
            asked.texts, asked.model, asked.version, explain=asked.explain, top_k=asked.explain_top_k,
            request_id=g.request_id, transport="http", key_id=g.get("key_id"),
        ))
        g.version = predictions[0].model_version
        return jsonify(predictions=[p.to_json() for p in predictions])

    @app.get("/v1/models")
    def list_models() -> Response:
        return jsonify(models=[
            {"model": m.model, "model_name": m.model_name,
             "versions": [{"version": v, "state": s} for v, s in m.versions.items()]}
            for m in service.models()
        ])

    @app.get("/healthz")
    def liveness() -> Response:
        return json_response({"status": "ok"}, 200 if service.live() else 503)

    @app.get("/readyz")
    def readiness() -> Response:
        ready = service.ready()  # why not is in the gateway's log; model states are for key holders
        return json_response({"ready": ready}, 200 if ready else 503)

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, content_type=content_type)

    def current_openapi() -> dict:
        try:
            models = service.models()
        except GatewayError:  # the model server is away: the document without today's versions
            models = None
        open_paths = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint in OPEN_ENDPOINTS}
        return openapi_document(settings, models, open_paths)

    @app.get("/openapi.yaml")
    def openapi_yaml() -> Response:
        return Response(yaml.safe_dump(current_openapi(), sort_keys=False, allow_unicode=True),
                        mimetype="application/yaml")

    @app.get("/openapi.json")
    def openapi_json() -> Response:
        return jsonify(current_openapi())

    @app.get("/")
    def demo_page() -> Response:
        return app.send_static_file("demo.html")

    @app.get("/docs")
    def api_docs() -> Response:
        return app.send_static_file("docs.html")

    @app.get("/docs/assets/<path:name>")
    def swagger_ui_asset(name: str) -> Response:
        # The two files docs.html loads, not the package's whole folder (its stock index.html
        # loads a spec from elsewhere; source maps, the OAuth2 redirect page).
        if name not in SWAGGER_UI_ASSETS:
            abort(404)
        return send_from_directory(swagger_ui_path, name)

    app.register_blueprint(open_inference_blueprint(service, decode_json))
    if settings.cors_origins:
        CORS(app, origins=list(settings.cors_origins), methods=["GET", "POST"], max_age=600,
             allow_headers=["Content-Type", "Authorization", "X-API-Key", "X-Request-ID",
                            "Inference-Header-Content-Length"],
             expose_headers=["X-Request-ID", "Retry-After", "Inference-Header-Content-Length"])
    app.wsgi_app = WholeBody(app.wsgi_app, settings.max_body_bytes)
    return app
