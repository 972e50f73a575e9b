"""Prometheus metrics of the gateway, shared by its HTTP and gRPC transports.

With several HTTP worker processes (and the gRPC server process) each process
writes its samples to ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` aggregates them;
the variable must be set before this module is imported.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "sentiment_requests", "Requests by transport, route, model and status code",
    ["transport", "route", "model", "code"],
)
REQUEST_DURATION = Histogram(
    "sentiment_request_duration_seconds", "Request latency at the gateway",
    ["transport", "route"], buckets=LATENCY_BUCKETS,
)
MODEL_CALL_DURATION = Histogram(
    "sentiment_model_call_duration_seconds", "Latency of Predict calls to the model server",
    ["model"], buckets=LATENCY_BUCKETS,
)
MODEL_CALL_ROWS = Histogram(
    "sentiment_model_call_rows", "Rows per Predict call to the model server (requests share calls)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
TEXTS_PER_REQUEST = Histogram(
    "sentiment_request_texts", "Texts per prediction request",
    ["transport"], buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
TOKENS_PER_TEXT = Histogram(
    "sentiment_text_tokens", "Words per text before padding or truncation",
    buckets=(0, 10, 50, 100, 200, 300, 500, 1000, 2000, 5000),
)
OOV_RATIO = Histogram(
    "sentiment_text_out_of_vocabulary_ratio", "Share of a text's words outside the vocabulary",
    buckets=(0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0),
)
TRUNCATED_TEXTS = Counter("sentiment_truncated_texts", "Texts cut to the model's maximum length", ["model"])
PREDICTIONS = Counter("sentiment_predictions", "Predictions by model and label", ["model", "label"])
IN_FLIGHT = Gauge(
    "sentiment_in_flight_requests", "Requests being processed", ["transport"], multiprocess_mode="livesum"
)
MODEL_SERVER_ERRORS = Counter(
    "sentiment_model_server_errors", "Failed calls to the model server by gRPC status", ["grpc_code"]
)


def exposition() -> tuple[bytes, str]:
    """The metrics text of all processes (multiprocess mode) or of this one."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def forget_dead_processes() -> list[int]:
    """Drop the live gauges (``livesum``) of processes that are gone, e.g. a crashed worker.

    The HTTP server has no hook for a worker's exit, so every process calls this as it
    starts: a replacement worker clears its predecessor's in-flight count. Counters and
    histograms of dead processes stay, so totals never go down.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return []
    pids = {int(pid) for path in Path(directory).glob("*.db")
            if (pid := path.stem.rsplit("_", 1)[-1]).isdigit()}
    dead = sorted(pid for pid in pids if not _alive(pid))
    for pid in dead:
        multiprocess.mark_process_dead(pid, directory)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
