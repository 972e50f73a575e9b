"""The prediction log's own metrics, beside the gateway's (same registry, same exposition)."""

from prometheus_client import Counter

LINES = Counter("sentiment_prediction_log_lines", "Sampled predictions written to the log")
DROPPED = Counter("sentiment_prediction_log_dropped",
                  "Sampled predictions not written: queue_full or write_error", ["reason"])
