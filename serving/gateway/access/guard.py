"""Who may call, and how much: a request's API key, and the key's rate.

Every transport asks the guard (through the data plane) before it serves a call; an
explanation pays the rest of its cost once its size is known (``charge``).
"""

from __future__ import annotations

import math

from serving.gateway.access.api_keys import KeyStore
from serving.gateway.access.rate_limits import RateLimiter
from serving.gateway.errors import RateLimited, Unauthenticated
from serving.gateway.observability import metrics


class Guard:
    """``keys``: None when the gateway asks for no key; ``limits``: None when keys have no rate."""

    def __init__(self, keys: KeyStore | None, limits: RateLimiter | None) -> None:
        self._keys = keys
        self._limits = limits if keys is not None else None  # a rate needs a key to count against

    @property
    def burst(self) -> int | None:
        """The most requests' worth one call can cost (a full bucket), or None without rates."""
        return self._limits.burst if self._limits is not None else None

    def authenticate(self, key: str | None, transport: str) -> str | None:
        """The caller's key id, once its key is valid and within its rate (one request is
        taken); None when the gateway asks for no key."""
        if self._keys is None:
            return None
        key_id = self._keys.identify(key)
        if key_id is None:
            metrics.AUTH_FAILURES.labels(transport, "missing" if not key else "unknown").inc()
            raise Unauthenticated("an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
                                  if not key else "the API key is not valid")
        self.charge(key_id, 1, transport)
        return key_id

    def charge(self, key_id: str | None, cost: int, transport: str, why: str = "") -> None:
        """Take ``cost`` requests' worth from the key's rate, or refuse with RateLimited."""
        if self._limits is None or key_id is None or cost <= 0:
            return
        if wait := self._limits.admit(key_id, cost):
            metrics.RATE_LIMITED.labels(transport, key_id).inc()
            retry_after = max(1, math.ceil(wait))
            raise RateLimited(f"API key {key_id!r} is over its rate of {self._limits.rate:g} requests a second"
                              f"{why}; retry after {retry_after} s", retry_after=retry_after)
