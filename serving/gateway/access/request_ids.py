"""Request ids: the client's (or the edge's) when it is a plain token, else a new one.

HTTP carries it in ``X-Request-ID``, gRPC in the ``x-request-id`` metadata; answers echo it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

HEADER = "X-Request-ID"
METADATA_KEY = "x-request-id"
_PLAIN_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Ids passed on to the model server in one call: well under gRPC's 8 KiB of metadata.
MAX_METADATA_CHARS = 4096


def request_id(given: str | None) -> str:
    return given if given is not None and _PLAIN_TOKEN.fullmatch(given) else uuid.uuid4().hex


def request_id_metadata(request_ids: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The ``x-request-id`` metadata of a model-server call that carries the rows of
    ``request_ids``: comma-separated, each once, as many as fit in MAX_METADATA_CHARS."""
    kept: list[str] = []
    length = 0
    for given in dict.fromkeys(request_ids):
        length += len(given) + (1 if kept else 0)
        if length > MAX_METADATA_CHARS:
            break
        kept.append(given)
    return ((METADATA_KEY, ",".join(kept)),) if kept else ()
