"""The gateway's logs: plain text for a terminal, or JSON lines for a log pipeline.

Every line of the HTTP workers and the gRPC server goes through one formatter. With the
access log on, each request adds a line of the schema the edge writes too
(``deploy/edge/nginx.conf``)::

    {"time": "2026-11-30T17:00:00.123Z", "level": "INFO", "logger": "sentiment.access",
     "message": "POST /v1/sentiment 200", "request_id": "...", "key_id": "reviews-app",
     "transport": "http", "route": "/v1/sentiment", "model": "lstm", "version": 2,
     "status": "200", "duration_s": 0.012, "bytes": 318}

Keys are never logged; key ids are. Routes are templates, never paths with a query.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

ACCESS = logging.getLogger("sentiment.access")
# Fields a record may carry (``extra=``) that the JSON lines show.
FIELDS = ("request_id", "key_id", "transport", "route", "model", "version", "status", "duration_s", "bytes")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def logging_config(log_format: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` document: every logger, granian's too, on stdout."""
    formatter = {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    handler = {"class": "logging.StreamHandler", "formatter": "gateway", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"gateway": formatter},
        "handlers": {"stdout": handler},
        "root": {"handlers": ["stdout"], "level": "INFO"},
        "loggers": {
            "_granian": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
            "granian.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        },
    }


def log_access(method: str, route: str, status: str, **fields: Any) -> None:
    """One access line: ``fields`` are those of ``FIELDS`` the request knows."""
    ACCESS.info("%s %s %s", method, route, status, extra={"route": route, "status": status, **fields})
