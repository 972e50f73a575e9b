"""Errors the model server returns, each with the gRPC status TF Serving gives it and
the HTTP status of its REST API."""

from __future__ import annotations

import grpc


class ServingError(Exception):
    grpc_code = grpc.StatusCode.INTERNAL
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServingError):
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 400


class NotFound(ServingError):
    grpc_code = grpc.StatusCode.NOT_FOUND
    http_status = 404


class Unavailable(ServingError):
    """No version can serve right now (none loaded yet, being unloaded, queue full)."""

    grpc_code = grpc.StatusCode.UNAVAILABLE
    http_status = 503
