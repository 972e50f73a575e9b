"""docs/api.md's error table lists every error code a client can meet, each with the HTTP
status the code answers it with (serving/gateway/errors.py's catalogue, which another test
keeps in step with the gateway, the edge and the OpenAPI document)."""

from __future__ import annotations

import re
from pathlib import Path

from serving.gateway.errors import ERROR_CODES

ROOT = Path(__file__).resolve().parents[2]


def documented_errors() -> dict[str, int]:
    """``code -> HTTP status`` from the rows of the table under ``## Errors``."""
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    section = text.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (\d{3})\b", section, re.MULTILINE)
    assert len(rows) == len(dict(rows)), "a code has two rows"
    return {code: int(status) for code, status in rows}


def test_the_error_table_has_every_code_with_its_http_status():
    assert documented_errors() == {code: status for code, (status, _) in ERROR_CODES.items()}
