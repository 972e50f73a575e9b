"""Rollouts with real processes: two versions of the small model that answer differently
(``harness.two_versions``), served by the model server; one gateway follows a rollout file
that the tests rewrite."""

from __future__ import annotations

import json
import math
import random
import shutil
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from harness.processes import Gateway, ModelServer, free_port, start_gateway, start_model_server, wait_until
from harness.two_versions import serve_two_versions, slow_to_load
from serving.gateway.routing.rollouts import canary_draw
from serving.predictions_log.writer import FILE_NAME, text_hash
from text_contract.layout import TOKENIZER_FILE

SALT = "test-salt-of-16-chars"
LOG_MAX_BYTES = 8_000
LOG_MAX_FILES = 3
LOADING = {"START", "LOADING"}
# Warmup repeats that keep a version loading for several seconds here (harness.two_versions.slow_to_load).
SLOW_TO_LOAD = 150


def version_state(server: ModelServer, version: int) -> str | None:
    """The model server's state of imdb_lstm ``version``, None while it does not know it."""
    response = requests.get(f"{server.rest}/v1/models/imdb_lstm", timeout=5)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return {int(status["version"]): status["state"] for status in response.json()["model_version_status"]}.get(version)


def samples(text: str) -> list[tuple[str, dict, float]]:
    """(name, labels, value) of every sample of a Prometheus text exposition."""
    return [(sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text) for sample in family.samples]


@dataclass
class Rollouts:
    gateway: Gateway
    server: ModelServer
    file: Path
    served: Path
    log_dir: Path

    def set(self, document: str) -> None:
        """Write the rollout file and wait until the gateway follows it (it looks at the file
        at most once a second, when a prediction asks for a route)."""
        before = self.reloads()
        self.file.write_text(document, encoding="utf-8")

        def followed() -> bool:
            self.predict(["a film"], version=1)
            return self.reloads() != before

        wait_until(followed, 10, "the rollout file re-read")
        assert self.reloads()["error"] == before["error"], "the gateway refused the rollout (see its log)"

    def reloads(self) -> Counter:
        return Counter({labels["outcome"]: value for _, labels, value in self.metrics("sentiment_rollout_reloads_total")})

    def metrics(self, name: str) -> list[tuple[str, dict, float]]:
        text = requests.get(f"{self.gateway.url}/metrics", timeout=10).text
        return [sample for sample in samples(text) if sample[0] == name]

    def predict(self, texts: list[str], version: int | None = None, request_id: str | None = None) -> list[dict]:
        body: dict = {"texts": texts}
        if version is not None:
            body["version"] = version
        headers = {"X-Request-ID": request_id} if request_id else {}
        response = requests.post(f"{self.gateway.url}/v1/sentiment", json=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["predictions"]


@pytest.fixture(scope="module")
def two_versions(models_dir: Path, tmp_path_factory) -> Iterator[tuple[ModelServer, Path]]:
    served = tmp_path_factory.mktemp("two-versions")
    config = serve_two_versions(models_dir / "imdb_lstm" / "1", served)
    # Returns once both versions are AVAILABLE: the newest answers first, the other loads after.
    server = start_model_server(served, tmp_path_factory.mktemp("model-server-logs"), config=config,
                                wait_for=["imdb_lstm"], xla=False)
    assert (version_state(server, 1), version_state(server, 2)) == ("AVAILABLE", "AVAILABLE")
    yield server, served
    server.process.stop()


@pytest.fixture(scope="module")
def rollouts(two_versions, tmp_path_factory) -> Iterator[Rollouts]:
    server, served = two_versions
    folder = tmp_path_factory.mktemp("rollout-gateway")
    file, log_dir = folder / "rollouts.yaml", folder / "predictions"
    file.write_text("", encoding="utf-8")
    gateway = start_gateway(
        server.address, served, folder,
        # One worker: a rollback is each process's own judgement (docs/operations.md).
        GATEWAY_HTTP_WORKERS="1", GATEWAY_MODELS="lstm=imdb_lstm", GATEWAY_DEFAULT_MODEL="lstm",
        GATEWAY_ROLLOUTS_FILE=str(file), GATEWAY_SHADOW_MAX_IN_FLIGHT="16",
        GATEWAY_PREDICTION_LOG_DIR=str(log_dir), GATEWAY_PREDICTION_LOG_SAMPLE_RATE="0.25",
        GATEWAY_PREDICTION_LOG_SALT=SALT, GATEWAY_PREDICTION_LOG_MAX_BYTES=str(LOG_MAX_BYTES),
        GATEWAY_PREDICTION_LOG_MAX_FILES=str(LOG_MAX_FILES),
    )
    try:
        wait_until(lambda: requests.get(f"{gateway.url}/readyz", timeout=2).ok, 60, "gateway readiness")
        yield Rollouts(gateway, server, file, served, log_dir)
    finally:
        gateway.process.stop()


@pytest.fixture(scope="module")
def texts(models_dir: Path) -> list[str]:
    """Reviews made of the vocabulary's words, varied enough that the versions disagree on some."""
    contract = json.loads((models_dir / "imdb_lstm" / "1" / TOKENIZER_FILE).read_text(encoding="utf-8"))
    words = contract["vocabulary"][:2000]
    chooser = random.Random(11)
    return [" ".join(chooser.choices(words, k=chooser.randint(5, 60))) for _ in range(48)]


@pytest.fixture(scope="module")
def answers(rollouts: Rollouts, texts: list[str]) -> dict[int, list[float]]:
    """Each version's probabilities for ``texts``, asked by pinning it."""
    return {version: [p["positive_probability"] for p in rollouts.predict(texts, version=version)] for version in (1, 2)}


def test_the_two_versions_answer_differently(answers):
    labels = {version: [p >= 0.5 for p in probabilities] for version, probabilities in answers.items()}
    assert labels[1] != labels[2]


def test_a_canary_share_splits_unpinned_requests_and_pinned_ones_never_move(rollouts, texts, answers):
    rollouts.set("lstm: {stable: 1, candidate: 2, canary_percent: 20}")

    def one(index: int) -> dict:
        (prediction,) = rollouts.predict([texts[index % len(texts)]])
        return {"index": index % len(texts), **prediction}

    def counted() -> Counter:
        totals: Counter = Counter()
        for _, labels, value in rollouts.metrics("sentiment_predictions_total"):
            totals[labels["version"], labels["arm"]] += value
        return totals

    before = counted()
    with ThreadPoolExecutor(8) as pool:
        unpinned = list(pool.map(one, range(1000)))
        pinned = list(pool.map(lambda i: (i % 2 + 1, rollouts.predict([texts[i % len(texts)]], version=i % 2 + 1)[0]),
                               range(100)))
    arms = Counter(p["arm"] for p in unpinned)
    assert set(arms) == {"stable", "canary"}
    assert abs(arms["canary"] - 200) <= 4 * math.sqrt(1000 * 0.2 * 0.8), arms  # binomial, 4 standard deviations
    for prediction in unpinned:
        version = 2 if prediction["arm"] == "canary" else 1
        assert prediction["model_version"] == version
        assert prediction["positive_probability"] == pytest.approx(answers[version][prediction["index"]], abs=1e-6)
    assert all(p["arm"] == "pinned" and p["model_version"] == version for version, p in pinned)
    during = counted() - before
    assert during["2", "canary"] == arms["canary"] and during["1", "stable"] >= arms["stable"]


def test_version_labels_of_models_config_are_followed(rollouts, texts):
    """models.config labels version 1 "stable" and version 2 "canary" (harness/two_versions.py);
    the model server resolves them."""
    rollouts.set("lstm: {stable: stable, candidate: canary, canary_percent: 100}")
    assert {(p["arm"], p["model_version"]) for p in rollouts.predict(texts[:8])} == {("canary", 2)}
    rollouts.set("lstm: {stable: stable, candidate: canary, canary_percent: 0}")
    assert {(p["arm"], p["model_version"]) for p in rollouts.predict(texts[:8])} == {("stable", 1)}


def test_a_request_id_keeps_its_arm(rollouts, texts):
    rollouts.set("lstm: {stable: 1, candidate: 2, canary_percent: 50}")
    ids = [f"client-{n}" for n in range(40)]
    seen = {request_id: {rollouts.predict([texts[0]], request_id=request_id)[0]["arm"] for _ in range(3)} for request_id in ids}
    assert all(len(arms) == 1 for arms in seen.values())
    assert {arms.pop() for arms in seen.values()} == {"stable", "canary"}
    assert all((canary_draw("lstm", request_id) < 50) == (arms_of == {"canary"})
               for request_id, arms_of in ((i, {rollouts.predict([texts[0]], request_id=i)[0]["arm"]}) for i in ids))


def median_latency(rollouts: Rollouts, texts: list[str]) -> float:
    durations = []
    for text in texts:
        started = time.perf_counter()
        rollouts.predict([text])
        durations.append(time.perf_counter() - started)
    return statistics.median(durations)


def test_shadow_traffic_changes_no_answer_and_its_agreement_is_measured(rollouts, texts, answers):
    rollouts.set("lstm: {stable: 1, candidate: 2}")
    alone = median_latency(rollouts, texts)
    rollouts.set("lstm: {stable: 1, candidate: 2, shadow_percent: 100}")

    def comparisons() -> Counter:
        return Counter({labels["outcome"]: value for _, labels, value in rollouts.metrics("sentiment_shadow_comparisons_total")
                        if (labels["stable_version"], labels["candidate_version"]) == ("1", "2")})

    def shadow_requests() -> Counter:
        return Counter({labels["outcome"]: value for _, labels, value in rollouts.metrics("sentiment_shadow_requests_total")
                        if labels["model"] == "lstm"})

    before, requests_before = comparisons(), shadow_requests()
    shadowed = median_latency(rollouts, texts)
    for index, text in enumerate(texts):
        (prediction,) = rollouts.predict([text])
        assert (prediction["arm"], prediction["model_version"]) == ("stable", 1)
        assert prediction["positive_probability"] == pytest.approx(answers[1][index], abs=1e-6)
    agreeing = sum((one >= 0.5) == (two >= 0.5) for one, two in zip(answers[1], answers[2]))
    expected = Counter({"agree": 2 * agreeing, "disagree": 2 * (len(texts) - agreeing)})  # two passes over the texts
    wait_until(lambda: sum((comparisons() - before).values()) >= 2 * len(texts), 20, "every shadow copy compared")
    assert comparisons() - before == expected
    assert shadow_requests() - requests_before == Counter({"compared": 2 * len(texts)})
    # The copies run after the answer: the user's latency stays within a bound on this 2-core machine.
    assert shadowed < 2 * alone + 0.02, (alone, shadowed)


def rolled_back(rollouts: Rollouts) -> dict[str, float]:
    return {labels["version"]: value for _, labels, value in rollouts.metrics("sentiment_rollout_rolled_back")
            if labels["model"] == "lstm"}


def test_a_slow_candidate_is_rolled_back_on_its_p99(rollouts, texts):
    rollouts.set("lstm: {stable: 1, candidate: 2, canary_percent: 100, "
                 "rollback: {min_requests: 10, max_p99_seconds: 0.001}}")
    arms = [rollouts.predict([texts[0]])[0]["arm"] for _ in range(15)]
    assert arms[:10] == ["canary"] * 10 and set(arms[10:]) == {"stable"}
    assert rolled_back(rollouts) == {"2": 1.0}
    assert "rolled back: p99_latency" in rollouts.gateway.process.log.read_text()
    reasons = {labels["reason"] for _, labels, v in rollouts.metrics("sentiment_rollout_rollbacks_total") if v}
    assert "p99_latency" in reasons


def test_a_candidate_that_stops_is_rolled_back_with_no_failed_request(rollouts, texts):
    rollouts.set("lstm: {stable: 1, candidate: 2, canary_percent: 50, "
                 "rollback: {window_seconds: 30, min_requests: 10, max_error_rate: 0.2}}")
    assert rolled_back(rollouts).get("2", 0.0) == 0.0  # the edit cleared any previous rollback
    version_2 = rollouts.served / "imdb_lstm" / "2"
    parked = rollouts.served.parent / f"{rollouts.served.name}-parked-2"
    statuses: Counter = Counter()
    try:
        shutil.move(version_2, parked)  # the model server unloads version 2 at its next poll
        deadline = time.monotonic() + 30
        while not rolled_back(rollouts).get("2") and time.monotonic() < deadline:
            response = requests.post(f"{rollouts.gateway.url}/v1/sentiment", json={"text": texts[1]}, timeout=30)
            statuses[response.status_code] += 1
        assert rolled_back(rollouts) == {"2": 1.0}
        assert statuses.keys() == {200}, statuses
        assert all(rollouts.predict([texts[1]])[0]["arm"] == "stable" for _ in range(10))
        assert "rolled back: error_rate" in rollouts.gateway.process.log.read_text()
        fallbacks = sum(v for _, labels, v in rollouts.metrics("sentiment_canary_fallbacks_total") if labels["version"] == "2")
        assert fallbacks >= 1
    finally:
        shutil.move(parked, version_2)
        # The other tests, in any order, need version 2 back.
        wait_until(lambda: version_state(rollouts.server, 2) == "AVAILABLE", 60, "version 2 loaded again")


def test_a_candidate_that_disagrees_in_shadow_is_rolled_back_and_answers_stay_the_stable_ones(rollouts, texts, answers):
    disagreeing = [i for i, (one, two) in enumerate(zip(answers[1], answers[2])) if (one >= 0.5) != (two >= 0.5)]
    assert len(disagreeing) >= 2
    rollouts.set("lstm: {stable: 1, candidate: 2, shadow_percent: 100, "
                 "rollback: {min_requests: 8, max_disagreement_rate: 0.5}}")
    assert rolled_back(rollouts).get("2", 0.0) == 0.0

    def shadowed() -> float:
        return sum(v for _, labels, v in rollouts.metrics("sentiment_shadow_requests_total") if labels["model"] == "lstm")

    for round_ in range(8):  # comparisons land after the answers: ask until the rollback shows
        for index in disagreeing:
            (prediction,) = rollouts.predict([texts[index]])
            assert (prediction["arm"], prediction["model_version"]) == ("stable", 1)
            assert prediction["positive_probability"] == pytest.approx(answers[1][index], abs=1e-6)
        if rolled_back(rollouts).get("2"):
            break
    assert rolled_back(rollouts) == {"2": 1.0}
    assert "rolled back: disagreement_rate" in rollouts.gateway.process.log.read_text()
    reasons = {labels["reason"] for _, labels, v in rollouts.metrics("sentiment_rollout_rollbacks_total") if v}
    assert "disagreement_rate" in reasons
    copies = settled(shadowed)
    for index in disagreeing:  # rolled back: no more copies, the same answers
        (prediction,) = rollouts.predict([texts[index]])
        assert prediction["positive_probability"] == pytest.approx(answers[1][index], abs=1e-6)
    assert settled(shadowed) == copies


def test_a_candidate_published_while_traffic_flows_is_not_judged_while_it_loads(rollouts, texts):
    """The rollout names version 3 before it exists; it is then published (slow to load). Until it
    is AVAILABLE the stable version answers every request, and nothing counts against it."""
    rollouts.set("lstm: {stable: 1, candidate: 3, canary_percent: 50, "
                 "rollback: {min_requests: 5, max_error_rate: 0.01}}")
    server = rollouts.server
    staging = rollouts.served.parent / f"{rollouts.served.name}-staging-3"
    shutil.copytree(rollouts.served / "imdb_lstm" / "1", staging)
    slow_to_load(staging, SLOW_TO_LOAD)
    # (state of version 3 before the request, after it, status, arm, version, on the canary arm by its id)
    seen: list[tuple[str | None, str | None, int, str | None, int | None, bool]] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            request_id = f"publish-{len(seen)}"
            before = version_state(server, 3)
            response = requests.post(f"{rollouts.gateway.url}/v1/sentiment", json={"text": texts[len(seen) % len(texts)]},
                                     headers={"X-Request-ID": request_id}, timeout=30)
            prediction = response.json()["predictions"][0] if response.ok else {}
            seen.append((before, version_state(server, 3), response.status_code, prediction.get("arm"),
                         prediction.get("model_version"), canary_draw("lstm", request_id) < 50))

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(traffic)
        try:
            wait_until(lambda: len(seen) >= 10, 30, "requests before version 3 exists")
            staging.rename(rollouts.served / "imdb_lstm" / "3")  # published in one step
            wait_until(lambda: sum(1 for *_, arm, version, _ in seen if (arm, version) == ("canary", 3)) >= 5, 120,
                       "version 3 answering its canary share")
        finally:
            stop.set()
            running.result()
            shutil.rmtree(rollouts.served / "imdb_lstm" / "3", ignore_errors=True)
            shutil.rmtree(staging, ignore_errors=True)
    assert Counter(status for _, _, status, *_ in seen) == Counter({200: len(seen)})
    unpublished = [entry for entry in seen if entry[0] is None and entry[1] is None]
    loading = [entry for entry in seen if entry[0] in LOADING and entry[1] in LOADING]
    for entries in (unpublished, loading):
        assert entries and {(arm, version) for _, _, _, arm, version, _ in entries} == {("stable", 1)}
        assert {canary for *_, canary in entries} == {True, False}  # the candidate's share among them
    assert rolled_back(rollouts).get("3", 0.0) == 0.0
    assert "candidate 3 rolled back" not in rollouts.gateway.process.log.read_text()
    # The candidate's share fell back to the stable version: counted, not held against it.
    fallbacks = sum(v for _, labels, v in rollouts.metrics("sentiment_canary_fallbacks_total") if labels["version"] == "3")
    assert fallbacks >= sum(canary for *_, canary in unpublished + loading)
    wait_until(lambda: version_state(server, 3) in (None, "END"), 60, "version 3 unloaded")


def test_at_start_up_a_rollout_whose_stable_version_still_loads_answers_503_until_it_is_available(
    models_dir: Path, tmp_path: Path, texts: list[str],
):
    """The model server serves the newest version first and loads older ones afterwards: with
    a rollout on versions 1 (stable, slow to load) and 2 (candidate), the gateway is not ready
    and answers 503 model_loading for version 1 until it loads, while the candidate answers."""
    served = tmp_path / "served"
    config = serve_two_versions(models_dir / "imdb_lstm" / "1", served)
    slow_to_load(served / "imdb_lstm" / "1", SLOW_TO_LOAD)
    rollout_file = tmp_path / "rollouts.yaml"
    rollout_file.write_text("lstm: {stable: 1, candidate: 2, canary_percent: 50}", encoding="utf-8")
    grpc_port = free_port()
    gateway = start_gateway(f"127.0.0.1:{grpc_port}", served, tmp_path, GATEWAY_HTTP_WORKERS="1",
                            GATEWAY_MODELS="lstm=imdb_lstm", GATEWAY_DEFAULT_MODEL="lstm",
                            GATEWAY_ROLLOUTS_FILE=str(rollout_file))
    server = start_model_server(served, tmp_path, grpc_port=grpc_port, config=config, wait_for=[], xla=False)
    seen: list[tuple[str | None, str | None, int, dict, int, dict, bool]] = []
    try:
        wait_until(lambda: version_state(server, 2) == "AVAILABLE", 120, f"version 2 (log {server.process.log})")
        while len(seen) < 400:
            before = version_state(server, 1)
            ready = requests.get(f"{gateway.url}/readyz", timeout=10)
            pinned = requests.post(f"{gateway.url}/v1/sentiment", json={"text": texts[0], "version": 1}, timeout=30)
            request_id = f"start-{len(seen)}"
            unpinned = requests.post(f"{gateway.url}/v1/sentiment", json={"text": texts[0]},
                                     headers={"X-Request-ID": request_id}, timeout=30)
            after = version_state(server, 1)
            seen.append((before, after, pinned.status_code, pinned.json(), unpinned.status_code, unpinned.json(),
                         canary_draw("lstm", request_id) < 50))
            if before == after == "AVAILABLE":
                break
            assert before in LOADING or after == "AVAILABLE", (before, after)
            if before in LOADING and after in LOADING:
                assert ready.status_code == 503
                assert ready.json() == {"ready": False}
        # Loaded: the gateway follows within its status cache's time.
        wait_until(lambda: requests.get(f"{gateway.url}/readyz", timeout=10).ok, 5, "readiness")
        for version in (1, None):
            body = {"text": texts[0]} if version is None else {"text": texts[0], "version": version}
            response = requests.post(f"{gateway.url}/v1/sentiment", json=body, timeout=30)
            assert response.status_code == 200 and response.json()["predictions"][0]["model_version"] in (1, 2)
    finally:
        gateway.process.stop()
        server.process.stop()
    loading = [entry for entry in seen if entry[0] in LOADING and entry[1] in LOADING]
    assert loading, "no request while version 1 loaded"
    for _, _, pinned_status, pinned_body, status, body, canary in loading:
        assert (pinned_status, pinned_body["error"]["code"]) == (503, "model_loading")
        if canary:
            assert status == 200 and (body["predictions"][0]["arm"], body["predictions"][0]["model_version"]) == ("canary", 2)
        else:
            assert (status, body["error"]["code"]) == (503, "model_loading"), body
    assert {canary for *_, canary in loading} == {True, False}


def settled(read: Callable[[], float], quiet_seconds: float = 0.5, timeout: float = 10) -> float:
    """``read()`` once it has stopped changing for ``quiet_seconds``."""
    value, since = read(), time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = read()
        if now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_seconds:
            return value
    raise TimeoutError(f"still changing after {timeout} s")


def test_the_prediction_log_samples_hashes_and_rotates(rollouts, texts):
    def written() -> float:
        return sum(v for _, _, v in rollouts.metrics("sentiment_prediction_log_lines_total"))

    def dropped() -> float:
        return sum(v for _, _, v in rollouts.metrics("sentiment_prediction_log_dropped_total"))

    rollouts.set("lstm: {stable: 1}")
    before, dropped_before = settled(written), dropped()
    # 960 texts, sampled one by one at 25 %: ~240 lines, several times what the kept files hold,
    # so that every kept line is this test's whatever ran before it.
    batch = texts * 20
    for start in range(0, len(batch), 32):
        rollouts.predict(batch[start:start + 32])
    sampled = settled(written) - before  # the writer threads have drained their queues
    assert abs(sampled - 240) <= 4 * math.sqrt(960 * 0.25 * 0.75), sampled
    files = sorted(rollouts.log_dir.glob(f"{FILE_NAME}*"))
    assert len(files) == LOG_MAX_FILES and all(path.stat().st_size <= LOG_MAX_BYTES for path in files)
    lines = [json.loads(line) for line in (rollouts.log_dir / FILE_NAME).read_text(encoding="utf-8").splitlines()]
    hashes = {text_hash(text, SALT.encode()) for text in texts}
    assert lines and all(line["text_hash"] in hashes and "text" not in line for line in lines)
    assert {line["model"] for line in lines} == {"lstm"} and {line["version"] for line in lines} == {1}
    assert dropped() == dropped_before


def test_an_unwritable_prediction_log_fails_no_request(two_versions, tmp_path):
    server, served = two_versions
    (tmp_path / "a-file").write_text("")
    gateway = start_gateway(
        server.address, served, tmp_path, GATEWAY_HTTP_WORKERS="1", GATEWAY_MODELS="lstm=imdb_lstm",
        GATEWAY_DEFAULT_MODEL="lstm", GATEWAY_PREDICTION_LOG_DIR=str(tmp_path / "a-file" / "log"),
        GATEWAY_PREDICTION_LOG_SAMPLE_RATE="1", GATEWAY_PREDICTION_LOG_TEXTS="text",
    )
    try:
        wait_until(lambda: requests.get(f"{gateway.url}/readyz", timeout=2).ok, 60, "gateway readiness")
        statuses = Counter(requests.post(f"{gateway.url}/v1/sentiment", json={"text": "a fine film"}, timeout=30).status_code
                           for _ in range(20))
        assert statuses == Counter({200: 20})

        def dropped() -> float:
            text = requests.get(f"{gateway.url}/metrics", timeout=10).text
            return sum(v for name, labels, v in samples(text)
                       if name == "sentiment_prediction_log_dropped_total" and labels["reason"] == "write_error")

        wait_until(lambda: dropped() == 20, 10, "every line counted as dropped")
        assert "prediction log: " in gateway.process.log.read_text()
    finally:
        gateway.process.stop()
