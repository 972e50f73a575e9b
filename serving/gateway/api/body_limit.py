"""Request bodies read whole, at most one byte past the limit, before the application sees them.

Flask then meets every body with a length (chunked ones included), and a body over
the limit is answered 413 without reading the rest. The read has no deadline: the
HTTP server (granian) gives the application no socket to set one on. Slow clients
are the buffering edge's job, in every deployment (docs/deployment.md, "The edge"): the
gateway must sit behind it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]


def _has_body(environ: dict) -> bool:
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    return chunked or environ.get("CONTENT_LENGTH", "") not in ("", "0")


class WholeBody:
    def __init__(self, app: WsgiApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if not _has_body(environ):
            return self.app(environ, start_response)
        declared = environ.get("CONTENT_LENGTH", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return self.app(environ, start_response)  # refused with 413 without reading it
        body = io.BytesIO()
        try:
            # One byte past the limit is enough for the application to answer 413.
            while body.tell() <= self.max_bytes:
                chunk = environ["wsgi.input"].read(min(65536, self.max_bytes + 1 - body.tell()))
                if not chunk:
                    break
                body.write(chunk)
        except OSError:  # the client went away
            message = "the connection ended before the whole request body arrived"
            payload = json.dumps({"error": {"code": "incomplete_body", "message": message}}).encode()
            start_response("400 Bad Request", [
                ("Content-Type", "application/json"), ("Content-Length", str(len(payload))), ("Connection", "close"),
            ])
            return [payload]
        data = body.getvalue()
        environ["wsgi.input"] = io.BytesIO(data)
        environ["CONTENT_LENGTH"] = str(len(data))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.app(environ, start_response)
