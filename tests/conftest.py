"""Session fixtures: a small model trained once with the real CLI, and real model
server and gateway processes on free loopback ports (started by ``harness.processes``)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from harness.local_stack import LocalStack
from harness.local_stack import local_stack as start_local_stack
from harness.processes import (
    IMDB_TARBALL,
    ROOT,
    RT_POLARITY_TARBALL,
    Gateway,
    Listening,
    ModelServer,
    start_gateway,
    start_grpc_gateway,
    start_model_server,
    wait_until,
)

# Small but real: enough reviews for the models to separate clear cases (the
# SimpleRNN needs 4-5 epochs of these to leave chance level). Without XLA: compiling
# each shape would cost more than these small runs (tests/test_xla.py serves the
# compiled signature of the same weights).
TRAIN_ARGS = ["--train-limit", "4000", "--test-limit", "300", "--epochs", "5", "--batch-size", "32", "--seed", "7",
              "--no-xla", "--snippets", str(RT_POLARITY_TARBALL)]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """pytest-randomly shuffles modules and the tests within them (before this hook); a module
    marked ``scenario`` keeps its place in the shuffle, and its tests their file order."""
    slots = [index for index, item in enumerate(items) if item.get_closest_marker("scenario")]
    in_file_order = sorted((items[index] for index in slots), key=lambda item: (item.path, item.location[1]))
    for index, item in zip(slots, in_file_order):
        items[index] = item


@pytest.fixture(scope="session")
def shared_tarball() -> Path:
    assert IMDB_TARBALL.is_file(), f"the test dataset is missing: {IMDB_TARBALL}"
    return IMDB_TARBALL


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory, shared_tarball) -> Path:
    """Trained as on a machine without a local copy: no --data, so the trainer downloads the
    tarball, here from a file:// mirror of the shared copy (tests never use the network)."""
    out, cache = tmp_path_factory.mktemp("models"), tmp_path_factory.mktemp("download-cache")
    mirror = {"SENTIMENT_DATA_URL": shared_tarball.as_uri(),
              "SENTIMENT_DATA_MD5": hashlib.md5(shared_tarball.read_bytes()).hexdigest()}
    result = subprocess.run(
        [sys.executable, "-m", "training", "--out", str(out), "--cache-dir", str(cache), *TRAIN_ARGS],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, **mirror},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "downloaded" in result.stdout and (cache / "aclImdb_v1.tar.gz").is_file()
    return out


@pytest.fixture(scope="session")
def model_server(models_dir, tmp_path_factory) -> Iterator[ModelServer]:
    server = start_model_server(models_dir, tmp_path_factory.mktemp("logs"), access_log=True)
    yield server
    server.process.stop()


@pytest.fixture(scope="session")
def gateway(model_server, models_dir, tmp_path_factory) -> Iterator[Gateway]:
    gw = start_gateway(model_server.address, models_dir, tmp_path_factory.mktemp("gateway"))
    try:  # a gateway that never turns ready must not outlive the session
        wait_until(lambda: requests.get(f"{gw.url}/readyz", timeout=2).ok, 30, "gateway readiness")
        yield gw
    finally:
        gw.process.stop()


@pytest.fixture(scope="session")
def grpc_gateway(gateway, model_server, models_dir) -> Iterator[Listening]:
    # Shares the HTTP gateway's metrics directory: one /metrics shows both transports.
    server = start_grpc_gateway(model_server.address, models_dir, gateway.metrics_dir, gateway.metrics_dir.parent,
                                GATEWAY_GRPC_REFLECTION="true")
    yield server
    server.process.stop()


@pytest.fixture(scope="session")
def local_stack(models_dir, tmp_path_factory) -> Iterator[LocalStack]:
    """`make run`'s stack, by its own script: the edge in front of the gateway."""
    with start_local_stack(models_dir, tmp_path_factory.mktemp("run")) as stack:
        yield stack
