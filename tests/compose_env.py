"""An isolated podman + docker-compose environment that runs docker-compose.yml for real.

Everything podman keeps lives under one state folder (``$SENTIMENT_COMPOSE_STATE``,
default ``~/.cache/sentiment-compose-test``): its configuration, image storage,
network configs, volumes and the API socket docker-compose talks to. The tier so
never touches a developer's own podman images, containers or networks, and the
images it builds stay cached between runs.

No registry can be reached here, so what cannot be pulled is made locally from
Debian's packages (mmdebstrap): a Python base for the project's own Dockerfiles
(passed as their ``BASE_IMAGE`` build argument) and a Prometheus image. The
machine's extra CA certificates (an HTTPS proxy re-signs traffic) go into that
local base only, so that pip can install inside builds; production builds start
from the official images and never see them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OVERRIDE_FILE = ROOT / "tests" / "compose" / "docker-compose.test.yml"
TLS_FILE = ROOT / "deploy" / "tls" / "compose.tls.yml"  # HTTPS and gRPC TLS, as users turn them on
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
DEBIAN_SUITE = "bookworm"

# Settings podman needs on this machine kind: crun cannot raise RLIMIT_NOFILE here,
# runc can; there is no systemd, so cgroupfs and file-based events. netavark with
# aardvark-dns, not CNI with dnsname: a container on two networks (the gateway,
# Prometheus) must resolve names of either, as under Docker; with dnsname each
# network's resolver answers "no such name" for the other's.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[network]
network_backend = "netavark"
network_config_dir = "{state}/networks"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{state}/events.log"
tmp_dir = "{state}/tmp"
"""

STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{state}/storage"
runroot = "{state}/run"
"""


def default_state_dir() -> Path:
    explicit = os.environ.get("SENTIMENT_COMPOSE_STATE")
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "sentiment-compose-test"


@dataclass(frozen=True)
class DebianImage:
    """A local image made from Debian packages, tagged by a hash of its recipe."""

    repository: str
    packages: tuple[str, ...]
    hooks: tuple[str, ...] = ()  # mmdebstrap --customize-hook commands
    changes: tuple[str, ...] = ()  # podman import --change instructions
    trusts_extra_ca: bool = False  # for images that fetch over HTTPS during builds

    def recipe(self, extra_ca: Iterable[Path]) -> str:
        cas = sorted(f"{path.name}:{hashlib.sha256(path.read_bytes()).hexdigest()}" for path in extra_ca)
        return repr((DEBIAN_SUITE, self.packages, self.hooks, self.changes, cas))

    def tag(self, extra_ca: Iterable[Path]) -> str:
        digest = hashlib.sha256(self.recipe(extra_ca).encode()).hexdigest()[:12]
        return f"localhost/{self.repository}:{DEBIAN_SUITE}-{digest}"


# Stands in for python:3.11-slim: Debian 12's Python is 3.11 too.
PYTHON_BASE = DebianImage(
    repository="sentiment-test-python",
    packages=("python3", "python3-venv", "ca-certificates"),
    changes=("ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt", 'CMD ["python3"]'),
    trusts_extra_ca=True,
)

# Stands in for prom/prometheus: same binary, run as nobody, data in /prometheus.
PROMETHEUS = DebianImage(
    repository="sentiment-test-prometheus",
    packages=("prometheus",),
    hooks=('mkdir -p "$1/prometheus" && chown 65534:65534 "$1/prometheus"',),
    changes=(
        'ENTRYPOINT ["/usr/bin/prometheus"]',
        "USER 65534:65534",
        "WORKDIR /prometheus",
        "EXPOSE 9090",
    ),
)

# Stands in for nginx: Debian's nginx (1.22) runs the same deploy/edge/start.sh.
NGINX = DebianImage(
    repository="sentiment-test-nginx",
    packages=("nginx",),
    changes=('ENTRYPOINT ["nginx"]', "EXPOSE 8080"),
)


class Podman:
    """podman with this environment's own configuration and storage."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.socket = state / "podman.sock"
        self._service: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CONTAINERS_CONF": str(self.state / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.state / "storage.conf"),
        }

    def configure(self) -> None:
        for folder in ("networks", "tmp", "storage", "run"):
            (self.state / folder).mkdir(parents=True, exist_ok=True)
        (self.state / "containers.conf").write_text(CONTAINERS_CONF.format(state=self.state))
        (self.state / "storage.conf").write_text(STORAGE_CONF.format(state=self.state))

    def __call__(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        result = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} failed ({result.returncode}): {result.stderr[-3000:]}")
        return result

    def unusable_reason(self) -> str | None:
        """Why podman cannot run containers on this machine, or None when it can."""
        if shutil.which("podman") is None:
            return "podman is not installed (`make test-compose` installs it with apt-get)"
        self.configure()
        info = self("info", check=False, timeout=60)
        if info.returncode != 0:
            return f"`podman info` failed: {info.stderr.strip()[-500:]}"
        return None

    def ensure_image(self, image: DebianImage) -> str:
        """Build ``image`` with mmdebstrap unless this recipe is already in storage; return its tag."""
        extra_ca = sorted(EXTRA_CA_DIR.glob("*.crt")) if image.trusts_extra_ca else []
        tag = image.tag(extra_ca)
        if self("image", "exists", tag, check=False).returncode == 0:
            return tag
        hooks = list(image.hooks)
        if extra_ca:
            hooks = [
                f"copy-in {' '.join(map(str, extra_ca))} /usr/local/share/ca-certificates/",
                'chroot "$1" update-ca-certificates',
                *hooks,
            ]
        rootfs = self.state / f"{image.repository}.tar"
        command = [
            "mmdebstrap", "--variant=minbase", f"--include={','.join(image.packages)}",
            *(f"--customize-hook={hook}" for hook in hooks), DEBIAN_SUITE, str(rootfs),
        ]
        try:
            built = subprocess.run(command, capture_output=True, text=True, timeout=900)
            if built.returncode != 0:
                raise RuntimeError(f"mmdebstrap for {tag} failed: {built.stderr[-3000:]}")
            self("import", *(f"--change={change}" for change in image.changes), str(rootfs), tag)
        finally:
            rootfs.unlink(missing_ok=True)
        return tag

    def start_service(self) -> None:
        """The Docker-compatible API that docker-compose talks to."""
        self.socket.unlink(missing_ok=True)
        log = (self.state / "service.log").open("ab")
        self._service = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{self.socket}"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self._service.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"podman system service did not start (log {self.state / 'service.log'})")
            time.sleep(0.1)

    def stop_service(self) -> None:
        if self._service is not None:
            self._service.terminate()
            try:
                self._service.wait(30)
            except subprocess.TimeoutExpired:
                self._service.kill()
                self._service.wait()
            self._service = None


class HealthcheckDriver:
    """Runs each container's healthcheck at the interval its compose file gives.

    podman schedules healthchecks with systemd timers; without systemd nothing runs
    them, and `depends_on: condition: service_healthy` would wait forever. As with
    Docker, the first check runs one interval after the container is first seen, so
    the compose file's interval × retries is the time a service has to become healthy.
    """

    def __init__(self, podman: Podman, project: str, tick: float = 0.5) -> None:
        self._podman = podman
        self._project = project
        self._tick = tick
        self._next_run: dict[str, float] = {}
        self._intervals: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="healthchecks", daemon=True)
        self.errors: list[str] = []

    def __enter__(self) -> HealthcheckDriver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            try:
                for container in self._containers_with_healthchecks():
                    now = time.monotonic()
                    if container not in self._intervals:
                        self._intervals[container] = self._interval(container)
                        self._next_run[container] = now + self._intervals[container]
                    if now >= self._next_run[container]:
                        self._podman("healthcheck", "run", container, check=False, timeout=60)
                        self._next_run[container] = time.monotonic() + self._intervals[container]
            except Exception as error:  # a slow or failed podman call must not end the driver
                self.errors.append(f"{type(error).__name__}: {error}")

    def _containers_with_healthchecks(self) -> list[str]:
        listed = self._podman(
            "ps", "--filter", f"label=com.docker.compose.project={self._project}", "--filter", "status=running",
            "--format", "{{.ID}} {{.Status}}", check=False, timeout=60,
        )
        # The status of a container with a healthcheck ends in (starting), (healthy) or (unhealthy).
        return [line.split()[0] for line in listed.stdout.splitlines() if line.endswith(")")]

    def _interval(self, container: str) -> float:
        inspected = json.loads(self._podman("inspect", container, timeout=60).stdout)[0]
        nanoseconds = (inspected["Config"].get("Healthcheck") or {}).get("Interval") or 30_000_000_000
        return nanoseconds / 1e9


class ComposeProject:
    """docker-compose (the Compose v1 client) against the podman service: the compose file with
    TLS on, and the test override."""

    def __init__(self, podman: Podman, project: str, variables: dict[str, str]) -> None:
        self.podman = podman
        self.project = project
        self.env = {
            **os.environ, **variables,
            "DOCKER_HOST": f"unix://{podman.socket}",
            # Build through the API (podman's buildah), not by calling a `docker` CLI.
            "COMPOSE_DOCKER_CLI_BUILD": "0",
        }

    def __call__(self, *args: str, check: bool = True, timeout: float = 1200) -> subprocess.CompletedProcess:
        command = [
            "docker-compose", "--project-name", self.project,
            "--file", str(ROOT / "docker-compose.yml"), "--file", str(TLS_FILE), "--file", str(OVERRIDE_FILE), *args,
        ]
        result = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"docker-compose {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
            )
        return result

    def container(self, service: str) -> str:
        listed = self.podman(
            "ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}",
        ).stdout.split()
        if len(listed) != 1:
            raise AssertionError(f"expected one {service} container, found {listed}")
        return listed[0]

    def logs(self) -> str:
        """Every container's output, prefixed with its name."""
        names = self.podman(
            "ps", "--all", "--filter", f"label=com.docker.compose.project={self.project}", "--format", "{{.Names}}",
        ).stdout.split()
        lines = []
        for name in names:
            output = self.podman("logs", name, check=False)
            lines += [f"{name} | {line}" for line in (output.stdout + output.stderr).splitlines()]
        return "\n".join(lines)

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes of this project still present."""
        label = f"label=com.docker.compose.project={self.project}"
        return {
            "containers": self.podman("ps", "--all", "--quiet", "--filter", label).stdout.split(),
            "networks": self.podman("network", "ls", "--quiet", "--filter", label).stdout.split(),
            "volumes": self.podman("volume", "ls", "--quiet", "--filter", label).stdout.split(),
        }
