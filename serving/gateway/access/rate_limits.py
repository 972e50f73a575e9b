"""Per-client rate limits: a token bucket per API key id, so that one noisy client cannot
starve the others (the in-flight limit is shared by everyone in a process).

Each process keeps its own buckets: a gateway pod with 2 HTTP workers and the gRPC server
admits up to ``rate`` requests a second per key in each of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """``rate`` requests a second per client, in bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when counted)
        self._lock = threading.Lock()

    def admit(self, client: str, cost: float = 1.0) -> float:
        """0 when ``client`` may send this request, worth ``cost`` requests, now (the cost is
        then taken), else the seconds until it may. A cost over the burst counts as the burst."""
        cost = min(cost, float(self.burst))
        now = self._clock()
        with self._lock:
            tokens, counted = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - counted) * self.rate)
            if tokens >= cost:
                self._buckets[client] = (tokens - cost, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (cost - tokens) / self.rate
