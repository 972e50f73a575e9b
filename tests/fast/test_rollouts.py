"""Rollout documents, the canary split and the candidate's rollback judgement, in process."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytest

from serving.gateway.data_plane import PredictRequest
from serving.gateway.routing.rollouts import (
    CANARY,
    PINNED,
    STABLE,
    CandidateHealth,
    RollbackRule,
    Rollout,
    RolloutError,
    Router,
    canary_draw,
    load_document,
    parse_rollouts,
)
from serving.gateway.watched_file import CHECK_SECONDS

MODELS = {"lstm": "imdb_lstm", "simple_rnn": "imdb_simple_rnn"}


def parse(text: str) -> dict[str, Rollout]:
    return parse_rollouts(load_document(text, "test"), MODELS, "test")


def test_a_full_document_is_read_with_numbers_and_labels():
    rollouts = parse("""
lstm: {stable: 1, candidate: 2, canary_percent: 20, shadow_percent: 50,
       rollback: {window_seconds: 30, min_requests: 5, max_error_rate: 0.1, max_p99_seconds: 0.5,
                  max_disagreement_rate: 0.3}}
simple_rnn: {stable: stable, candidate: canary, canary_percent: 5}
""")
    assert rollouts["lstm"] == Rollout(1, 2, 20.0, 50.0, RollbackRule(30.0, 5, 0.1, 0.5, 0.3))
    assert rollouts["simple_rnn"] == Rollout("stable", "canary", 5.0, 0.0, RollbackRule())
    assert parse("") == {} and parse("{}") == {}


@pytest.mark.parametrize("text, fragment", [
    ("[1, 2]", "must map model names"),
    ("bert: {stable: 1}", "bert: not a served model"),
    ("lstm: {candidate: 2}", "'stable' is required"),
    ("lstm: {stable: 1, canary_percent: 10}", "need a 'candidate'"),
    ("lstm: {stable: 1, candidate: 1}", "the same version"),
    ("lstm: {stable: 0}", "lstm.stable must be a positive version number"),
    ("lstm: {stable: true}", "lstm.stable must be a version number or a version label"),
    ("lstm: {stable: 1, candidate: 2, canary_percent: 101}", "canary_percent must be from 0 to 100"),
    ("lstm: {stable: 1, candidate: 2, shadow_percent: '10'}", "shadow_percent must be a number"),
    ("lstm: {stable: 1, weight: 3}", "unknown field(s) weight"),
    ("lstm: {stable: 1, rollback: {min_requests: 0}}", "min_requests must be a whole number"),
    ("lstm: {stable: 1, rollback: {max_error_rate: 2}}", "max_error_rate must be from 0 to 1"),
    ("lstm: {stable: 1, rollback: {window: 2}}", "unknown field(s) window"),
    ("lstm: [", "not valid YAML"),
])
def test_a_bad_document_is_refused_with_the_place_named(text, fragment):
    with pytest.raises(RolloutError) as error:
        parse(text)
    assert fragment in str(error.value)


def test_the_draw_is_sticky_per_request_id_and_spread_evenly():
    assert canary_draw("lstm", "client-42") == canary_draw("lstm", "client-42")
    draws = [canary_draw("lstm", f"id-{n}") for n in range(10_000)]
    assert all(0 <= draw < 100 for draw in draws)
    below = sum(draw < 20 for draw in draws)
    assert abs(below - 2000) < 4 * math.sqrt(10_000 * 0.2 * 0.8)  # binomial, 4 standard deviations


def test_routes_follow_the_rollout_and_pinned_requests_never_move():
    router = Router(MODELS, inline="lstm: {stable: 1, candidate: 2, canary_percent: 30}")
    routes = [router.route("lstm", None, f"id-{n}") for n in range(3000)]
    canary = sum(route.arm == CANARY for route in routes)
    assert abs(canary - 900) < 4 * math.sqrt(3000 * 0.3 * 0.7)
    assert {route.version for route in routes if route.arm == CANARY} == {2}
    assert {route.version for route in routes if route.arm == STABLE} == {1}
    assert router.route("lstm", 2, "id-1").arm == PINNED and router.route("lstm", 1, None).version == 1
    assert router.route("simple_rnn", None, "id-1") == router.route("simple_rnn", None, None)  # no rollout: newest
    assert router.route("simple_rnn", None, None).version is None


def test_shadow_copies_the_share_of_stable_requests():
    router = Router(MODELS, inline="lstm: {stable: 1, candidate: 2, shadow_percent: 25}")
    routes = [router.route("lstm", None, None) for _ in range(4000)]
    assert {route.arm for route in routes} == {STABLE}
    shadowed = sum(route.shadow == 2 for route in routes)
    assert abs(shadowed - 1000) < 4 * math.sqrt(4000 * 0.25 * 0.75)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_health_judges_only_with_enough_calls_in_the_window():
    clock = Clock()
    health = CandidateHealth(RollbackRule(window_seconds=10, min_requests=10, max_error_rate=0.2), clock)
    for _ in range(9):
        assert health.record_call(False, 0.01) is None  # 9 failures, but too few calls to judge
    clock.now = 11  # they leave the window
    for _ in range(8):
        assert health.record_call(True, 0.01) is None
    assert health.record_call(False, 0.01) is None and health.record_call(False, 0.01) is None  # 2/10 = 0.2
    assert health.record_call(False, 0.01) == "error_rate"  # 3/11


def test_health_judges_p99_latency_and_disagreement():
    slow = CandidateHealth(RollbackRule(min_requests=100, max_p99_seconds=0.5))
    for index in range(100):
        reason = slow.record_call(True, 0.9 if index < 2 else 0.1)
    assert reason == "p99_latency"  # 2 of 100 calls are slow: the 99th percentile is slow
    fine = CandidateHealth(RollbackRule(min_requests=100, max_p99_seconds=0.5))
    assert [fine.record_call(True, 0.9 if index == 0 else 0.1) for index in range(100)][-1] is None
    split = CandidateHealth(RollbackRule(min_requests=4, max_disagreement_rate=0.25))
    assert [split.record_comparison(agreed) for agreed in (True, False, True, True)][-1] is None
    assert split.record_comparison(False) == "disagreement_rate"  # 2/5


def test_a_rollback_stops_the_candidate_until_the_rollout_changes(tmp_path: Path):
    file = tmp_path / "rollouts.yaml"
    file.write_text("lstm: {stable: 1, candidate: 2, canary_percent: 100, rollback: {min_requests: 3}}")
    clock = Clock()
    router = Router(MODELS, file=file, clock=clock)
    assert router.route("lstm", None, None).arm == CANARY
    for _ in range(3):
        router.record_call("lstm", 2, False, 0.01)
    assert router.rolled_back("lstm") == "error_rate"
    assert router.route("lstm", None, None) == router.route("lstm", None, "x") and router.route("lstm", None, None).version == 1
    router.record_call("lstm", 3, False, 0.01)  # a report for another candidate changes nothing
    file.write_text("lstm: {stable: 1, candidate: 2, canary_percent: 50, rollback: {min_requests: 3}}")
    os.utime(file, ns=(time.time_ns(), time.time_ns() + 10**9))
    clock.now += CHECK_SECONDS  # the file is looked at once a second
    assert router.rolled_back("lstm") is None
    assert {router.route("lstm", None, f"id-{n}").arm for n in range(50)} == {STABLE, CANARY}


def test_a_bad_edit_keeps_the_previous_rollout(tmp_path: Path, caplog):
    from prometheus_client import REGISTRY

    def reloads(outcome: str) -> float:
        return REGISTRY.get_sample_value("sentiment_rollout_reloads_total", {"outcome": outcome}) or 0

    file = tmp_path / "rollouts.yaml"
    file.write_text("lstm: {stable: 1, candidate: 2, canary_percent: 100}")
    clock = Clock()
    router = Router(MODELS, file=file, clock=clock)
    errors = reloads("error")
    file.write_text("lstm: {stable: 1, candidate: 2, canary_percent: 300}")  # the same size
    os.utime(file, ns=(time.time_ns(), time.time_ns() + 10**9))  # and maybe the same mtime: set one
    clock.now += CHECK_SECONDS
    assert router.route("lstm", None, None).arm == CANARY
    assert "rollouts not reloaded, the previous ones stay" in caplog.text and "canary_percent" in caplog.text
    clock.now += CHECK_SECONDS
    assert router.route("lstm", None, None).arm == CANARY
    assert reloads("error") == errors + 1  # the bad document is not read again until the file changes
    with pytest.raises(RolloutError, match="canary_percent"):
        Router(MODELS, file=file)  # at start-up a bad document is an error
    with pytest.raises(RolloutError, match="not both"):
        Router(MODELS, file=file, inline="{}")


def test_a_missing_file_means_no_rollout_until_it_appears_and_is_looked_at_once_a_second(tmp_path: Path):
    file = tmp_path / "rollouts.yaml"
    clock = Clock()
    router = Router(MODELS, file=file, clock=clock)
    assert router.route("lstm", None, None).version is None
    file.write_text("lstm: {stable: 3}")
    clock.now = 0.9 * CHECK_SECONDS
    assert router.route("lstm", None, None).version is None  # not looked at again yet
    clock.now = CHECK_SECONDS
    assert router.route("lstm", None, None).version == 3
    file.unlink()
    clock.now = 2 * CHECK_SECONDS
    assert router.route("lstm", None, None).version is None


# -- the service with a rollout, in front of the in-memory model client ---------------------


@pytest.fixture
def rolled_out(settings, model_client):
    from serving.gateway.data_plane import DataPlane

    def make(document: str) -> DataPlane:
        return DataPlane(settings.with_changes(rollouts=document), client=model_client)

    return make


def wait_for(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_canary_answers_its_share_and_says_so(rolled_out):
    service = rolled_out("lstm: {stable: 1, candidate: 2, canary_percent: 100}")
    (canary,) = service.predict(PredictRequest(["good film"], request_id="a"))
    assert (canary.arm, canary.model_version) == (CANARY, 2)
    (pinned,) = service.predict(PredictRequest(["good film"], version=1, request_id="a"))
    assert (pinned.arm, pinned.model_version) == (PINNED, 1)
    (other,) = service.predict(PredictRequest(["good film"], model="simple_rnn"))
    assert (other.arm, other.model_version) == (STABLE, 2)  # no rollout: the newest version


def test_labels_are_resolved_by_the_model_server(rolled_out, model_client):
    model_client.labels = {"stable": 1, "canary": 2}
    service = rolled_out("lstm: {stable: stable, candidate: canary, canary_percent: 0}")
    assert service.predict(PredictRequest(["good film"]))[0].model_version == 1
    model_client.labels = {"stable": 2, "canary": 1}
    service.versions.forget("imdb_lstm")
    assert service.predict(PredictRequest(["good film"]))[0].model_version == 2


def test_a_failing_candidate_is_answered_by_stable_and_rolled_back(rolled_out, model_client):
    model_client.versions["imdb_lstm"][2] = "UNLOADING"
    service = rolled_out("lstm: {stable: 1, candidate: 2, canary_percent: 100, rollback: {min_requests: 5}}")
    answers = [service.predict(PredictRequest(["good film"])) for _ in range(8)]
    assert {(p.arm, p.model_version) for (p,) in answers} == {(STABLE, 1)}
    assert service.rollouts.rolled_back("lstm") == "error_rate"
    tried = [version for _, version, _ in model_client.calls]
    assert tried == [1] * 8  # version 2 was never available, so no call reached it


def test_shadow_copies_reach_the_candidate_without_changing_answers(rolled_out, model_client):
    service = rolled_out("lstm: {stable: 1, candidate: 2, shadow_percent: 100}")
    answers = [service.predict(PredictRequest(["good film", "awful plot"])) for _ in range(5)]
    assert all([(p.arm, p.model_version) for p in answer] == [(STABLE, 1)] * 2 for answer in answers)
    wait_for(lambda: sum(version == 2 for _, version, _ in model_client.calls) == 5)
    assert service.rollouts.rolled_back("lstm") is None


def test_shadow_copies_are_dropped_when_every_slot_is_busy(rolled_out, model_client, settings):
    import threading

    from prometheus_client import REGISTRY

    release = threading.Event()
    original = model_client.predict

    def slow_candidate(model_name, version, ids, timeout=None, request_ids=()):
        if version == 2:
            release.wait(5)
        return original(model_name, version, ids, timeout, request_ids)

    model_client.predict = slow_candidate
    service = rolled_out("lstm: {stable: 1, candidate: 2, shadow_percent: 100}")
    def dropped() -> float:
        return REGISTRY.get_sample_value("sentiment_shadow_requests_total", {"model": "lstm", "outcome": "dropped"}) or 0

    before = dropped()
    started = time.perf_counter()
    for _ in range(settings.shadow_max_in_flight + 3):
        service.predict(PredictRequest(["good film"]))
    assert time.perf_counter() - started < 2  # the user's answers never wait for the copies
    assert dropped() - before == 3
    release.set()
