"""This project beside what a user would pick instead: KServe's Python model server and
Ray Serve, serving the same exported version with the project's tokenizer.

    python -m benchmarks.peers --models-dir models --out .bench/peers.json

One run, one stack at a time on an otherwise idle machine: `make run`'s stack (through
the nginx edge, and on the gateway's own port), KServe (`kserve.Model`, 1 and 2 workers)
and Ray Serve (`@serve.batch`, 1 and 2 replicas, two batch waits), each peer in a virtual environment of its
own (`.bench-venvs/`, created on first use). The same ~230-word review per request, `hey`
with 1 and 64 clients; CPU per request of every process of each stack, and the peak of
their summed resident memory. Also TensorFlow's own CPU for one single-review call, the
floor of the model server's cost.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from benchmarks import results as results_file
from benchmarks.__main__ import bench_hey
from benchmarks.arguments import benchmark_parser
from benchmarks.peers.environments import environment
from benchmarks.peers.process_tree import StackMeter, stack_pids
from benchmarks.stack import latest_version
from harness.local_stack import local_stack
from harness.processes import ROOT, free_port, responds, wait_until

MODEL = "lstm"
REVIEW_WORDS = (220, 240)  # the length of the review every request carries
CLIENTS = (1, 64)
# TensorFlow's thread pools (intra-op, inter-op): 0 is its default (one thread per core).
TENSORFLOW_POOLS = ((0, 0), (1, 1), (2, 2))
KSERVE_WORKERS = (1, 2)
RAY_SETTINGS = ((1, 10), (2, 10), (2, 2))  # (replicas, batch wait ms): Ray's default wait, and a short one


@dataclass
class Target:
    """One way in to a running stack: the URL and body `hey` sends."""
    stack: str
    setting: str
    url: str
    body: dict


def project_role(command: str) -> str:
    for marker, role in (("nginx", "edge"), ("serving.gateway.api.http_server", "gateway"),
                         ("serving.gateway.api.grpc_server", "gateway_grpc"),
                         ("serving.model_server", "model_server")):
        if marker in command:
            return role
    return "other"


def peer_role(command: str) -> str:
    return "peer"


def app_deployed(routes_url: str) -> Callable[[], bool]:
    """A `wait_until` check: Ray Serve's proxy lists the application's route."""
    return lambda: bool(requests.get(routes_url, timeout=1).json())


def pick_review(data: Path) -> str:
    from training.dataset import load_imdb

    for text in load_imdb(data).test.sample(2000, seed=11).texts:
        if REVIEW_WORDS[0] <= len(text.split()) <= REVIEW_WORDS[1]:
            return text
    raise SystemExit(f"no test review of {REVIEW_WORDS[0]}-{REVIEW_WORDS[1]} words in {data}")


def tensorflow_costs(version_dir: Path, review: str) -> list[dict]:
    """TensorFlow's own CPU for one single-review call, with its default thread pools and
    with small ones, each in a fresh process (the pools are fixed when TensorFlow starts)."""
    costs = []
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as review_file:
        review_file.write(review)
        review_file.flush()
        for intra, inter in TENSORFLOW_POOLS:
            measured = subprocess.run(
                [sys.executable, "-m", "benchmarks.peers.tensorflow_cost", str(version_dir), review_file.name,
                 "--intra", str(intra), "--inter", str(inter)],
                cwd=ROOT, capture_output=True, text=True, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
            costs.append({"intra_op_threads": intra, "inter_op_threads": inter,
                          **json.loads(measured.stdout.splitlines()[-1])})
    return costs


def stop_session(process: subprocess.Popen) -> None:
    """SIGTERM to the stack's session and its descendants, then SIGKILL to what is left."""
    pids = stack_pids(process.pid)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        pass
    for pid in stack_pids(process.pid) + pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


@contextmanager
def peer(command: list[str], ready: Callable[[], bool], log: Path) -> Iterator[subprocess.Popen]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "RAY_USAGE_STATS_ENABLED": "0"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                               stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        def started() -> bool:
            if process.poll() is not None:
                raise SystemExit(f"{command[2]} exited with {process.returncode}: see {log}")
            return ready()

        wait_until(started, 300, f"{command[2]} ({log})")
        yield process
    finally:
        stop_session(process)


def measure(targets: list[Target], meter: StackMeter, duration: float) -> list[dict]:
    rows = []
    for clients in CLIENTS:
        for target in targets:
            print(f"== {target.stack} ({target.setting}), {clients} client(s)", flush=True)
            row = bench_hey(target.url, target.body, clients, duration, target.stack, MODEL, cpu=meter.cpu_seconds)
            row["setting"] = target.setting
            row["cpu_ms_per_request"]["stack"] = round(sum(
                ms for role, ms in row["cpu_ms_per_request"].items() if role != "load_generator"), 3)
            rows.append(row)
    for row in rows:
        row["peak_rss_mib"] = round(meter.memory.peak_mib, 1)
    return rows


def run_project(models_dir: Path, review: str, duration: float, work: Path) -> list[dict]:
    run_dir = work / "project"
    run_dir.mkdir()
    with local_stack(models_dir, run_dir) as stack:
        meter = StackMeter(stack.process.pid, project_role)
        body = {"text": review, "model": MODEL}
        try:
            return measure([
                Target("this project, through the edge", "make run", f"{stack.edge}/v1/sentiment", body),
                Target("this project, gateway port", "make run", f"{stack.gateway}/v1/sentiment", body),
            ], meter, duration)
        finally:
            meter.stop()


def run_peer(name: str, command: Callable[[int], list[str]], url: Callable[[int], str],
             ready: Callable[[int], Callable[[], bool]],
             body: dict, setting: str, duration: float, work: Path) -> list[dict]:
    port = free_port()
    with peer(command(port), ready(port), work / re.sub(r"\W+", "-", f"{name} {setting}.log")) as process:
        meter = StackMeter(process.pid, peer_role)
        try:
            return measure([Target(name, setting, url(port), body)], meter, duration)
        finally:
            meter.stop()


def main() -> None:
    parser = benchmark_parser("benchmarks.peers", __doc__, "peers.json", duration=10.0)
    parser.add_argument("--venvs", type=Path, default=Path(".bench-venvs"), help="the peers' environments")
    args = parser.parse_args()
    models_dir = args.models_dir.resolve()
    version_dir = latest_version(models_dir, "imdb_lstm")
    kserve = environment("kserve", args.venvs.resolve()) / "python"
    ray = environment("ray", args.venvs.resolve()) / "python"
    review = pick_review(args.data)
    work = Path(tempfile.mkdtemp(prefix="peers-"))

    tensorflow = tensorflow_costs(version_dir, review)
    rows = run_project(models_dir, review, args.duration, work)
    for workers in KSERVE_WORKERS:
        rows += run_peer(
            "KServe", lambda port: [str(kserve), "-m", "benchmarks.peers.kserve_server", "--version-dir",
                                    str(version_dir), "--http_port", str(port), "--workers", str(workers)],
            lambda port: f"http://127.0.0.1:{port}/v1/models/{MODEL}:predict",
            lambda port: responds(f"http://127.0.0.1:{port}/v1/models/{MODEL}"),
            {"instances": [review]}, f"{workers} worker(s)", args.duration, work)
    for replicas, wait_ms in RAY_SETTINGS:
        rows += run_peer(
            "Ray Serve", lambda port: [str(ray), "-m", "benchmarks.peers.ray_server", "--version-dir",
                                       str(version_dir), "--port", str(port), "--replicas", str(replicas),
                                       "--batch-wait", str(wait_ms / 1000)],
            lambda port: f"http://127.0.0.1:{port}/",
            lambda port: app_deployed(f"http://127.0.0.1:{port}/-/routes"),
            {"text": review}, f"{replicas} replica(s), batches of <= 64 waiting <= {wait_ms} ms",
            args.duration, work)

    results_file.save(args.out, {
        "model": MODEL, "version": int(version_dir.name), "review_words": len(review.split()), "cores": len(os.sched_getaffinity(0)),
        "duration_s": args.duration, "tensorflow_cpu_ms_single_review": tensorflow,
        "peers": {"kserve": (Path(__file__).parent / "kserve.txt").read_text().strip(),
                  "ray": (Path(__file__).parent / "ray.txt").read_text().strip()},
        "rows": rows,
    })
    from benchmarks.peers.report import render
    print(render(results_file.load(args.out)))
    print(f"logs in {work}")


if __name__ == "__main__":
    main()
