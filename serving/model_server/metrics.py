"""Prometheus metrics named like TF Serving's own (``/tensorflow/serving/...`` with ``/`` -> ``:``),
so one dashboard works against either server. prometheus-client adds ``_total`` to counters."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUEST_COUNT = Counter(
    ":tensorflow:serving:request_count", "Predict requests by model and status", ["model_name", "status"]
)
REQUEST_LATENCY = Histogram(
    ":tensorflow:serving:request_latency",
    "Predict latency in microseconds",
    ["model_name", "API", "entrypoint"],
    buckets=(500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000),
)
BATCH_SIZE = Histogram(
    ":tensorflow:serving:batching_session:processed_batch_size",
    "Rows in each batch run by the batch scheduler (before padding)",
    ["model_name"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
PADDING_SIZE = Histogram(
    ":tensorflow:serving:batching_session:padding_size",
    "Rows of padding added to reach an allowed batch size",
    ["model_name"],
    buckets=(0, 1, 2, 4, 8, 16, 32, 64, 128),
)


def observe_batch(model_name: str, rows: int, padded_size: int) -> None:
    BATCH_SIZE.labels(model_name).observe(rows)
    PADDING_SIZE.labels(model_name).observe(padded_size - rows)
