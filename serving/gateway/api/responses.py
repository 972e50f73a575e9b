"""JSON answers of the HTTP transports, with the retry hint a refusal may carry, and the
record every HTTP request leaves: its metrics and its access line."""

from __future__ import annotations

import time

from flask import Response, jsonify

from serving.gateway.errors import GatewayError, Unauthenticated
from serving.gateway.observability import metrics
from serving.gateway.observability.logs import log_access

# The answer to a failure of the gateway itself: the details go to the log only.
INTERNAL_ERROR = ("internal_error", "internal error; the failure was logged")


def error_document(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def error_headers(error: GatewayError) -> list[tuple[str, str]]:
    """The headers a refusal carries besides its body: when to retry, how to authenticate."""
    headers = [("Retry-After", str(error.retry_after))] if error.retry_after is not None else []
    if isinstance(error, Unauthenticated):
        headers.append(("WWW-Authenticate", 'Bearer realm="sentiment"'))
    return headers


def json_response(body: dict, status: int, retry_after: int | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def record_request(
    route: str, status: int, started: float, *, access_log: bool, method: str, model: str, request_id: str,
    key_id: str | None, version: int | None, length: int | None,
) -> None:
    """The request's count and latency (``started``: its ``time.perf_counter()``) and, with
    ``access_log``, its access line."""
    duration = time.perf_counter() - started
    metrics.REQUESTS.labels("http", route, model, str(status)).inc()
    metrics.REQUEST_DURATION.labels("http", route).observe(duration)
    if access_log:
        log_access(method, route, str(status), transport="http", request_id=request_id, key_id=key_id,
                   model=model or None, version=version, duration_s=round(duration, 6), bytes=length)
