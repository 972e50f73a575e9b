"""The HTTP API (Flask, but for its busiest route). Routes:

    POST /v1/sentiment   {"text": "..."} or {"texts": [...]}, optional "model", "version",
                         "explain", "explain_top_k" (answered before Flask: sentiment_http.py)
    GET  /v1/models      served models, versions and states
    GET  /healthz        liveness: the process answers
    GET  /readyz         readiness: model server reachable, every model AVAILABLE
    GET  /metrics        Prometheus metrics
    GET  /openapi.yaml   the OpenAPI document of this API, from the running settings (also .json)
    GET  /docs           interactive API documentation (Swagger UI, packaged)
    GET  /               the demo page (static/, the public API only)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import yaml
from flask import Flask, Response, abort, g, jsonify, request, send_from_directory
from flask_cors import CORS
from flask_cors.core import get_cors_headers, get_cors_options
from swagger_ui_bundle import swagger_ui_path
from werkzeug.datastructures import EnvironHeaders
from werkzeug.exceptions import HTTPException

from serving.gateway.access.api_keys import presented_key
from serving.gateway.access.request_ids import HEADER as REQUEST_ID_HEADER
from serving.gateway.access.request_ids import request_id
from serving.gateway.api.body_limit import WholeBody
from serving.gateway.api.openapi import openapi_document
from serving.gateway.api.responses import (
    INTERNAL_ERROR,
    error_document,
    error_headers,
    json_response,
    record_request,
)
from serving.gateway.api.sentiment_http import PATH as SENTIMENT_PATH
from serving.gateway.api.sentiment_http import SentimentRoute, decode_json
from serving.gateway.api.v2_http import open_inference_blueprint
from serving.gateway.data_plane import DataPlane
from serving.gateway.errors import GatewayError
from serving.gateway.observability import metrics
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
    return json_response(error_document(code, message), status, retry_after)


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
        response.headers[REQUEST_ID_HEADER] = g.get("request_id") or request_id(None)
        record_request(request.url_rule.rule if request.url_rule else "unmatched", response.status_code,
                       g.get("started", 0), access_log=settings.access_log, method=request.method,
                       model=g.get("model", ""), request_id=response.headers[REQUEST_ID_HEADER],
                       key_id=g.get("key_id"), version=g.get("version"), length=response.content_length)
        return response

    @app.teardown_request
    def finish(_error) -> None:
        if "started" in g:
            metrics.IN_FLIGHT.labels("http").dec()

    @app.errorhandler(GatewayError)
    def gateway_error(error: GatewayError) -> Response:
        response = error_response(error.http_status, error.code, error.message)
        response.headers.extend(error_headers(error))
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
        return error_response(500, *INTERNAL_ERROR)

    # POSTs are answered by SentimentRoute before Flask; the rule gives the route's other
    # methods their 405 and CORS preflight, as for every route.
    app.add_url_rule(SENTIMENT_PATH, endpoint="predict", methods=["POST"])

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
    cors_headers = None
    if settings.cors_origins:
        cors = {"origins": list(settings.cors_origins), "methods": ["GET", "POST"], "max_age": 600,
                "allow_headers": ["Content-Type", "Authorization", "X-API-Key", "X-Request-ID",
                                  "Inference-Header-Content-Length"],
                "expose_headers": ["X-Request-ID", "Retry-After", "Inference-Header-Content-Length"]}
        CORS(app, **cors)
        cors_headers = flask_cors_headers(app, cors)
    app.wsgi_app = WholeBody(SentimentRoute(app.wsgi_app, service, settings, cors_headers), settings.max_body_bytes)
    return app


def flask_cors_headers(app: Flask, options: dict) -> Callable[[dict], list[tuple[str, str]]]:
    """The CORS headers flask-cors gives a POST with ``options``, for routes answered outside Flask."""
    computed = get_cors_options(app, options)
    return lambda environ: list(get_cors_headers(computed, EnvironHeaders(environ), "POST").items(multi=True))
