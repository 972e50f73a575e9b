"""A key holder trying to force a healthy candidate's rollback: it picks request ids that land
on the canary arm and makes those calls fail or run long by its own doing (deadlines shorter
than the model call, explanations). None of it counts against the candidate."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import requests
from prometheus_text import metric

from harness.attack_report import ProcessUsage
from harness.bystander import Bystander, alive, assert_served, baseline
from harness.processes import Gateway, Listening, start_gateway, start_grpc_gateway, start_model_server
from harness.two_versions import serve_two_versions
from serving.client import SentimentClient
from serving.gateway.access.api_keys import hash_line, new_key
from serving.gateway.routing.rollouts import canary_draw

pytestmark = pytest.mark.attack

ROLLOUT = ("lstm: {stable: 1, candidate: 2, canary_percent: 50, "
           "rollback: {window_seconds: 60, min_requests: 10, max_error_rate: 0.05, max_p99_seconds: 0.3}}")
REVIEW = "A wonderful, moving film with a clever script and fine acting."


def canary_ids(count: int) -> list[str]:
    """Request ids whose hash puts them on the candidate's arm."""
    return list(itertools.islice((f"a-{n}" for n in itertools.count() if canary_draw("lstm", f"a-{n}") < 50), count))


@pytest.fixture(scope="module")
def rolled_out(models_dir: Path, tmp_path_factory) -> Iterator[tuple[Gateway, Listening, dict[str, str]]]:
    """Versions 1 and 2 behind an HTTP gateway (one worker) and a gRPC gateway, with keys, and
    version 2 as a 50% candidate."""
    folder = tmp_path_factory.mktemp("rollback-attack")
    config = serve_two_versions(models_dir / "imdb_lstm" / "1", folder / "served")
    server = start_model_server(folder / "served", folder, config=config, wait_for=["imdb_lstm"], xla=False)
    keys = {"bystander": new_key(), "attacker": new_key()}
    (folder / "api-keys").write_text("".join(f"{hash_line(name, key)}\n" for name, key in keys.items()))
    (folder / "rollouts.yaml").write_text(ROLLOUT)
    settings = {"GATEWAY_MODELS": "lstm=imdb_lstm", "GATEWAY_DEFAULT_MODEL": "lstm",
                "GATEWAY_API_KEYS_FILE": str(folder / "api-keys"), "GATEWAY_ROLLOUTS_FILE": str(folder / "rollouts.yaml")}
    http = start_gateway(server.address, folder / "served", folder, GATEWAY_HTTP_WORKERS="1", **settings)
    grpc_server = start_grpc_gateway(server.address, folder / "served", http.metrics_dir, folder, **settings)
    try:
        yield http, grpc_server, keys
    finally:
        grpc_server.process.stop()
        http.process.stop()
        server.process.stop()


def rolled_back(gateway: Gateway) -> float:
    return metric(requests.get(f"{gateway.url}/metrics", timeout=10).text, "sentiment_rollout_rolled_back", version="2")


def test_client_made_failures_and_slow_explanations_do_not_roll_a_healthy_candidate_back(rolled_out, attack_report):
    http, grpc_server, keys = rolled_out
    attacker = {"Authorization": f"Bearer {keys['attacker']}"}
    session = requests.Session()

    def bystander() -> None:
        response = session.post(f"{http.url}/v1/sentiment", json={"text": REVIEW}, timeout=5,
                                headers={"Authorization": f"Bearer {keys['bystander']}"})
        assert response.status_code == 200, response.text

    alone = baseline(bystander)
    outcomes: Counter = Counter()
    usage = ProcessUsage({"gateway HTTP": [http.process.pid], "gateway gRPC": [grpc_server.process.pid]})
    with Bystander(bystander) as attacked, SentimentClient(grpc_server.target, api_key=keys["attacker"],
                                                           max_attempts=1) as client:
        for index, request_id in enumerate(canary_ids(200)):
            # Deadlines around the model call's own time: many run out during it, on the canary arm.
            try:
                client.predict([REVIEW], request_id=request_id, timeout=(0.006, 0.008, 0.010, 0.012)[index % 4])
                outcomes["OK"] += 1
            except grpc.RpcError as error:
                outcomes[error.code().name] += 1
        for request_id in canary_ids(12):  # explanations of long texts (~4,000 model rows): slow on the canary arm
            response = requests.post(f"{http.url}/v1/sentiment", timeout=60, headers={**attacker, "X-Request-ID": request_id},
                                     json={"texts": [" ".join([REVIEW] * 50)] * 8, "explain": True})
            outcomes[response.status_code] += 1
    attack_report.record("forced-rollback attempt: 200 calls on the canary arm with 6-12 ms deadlines, "
                         "12 slow explanations", alone, attacked.stats(),
                         {**{str(k): v for k, v in outcomes.items()}, "rolled back": int(rolled_back(http))},
                         usage.stop())
    assert outcomes["DEADLINE_EXCEEDED"] and outcomes[200] == 12, outcomes  # the attack did make calls fail
    assert rolled_back(http) == 0, "the candidate was rolled back by the attacker's own failures"
    # Still a candidate: an id on its arm is answered by version 2.
    (arm,) = {session.post(f"{http.url}/v1/sentiment", json={"text": REVIEW}, timeout=5,
                           headers={**attacker, "X-Request-ID": request_id}).json()["predictions"][0]["arm"]
              for request_id in canary_ids(3)}
    assert arm == "canary"
    assert_served(alone, attacked.stats())
    alive([http.process.pid, grpc_server.process.pid])
