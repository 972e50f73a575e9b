"""The attack tier: `make run`'s stack (deploy/local/run.sh) with API keys on and the edge's
limits at realistic values, attacked from loopback while a bystander with a key of its own
is measured (harness/bystander.py)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from harness.attack_report import RESULTS_VARIABLE, AttackReport
from harness.local_stack import LocalStack
from harness.local_stack import local_stack as start_local_stack
from serving.gateway.access.api_keys import hash_line, new_key

# Per key and per address, requests a second and bursts: above the bystander's 20 a
# second, low enough that an attacker meets them within a few seconds, and a key's rate
# (at up to 64 texts a request) within what two cores can serve.
SETTINGS = {
    "GATEWAY_RATE_LIMIT_PER_KEY": "30",
    "GATEWAY_RATE_LIMIT_BURST": "30",
    "EDGE_RATE_LIMIT": "40",
    "EDGE_RATE_BURST": "40",
    "EDGE_ADDRESS_RATE_LIMIT": "80",
    "EDGE_ADDRESS_RATE_BURST": "160",
    "EDGE_MAX_CONNECTIONS_PER_ADDRESS": "64",
    # Stalled calls are held for as long as opening them and measuring the bystander takes,
    # which on a slow machine is more than the default 10 s: the attack asserts that they
    # hold no thread meanwhile, not when they end (tests/fast/test_grpc_limits.py does).
    "GATEWAY_GRPC_MESSAGE_TIMEOUT_SECONDS": "60",
}
REVIEW = {"text": "A wonderful, moving film."}  # the bystander's request


@dataclass(frozen=True)
class AttackedStack:
    stack: LocalStack
    bystander_key: str
    attacker_key: str
    settings: dict[str, str]

    @property
    def edge(self) -> str:
        return self.stack.edge

    @property
    def edge_port(self) -> int:
        return self.stack.edge_port

    @property
    def gateway(self) -> str:
        return self.stack.gateway

    def setting(self, name: str) -> int:
        return int(self.settings[name])

    def edge_pids(self) -> list[int]:
        """nginx: its master process (run dir's edge/nginx.pid) and workers."""
        master = int((self.stack.run_dir / "edge" / "nginx.pid").read_text())
        workers = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True, check=True)
        return [master, *map(int, workers.stdout.split())]

    def pids(self) -> list[int]:
        """The processes an attack must not kill: the gateway's HTTP server and workers, and nginx."""
        return [*self.stack.http_server_pids(), *self.edge_pids()]

    def processes(self) -> dict[str, list[int]]:
        """The stack's processes by name, for their CPU time and memory (harness/attack_report.py)."""
        return {"edge": self.edge_pids(), "gateway HTTP": self.stack.http_server_pids(),
                "gateway gRPC": self.stack.pids_of("serving.gateway.api.grpc_server"),
                "model server": self.stack.pids_of("serving.model_server")}

    def bystander_send(self) -> Callable[[], None]:
        """One short review to POST /v1/sentiment through the edge with the bystander's key;
        raises on anything but 200."""
        session = requests.Session()
        url, headers = f"{self.edge}/v1/sentiment", {"Authorization": f"Bearer {self.bystander_key}"}

        def send() -> None:
            response = session.post(url, json=REVIEW, headers=headers, timeout=5)
            if response.status_code != 200:
                raise AssertionError(f"{response.status_code}: {response.text[:200]}")

        return send


@pytest.fixture(scope="session")
def attack_report() -> Iterator[AttackReport]:
    """Each attack's measurements; written where SENTIMENT_ATTACK_RESULTS says (`make attack`)."""
    report = AttackReport()
    yield report
    if path := os.environ.get(RESULTS_VARIABLE):
        report.write(Path(path), "make attack")


@pytest.fixture(scope="session")
def attacked_stack(models_dir, tmp_path_factory) -> Iterator[AttackedStack]:
    keys = {"bystander": new_key(), "attacker": new_key()}
    key_file = tmp_path_factory.mktemp("keys") / "api-keys"
    key_file.write_text("".join(f"{hash_line(key_id, key)}\n" for key_id, key in keys.items()))
    settings = {"GATEWAY_API_KEYS_FILE": str(key_file), **SETTINGS}
    with start_local_stack(models_dir, tmp_path_factory.mktemp("attacked-run"), **settings) as stack:
        warm_up(stack.gateway, keys["bystander"])
        yield AttackedStack(stack, keys["bystander"], keys["attacker"], settings)


def warm_up(gateway: str, key: str) -> None:
    """Concurrent predictions straight to the gateway, so that the first batches of several rows
    (each batch size's first run in the model server costs a one-off) are not an attack's."""
    def predict(_: int) -> int:
        return requests.post(f"{gateway}/v1/sentiment", json=REVIEW, headers={"Authorization": f"Bearer {key}"},
                             timeout=30).status_code

    with ThreadPoolExecutor(12) as pool:  # 24 in all: within the key's burst
        for _ in range(2):
            assert set(pool.map(predict, range(12))) == {200}
