"""deploy/kubernetes, validated offline: kustomize renders it, alone and with its components
in every combination and order, every object passes the Kubernetes JSON schemas, and it
agrees with docker-compose.yml and the gateway. Plus the pieces of it that run here: gRPC
round robin over two model servers, and kubectl creating a training run from the CronJob."""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import subprocess
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
PRODUCTION = ("tls", "autoscale-in-flight", "prometheus-operator")  # what overlays/production lists
COMPONENTS = (*PRODUCTION, "trainer-data")
# Every combination of the serving components, each in every order (16 renderings); the
# trainer's, which touches only the CronJob, alone and before and after all of them.
STACKS = [*(order for size in range(len(PRODUCTION) + 1) for order in itertools.permutations(PRODUCTION, size)),
          ("trainer-data",), ("trainer-data", *PRODUCTION), (*PRODUCTION, "trainer-data")]
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


def render_stack(components: tuple[str, ...], folder: Path) -> list[dict]:
    """The base with ``components`` in this order, as an overlay of one's own would list them."""
    folder.mkdir()
    def relative(path: Path) -> str:  # kustomize refuses absolute paths
        return os.path.relpath(path, folder)
    (folder / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [relative(KUBERNETES / "base")],
        "components": [relative(KUBERNETES / "components" / name) for name in components]}))
    return render(folder)


def by_name(objects: list[dict]) -> dict[tuple[str, str], dict]:
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}


@pytest.fixture(scope="module")
def stacks(tmp_path_factory) -> dict[tuple[str, ...], list[dict]]:
    folder = tmp_path_factory.mktemp("stacks")
    return {order: render_stack(order, folder / ("-".join(order) or "none")) for order in STACKS}


@pytest.fixture(scope="module")
def rendered(stacks) -> dict[str, list[dict]]:
    """What an operator applies: the plain default, the production example, one component each."""
    return {"base": render(KUBERNETES), "production": render(KUBERNETES / "overlays" / "production"),
            **{name: stacks[(name,)] for name in COMPONENTS}}


@pytest.fixture(scope="module")
def base(rendered) -> dict[tuple[str, str], dict]:
    return by_name(rendered["base"])


def pod_spec(obj: dict) -> dict | None:
    """The pod template's spec of a workload, else None."""
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"] if obj["kind"] in ("Deployment", "Job") else None


def containers(base, name: str) -> dict[str, dict]:
    return {c["name"]: c for c in base[("Deployment", name)]["spec"]["template"]["spec"]["containers"]}


def env(container: dict) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


def test_every_kustomization_renders_offline(rendered):
    kinds = {obj["kind"] for obj in rendered["base"]}
    assert {"Namespace", "PersistentVolumeClaim", "CronJob", "Deployment", "Service", "ConfigMap",
            "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
    for name, objects in rendered.items():
        namespaced = [obj for obj in objects if obj["kind"] != "Namespace"]
        assert all(obj["metadata"].get("namespace") == "sentiment" for obj in namespaced), name
        assert all(obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "sentiment" for obj in objects), name
    assert {obj["kind"] for obj in rendered["prometheus-operator"]} - kinds == CUSTOM_KINDS


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_objects_validate_against_the_kubernetes_schemas(rendered, stacks, version):
    # Each distinct object once: most are the same in every rendering.
    distinct = {json.dumps(obj, sort_keys=True): obj for objects in [*rendered.values(), *stacks.values()]
                for obj in objects if obj["kind"] not in CUSTOM_KINDS}
    for obj in distinct.values():
        kubernetes_validate.validate(obj, version, strict=True)  # raises, naming the field
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                  "spec": {"replicas": "two", "selector": {}, "template": {}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, version, strict=True)


def test_pods_run_non_root_read_only_without_capabilities(base):
    for (kind, name), obj in base.items():
        pod = pod_spec(obj)
        if pod is None:
            continue
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
    trainer = pod_spec(base[("CronJob", "trainer")])["containers"][0]
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


def test_api_keys_are_on_by_default_and_compose_reads_them_outside_the_tracked_files(base):
    shipped = ROOT / "deploy" / "keys" / "api-keys"
    assert parse_key_file(shipped.read_text(), str(shipped)) == []  # no key: every prediction route answers 401
    secret = base[("Secret", "gateway-api-keys")]  # no name hash: edits reach running pods
    assert base64.b64decode(secret["data"]["api-keys"]).decode() == shipped.read_text()
    assert_mounted_like_compose(base, {"name": "api-keys", "secret": {"secretName": "gateway-api-keys"}},
                                "GATEWAY_API_KEYS_FILE", "${SENTIMENT_API_KEYS_DIR:-./deploy/keys/local}")
    # Compose's default key file is one git ignores: a key line is never one `git add` from a commit.
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "deploy/keys/local/api-keys"], cwd=ROOT,
                             capture_output=True, text=True, timeout=30)
    assert ignored.returncode == 0, ignored.stderr or "deploy/keys/local/api-keys is not ignored by git"


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
    operator = by_name(rendered["prometheus-operator"])
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
    hpa = by_name(rendered["autoscale-in-flight"])[("HorizontalPodAutoscaler", "gateway")]
    (pods_metric,) = [m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert pods_metric["metric"]["name"] == metrics.IN_FLIGHT.describe()[0].name
    adapter_values = KUBERNETES / "components" / "autoscale-in-flight" / "prometheus-adapter-values.yaml"
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


def test_the_tls_component_is_the_compose_tls_file(rendered):
    tls = by_name(rendered["tls"])
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
        if pod_spec(obj) is not None:
            assert pod_spec(obj)["automountServiceAccountToken"] is False, name
    egress = {name: [rule["ports"] for rule in base[("NetworkPolicy", name)]["spec"]["egress"]]
              for name in ("gateway", "edge", "trainer")}
    assert egress == {"gateway": [[{"port": 8500, "protocol": "TCP"}]], "edge": [[{"port": 8000, "protocol": "TCP"}]],
                      "trainer": [[{"port": 443, "protocol": "TCP"}]]}


def has_tls(objects: dict) -> bool:
    """The edge serves HTTPS from the Secret and the gateway's gRPC port speaks TLS."""
    edge = pod_spec(objects[("Deployment", "edge")])
    (nginx,) = edge["containers"]
    grpc = {c["name"]: c for c in pod_spec(objects[("Deployment", "gateway")])["containers"]}["grpc"]
    mounted = {"name": "tls", "secret": {"secretName": "sentiment-tls"}} in edge["volumes"] and any(
        mount["name"] == "tls" and mount["mountPath"] == env(nginx).get("EDGE_TLS_DIR") for mount in nginx["volumeMounts"])
    https = 443 in [port["port"] for port in objects[("Service", "edge")]["spec"]["ports"]]
    return mounted and https and "GATEWAY_GRPC_TLS_CERT" in env(grpc)


def scales_on_in_flight(objects: dict) -> bool:
    hpa = objects[("HorizontalPodAutoscaler", "gateway")]["spec"]["metrics"]
    names = [m["pods"]["metric"]["name"] if m["type"] == "Pods" else m["resource"]["name"] for m in hpa]
    assert "cpu" in names, names  # CPU stays a reason to scale either way
    return metrics.IN_FLIGHT.describe()[0].name in names


def has_operator_objects(objects: dict) -> bool:
    return {("ServiceMonitor", "gateway"), ("ServiceMonitor", "tfserving"), ("PrometheusRule", "sentiment")} <= set(objects)


def trains_from_mounted_data(objects: dict) -> bool:
    pod = pod_spec(objects[("CronJob", "trainer")])
    (trainer,) = pod["containers"]
    mounted = {"name": "data", "mountPath": "/data", "readOnly": True} in trainer["volumeMounts"]
    data_arg = trainer["args"][-2:] == ["--data", "/data/aclImdb_v1.tar.gz"]
    assert mounted == data_arg == (("PersistentVolumeClaim", "training-data") in objects)
    # Egress on 443 exactly when the trainer downloads.
    assert (("NetworkPolicy", "trainer") in objects) != mounted
    return mounted


FEATURES: dict[str, Callable[[dict], bool]] = {
    "tls": has_tls, "autoscale-in-flight": scales_on_in_flight,
    "prometheus-operator": has_operator_objects, "trainer-data": trains_from_mounted_data,
}


def test_components_stack_in_any_order_and_each_feature_survives(stacks):
    assert set(FEATURES) == set(COMPONENTS) == {path.name for path in (KUBERNETES / "components").iterdir()}
    for order, objects in stacks.items():
        present = {name for name, has in FEATURES.items() if has(by_name(objects))}
        assert present == set(order), f"components {order} render the features {sorted(present)}"
        # The order changes nothing: the same objects as the components in their canonical order.
        canonical = tuple(name for name in COMPONENTS if name in order)
        assert sorted(objects, key=json.dumps) == sorted(stacks[canonical], key=json.dumps), order


def test_the_production_overlay_is_the_three_features_combined(rendered, stacks):
    assert sorted(rendered["production"], key=json.dumps) == sorted(stacks[PRODUCTION], key=json.dumps)


def test_applying_never_starts_a_training_run(rendered, stacks):
    for name, objects in [*rendered.items(), *stacks.items()]:
        kinds = [obj["kind"] for obj in objects]
        assert "Job" not in kinds and "Pod" not in kinds, name  # nothing that publishes a version on apply
        (trainer,) = [obj for obj in objects if obj["kind"] == "CronJob"]
        assert trainer["spec"]["suspend"] is True and trainer["spec"]["concurrencyPolicy"] == "Forbid", name


class StandInApiServer:
    """Just enough of the Kubernetes API for `kubectl create job --from=cronjob/...`: discovery
    and one CronJob, so that kubectl itself builds the Job, offline."""

    def __init__(self, cron_job: dict) -> None:
        metadata = cron_job["metadata"]
        served = {**cron_job, "metadata": {**metadata, "uid": "00000000-0000-0000-0000-000000000001"}}
        resources = [{"name": "cronjobs", "singularName": "cronjob", "namespaced": True, "kind": "CronJob",
                      "verbs": ["get"]},
                     {"name": "jobs", "singularName": "job", "namespaced": True, "kind": "Job", "verbs": ["create"]}]
        batch = {"groupVersion": "batch/v1", "version": "v1"}
        self.documents = {
            "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
            "/apis": {"kind": "APIGroupList", "apiVersion": "v1",
                      "groups": [{"name": "batch", "versions": [batch], "preferredVersion": batch}]},
            "/apis/batch/v1": {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "batch/v1",
                               "resources": resources},
            f"/apis/batch/v1/namespaces/{metadata['namespace']}/cronjobs/{metadata['name']}": served,
        }
        documents = self.documents

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                body = documents.get(self.path.partition("?")[0])
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(body or {"kind": "Status", "apiVersion": "v1", "code": 404}).encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def __enter__(self) -> str:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def without_nulls(value: object) -> object:
    """``value`` less its null fields: kubectl's client-side output carries
    ``creationTimestamp: null``, which the API server fills in."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    return [without_nulls(item) for item in value] if isinstance(value, list) else value


def documented_training_command() -> str:
    (command,) = set(re.findall(r"^kubectl -n sentiment create job --from=cronjob/trainer .+$",
                                (ROOT / "docs" / "deployment.md").read_text(), re.M))
    return command


@pytest.mark.parametrize("components", [(), ("trainer-data",)])
def test_the_documented_training_command_creates_a_valid_job(stacks, tmp_path, components):
    cron_job = by_name(stacks[components])[("CronJob", "trainer")]
    with StandInApiServer(cron_job) as server:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "stand-in",
            "clusters": [{"name": "stand-in", "cluster": {"server": server}}],
            "contexts": [{"name": "stand-in", "context": {"cluster": "stand-in", "user": "stand-in"}}],
            "users": [{"name": "stand-in", "user": {}}]}))
        made = subprocess.run(["sh", "-c", documented_training_command() + " --dry-run=client -o yaml"],
                              env={**os.environ, "KUBECONFIG": str(kubeconfig)}, capture_output=True, text=True,
                              timeout=60)
    assert made.returncode == 0, made.stderr
    job = without_nulls(yaml.safe_load(made.stdout))
    assert job["kind"] == "Job" and re.fullmatch(r"trainer-\d+", job["metadata"]["name"])  # a new name each run
    assert job["metadata"]["namespace"] == "sentiment"
    assert job["spec"] == cron_job["spec"]["jobTemplate"]["spec"]
    # The NetworkPolicy "trainer" selects the run's pods by this label.
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "trainer"
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(job, version, strict=True)
