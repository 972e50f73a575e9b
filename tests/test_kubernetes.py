"""deploy/kubernetes, validated offline: kustomize renders it, every object passes the
Kubernetes JSON schemas, and it agrees with docker-compose.yml and the gateway.
Plus the piece of it that runs here: gRPC round robin over two model servers."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import requests
import yaml

from harness.processes import (
    BATCHING_FILE,
    MODELS_CONFIG,
    MONITORING_FILE,
    ROOT,
    start_gateway,
    start_model_server,
)
from serving.gateway.access.api_keys import parse_key_file
from serving.gateway.observability import metrics
from serving.gateway.routing.rollouts import load_document, parse_rollouts
from serving.gateway.settings import Settings

KUBERNETES = ROOT / "deploy" / "kubernetes"
KUSTOMIZATIONS = {
    "base": KUBERNETES,
    "prometheus-operator": KUBERNETES / "overlays" / "prometheus-operator",
    "autoscale-in-flight": KUBERNETES / "overlays" / "autoscale-in-flight",
    "tls": KUBERNETES / "overlays" / "tls",
}
# The oldest version kubectl here speaks and the newest schemas the validator ships.
KUBERNETES_VERSIONS = ("1.32.0", "1.37.0")
# Custom resources of the Prometheus Operator: no schema in Kubernetes' own set.
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def compose_default(value: object) -> str:
    """A compose value with ``${VARIABLE:-default}`` read as its default."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(value))
PROJECT_VERSION = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)


def render(path) -> list[dict]:
    result = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {name: render(path) for name, path in KUSTOMIZATIONS.items()}


@pytest.fixture(scope="module")
def base(rendered) -> dict[tuple[str, str], dict]:
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in rendered["base"]}


def containers(base, name: str) -> dict[str, dict]:
    return {c["name"]: c for c in base[("Deployment", name)]["spec"]["template"]["spec"]["containers"]}


def env(container: dict) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


def test_every_kustomization_renders_offline(rendered):
    kinds = {obj["kind"] for obj in rendered["base"]}
    assert {"Namespace", "PersistentVolumeClaim", "Job", "Deployment", "Service", "ConfigMap",
            "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
    namespaced = [obj for obj in rendered["base"] if obj["kind"] != "Namespace"]
    assert all(obj["metadata"].get("namespace") == "sentiment" for obj in namespaced)
    assert {obj["kind"] for obj in rendered["prometheus-operator"]} - kinds == CUSTOM_KINDS


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_objects_validate_against_the_kubernetes_schemas(rendered, version):
    for name, objects in rendered.items():
        for obj in objects:
            if obj["kind"] in CUSTOM_KINDS:
                continue
            kubernetes_validate.validate(obj, version, strict=True)  # raises, naming the field
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                  "spec": {"replicas": "two", "selector": {}, "template": {}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, version, strict=True)


def test_pods_run_non_root_read_only_without_capabilities(base):
    for (kind, name), obj in base.items():
        if kind not in ("Deployment", "Job"):
            continue
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, container["name"]
            assert security["readOnlyRootFilesystem"] is True, container["name"]
            assert security["capabilities"]["drop"] == ["ALL"], container["name"]
            assert "memory" in container["resources"]["limits"], container["name"]
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), container["name"]
    assert base[("Namespace", "sentiment")]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_images_and_tf_serving_flags_match_docker_compose(base):
    (tfserving,) = containers(base, "tfserving").values()
    assert tfserving["image"] == COMPOSE["tfserving"]["image"]
    assert tfserving["args"] == COMPOSE["tfserving"]["command"]
    assert [p["containerPort"] for p in tfserving["ports"]] == [int(p) for p in COMPOSE["tfserving"]["expose"]]
    # The readiness probe is the compose healthcheck's command (Compose writes $ as $$).
    compose_check = COMPOSE["tfserving"]["healthcheck"]["test"]
    assert compose_check[0] == "CMD-SHELL"
    assert tfserving["readinessProbe"]["exec"]["command"] == ["/bin/sh", "-c", compose_check[1].replace("$$", "$")]
    mounts = {m["mountPath"]: m for m in tfserving["volumeMounts"]}
    assert mounts["/models"]["readOnly"] and mounts["/config"]["readOnly"]
    trainer = base[("Job", "trainer")]["spec"]["template"]["spec"]["containers"][0]
    for container in [*containers(base, "gateway").values(), trainer]:
        assert container["image"].rsplit(":", 1)[1] == PROJECT_VERSION


def test_the_edge_is_the_compose_edge(base):
    (nginx,) = containers(base, "edge").values()
    assert nginx["image"] == COMPOSE["edge"]["image"]
    assert nginx["command"] == COMPOSE["edge"]["entrypoint"]
    (config_map,) = [obj for (kind, name), obj in base.items() if kind == "ConfigMap" and name.startswith("edge-config")]
    edge_files = [path for path in (ROOT / "deploy" / "edge").iterdir() if path.name != "kustomization.yaml"]
    assert config_map["data"] == {path.name: path.read_text() for path in edge_files}
    assert nginx["ports"][0]["containerPort"] == int(COMPOSE["edge"]["ports"][0].rsplit(":", 1)[1])
    # Only the edge and Prometheus reach the HTTP server; gRPC stays open.
    policy = base[("NetworkPolicy", "gateway")]["spec"]
    http_rule, grpc_rule = policy["ingress"]
    assert [peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in http_rule["from"]] == [
        "edge", "prometheus"]
    assert http_rule["ports"] == [{"port": 8000, "protocol": "TCP"}]
    assert "from" not in grpc_rule and grpc_rule["ports"] == [{"port": 8600, "protocol": "TCP"}]


def test_tf_serving_config_files_are_the_ones_compose_mounts(base):
    (config_map,) = [
        obj for (kind, name), obj in base.items() if kind == "ConfigMap" and name.startswith("tfserving-config")
    ]
    files = (MODELS_CONFIG, BATCHING_FILE, MONITORING_FILE)
    assert config_map["data"] == {path.name: path.read_text() for path in files}
    volumes = base[("Deployment", "tfserving")]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "config", "configMap": {"name": config_map["metadata"]["name"]}} in volumes


def test_gateway_ports_probes_and_environment_match_what_the_gateway_reads(base, gateway):
    http, grpc_container = containers(base, "gateway")["http"], containers(base, "gateway")["grpc"]
    compose_env = {name: compose_default(value) for name, value in COMPOSE["gateway"]["environment"].items()}
    settings_fields = {Settings.variable(name) for name in Settings.model_fields}
    for variables in (env(http), env(grpc_container), compose_env):
        unknown = {name for name in variables if name.startswith("GATEWAY_")} - settings_fields
        assert not unknown, f"variables the gateway does not read: {unknown}"
        Settings.from_env({name: str(value) for name, value in variables.items()})  # every value parses
    assert env(http)["GATEWAY_HTTP_PORT"] == str(http["ports"][0]["containerPort"])
    assert env(grpc_container)["GATEWAY_GRPC_PORT"] == str(grpc_container["ports"][0]["containerPort"])
    assert {k: v for k, v in compose_env.items() if k != "GATEWAY_MODEL_SERVER"} == {
        k: v for k, v in env(http).items() if k not in ("GATEWAY_MODEL_SERVER", "GATEWAY_MODEL_SERVER_LB_POLICY")
    }
    assert env(http)["GATEWAY_MODEL_SERVER"] == "dns:///tfserving:8500"
    assert env(http)["GATEWAY_MODEL_SERVER_LB_POLICY"] == "round_robin"
    # The probe paths exist in the running gateway and mean what the probes need.
    assert requests.get(f"{gateway.url}{http['livenessProbe']['httpGet']['path']}", timeout=5).status_code == 200
    assert requests.get(f"{gateway.url}{http['readinessProbe']['httpGet']['path']}", timeout=5).json()["ready"]
    assert grpc_container["readinessProbe"]["grpc"]["port"] == grpc_container["ports"][0]["containerPort"]


def assert_mounted_like_compose(base, volume: dict, variable: str, compose_folder: str) -> None:
    """``volume`` is in the gateway pod, mounted read-only in both containers at the folder of
    the file ``variable`` names, which compose mounts from ``compose_folder``."""
    pod = base[("Deployment", "gateway")]["spec"]["template"]["spec"]
    assert volume in pod["volumes"]
    for container in pod["containers"]:
        folder = str(Path(env(container)[variable]).parent)
        assert {"name": volume["name"], "mountPath": folder, "readOnly": True} in container["volumeMounts"]
    compose_file = Path(COMPOSE["gateway"]["environment"][variable])
    assert f"{compose_folder}:{compose_file.parent}:ro" in COMPOSE["gateway"]["volumes"]


def test_the_rollout_file_is_the_one_compose_mounts_and_reaches_both_gateway_containers(base):
    shipped = ROOT / "deploy" / "rollouts" / "rollouts.yaml"
    parse_rollouts(load_document(shipped.read_text(), str(shipped)), Settings().models, str(shipped))  # it parses
    config_map = base[("ConfigMap", "gateway-rollouts")]  # no name hash: edits reach running pods
    assert config_map["data"] == {"rollouts.yaml": shipped.read_text()}
    assert_mounted_like_compose(base, {"name": "rollouts", "configMap": {"name": "gateway-rollouts"}},
                                "GATEWAY_ROLLOUTS_FILE", "${SENTIMENT_ROLLOUTS_DIR:-./deploy/rollouts}")


def test_api_keys_are_on_by_default_from_the_file_compose_mounts(base):
    shipped = ROOT / "deploy" / "keys" / "api-keys"
    assert parse_key_file(shipped.read_text(), str(shipped)) == []  # no key: every prediction route answers 401
    secret = base[("Secret", "gateway-api-keys")]  # no name hash: edits reach running pods
    assert base64.b64decode(secret["data"]["api-keys"]).decode() == shipped.read_text()
    assert_mounted_like_compose(base, {"name": "api-keys", "secret": {"secretName": "gateway-api-keys"}},
                                "GATEWAY_API_KEYS_FILE", "${SENTIMENT_API_KEYS_DIR:-./deploy/keys}")


def test_rollouts_keep_capacity_and_termination_outlasts_the_drain(base):
    for name in ("gateway", "tfserving", "edge"):
        deployment = base[("Deployment", name)]["spec"]
        assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        assert base[("PodDisruptionBudget", name)]["spec"]["minAvailable"] >= 1
        assert deployment["replicas"] >= 2
    gateway_pod = base[("Deployment", "gateway")]["spec"]["template"]["spec"]
    pre_stop = max(int(c["lifecycle"]["preStop"]["exec"]["command"][1]) for c in gateway_pod["containers"])
    settings = Settings.from_env(env(gateway_pod["containers"][0]))
    drain = max(settings.http_graceful_seconds, settings.grpc_shutdown_grace_seconds)
    assert gateway_pod["terminationGracePeriodSeconds"] > pre_stop + drain
    assert base[("Deployment", "tfserving")]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 10
    service = base[("Service", "tfserving")]["spec"]
    assert service["clusterIP"] == "None"  # headless: the gateway balances per call


def test_only_the_gateway_and_prometheus_reach_tf_serving(base):
    policy = base[("NetworkPolicy", "tfserving")]["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "tfserving"}
    allowed = {(rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"], rule["ports"][0]["port"])
               for rule in policy["ingress"]}
    assert allowed == {("gateway", 8500), ("prometheus", 8501)}
    assert base[("Service", "tfserving")]["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_monitoring_matches_the_compose_deployment(rendered, base):
    operator = {(obj["kind"], obj["metadata"]["name"]): obj for obj in rendered["prometheus-operator"]}
    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    assert operator[("PrometheusRule", "sentiment")]["spec"] == alerts
    (dashboard,) = [obj for (kind, name), obj in operator.items()
                    if kind == "ConfigMap" and name.startswith("grafana-dashboard-sentiment")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["namespace"] == "sentiment"
    assert dashboard["data"] == {"sentiment.json": (ROOT / "deploy/grafana/dashboards/sentiment.json").read_text()}
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    for job in scrape:
        monitor = operator[("ServiceMonitor", job["job_name"])]["spec"]
        assert monitor["endpoints"][0]["path"] == job["metrics_path"]
        annotations = base[("Deployment", job["job_name"])]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/path"] == job["metrics_path"]


def test_in_flight_autoscaling_uses_a_metric_the_gateway_exports(rendered):
    hpa = {(o["kind"], o["metadata"]["name"]): o for o in rendered["autoscale-in-flight"]}[
        ("HorizontalPodAutoscaler", "gateway")]
    (pods_metric,) = [m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert pods_metric["metric"]["name"] == metrics.IN_FLIGHT.describe()[0].name
    adapter_values = KUBERNETES / "overlays" / "autoscale-in-flight" / "prometheus-adapter-values.yaml"
    adapter = yaml.safe_load(adapter_values.read_text())
    assert metrics.IN_FLIGHT.describe()[0].name in adapter["rules"]["custom"][0]["seriesQuery"]


def predict_count(model_server) -> float:
    text = requests.get(f"{model_server.rest}/monitoring/prometheus/metrics", timeout=5).text
    match = re.search(r':tensorflow:serving:request_count_total\{model_name="imdb_lstm",status="OK"\} (\S+)', text)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize("policy, spread", [("round_robin", True), ("pick_first", False)])
def test_round_robin_spreads_gateway_calls_over_model_servers(models_dir, tmp_path, policy, spread):
    """What the headless Service gives the gateway in a cluster: several addresses behind one target."""
    servers = [start_model_server(models_dir, tmp_path) for _ in range(2)]
    target = "ipv4:" + ",".join(server.address for server in servers)
    gateway = start_gateway(target, models_dir, tmp_path, GATEWAY_MODEL_SERVER_LB_POLICY=policy)
    try:
        before = [predict_count(server) for server in servers]
        for _ in range(40):
            response = requests.post(f"{gateway.url}/v1/sentiment", json={"text": "A fine film"}, timeout=10)
            assert response.status_code == 200, response.text
        calls = [predict_count(server) - start for server, start in zip(servers, before)]
        assert sum(calls) == 40
        if spread:
            assert min(calls) >= 12, calls  # about half each
        else:
            assert sorted(calls) == [0, 40]
    finally:
        gateway.process.stop()
        for server in servers:
            server.process.stop()


def test_the_tls_overlay_is_the_compose_tls_file(rendered):
    tls = {(obj["kind"], obj["metadata"]["name"]): obj for obj in rendered["tls"]}
    compose = yaml.safe_load((ROOT / "deploy" / "tls" / "compose.tls.yml").read_text())["services"]
    secret_volume = {"name": "tls", "secret": {"secretName": "sentiment-tls"}}
    edge_pod = tls[("Deployment", "edge")]["spec"]["template"]["spec"]
    (nginx,) = edge_pod["containers"]
    edge_env = env(nginx)
    assert secret_volume in edge_pod["volumes"]
    assert {"name": "tls", "mountPath": edge_env["EDGE_TLS_DIR"], "readOnly": True} in nginx["volumeMounts"]
    assert edge_env["EDGE_TLS_DIR"] == compose["edge"]["environment"]["EDGE_TLS_DIR"]
    assert edge_env["EDGE_HTTP"] == compose_default(compose["edge"]["environment"]["EDGE_HTTP"])
    https_port = {port["name"]: port["containerPort"] for port in nginx["ports"]}["https"]
    assert f":{https_port}" == compose["edge"]["ports"][0][-len(f":{https_port}"):]
    service_ports = {port["name"]: port for port in tls[("Service", "edge")]["spec"]["ports"]}
    assert service_ports["https"]["port"] == int(edge_env["EDGE_HTTPS_PORT"]) == 443
    assert service_ports["http"]["port"] == 80  # still open: redirects, and probes
    gateway_pod = tls[("Deployment", "gateway")]["spec"]["template"]["spec"]
    assert secret_volume in gateway_pod["volumes"]
    grpc = {c["name"]: c for c in gateway_pod["containers"]}["grpc"]
    settings = Settings.from_env(env(grpc))
    for variable in ("GATEWAY_GRPC_TLS_CERT", "GATEWAY_GRPC_TLS_KEY"):
        assert env(grpc)[variable] == compose["gateway"]["environment"][variable]
    assert {"name": "tls", "mountPath": str(settings.grpc_tls_cert.parent), "readOnly": True} in grpc["volumeMounts"]
    assert "grpc" not in grpc["readinessProbe"]  # the kubelet's gRPC probe cannot speak TLS


def test_the_namespace_denies_by_default_and_mounts_no_api_token(base):
    deny = base[("NetworkPolicy", "default-deny")]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"} and "ingress" not in deny
    for (kind, name), obj in base.items():
        if kind == "NetworkPolicy":  # Prometheus is let in from its own namespace only, never from any
            for rule in obj["spec"].get("ingress", []):
                for peer in rule.get("from", []):
                    assert peer.get("namespaceSelector", {"matchLabels": 1}) != {}, name
        if kind in ("Deployment", "Job"):
            assert obj["spec"]["template"]["spec"]["automountServiceAccountToken"] is False, name
    egress = {name: [rule["ports"] for rule in base[("NetworkPolicy", name)]["spec"]["egress"]]
              for name in ("gateway", "edge", "trainer")}
    assert egress == {"gateway": [[{"port": 8500, "protocol": "TCP"}]], "edge": [[{"port": 8000, "protocol": "TCP"}]],
                      "trainer": [[{"port": 443, "protocol": "TCP"}]]}
