"""Attacks on the gateway itself (its gRPC port, and HTTP requests that cost it work) while a
bystander with a key of its own is served: `make run`'s stack with keys on (conftest.py)."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_text import metric

from harness import gateway_attacks
from harness.attack_report import ProcessUsage
from harness.bystander import Bystander, alive, assert_served, baseline
from harness.edge_attacks import attacker
from harness.processes import wait_until
from serving.client import SentimentClient

pytestmark = pytest.mark.attack

REVIEW = "A wonderful, moving film with a clever script and fine acting."
GRPC_WORKERS = 64  # GATEWAY_GRPC_MAX_WORKERS: the threads a stalled call would once have held
# Bystander requests per measurement (20 a second): enough that a p99 is not one request's hiccup.
SAMPLES = 120
ATTACK_SECONDS = SAMPLES / 20


def rss_kib(pid: int) -> int:
    return int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()[0])


@pytest.fixture
def grpc_target(attacked_stack) -> str:
    return f"127.0.0.1:{attacked_stack.stack.grpc_port}"


@pytest.fixture
def grpc_pid(attacked_stack) -> int:
    (pid,) = attacked_stack.stack.pids_of("serving.gateway.api.grpc_server")
    return pid


@pytest.fixture
def grpc_bystander(attacked_stack, grpc_target) -> Iterator[Callable[[], None]]:
    """One review to the gRPC API with the bystander's key; raises on any failure."""
    with SentimentClient(grpc_target, timeout=5, api_key=attacked_stack.bystander_key, max_attempts=1) as client:
        def send() -> None:
            (prediction,) = client.predict([REVIEW])
            assert prediction.label == "positive"

        yield send


def health_answers(target: str) -> float:
    """Seconds the gRPC health check takes to answer SERVING."""
    with grpc.insecure_channel(target) as channel:
        started = time.perf_counter()
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        return time.perf_counter() - started


def grpc_in_flight(attacked_stack) -> float:
    text = requests.get(f"{attacked_stack.gateway}/metrics", timeout=10).text
    return metric(text, "sentiment_in_flight_requests", transport="grpc")


def test_calls_without_a_key_are_refused_before_their_message_is_read(attacked_stack, grpc_target, grpc_bystander,
                                                                     grpc_pid, attack_report):
    """200 calls that never send their message and bring no key: each is refused at once with
    UNAUTHENTICATED, holding no thread, and the bystander and the health check are served."""
    alone = baseline(grpc_bystander, SAMPLES / 20)
    with attacker() as pool, Bystander(grpc_bystander) as attacked:
        usage = ProcessUsage(attacked_stack.processes())
        outcomes = pool.submit(gateway_attacks.stalled_calls, grpc_target, 200, None, 200, 1).result(60)
        assert health_answers(grpc_target) < 0.5
        wait_until(lambda: attacked.count >= SAMPLES, 30, "the bystander under attack")
    attack_report.record("200 gRPC calls without a key that never send their message", alone, attacked.stats(),
                         outcomes, usage.stop())
    assert outcomes == {"UNAUTHENTICATED": 200}
    assert_served(alone, attacked.stats())
    alive([grpc_pid])


def test_a_key_holder_stalling_calls_holds_no_worker_thread(attacked_stack, grpc_target, grpc_bystander, grpc_pid,
                                                            attack_report):
    """A valid key, within its rate, holds 100 calls that never send their message open, more than
    the server's 64 worker threads: they wait on the event loop (for at most the message timeout,
    set long in this tier), and everyone else is served meanwhile."""
    alone = baseline(grpc_bystander, SAMPLES / 20)
    with attacker() as pool:
        usage = ProcessUsage(attacked_stack.processes())
        stalling = pool.submit(gateway_attacks.stalled_calls, grpc_target, 100, attacked_stack.attacker_key, 32,
                               ATTACK_SECONDS + 0.5)
        wait_until(lambda: grpc_in_flight(attacked_stack) >= GRPC_WORKERS + 10, 20, "the stalled calls open")
        with Bystander(grpc_bystander) as attacked:
            wait_until(lambda: attacked.count >= SAMPLES, 30, "the bystander under attack")
            assert health_answers(grpc_target) < 0.5
        outcomes = stalling.result(60)
    attack_report.record("100 gRPC calls with a key that never send their message", alone, attacked.stats(),
                         outcomes, usage.stop())
    assert outcomes == {"open": 100}  # held open all along, none refused
    assert_served(alone, attacked.stats())
    alive([grpc_pid])


def test_health_watches_held_open_are_bounded_per_address(attacked_stack, grpc_target, grpc_bystander, grpc_pid,
                                                        attack_report):
    """60 health watches without a key from one address, held open for 6 s: the first 16
    (GATEWAY_GRPC_MAX_PROBE_CALLS_PER_ADDRESS) are served, the rest refused at once with
    RESOURCE_EXHAUSTED, and the bystander is served; once they end, the address may ask again."""
    alone = baseline(grpc_bystander, SAMPLES / 20)
    with attacker() as pool, Bystander(grpc_bystander) as attacked:
        usage = ProcessUsage(attacked_stack.processes())
        outcomes = pool.submit(gateway_attacks.health_watches, grpc_target, 60, ATTACK_SECONDS).result(60)
        wait_until(lambda: attacked.count >= SAMPLES, 30, "the bystander under attack")
    attack_report.record("60 gRPC health watches without a key, held open 6 s", alone, attacked.stats(), outcomes,
                         usage.stop())
    assert outcomes == {"open": 16, "RESOURCE_EXHAUSTED": 44}, outcomes

    def answered_again() -> bool:  # the watches' places are given back as their cancellations arrive
        try:
            return health_answers(grpc_target) < 0.5
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            return False

    wait_until(answered_again, 10, "a health check once the watches ended")
    assert_served(alone, attacked.stats())
    alive([grpc_pid])


def test_oversized_messages_without_a_key_are_not_read(attacked_stack, grpc_target, grpc_bystander, grpc_pid,
                                                       attack_report):
    """32 messages of 4 MiB, with no key: refused (UNAUTHENTICATED, before the message is read,
    or RESOURCE_EXHAUSTED) without the gRPC server growing by their size."""
    alone = baseline(grpc_bystander, SAMPLES / 20)
    before = rss_kib(grpc_pid)
    with attacker() as pool, Bystander(grpc_bystander) as attacked:
        usage = ProcessUsage(attacked_stack.processes())
        refusals = pool.submit(gateway_attacks.oversized_messages, grpc_target, 32, 4 << 20, 2).result(120)
        wait_until(lambda: attacked.count >= SAMPLES, 30, "the bystander under attack")
    attack_report.record("32 gRPC messages of 4 MiB without a key", alone, attacked.stats(), refusals, usage.stop())
    assert set(refusals) <= {"UNAUTHENTICATED", "RESOURCE_EXHAUSTED"} and sum(refusals.values()) == 32, refusals
    grown_mib = (rss_kib(grpc_pid) - before) / 1024
    assert grown_mib < 32, f"the gRPC server grew {grown_mib:.0f} MiB for 128 MiB of refused messages"
    assert_served(alone, attacked.stats())
    alive([grpc_pid])


def test_a_v2_raw_input_of_a_million_empty_texts_is_refused_after_the_first_few(attacked_stack, grpc_target,
                                                                               grpc_bystander, grpc_pid, attack_report):
    """ModelInfer with ~1 MiB of zero-length BYTES elements, 100 a second (over three times the key's rate)
    for 6 s with the attacker's key: RESOURCE_EXHAUSTED (too many texts, or the key's rate), quickly."""
    alone = baseline(grpc_bystander, SAMPLES / 20)
    with attacker() as pool, Bystander(grpc_bystander) as attacked:
        usage = ProcessUsage(attacked_stack.processes())
        answers = pool.submit(gateway_attacks.v2_empty_texts, grpc_target, attacked_stack.attacker_key,
                              ATTACK_SECONDS, 1, 100).result(60)
        wait_until(lambda: attacked.count >= SAMPLES, 30, "the bystander under attack")
    attack_report.record("V2 ModelInfer of 262,000 empty texts, 100/s for 6 s, with a key", alone, attacked.stats(),
                         Counter(details.split(":")[0] for _, details, _ in answers), usage.stop())
    assert {code for code, _, _ in answers} == {"RESOURCE_EXHAUSTED"}
    too_many = sorted(seconds for _, details, seconds in answers if details.startswith("too many texts: more than 64"))
    assert too_many and too_many[len(too_many) // 2] < 0.1, too_many[:10]
    assert_served(alone, attacked.stats())
    alive([grpc_pid])


def test_a_readiness_flood_costs_the_model_server_a_status_call_per_model_and_second(attacked_stack, attack_report):
    """/readyz from 4 connections for 6 s through the edge: the gateway answers from its cached
    model states, so the model server sees a bounded number of status calls, and readiness
    floods are held to the edge's per-address rate like any other request."""
    stack = attacked_stack.stack
    alone = baseline(attacked_stack.bystander_send(), SAMPLES / 20)

    def status_calls() -> int:
        return len(re.findall(r"GetModelStatus ", stack.model_server_log.read_text()))

    before = status_calls()
    with attacker() as pool, Bystander(attacked_stack.bystander_send()) as attacked:
        usage = ProcessUsage(attacked_stack.processes())
        started = time.monotonic()
        answered = pool.submit(gateway_attacks.http_flood, stack.edge_port, "GET", "/readyz", None, {},
                               ATTACK_SECONDS, 4).result(60)
        seconds = time.monotonic() - started
    calls = status_calls() - before
    attack_report.record("/readyz from 4 connections for 6 s", alone, attacked.stats(),
                         {**answered, "model-server status calls": calls}, usage.stop())
    # Per gateway process (2 HTTP workers and the gRPC server's health loop) and model, a call
    # a second (GATEWAY_STATUS_CACHE_SECONDS), with the bystander's own look-ups.
    bound = 3 * 2 * (seconds + 1) * 2
    assert answered["200 ok"] > 100 and answered["429 rate_limited"] > answered["200 ok"], answered
    assert set(answered) <= {"200 ok", "429 rate_limited"}, answered
    assert calls <= bound, f"{calls} status calls for {sum(answered.values())} readiness requests (bound {bound:.0f})"
    assert_served(alone, attacked.stats())
    alive(attacked_stack.pids())


def test_an_explanation_flood_from_one_key_is_charged_by_its_rows(attacked_stack, attack_report):
    """A connection asking for explanations of 8 long reviews each (~1,800 model rows, 29
    requests' worth) with one key: each admitted explanation spends about a second of the
    key's rate (30 a second), while the machine explains one in a third of that, so most of
    the flood gets 429 rate_limited; the bystander keeps its latency."""
    stack = attacked_stack.stack
    alone = baseline(attacked_stack.bystander_send(), SAMPLES / 20)
    body = {"texts": [" ".join([REVIEW] * 20)] * 8, "explain": True}
    headers = {"Authorization": f"Bearer {attacked_stack.attacker_key}"}
    with attacker() as pool, Bystander(attacked_stack.bystander_send()) as attacked:
        usage = ProcessUsage(attacked_stack.processes())
        answered = pool.submit(gateway_attacks.http_flood, stack.edge_port, "POST", "/v1/sentiment", body, headers,
                               ATTACK_SECONDS, 1).result(60)
    attack_report.record("explanations of 8 long reviews, one connection for 6 s, one key", alone, attacked.stats(),
                         answered, usage.stop())
    # Charged one request each, the explanations would all be served (the key allows 30 a second).
    assert answered["429 rate_limited"] > 3 * answered["200 ok"] > 0, answered
    assert set(answered) <= {"200 ok", "429 rate_limited"}, answered
    assert_served(alone, attacked.stats())
    alive(attacked_stack.pids())
