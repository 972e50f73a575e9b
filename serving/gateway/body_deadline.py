"""Request bodies read whole, within a deadline, before the application sees them.

A client that announces a body and then trickles it, or never sends it, would
otherwise hold one of the server's threads for as long as it likes. Under gunicorn
the client socket is in ``environ["gunicorn.socket"]``: every read of the body
waits at most the time left until the deadline, and a body not complete by then
gets 408 and the connection is closed. This bounds what one slow client costs; it
does not make many of them cheap, which is the buffering edge's job (README,
"Slow clients").
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]


def _has_body(environ: dict) -> bool:
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    return chunked or environ.get("CONTENT_LENGTH", "") not in ("", "0")


def _error(start_response: Callable, status: str, code: str, message: str) -> list[bytes]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    start_response(status, [
        ("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close"),
    ])
    return [body]


class BodyDeadline:
    def __init__(self, app: WsgiApp, seconds: float, max_bytes: int) -> None:
        self.app = app
        self.seconds = seconds
        self.max_bytes = max_bytes

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if not _has_body(environ):
            return self.app(environ, start_response)
        declared = environ.get("CONTENT_LENGTH", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return self.app(environ, start_response)  # refused with 413 without reading it
        sock = environ.get("gunicorn.socket")
        deadline = time.monotonic() + self.seconds
        body = io.BytesIO()
        try:
            # One byte past the limit is enough for the application to answer 413.
            while body.tell() <= self.max_bytes:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                if sock is not None:
                    sock.settimeout(remaining)
                chunk = environ["wsgi.input"].read(min(65536, self.max_bytes + 1 - body.tell()))
                if not chunk:
                    break
                body.write(chunk)
        except TimeoutError:
            return _error(start_response, "408 Request Timeout", "request_timeout",
                          f"the request body did not arrive within {self.seconds:g} s")
        except OSError:  # the client went away (gunicorn's NoMoreData is an OSError too)
            return _error(start_response, "400 Bad Request", "incomplete_body",
                          "the connection ended before the whole request body arrived")
        finally:
            if sock is not None:
                sock.settimeout(None)
        data = body.getvalue()
        environ["wsgi.input"] = io.BytesIO(data)
        environ["CONTENT_LENGTH"] = str(len(data))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.app(environ, start_response)
