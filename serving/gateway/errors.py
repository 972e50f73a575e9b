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


class PayloadTooLarge(GatewayError):
    http_status = 413
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    code = "payload_too_large"


class Overloaded(GatewayError):
    """More requests in flight in this process than ``max_in_flight``."""

    http_status = 429
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    code = "too_many_requests"


class NoKnownWords(GatewayError):
    """A text without a word the model knows, refused when the gateway is set to."""

    http_status = 422
    code = "no_known_words"


class ModelNotFound(GatewayError):
    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND
    code = "model_not_found"


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
