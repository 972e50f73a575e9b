"""Deployment files, validated offline by the real parsers: TF Serving's protobuf
schemas, the Compose specification (dclint), promtool, hadolint, and a real
Prometheus server scraping a running gateway."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from harness.processes import BATCHING_FILE, MODELS_CONFIG, MONITORING_FILE, ROOT, free_port, wait_until
from serving.gateway.settings import Settings
from serving.model_server.config import load_batching_parameters, load_model_config, load_monitoring_config
from training.signature import BATCH_BUCKETS

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DCLINT = ROOT / ".tools" / "node_modules" / ".bin" / "dclint"


def tool(name: str) -> str:
    path = shutil.which(name) or str(Path(ROOT / ".venv" / "bin" / name))
    assert Path(path).exists(), f"{name} is installed by `make test`"
    return path


def flag(service: str, name: str) -> str:
    (value,) = [arg.split("=", 1)[1] for arg in SERVICES[service]["command"] if arg.startswith(f"--{name}=")]
    return value


def container_path(service: str, host_path: Path) -> Path:
    """Where a file of the repository appears inside ``service``, via its bind mounts."""
    for mount in SERVICES[service]["volumes"]:
        source, target, *_ = mount.split(":")
        if source.startswith("./") and host_path.is_relative_to(ROOT / source):
            return Path(target) / host_path.relative_to(ROOT / source)
    raise AssertionError(f"{host_path} is not mounted into {service}")


def test_tf_serving_configs_parse_and_match_the_compose_mounts():
    models = load_model_config(MODELS_CONFIG)
    assert {m.name for m in models} == {"imdb_lstm", "imdb_simple_rnn"}
    model_mounts = [v for v in SERVICES["tfserving"]["volumes"] if v.startswith("models:")]
    assert model_mounts == ["models:/models:ro"]
    for model in models:
        assert model.base_path == f"/models/{model.name}"
    assert container_path("tfserving", MODELS_CONFIG) == Path(flag("tfserving", "model_config_file"))
    assert container_path("tfserving", BATCHING_FILE) == Path(flag("tfserving", "batching_parameters_file"))
    assert container_path("tfserving", MONITORING_FILE) == Path(flag("tfserving", "monitoring_config_file"))
    assert flag("tfserving", "enable_batching") == "true"
    # The trainer exports XLA-compiled signatures by default.
    assert flag("tfserving", "xla_cpu_compilation_enabled") == "true"
    monitoring = load_monitoring_config(MONITORING_FILE).prometheus_config
    assert monitoring.enable and monitoring.path == "/monitoring/prometheus/metrics"
    batching = load_batching_parameters(BATCHING_FILE)
    assert batching.max_batch_size >= 64 and batching.max_enqueued_batches >= 1
    # The signature compiles batches up to its largest size: larger ones would run in chunks.
    assert batching.max_batch_size == BATCH_BUCKETS[-1]


def test_compose_wiring():
    assert SERVICES["tfserving"]["image"].startswith("tensorflow/serving:2.")  # pinned tag
    assert "ports" not in SERVICES["tfserving"]  # internal network only
    assert SERVICES["tfserving"]["depends_on"]["trainer"]["condition"] == "service_completed_successfully"
    assert SERVICES["gateway"]["depends_on"]["tfserving"]["condition"] == "service_healthy"
    assert "/v1/models/" in " ".join(SERVICES["tfserving"]["healthcheck"]["test"])
    assert "/readyz" in " ".join(SERVICES["gateway"]["healthcheck"]["test"])
    assert SERVICES["gateway"]["environment"]["GATEWAY_MODEL_SERVER"] == "tfserving:8500"
    assert "models:/models:ro" in SERVICES["gateway"]["volumes"]
    # HTTP is published by the edge only; gRPC by the gateway; on loopback unless opted out.
    assert SERVICES["gateway"]["ports"] == ["${SENTIMENT_BIND:-127.0.0.1}:${SENTIMENT_GRPC_PORT:-8600}:8600"]
    assert SERVICES["edge"]["ports"] == ["${SENTIMENT_BIND:-127.0.0.1}:${SENTIMENT_HTTP_PORT:-8000}:8080"]
    assert SERVICES["edge"]["depends_on"]["gateway"]["condition"] == "service_healthy"
    assert SERVICES["edge"]["entrypoint"] == ["sh", str(container_path("edge", ROOT / "deploy" / "edge" / "start.sh"))]
    for name in ("prometheus", "grafana"):
        assert all(port.startswith("127.0.0.1:") for port in SERVICES[name]["ports"])
    for name, service in SERVICES.items():
        # podman's Docker API splits CMD arguments on spaces; CMD-SHELL is read alike everywhere.
        if "healthcheck" in service:
            assert service["healthcheck"]["test"][0] == "CMD-SHELL", name
    for name, service in SERVICES.items():
        user = service.get("user", "")
        assert user and not user.startswith(("0:", "root")), f"{name} must run as non-root"
        assert service["cap_drop"] == ["ALL"] and "no-new-privileges:true" in service["security_opt"], name
    trainer = SERVICES["trainer"]
    assert trainer["build"]["dockerfile"] == "deploy/trainer.Dockerfile"
    assert "models:/models" in trainer["volumes"]


def test_compose_file_follows_the_compose_specification(tmp_path):
    assert DCLINT.exists(), "dclint is installed by `make test` (npm)"
    ok = subprocess.run([str(DCLINT), "docker-compose.yml"], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0 and "error" not in ok.stdout, ok.stdout
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  gateway:\n    image: 5\n    restart: sometimes\n")
    bad = subprocess.run([str(DCLINT), str(broken)], capture_output=True, text=True)
    assert bad.returncode != 0 and "invalid-schema" in bad.stdout


def test_prometheus_config_and_rules_pass_promtool():
    promtool = tool("promtool")
    config = subprocess.run([promtool, "check", "config", "deploy/prometheus/prometheus.yml"],
                            cwd=ROOT, capture_output=True, text=True)
    assert config.returncode == 0, config.stdout + config.stderr
    rules = subprocess.run([promtool, "check", "rules", "deploy/prometheus/alerts.yml"],
                           cwd=ROOT, capture_output=True, text=True)
    assert rules.returncode == 0 and "SUCCESS" in rules.stdout, rules.stdout + rules.stderr


def locked_version(package: str) -> str:
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.lower() == package:
            return version
    raise AssertionError(f"{package} is not in requirements.lock")


def test_tf_serving_image_matches_the_locked_tensorflow_minor_version():
    """Models are trained and exported, and the gateway's protos built, with the TensorFlow of
    the image that serves them: a SavedModel is not promised to load in an older runtime."""
    repository, tag = SERVICES["tfserving"]["image"].split(":")
    assert repository == "tensorflow/serving" and tag.count(".") == 2, "pin an exact release tag"
    minor = tag.rsplit(".", 1)[0]
    for package in ("tensorflow", "tensorflow-serving-api"):
        assert locked_version(package).rsplit(".", 1)[0] == minor, (
            f"{package} {locked_version(package)} in requirements.lock, {SERVICES['tfserving']['image']} in "
            "docker-compose.yml: keep them on one TensorFlow minor version"
        )


@pytest.mark.parametrize(
    "dockerfile", ["deploy/trainer.Dockerfile", "deploy/gateway.Dockerfile", "deploy/model-server.Dockerfile"]
)
def test_dockerfiles_pass_hadolint(dockerfile):
    result = subprocess.run([tool("hadolint"), dockerfile], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / dockerfile).read_text()
    assert "USER 10001:10001" in text
    # The base is a build argument defaulting to the official image; tests pass a local one.
    assert "ARG BASE_IMAGE=python:3.11-slim" in text and "FROM ${BASE_IMAGE}" in text


def dashboard_queries() -> dict[str, str]:
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/sentiment.json").read_text())
    return {f"panel_{panel['id']}_{target['refId']}": target["expr"]
            for panel in dashboard["panels"] for target in panel["targets"]}


def exported_sample_names() -> set[str]:
    """Every sample name the gateway's (its prediction log's too) and the model server's metrics export."""
    from prometheus_client.metrics import MetricWrapperBase

    from serving.gateway.observability import metrics as gateway_metrics
    from serving.model_server import metrics as model_server_metrics
    from serving.predictions_log import metrics as prediction_log_metrics

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {family.name + suffix
            for module in (gateway_metrics, model_server_metrics, prediction_log_metrics)
            for metric in vars(module).values() if isinstance(metric, MetricWrapperBase)
            for family in metric.describe() for suffix in suffixes[family.type]}


def test_grafana_provisioning_points_at_prometheus():
    datasource = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_dashboard_queries_parse_and_name_only_exported_metrics(tmp_path):
    """promtool parses every panel's query (as a recording rule); every metric a panel or
    an alert names is one the services export."""
    queries = dashboard_queries()
    rules = tmp_path / "dashboard-rules.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:{name}", "expr": expr} for name, expr in queries.items()]}]}))
    checked = subprocess.run([tool("promtool"), "check", "rules", str(rules)], capture_output=True, text=True)
    assert checked.returncode == 0 and f"{len(queries)} rules found" in checked.stdout, checked.stdout + checked.stderr
    alerts = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())["groups"][0]["rules"]
    named = set()
    for expr in [*queries.values(), *(rule["expr"] for rule in alerts)]:
        named |= set(re.findall(r"(?<![\w:])((?:sentiment_|:tensorflow:)[\w:]+)", expr))
    assert named and not named - exported_sample_names(), named - exported_sample_names()


def test_alert_rules_pass_their_promtool_unit_tests():
    result = subprocess.run([tool("promtool"), "test", "rules", "deploy/prometheus/alerts.test.yml"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (ROOT / "deploy/prometheus/alerts.test.yml").read_text()))
    alerts = {rule["alert"] for rule in yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())["groups"][0]["rules"]}
    assert alerts - tested <= {"GatewayDown", "SlowRequests"}, alerts - tested


def test_real_prometheus_scrapes_the_gateway(gateway, model_server, tmp_path):
    requests.post(f"{gateway.url}/v1/sentiment", json={"text": "A fine film"}, timeout=10)
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["rule_files"] = [str(ROOT / "deploy/prometheus/alerts.yml")]
    local = {"gateway": f"127.0.0.1:{gateway.port}", "tfserving": f"127.0.0.1:{model_server.rest_port}"}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [local[job["job_name"]]]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=(tmp_path / "prometheus.log").open("wb"), stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        def targets_up():
            targets = requests.get(f"{api}/targets", timeout=2).json()["data"]["activeTargets"]
            return {t["labels"]["job"] for t in targets if t["health"] == "up"} == {"gateway", "tfserving"}

        wait_until(targets_up, 60, "Prometheus targets up")

        def queried():
            result = requests.get(f"{api}/query", params={"query": 'sentiment_requests_total{route="/v1/sentiment"}'},
                                  timeout=2).json()["data"]["result"]
            return result and float(result[0]["value"][1]) >= 1

        wait_until(queried, 30, "gateway metric in Prometheus")
    finally:
        process.terminate()
        process.wait(20)


def test_the_edge_refuses_the_same_bodies_as_the_gateway():
    config = "".join(path.read_text() for path in (ROOT / "deploy" / "edge").glob("*.conf"))
    (megabytes,) = re.findall(r"^\s*client_max_body_size (\d+)m;", config, re.M)
    limit = Settings().max_body_bytes
    assert int(megabytes) * 1024 * 1024 == limit
    assert f"larger than {limit} bytes" in config  # the edge's own 413 body
    # Bodies beyond a small buffer go to temporary files under the prefix, not into memory.
    assert int(re.search(r"^\s*client_body_buffer_size (\d+)k;", config, re.M).group(1)) <= 64
    assert re.search(r"^\s*client_body_temp_path client-body-temp;", config, re.M)
    assert "proxy_request_buffering on;" in config
