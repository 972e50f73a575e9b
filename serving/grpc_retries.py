"""gRPC's built-in retries, as a channel's service config, for every client in the project.

A call that fails with UNAVAILABLE before the server answered (a connection refused,
reset or drained by a restarting server) is sent again after a short backoff, by gRPC
itself. Retry throttling stops retrying while most calls fail (a server that is down
or shedding load for good), so retries never multiply the load on an overloaded server:
each failure costs a token out of ``_MAX_TOKENS``, each success gives back
``_TOKEN_RATIO``, and below half the tokens nothing is retried.
"""

from __future__ import annotations

import json

_MAX_TOKENS = 10
_TOKEN_RATIO = 0.1


def service_config(services: list[str], max_attempts: int, lb_policy: str | None = None) -> str:
    """The ``grpc.service_config`` channel option: ``max_attempts`` tries per call (1 = no retry)."""
    config: dict = {}
    if lb_policy:
        config["loadBalancingConfig"] = [{lb_policy: {}}]
    if max_attempts > 1:
        config["methodConfig"] = [{
            "name": [{"service": service} for service in services],
            "retryPolicy": {
                "maxAttempts": max_attempts,
                "initialBackoff": "0.1s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }]
        config["retryThrottling"] = {"maxTokens": _MAX_TOKENS, "tokenRatio": _TOKEN_RATIO}
    return json.dumps(config)
