"""One log line per gRPC call and per REST request: set ``MODEL_SERVER_ACCESS_LOG=true``
(an environment variable, so that the command line stays TF Serving's). The gateway sends
the ids of the requests a call carries, comma-separated, in the ``x-request-id`` metadata,
and the call's line names them; a failed request can so be followed into this log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("serving.model_server.access")

REQUEST_ID_KEY = "x-request-id"


class AccessLog(grpc.ServerInterceptor):
    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = details.method.rsplit("/", 1)[-1]
        request_ids = dict(details.invocation_metadata or ()).get(REQUEST_ID_KEY, "-")
        answer = handler.unary_unary

        def logged(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return answer(request, context)
            except Exception:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                spec = getattr(request, "model_spec", None)
                log.info("%s %s %s %.1f ms request_id=%s", method, spec.name if spec else "-", code.name,
                         (time.perf_counter() - started) * 1000, request_ids)

        return grpc.unary_unary_rpc_method_handler(
            logged, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer,
        )


class RestAccessLog:
    """WSGI middleware writing the same line for each REST request, e.g.
    ``GET /v1/models/imdb_lstm 200 1.2 ms request_id=-`` (the id from an ``X-Request-ID`` header)."""

    def __init__(self, app: WSGIApplication) -> None:
        self._app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        status = "-"

        def recording_status(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal status
            status = status_line.split(" ", 1)[0]
            return start_response(status_line, headers, exc_info)

        try:
            return self._app(environ, recording_status)
        finally:
            log.info("%s %s %s %.1f ms request_id=%s", environ["REQUEST_METHOD"], environ["PATH_INFO"],
                     status, (time.perf_counter() - started) * 1000, environ.get("HTTP_X_REQUEST_ID", "-"))
