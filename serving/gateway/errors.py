"""Errors the gateway returns, each with its HTTP status and gRPC status code."""

from __future__ import annotations

import grpc


class GatewayError(Exception):
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    code = "invalid_request"
    upstream_code: str | None = None  # the model server's gRPC status, when it caused the error

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class InvalidInput(GatewayError):
    code = "invalid_input"


class Unauthenticated(GatewayError):
    """No API key, or one that is not in the key file (when the gateway requires keys)."""

    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    code = "unauthenticated"


class RequestTimeout(GatewayError):
    """A gRPC call's request message did not arrive in time (HTTP's edge answers 408 itself)."""

    http_status = 408
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    code = "request_timeout"


class PayloadTooLarge(GatewayError):
    http_status = 413
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    code = "payload_too_large"


class UnsupportedMediaType(GatewayError):
    http_status = 415
    code = "unsupported_media_type"


class Overloaded(GatewayError):
    """More requests in flight in this process than ``max_in_flight``."""

    http_status = 429
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    code = "too_many_requests"


class RateLimited(GatewayError):
    """This client (API key) sent more requests than ``GATEWAY_RATE_LIMIT_PER_KEY`` allows."""

    http_status = 429
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    code = "rate_limited"


class NoKnownWords(GatewayError):
    """A text without a word the model knows, refused when the gateway is set to."""

    http_status = 422
    code = "no_known_words"


class ModelNotFound(GatewayError):
    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND
    code = "model_not_found"


class VersionNotPublished(ModelNotFound):
    """The model server has never reported this version: not published yet, or not at all."""


class ModelLoading(GatewayError):
    """The version asked for exists but is still loading (or waiting to load) in the model server."""

    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE
    code = "model_loading"

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=1)


class ModelServerUnavailable(GatewayError):
    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE
    code = "model_server_unavailable"


class ModelServerTimeout(GatewayError):
    http_status = 504
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    code = "model_server_timeout"


class ModelServerFailure(GatewayError):
    """The model server answered with an error the gateway did not expect."""

    http_status = 502
    grpc_code = grpc.StatusCode.INTERNAL
    code = "model_server_error"


# Every error code a client can meet, with its HTTP status and meaning: the generated
# OpenAPI document lists them, and a test keeps this table, the classes above, the HTTP
# app's own codes and the edge's answers in step.
ERROR_CODES: dict[str, tuple[int, str]] = {
    "invalid_input": (400, "the body is not a valid request; the message names the field and the problem"),
    "incomplete_body": (400, "the connection closed before the whole body arrived"),
    "bad_request": (400, "the HTTP request itself is malformed"),
    "unauthenticated": (401, "the gateway requires an API key (Authorization: Bearer <key>, or X-API-Key) and got none or an unknown one"),
    "https_required": (403, "the edge serves the API over HTTPS only and refused a request sent in clear (a key it carried should be rotated)"),
    "not_found": (404, "no such route"),
    "model_not_found": (404, "unknown model, or a version the model server does not have"),
    "method_not_allowed": (405, "the route does not take this method"),
    "request_timeout": (408, "the edge closed a request whose headers or body did not arrive in time"),
    "payload_too_large": (413, "too many texts, a text too long, or a body over the size limit"),
    "unsupported_media_type": (415, "the body is not sent as application/json"),
    "no_known_words": (422, "a text has no word in the model's vocabulary (only when the gateway refuses them)"),
    "too_many_requests": (429, "too many predictions in progress in this gateway process; retry after Retry-After"),
    "rate_limited": (429, "this API key sent more requests than its rate allows (GATEWAY_RATE_LIMIT_PER_KEY); retry after Retry-After"),
    "too_many_connections": (429, "the edge holds as many requests in progress from this address as it allows (EDGE_MAX_CONNECTIONS_PER_ADDRESS); retry after Retry-After"),
    "internal_error": (500, "a failure of the gateway itself; it was logged"),
    "model_server_error": (502, "the model server answered with an unexpected error"),
    "model_loading": (503, "the version asked for, or the rollout's stable version, is still loading; retry after Retry-After"),
    "model_server_unavailable": (503, "the model server is down, overloaded or restarting; retry after Retry-After"),
    "gateway_unavailable": (503, "the edge cannot reach the gateway; retry after Retry-After"),
    "model_server_timeout": (504, "the model server did not answer in time"),
}


# A rollout's candidate answering with these is not failing, only not there yet: the stable
# version answers, and nothing counts towards the candidate's rollback.
CANDIDATE_PENDING = (ModelLoading, VersionNotPublished)
