"""Sampled predictions as JSON lines, written off the request path.

A request only draws a random number and, when sampled, puts a small dict on a bounded
queue; one thread per process writes the lines. A full queue or a failing disk drops
lines and counts them (``sentiment_prediction_log_dropped_total``): the log never blocks
or fails a request. The processes of one gateway share the files: each batch of lines is
appended under an advisory lock, and the writer rotates the file before the next line
would take it over ``max_bytes`` (``predictions.jsonl`` -> ``.1`` -> ... -> ``.<max_files - 1>``,
the oldest dropped).

Line schema (``docs/operations.md#prediction-log``)::

    {"time": "2026-11-30T17:00:00.123Z", "request_id": "...", "transport": "http",
     "model": "lstm", "model_name": "imdb_lstm", "version": 2, "arm": "canary",
     "positive_probability": 0.91, "label": "positive", "num_tokens": 120,
     "num_out_of_vocabulary": 3, "truncated": false,
     "text_hash": "hmac-sha256 hex"}            # or "text": "...", by setting
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import queue
import random
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from serving.predictions_log import metrics

log = logging.getLogger(__name__)

FILE_NAME = "predictions.jsonl"
QUEUE_LINES = 10_000  # lines waiting for the writer; beyond them lines are dropped
ERROR_LOG_SECONDS = 60  # at most one log message per minute about a failing disk


def text_hash(text: str, salt: bytes) -> str:
    """A keyed hash: equal texts match within one salt, and a text cannot be guessed from it
    without the salt (a plain hash of a short review could be found by trying reviews)."""
    return hmac.new(salt, text.encode("utf-8"), hashlib.sha256).hexdigest()


def utc_timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PredictionLog:
    def __init__(self, directory: Path, sample_rate: float, keep_texts: bool, salt: str | None,
                 max_bytes: int, max_files: int) -> None:
        if not keep_texts and not salt:
            raise ValueError("hashing texts needs a salt")
        self.directory = directory
        self.sample_rate = sample_rate
        self._keep_texts = keep_texts
        self._salt = (salt or "").encode()
        self._max_bytes = max_bytes
        self._max_files = max_files
        self._queue: queue.Queue[dict] = queue.Queue(QUEUE_LINES)
        self._last_error_log = 0.0
        self._writer = threading.Thread(target=self._write_forever, name="prediction-log", daemon=True)
        self._writer.start()

    def sampled(self) -> bool:
        return random.random() < self.sample_rate

    def record(self, entry: dict, text: str) -> None:
        """Queue one sampled prediction (``entry`` without the text) for writing."""
        entry["time"] = utc_timestamp(time.time())
        if self._keep_texts:
            entry["text"] = text
        else:
            entry["text_hash"] = text_hash(text, self._salt)
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            metrics.DROPPED.labels("queue_full").inc()

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until the queued lines are written or dropped (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    # -- the writer thread --

    def _write_forever(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < 1000:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._append([
                    json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for entry in batch
                ])
                metrics.LINES.inc(len(batch))
            except OSError as error:
                metrics.DROPPED.labels("write_error").inc(len(batch))
                now = time.monotonic()
                if now - self._last_error_log > ERROR_LOG_SECONDS:
                    self._last_error_log = now
                    log.error("prediction log: %d line(s) dropped, cannot write to %s: %s",
                              len(batch), self.directory, error)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _append(self, lines: list[bytes]) -> None:
        """Append ``lines``, rotating whenever the next line would take the file over ``max_bytes``."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)  # texts or their hashes: the owner's only
        path = self.directory / FILE_NAME
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one writer at a time across the gateway's processes
            size = path.stat().st_size if path.exists() else 0
            pending: list[bytes] = []
            for line in lines:
                if size and size + len(line) > self._max_bytes:
                    self._write(path, pending)
                    self._rotate(path)
                    size, pending = 0, []
                pending.append(line)
                size += len(line)
            self._write(path, pending)

    @staticmethod
    def _write(path: Path, lines: list[bytes]) -> None:
        if not lines:
            return
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            remaining = memoryview(b"".join(lines))
            while remaining:
                remaining = remaining[os.write(fd, remaining):]
        finally:
            os.close(fd)

    def _rotate(self, path: Path) -> None:
        for index in range(self._max_files - 1, 0, -1):
            older = path.with_name(f"{path.name}.{index}")
            if index == self._max_files - 1:
                older.unlink(missing_ok=True)
            elif older.exists():
                older.rename(path.with_name(f"{path.name}.{index + 1}"))
        if self._max_files > 1:
            path.rename(path.with_name(f"{path.name}.1"))
        else:
            path.unlink()
