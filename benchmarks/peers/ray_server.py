"""The Ray Serve peer: one deployment with `@serve.batch`, as Ray Serve's documentation
writes a batching model (`max_ongoing_requests` above the batch size, so batches can fill).

    <ray venv>/bin/python -m benchmarks.peers.ray_server --version-dir DIR --port PORT --replicas N --batch-wait S
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

import ray
from ray import serve
from starlette.requests import Request

from benchmarks.peers.review_model import ReviewModel

MAX_BATCH_SIZE = 64


@serve.deployment(max_ongoing_requests=2 * MAX_BATCH_SIZE)
class Sentiment:
    def __init__(self, version_dir: str, batch_wait_seconds: float) -> None:
        self.scorer = ReviewModel(Path(version_dir))
        self.score.set_batch_wait_timeout_s(batch_wait_seconds)

    @serve.batch(max_batch_size=MAX_BATCH_SIZE)
    async def score(self, texts: list[str]) -> list[dict]:
        return self.scorer.score(texts)

    async def __call__(self, request: Request) -> dict:
        return await self.score((await request.json())["text"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--version-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--batch-wait", type=float, default=0.01, help="seconds a batch waits to fill [Ray's 0.01]")
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(Sentiment.options(num_replicas=args.replicas).bind(args.version_dir, args.batch_wait), route_prefix="/")
    stop = threading.Event()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
