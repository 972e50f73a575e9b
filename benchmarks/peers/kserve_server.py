"""The KServe peer: a `kserve.Model` in KServe's Python model server, as its documentation
writes one (load once, `predict` on the V1 protocol's `instances`).

    <kserve venv>/bin/python -m benchmarks.peers.kserve_server --version-dir DIR --http_port PORT --workers N

KServe's Python server has no request batching of its own (KServe batches in its agent
sidecar, a Go binary shipped as a container image): on a CPU it scales with `--workers`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kserve import Model, ModelServer, model_server

from benchmarks.peers.review_model import ReviewModel


class SentimentModel(Model):
    def __init__(self, name: str, version_dir: Path) -> None:
        super().__init__(name)
        self.version_dir = version_dir
        self.scorer: ReviewModel | None = None
        self.load()

    def load(self) -> bool:
        self.scorer = ReviewModel(self.version_dir)
        self.ready = True
        return self.ready

    # With --workers > 1 KServe spawns its workers and pickles the model into each: a
    # loaded TensorFlow function cannot be pickled, so each worker loads its own copy.
    def __getstate__(self) -> dict:
        return {**self.__dict__, "scorer": None, "ready": False}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.load()

    def predict(self, payload: dict, headers: dict[str, str] | None = None) -> dict:
        return {"predictions": self.scorer.score(payload["instances"])}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--version-dir", type=Path, required=True)
    args, _ = parser.parse_known_args()
    ModelServer(workers=args.workers, enable_grpc=False).start([SentimentModel("lstm", args.version_dir)])
