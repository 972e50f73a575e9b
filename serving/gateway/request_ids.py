"""Request ids: the client's (or the edge's) when it is a plain token, else a new one.

HTTP carries it in ``X-Request-ID``, gRPC in the ``x-request-id`` metadata; answers echo it.
"""

from __future__ import annotations

import re
import uuid

HEADER = "X-Request-ID"
METADATA_KEY = "x-request-id"
_PLAIN_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id(given: str | None) -> str:
    return given if given is not None and _PLAIN_TOKEN.fullmatch(given) else uuid.uuid4().hex
