"""The Compose deployment run for real: docker-compose.yml on podman, from an empty volume.

tests/compose/docker-compose.test.yml swaps only the images that cannot be pulled
here (TF Serving → the project's model server image with the same flags, mounts and
healthcheck; prom/prometheus → Debian's Prometheus) and builds the project's own
Dockerfiles on a local Debian base. It runs with API keys and with TLS on
(deploy/tls/compose.tls.yml, certificates of a throw-away CA): HTTPS at the edge, whose
plain port serves the API as well, and TLS on the gRPC port. Grafana is not started (its
files are validated in test_deploy.py).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import requests
import yaml
from compose_env import (
    NGINX,
    PROMETHEUS,
    PYTHON_BASE,
    ROOT,
    ComposeProject,
    HealthcheckDriver,
    Podman,
    default_state_dir,
)
from traffic import Traffic, http_sender

from harness.certificates import make_certificates
from harness.processes import IMDB_TARBALL, free_port, wait_until
from harness.slow_clients import NormalClient, SlowClients
from serving.client import SentimentClient
from serving.gateway.access.api_keys import create
from text_contract.tokenizer import DEFAULT_MAXLEN as MAXLEN
from training.signature import compiled_shapes

# The first run builds the base images and every image (~10 min on 2 cores); later runs reuse them.
# One deployment's life, in order: trained and healthy, served, rolled out, stopped, taken down.
pytestmark = [pytest.mark.compose, pytest.mark.scenario, pytest.mark.timeout(1800)]

PROJECT = "sentiment-compose-test"
SERVICES = ("trainer", "tfserving", "gateway", "edge", "prometheus")
# Small but real models: the tier checks the deployment, not accuracy.
TRAIN_ARGS = "--train-limit 1000 --test-limit 100 --epochs 1 --batch-size 64"
COMPOSE_FILE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@dataclass
class Deployment:
    compose: ComposeProject
    http_port: int
    https_port: int
    grpc_port: int
    prometheus_port: int
    log_file: Path
    rollouts_dir: Path
    api_key: str
    ca: Path  # the throw-away CA that signed the deployment's certificate

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def grpc_client(self, api_key: str | None = None) -> SentimentClient:
        return SentimentClient(f"127.0.0.1:{self.grpc_port}", api_key=api_key, ca_file=self.ca)

    def inspect(self, service: str) -> dict:
        container = self.compose.container(service)
        return json.loads(self.compose.podman("inspect", container).stdout)[0]

    def save_logs(self) -> None:
        """Every container's output, for a failing run; gone once the project is down."""
        logs = self.compose.logs()
        if logs:
            self.log_file.write_text(logs)

    def health(self, service: str) -> str:
        return self.inspect(service)["State"]["Health"]["Status"]

    def predict(self, text: str = "A wonderful, moving film.", timeout: float = 10) -> requests.Response:
        return requests.post(f"{self.https}/v1/sentiment", json={"text": text}, headers=self.auth, verify=self.ca,
                             timeout=timeout)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    podman = Podman(default_state_dir())
    reason = podman.unusable_reason()
    if reason is not None:
        # `make test` and CI require the tier; a developer's plain `pytest` elsewhere may skip it.
        if os.environ.get("SENTIMENT_REQUIRE_COMPOSE") == "1":
            pytest.fail(f"the compose tier is required (SENTIMENT_REQUIRE_COMPOSE=1) but podman cannot run "
                        f"containers here: {reason}")
        pytest.skip(f"podman cannot run containers on this machine: {reason}")
    python_image = podman.ensure_image(PYTHON_BASE)
    prometheus_image = podman.ensure_image(PROMETHEUS)
    nginx_image = podman.ensure_image(NGINX)
    podman.start_service()
    ports = {name: free_port() for name in
             ("SENTIMENT_HTTP_PORT", "SENTIMENT_HTTPS_PORT", "SENTIMENT_GRPC_PORT", "PROMETHEUS_PORT")}
    # A copy of deploy/rollouts that the tests may edit, readable by the gateway's user.
    rollouts_dir = tmp_path_factory.mktemp("rollouts")
    shutil.copy(ROOT / "deploy" / "rollouts" / "rollouts.yaml", rollouts_dir / "rollouts.yaml")
    rollouts_dir.chmod(0o755)
    (rollouts_dir / "rollouts.yaml").chmod(0o644)
    # The compose file asks for API keys: a key file made as docs/operations.md says for
    # deploy/keys/local/api-keys (the documented command's `create`, then readable by the gateway's user).
    keys_dir = tmp_path_factory.mktemp("keys")
    api_key = create(keys_dir / "api-keys", "compose-test")
    keys_dir.chmod(0o755)
    (keys_dir / "api-keys").chmod(0o644)
    # The certificate and key for deploy/tls/compose.tls.yml, readable by the containers' user.
    certificates = make_certificates(tmp_path_factory.mktemp("tls"))
    certificates.server_dir.chmod(0o755)
    for file in (certificates.server_cert, certificates.server_key):
        file.chmod(0o644)
    compose = ComposeProject(podman, PROJECT, {
        "SENTIMENT_TEST_PYTHON_IMAGE": python_image,
        "SENTIMENT_TEST_PROMETHEUS_IMAGE": prometheus_image,
        "SENTIMENT_TEST_NGINX_IMAGE": nginx_image,
        "IMDB_DATA_DIR": str(IMDB_TARBALL.parent),
        "IMDB_DATA_FILE": IMDB_TARBALL.name,
        "SENTIMENT_TRAIN_ARGS": TRAIN_ARGS,
        "SENTIMENT_ROLLOUTS_DIR": str(rollouts_dir),
        "SENTIMENT_API_KEYS_DIR": str(keys_dir),
        "SENTIMENT_TLS_DIR": str(certificates.server_dir),
        # The plain port serves the API too, for the slow-client and load tests' raw sockets.
        "SENTIMENT_PLAIN_HTTP": "serve",
        # The tier's load tests send from one key and address faster than the default rates.
        "SENTIMENT_RATE_LIMIT_PER_KEY": "10000",
        "SENTIMENT_EDGE_RATE_LIMIT": "10000",
        "SENTIMENT_EDGE_RATE_BURST": "10000",
        "SENTIMENT_EDGE_MAX_CONNECTIONS_PER_ADDRESS": "10000",  # 300 slow connections from one address
        **{name: str(port) for name, port in ports.items()},
    })
    deployment = Deployment(compose, *ports.values(), tmp_path_factory.mktemp("compose") / "compose.log", rollouts_dir,
                            api_key, certificates.ca)
    try:
        compose("down", "--volumes", "--remove-orphans", check=False)  # whatever a killed run left
        compose("build")
        with HealthcheckDriver(podman, PROJECT) as healthchecks:
            compose("up", "--detach", *SERVICES)
            # `up` returns once the gateway and the edge have started: nothing waits on their health.
            try:
                wait_until(lambda: deployment.health("gateway") == deployment.health("edge") == "healthy", 120,
                           "gateway and edge healthchecks")
            except TimeoutError as error:
                raise TimeoutError(f"{error}; healthcheck runs failed: {healthchecks.errors[-3:]}") from error
            yield deployment
    finally:
        deployment.save_logs()
        print(f"compose logs: {deployment.log_file}")
        compose("down", "--volumes", "--remove-orphans", check=False)
        podman.stop_service()


def test_trainer_exports_then_every_service_becomes_healthy(deployment):
    trainer = deployment.inspect("trainer")["State"]
    assert (trainer["Status"], trainer["ExitCode"]) == ("exited", 0)
    for service in ("tfserving", "gateway", "edge"):
        assert deployment.health(service) == "healthy", service
    assert deployment.inspect("prometheus")["State"]["Status"] == "running"
    # The trainer's default export is XLA-compiled, and the compose file's model server
    # flags run it: every compiled shape was warmed before the versions turned AVAILABLE.
    logs = deployment.compose.podman("logs", deployment.compose.container("tfserving"))
    model_server_log = logs.stdout + logs.stderr
    for name in ("imdb_lstm", "imdb_simple_rnn"):
        assert f"{name} version 1 is available ({len(compiled_shapes(MAXLEN))} warmup requests run)" in model_server_log


def test_predictions_over_https_and_grpc_tls_through_the_published_ports(deployment):
    models = requests.get(f"{deployment.https}/v1/models", headers=deployment.auth, verify=deployment.ca,
                          timeout=10).json()["models"]
    assert {(m["model"], m["model_name"], str(m["versions"])) for m in models} == {
        ("lstm", "imdb_lstm", "[{'version': 1, 'state': 'AVAILABLE'}]"),
        ("simple_rnn", "imdb_simple_rnn", "[{'version': 1, 'state': 'AVAILABLE'}]"),
    }
    for model in ("lstm", "simple_rnn"):
        response = requests.post(f"{deployment.https}/v1/sentiment", headers=deployment.auth, verify=deployment.ca,
                                 json={"texts": ["Loved it.", "Hated it."], "model": model}, timeout=10)
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert [p["model_version"] for p in predictions] == [1, 1]
        assert all(0 <= p["positive_probability"] <= 1 for p in predictions)
    with deployment.grpc_client(deployment.api_key) as client:
        (prediction,) = client.predict(["Loved it."], model="simple_rnn", timeout=10)
        assert (prediction.model_name, prediction.model_version) == ("imdb_simple_rnn", 1)
        assert {m.model for m in client.list_models(timeout=10)} == {"lstm", "simple_rnn"}


def test_tls_is_verified_and_required_on_the_grpc_port(deployment):
    with pytest.raises(requests.exceptions.SSLError):  # the client was not given the CA
        requests.post(f"{deployment.https}/v1/sentiment", json={"text": "Loved it."}, headers=deployment.auth,
                      timeout=10)
    plain_to_tls = requests.get(f"http://127.0.0.1:{deployment.https_port}/readyz", timeout=10)
    assert plain_to_tls.status_code == 400 and plain_to_tls.json()["error"]["code"] == "bad_request"
    with SentimentClient(f"127.0.0.1:{deployment.grpc_port}", api_key=deployment.api_key,
                         max_attempts=1) as plain, pytest.raises(grpc.RpcError) as refused:
        plain.predict(["Loved it."], timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    with SentimentClient(f"127.0.0.1:{deployment.grpc_port}", api_key=deployment.api_key, tls=True,
                         max_attempts=1) as untrusting, pytest.raises(grpc.RpcError) as refused:
        untrusting.predict(["Loved it."], timeout=5)  # the system's CAs: the test CA is not one
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_api_keys_are_required_by_default_over_http_and_grpc(deployment):
    for headers in ({}, {"Authorization": "Bearer sk_not_a_key"}):
        refused = requests.post(f"{deployment.https}/v1/sentiment", json={"text": "Loved it."}, headers=headers,
                                verify=deployment.ca, timeout=10)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthenticated"
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="sentiment"'
    assert requests.post(f"{deployment.http}/v1/sentiment", json={"text": "Loved it."},
                         headers={"X-API-Key": deployment.api_key}, timeout=10).status_code == 200
    with deployment.grpc_client() as client, pytest.raises(grpc.RpcError) as refused:
        client.predict(["Loved it."], timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert requests.get(f"{deployment.http}/readyz", timeout=10).status_code == 200  # probes stay open


def test_prometheus_collects_the_gateway_and_the_model_server(deployment):
    assert deployment.predict().status_code == 200
    api = f"http://127.0.0.1:{deployment.prometheus_port}/api/v1"

    def series(query: str) -> list:
        return requests.get(f"{api}/query", params={"query": query}, timeout=5).json()["data"]["result"]

    # The scrape interval is 15 s in deploy/prometheus/prometheus.yml.
    wait_until(lambda: series('sentiment_requests_total{route="/v1/sentiment"}'), 60, "gateway series")
    wait_until(lambda: series(":tensorflow:serving:request_count_total"), 60, "model server series")
    up = {item["metric"]["job"]: item["value"][1] for item in series("up")}
    assert up == {"gateway": "1", "tfserving": "1"}


@pytest.mark.parametrize("service", ["trainer", "tfserving", "gateway", "edge", "prometheus"])
def test_containers_run_as_non_root_on_a_read_only_root_file_system(deployment, service):
    inspected = deployment.inspect(service)
    assert inspected["Config"]["User"] == COMPOSE_FILE["services"][service]["user"]
    assert not inspected["Config"]["User"].startswith(("0", "root"))
    assert inspected["HostConfig"]["ReadonlyRootfs"] is True
    if inspected["State"]["Status"] == "running":
        container = deployment.compose.container(service)
        uid = deployment.compose.podman("exec", container, "sh", "-c", "id -u").stdout.strip()
        assert uid == inspected["Config"]["User"].split(":")[0]
        write = deployment.compose.podman("exec", container, "sh", "-c", "touch /probe", check=False)
        assert write.returncode != 0 and "Read-only file system" in write.stderr


def test_slow_clients_do_not_take_the_published_http_port_down(deployment):
    """300 connections trickling bodies into the edge; a normal client beside them."""
    with SlowClients("127.0.0.1", deployment.http_port, count=300, interval=3) as slow:
        wait_until(lambda: len(slow.sockets) == 300, 10, "the slow connections")
        normal = NormalClient(f"{deployment.http}/v1/sentiment", duration=8, headers=deployment.auth).run()
        wait_until(lambda: slow.still_open == 0, 15, "the edge closing the slow connections")
    print(f"\ncompose edge, 300 slow connections: {normal.success_rate:.0%} of {len(normal.statuses)} normal "
          f"requests succeeded, p99 {normal.p99 * 1000:.0f} ms")
    assert normal.success_rate == 1.0, sorted(set(normal.statuses))
    assert normal.p99 < 1.0


def test_a_new_version_rolls_out_under_load_without_a_failed_request(deployment):
    with Traffic(http_sender(deployment.http, {"text": "A wonderful, moving film."}, headers=deployment.auth),
                 workers=2) as traffic:
        # Without arguments the trainer skips existing models; with them it publishes a new version.
        deployment.compose("run", "--rm", "-T", "trainer", "--seed", "8")
        # The version's warmup compiles every XLA shape before it serves (~20 s here).
        wait_until(lambda: deployment.predict().json()["predictions"][0]["model_version"] == 2, 120,
                   "version 2 served")
        traffic.wait_for(4, since=time.monotonic())
    statuses = traffic.statuses()
    assert set(statuses) == {"200"}, statuses
    assert traffic.latest().detail == 2
    assert sum(statuses.values()) > 10


def test_a_canary_rollout_splits_unpinned_traffic_until_the_candidate_is_promoted(deployment):
    """Versions 1 and 2 are both loaded (models.config keeps two); the rollout file decides."""
    rollouts = deployment.rollouts_dir / "rollouts.yaml"

    def answers(count: int, prefix: str) -> list[tuple[str, str, int]]:
        out = []
        for index in range(count):
            request_id = f"{prefix}-{index}"
            response = requests.post(f"{deployment.http}/v1/sentiment", json={"text": "A wonderful, moving film."},
                                     headers={"X-Request-ID": request_id, **deployment.auth}, timeout=10)
            assert response.status_code == 200, response.text
            (prediction,) = response.json()["predictions"]
            out.append((request_id, prediction["arm"], prediction["model_version"]))
        return out

    try:
        rollouts.write_text("lstm: {stable: 1, candidate: 2, canary_percent: 50}\n")
        # Each gateway process (2 HTTP workers) looks at the file at most once a second, when
        # it routes a request: wait until a run of answers shows both arms and none from a
        # worker still without the rollout (which would answer with the newest version, 2).
        wait_until(lambda: {(arm, version) for _, arm, version in answers(30, "probe")}
                   == {("stable", 1), ("canary", 2)}, 30, "every worker following the rollout")
        split = answers(200, "user")
        arms = Counter(arm for _, arm, _ in split)
        assert abs(arms["canary"] - 100) <= 4 * math.sqrt(200 * 0.25), arms  # binomial, 4 standard deviations
        assert {(arm, version) for _, arm, version in split} == {("stable", 1), ("canary", 2)}
        again = {request_id: arm for request_id, arm, _ in answers(40, "user")}
        assert all(again[request_id] == arm for request_id, arm, _ in split[:40])  # sticky per request id
        rollouts.write_text("lstm: {stable: 2}\n")  # promotion: the operator's edit
        wait_until(lambda: {(arm, version) for _, arm, version in answers(30, "after")} == {("stable", 2)}, 30,
                   "every request on version 2")
    finally:
        rollouts.write_text("{}\n")


def test_model_server_stop_gives_503_and_start_recovers_without_restarting_the_gateway(deployment):
    gateway_before = deployment.inspect("gateway")["State"]["StartedAt"]
    deployment.compose("stop", "tfserving")
    response = deployment.predict()
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "model_server_unavailable"
    assert requests.get(f"{deployment.http}/readyz", timeout=10).status_code == 503
    deployment.compose("start", "tfserving")
    wait_until(lambda: deployment.predict().status_code == 200, 120, "predictions after the model server restart")
    # Each HTTP worker has its own channel: the one that did not serve the prediction
    # may still be in its reconnect backoff (at most 1 s) and answer 503 until it retries.
    wait_until(lambda: requests.get(f"{deployment.http}/readyz", timeout=10).status_code == 200, 5,
               "readiness after the model server restart")
    assert deployment.inspect("gateway")["State"]["StartedAt"] == gateway_before


def test_down_leaves_no_container_network_or_volume(deployment):
    deployment.save_logs()
    deployment.compose("down", "--volumes")
    assert deployment.compose.leftovers() == {"containers": [], "networks": [], "volumes": []}
