"""JSON answers of the HTTP transports, with the retry hint a refusal may carry."""

from __future__ import annotations

from flask import Response, jsonify


def json_response(body: dict, status: int, retry_after: int | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response
