"""The fast layer: the gateway's request handling in process, in front of an in-memory
model client, with tokenizer contracts written to a temporary models folder.

Nothing here starts a process or loads TensorFlow; the real-process tests one folder
up cover what needs them (the HTTP server, the model server, shutdown, metrics across workers).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient

from serving.gateway.api.grpc_server import build_server
from serving.gateway.api.http_app import create_app
from serving.gateway.data_plane import AVAILABLE, DataPlane
from serving.gateway.errors import ModelNotFound
from serving.gateway.settings import Settings
from text_contract.layout import SERVED_MODELS
from text_contract.tokenizer import FIRST_WORD_ID, TokenizerContract

VOCABULARY = ("the", "film", "good", "great", "bad", "awful", "plot", "acting")
POSITIVE_WORDS = {"good", "great"}
NEGATIVE_WORDS = {"bad", "awful"}


class InMemoryModelClient:
    """Stands in for ``ModelServerClient``: the model is a word count, the versions and
    failures are set by the test."""

    def __init__(self) -> None:
        self.versions: dict[str, dict[int, str]] = {
            name: {1: AVAILABLE, 2: AVAILABLE} for name in SERVED_MODELS.values()
        }
        self.failure: Exception | None = None  # raised by every call while set
        self.next_failures: list[Exception] = []  # raised one per predict call, first to last
        self.calls: list[tuple[str, int, int]] = []  # (model name, version, rows) per predict
        self.status_calls = 0
        self.labels: dict[str, int] = {}  # version label -> version, for every model
        word_ids = {word: FIRST_WORD_ID + index for index, word in enumerate(VOCABULARY)}
        self._positive = [word_ids[word] for word in POSITIVE_WORDS]
        self._negative = [word_ids[word] for word in NEGATIVE_WORDS]

    def predict(
        self, model_name: str, version: int, ids: np.ndarray, timeout: float | None = None,
        request_ids: Sequence[str] = (),
    ) -> tuple[np.ndarray, int]:
        if self.failure is not None:
            raise self.failure
        if self.next_failures:
            raise self.next_failures.pop(0)
        if self.versions.get(model_name, {}).get(version) != AVAILABLE:
            raise ModelNotFound(f"{model_name} version {version}: Servable not found")
        self.calls.append((model_name, version, len(ids)))
        score = np.isin(ids, self._positive).sum(axis=1) - np.isin(ids, self._negative).sum(axis=1)
        return np.array([1 / (1 + math.exp(-s)) for s in score], dtype=np.float32), version

    def version_states(self, model_name: str, timeout: float | None = None) -> dict[int, str]:
        self.status_calls += 1
        if self.failure is not None:
            raise self.failure
        if model_name not in self.versions:
            raise ModelNotFound(f"{model_name}: Could not find any versions of model {model_name}")
        return dict(self.versions[model_name])

    def resolve_label(self, model_name: str, label: str, timeout: float | None = None) -> int:
        if label not in self.labels:
            raise ModelNotFound(f"{model_name}: Unrecognized servable version label: {label}")
        return self.labels[label]

    def close(self) -> None:
        pass


def write_contracts(models_dir: Path, versions: tuple[int, ...] = (1, 2)) -> None:
    contract = TokenizerContract(vocabulary=VOCABULARY, maxlen=20)
    for name in SERVED_MODELS.values():
        for version in versions:
            contract.write(models_dir / name / str(version))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    write_contracts(tmp_path)
    # A status cache of ~0 lets a test change the versions between requests.
    return Settings(models_dir=tmp_path, status_cache_seconds=1e-9, max_texts=8, max_text_chars=500,
                    max_body_bytes=4096, max_in_flight=4)


@pytest.fixture
def model_client() -> InMemoryModelClient:
    return InMemoryModelClient()


@pytest.fixture
def service(settings: Settings, model_client: InMemoryModelClient) -> DataPlane:
    return DataPlane(settings, client=model_client)


@pytest.fixture
def http(settings: Settings, service: DataPlane) -> Iterator[FlaskClient]:
    app = create_app(settings, service)
    with app.test_client() as client:
        yield client


@pytest.fixture
def grpc_target(settings: Settings, service: DataPlane) -> Iterator[str]:
    """The gateway's gRPC API served in this process on a free loopback port."""
    server, _, port = build_server(settings.with_changes(grpc_host="127.0.0.1", grpc_port=0), service)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)
