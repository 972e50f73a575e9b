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
    ["model", "version"], buckets=LATENCY_BUCKETS,
)
MODEL_CALL_ROWS = Histogram(
    "sentiment_model_call_rows", "Rows per Predict call to the model server (requests share calls)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
TEXTS_PER_REQUEST = Histogram(
    "sentiment_request_texts", "Texts per prediction request",
    ["transport"], buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
# Per model version: the version label only takes versions the model server answered
# with, so clients cannot grow the number of series.
TOKENS_PER_TEXT = Histogram(
    "sentiment_text_tokens", "Words per text before padding or truncation",
    ["model", "version"], buckets=(0, 10, 50, 100, 200, 300, 500, 1000, 2000, 5000),
)
OOV_RATIO = Histogram(
    "sentiment_text_out_of_vocabulary_ratio", "Share of a text's words outside the vocabulary",
    ["model", "version"], buckets=(0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0),
)
TRUNCATED_TEXTS = Counter("sentiment_truncated_texts", "Texts cut to the model's maximum length", ["model"])
# arm: "stable", "canary" (a rollout's candidate) or "pinned" (the client chose the version)
PREDICTIONS = Counter(
    "sentiment_predictions", "Predictions by model, version, arm and label", ["model", "version", "arm", "label"]
)
PREDICTION_DURATION = Histogram(
    "sentiment_prediction_duration_seconds", "Time to answer the texts of a request, by the version that answered",
    ["model", "version", "arm"], buckets=LATENCY_BUCKETS,
)
POSITIVE_PROBABILITY = Histogram(
    "sentiment_positive_probability", "Positive probability of each prediction: its drift is the model's or the traffic's",
    ["model", "version", "arm"], buckets=tuple(round(0.05 * step, 2) for step in range(1, 21)),
)
CANARY_FALLBACKS = Counter(
    "sentiment_canary_fallbacks", "Canary requests answered by the stable version because the candidate failed",
    ["model", "version"],
)
ROLLBACKS = Counter(
    "sentiment_rollout_rollbacks", "Candidates rolled back by a process, with the bound they crossed",
    ["model", "version", "reason"],
)
ROLLED_BACK = Gauge(
    "sentiment_rollout_rolled_back", "1 while a process keeps a rolled-back candidate out of traffic",
    ["model", "version"], multiprocess_mode="livemax",
)
ROLLOUT_RELOADS = Counter("sentiment_rollout_reloads", "Re-reads of the rollout file by outcome", ["outcome"])
API_KEY_RELOADS = Counter("sentiment_api_key_reloads", "Re-reads of the API key file by outcome (error: the previous keys stay)",
                          ["outcome"])
API_KEY_FILE_REJECTED = Gauge(
    "sentiment_api_key_file_rejected", "1 while the API key file on disk is refused and the previous keys stay in force",
    multiprocess_mode="livemax",
)
SHADOW_REQUESTS = Counter(
    "sentiment_shadow_requests", "Requests copied to a candidate: compared, failed, pending (the candidate still loads) or dropped (all slots busy)",
    ["model", "outcome"],
)
SHADOW_COMPARISONS = Counter(
    "sentiment_shadow_comparisons", "Texts answered by both versions: whether their labels agree",
    ["model", "stable_version", "candidate_version", "outcome"],
)
SHADOW_DIFFERENCE = Histogram(
    "sentiment_shadow_probability_difference", "|candidate - stable| positive probability of shadowed texts",
    ["model", "stable_version", "candidate_version"], buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0),
)
IN_FLIGHT = Gauge(
    "sentiment_in_flight_requests", "Requests being processed", ["transport"], multiprocess_mode="livesum"
)
AUTH_FAILURES = Counter(
    "sentiment_auth_failures", "Requests refused for want of a valid API key: the key was missing or unknown",
    ["transport", "reason"],
)
RATE_LIMITED = Counter(
    "sentiment_rate_limited", "Requests refused because their API key was over its rate, by key id",
    ["transport", "key_id"],
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
