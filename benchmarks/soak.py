"""Soak run: a steady mix of valid and invalid requests, both models, HTTP and gRPC.

    python -m benchmarks.soak --models-dir models --duration 300 --rate 40

Starts the model server and the gateway (HTTP server + gRPC server) itself, sends
``--rate`` requests per second (open loop: the schedule does not wait for answers)
for ``--duration`` seconds, and reports per time window: requests, unexpected
statuses, latency of the valid requests, and the resident memory of every service
process. Writes the report as Markdown and JSON; exits 1 when a check fails:
an unexpected status, a transport error, or RSS growth above ``--max-rss-growth-mib``
between the end of the first window (warmed up) and the end of the run.
"""

from __future__ import annotations

import argparse
import random
import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import requests

from benchmarks import results as results_file
from benchmarks.stack import Stack, child_pids
from harness.processes import IMDB_TARBALL


@dataclass(frozen=True)
class Kind:
    """One kind of request in the mix, with the status it must get."""

    name: str
    weight: float
    expected: str
    valid: bool


KINDS = [
    Kind("http lstm 1 text", 30, "200", True),
    Kind("http simple_rnn 8 texts", 15, "200", True),
    Kind("grpc lstm 1 text", 15, "OK", True),
    Kind("grpc simple_rnn 4 texts", 10, "OK", True),
    Kind("http empty text", 5, "400", False),
    Kind("http invalid JSON", 4, "400", False),
    Kind("http unknown model", 3, "404", False),
    Kind("http 65 texts", 3, "413", False),
    Kind("http oversized body", 2, "413", False),
    Kind("grpc no texts", 5, "INVALID_ARGUMENT", False),
    Kind("grpc unknown version", 4, "NOT_FOUND", False),
    Kind("grpc malformed message", 4, "INVALID_ARGUMENT", False),
]


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    started: float  # seconds since the start of the run
    seconds: float
    status: str


class Senders:
    """One callable per request kind, each returning the status it got."""

    def __init__(self, stack: Stack, texts: list[str]) -> None:
        self._url = f"{stack.http_url}/v1/sentiment"
        self._texts = texts
        self._local = threading.local()
        self._channel = grpc.insecure_channel(stack.grpc_target)
        self._raw_predict = self._channel.unary_unary("/sentiment.v1.SentimentService/Predict")
        from serving.client import SentimentClient

        self._client = SentimentClient(stack.grpc_target)
        oversized = b'{"text": "' + b"a" * 1_100_000 + b'"}'
        self.by_kind: dict[str, Callable[[], str]] = {
            "http lstm 1 text": lambda: self._post(json={"text": self._pick(1)[0], "model": "lstm"}),
            "http simple_rnn 8 texts": lambda: self._post(json={"texts": self._pick(8), "model": "simple_rnn"}),
            "grpc lstm 1 text": lambda: self._grpc(self._pick(1), model="lstm"),
            "grpc simple_rnn 4 texts": lambda: self._grpc(self._pick(4), model="simple_rnn"),
            "http empty text": lambda: self._post(json={"text": " "}),
            "http invalid JSON": lambda: self._post(data=b'{"text": ', headers={"Content-Type": "application/json"}),
            "http unknown model": lambda: self._post(json={"text": "fine", "model": "gru"}),
            "http 65 texts": lambda: self._post(json={"texts": ["fine"] * 65}),
            "http oversized body": lambda: self._post(data=oversized, headers={"Content-Type": "application/json"}),
            "grpc no texts": lambda: self._grpc([]),
            "grpc unknown version": lambda: self._grpc(["fine"], version=999),
            "grpc malformed message": self._malformed,
        }

    def _pick(self, count: int) -> list[str]:
        return random.sample(self._texts, count)

    def _post(self, **kwargs) -> str:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return str(session.post(self._url, timeout=10, **kwargs).status_code)

    def _grpc(self, texts: list[str], **kwargs) -> str:
        try:
            self._client.predict(texts, timeout=10, **kwargs)
        except grpc.RpcError as error:
            return error.code().name
        return "OK"

    def _malformed(self) -> str:
        try:
            self._raw_predict(b"\x0a\x03\xff\xfe\xfd", timeout=10)
        except grpc.RpcError as error:
            return error.code().name
        return "OK"

    def close(self) -> None:
        self._client.close()
        self._channel.close()


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1)) / 1024


def service_pids(stack: Stack) -> dict[str, list[int]]:
    gateway = stack.gateway.process.pid
    return {
        "model server": [stack.model_server.process.pid],
        "gateway (HTTP server + workers)": [gateway, *child_pids(gateway)],
        "gRPC gateway": [stack.grpc_gateway.process.pid],
    }


def run(stack: Stack, texts: list[str], duration: float, rate: float, window: float, seed: int) -> dict:
    random.seed(seed)
    senders = Senders(stack, texts)
    weights = [k.weight for k in KINDS]
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    memory: list[dict] = []

    def send(kind: Kind, started_at: float) -> None:
        started = time.monotonic()
        try:
            status = senders.by_kind[kind.name]()
        except Exception as error:  # a transport error is reported, never raised
            status = f"exception: {type(error).__name__}"
        outcome = Outcome(kind, started_at, time.monotonic() - started, status)
        with lock:
            outcomes.append(outcome)

    def sample_memory(at: float) -> None:
        memory.append({"at_s": round(at, 1), **{
            name: round(sum(rss_mib(pid) for pid in pids), 1) for name, pids in service_pids(stack).items()
        }})

    begin = time.monotonic()
    sample_memory(0.0)
    next_window = window
    with ThreadPoolExecutor(64) as pool:
        for index in range(int(duration * rate)):
            at = index / rate
            delay = begin + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if at >= next_window:
                sample_memory(at)
                next_window += window
            pool.submit(send, random.choices(KINDS, weights)[0], at)
    sample_memory(time.monotonic() - begin)
    senders.close()
    return summarize(outcomes, memory, window, duration, rate)


def summarize(outcomes: list[Outcome], memory: list[dict], window: float, duration: float, rate: float) -> dict:
    windows = []
    for start in np.arange(0, duration, window):
        inside = [o for o in outcomes if start <= o.started < start + window]
        valid_ms = np.array([o.seconds * 1000 for o in inside if o.kind.valid]) if inside else np.array([])
        windows.append({
            "from_s": float(start), "requests": len(inside),
            "unexpected": sum(o.status != o.kind.expected for o in inside),
            "valid_p50_ms": float(np.percentile(valid_ms, 50)) if valid_ms.size else None,
            "valid_p99_ms": float(np.percentile(valid_ms, 99)) if valid_ms.size else None,
        })
    unexpected = Counter(f"{o.kind.name}: {o.status}" for o in outcomes if o.status != o.kind.expected)
    by_kind = Counter(o.kind.name for o in outcomes)
    return {
        "duration_s": duration, "rate_per_s": rate, "requests": len(outcomes),
        "by_kind": dict(by_kind), "unexpected": dict(unexpected), "windows": windows, "memory_mib": memory,
    }


def rss_growth(report: dict) -> dict[str, float]:
    """Each service's RSS growth from the end of the first window (warmed up) to the end, MiB."""
    warmed, last = report["memory_mib"][1], report["memory_mib"][-1]
    return {service: last[service] - warmed[service] for service in last if service != "at_s"}


def passed(report: dict) -> bool:
    return not report["unexpected"] and all(g <= report["max_rss_growth_mib"] for g in rss_growth(report).values())


def render(report: dict) -> str:
    lines = [
        f"Soak: {report['duration_s']:.0f} s at {report['rate_per_s']:.0f} requests/s, "
        f"{report['requests']} requests ({', '.join(f'{n} {k}' for k, n in report['by_kind'].items())}).",
        "",
        "| window from s | requests | unexpected | valid p50 ms | valid p99 ms |",
        "|---|---|---|---|---|",
    ]
    for w in report["windows"]:
        p50 = "-" if w["valid_p50_ms"] is None else f"{w['valid_p50_ms']:.1f}"
        p99 = "-" if w["valid_p99_ms"] is None else f"{w['valid_p99_ms']:.1f}"
        lines.append(f"| {w['from_s']:.0f} | {w['requests']} | {w['unexpected']} | {p50} | {p99} |")
    growth = rss_growth(report)
    lines += ["", "| at s | " + " | ".join(f"{s} RSS MiB" for s in growth) + " |", "|---|" + "---|" * len(growth)]
    for sample in report["memory_mib"]:
        lines.append(f"| {sample['at_s']:.0f} | " + " | ".join(f"{sample[s]:.1f}" for s in growth) + " |")
    lines += [
        "",
        "Unexpected statuses: " + (", ".join(f"{k} x{n}" for k, n in report["unexpected"].items()) or "none") + ".",
        f"RSS growth after the first window (bound {report['max_rss_growth_mib']:.0f} MiB): "
        + ", ".join(f"{s} {g:+.1f} MiB" for s, g in growth.items()) + ".",
        f"Verdict: {'PASS' if passed(report) else 'FAIL'}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--data", type=Path, default=IMDB_TARBALL)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds [300]")
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second [40]")
    parser.add_argument("--window", type=float, default=30.0, help="report window, seconds [30]")
    parser.add_argument("--max-rss-growth-mib", type=float, default=32.0, help="per service [32]")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=results_file.default_path("soak"),
                        help="writes <out>.md and <out>.json")
    args = parser.parse_args()

    from training.dataset import load_imdb

    texts = load_imdb(args.data).test.sample(512, seed=5).texts
    log_dir = Path(tempfile.mkdtemp(prefix="soak-"))
    stack = Stack(args.models_dir.resolve(), log_dir, http_workers=2)
    try:
        report = run(stack, texts, args.duration, args.rate, args.window, args.seed)
    finally:
        stack.stop()
    report["max_rss_growth_mib"] = args.max_rss_growth_mib
    text = render(report)
    results_file.save(args.out.with_suffix(".json"), report)
    args.out.with_suffix(".md").write_text(
        "# Soak report\n\nCommand: `python -m benchmarks.soak "
        f"--duration {args.duration:.0f} --rate {args.rate:.0f}` (models: {args.models_dir.name}/)\n\n{text}\n"
    )
    print(text)
    print(f"\nwritten to {args.out.with_suffix('.md')} and .json (service logs in {log_dir})")
    raise SystemExit(0 if passed(report) else 1)


if __name__ == "__main__":
    main()
