"""Which failures count towards a candidate's rollback: the candidate's own, not those a
client causes (its deadline, its explanations) nor a candidate that is not there yet."""

from __future__ import annotations

import pytest

from serving.gateway.data_plane import DataPlane, PredictRequest
from serving.gateway.errors import ModelServerTimeout
from serving.gateway.routing.rollouts import STABLE

ROLLOUT = "lstm: {stable: 1, candidate: 2, canary_percent: 100, rollback: {min_requests: 5}}"


@pytest.fixture
def service(settings, model_client) -> DataPlane:
    return DataPlane(settings.with_changes(rollouts=ROLLOUT, rpc_timeout_seconds=5.0), client=model_client)


def candidate_times_out(model_client) -> None:
    """The next model call (the candidate's, on the canary arm) times out."""
    model_client.next_failures = [ModelServerTimeout("imdb_lstm version 2: the model server did not answer")]


def test_timeouts_under_the_gateways_own_deadline_roll_the_candidate_back(service, model_client):
    for _ in range(5):  # min_requests
        candidate_times_out(model_client)
        (answer,) = service.predict(PredictRequest(["good film"]))
        assert (answer.arm, answer.model_version) == (STABLE, 1)
    assert service.rollouts.rolled_back("lstm") == "error_rate"


def test_timeouts_of_a_clients_own_short_deadline_do_not(service, model_client):
    for _ in range(20):
        candidate_times_out(model_client)
        (answer,) = service.predict(PredictRequest(["good film"], timeout=0.05, transport="grpc"))
        assert (answer.arm, answer.model_version) == (STABLE, 1)
    assert service.rollouts.rolled_back("lstm") is None


def test_explanations_are_not_judged(service, model_client):
    for _ in range(20):
        candidate_times_out(model_client)
        (answer,) = service.predict(PredictRequest(["good film"], explain=True, top_k=2))
        assert answer.model_version == 1 and answer.explanation is not None
    assert service.rollouts.rolled_back("lstm") is None


@pytest.mark.parametrize("state", ["START", "LOADING", None])
def test_a_candidate_still_loading_or_not_published_is_not_judged(service, model_client, state):
    if state is None:
        del model_client.versions["imdb_lstm"][2]
    else:
        model_client.versions["imdb_lstm"][2] = state
    answers = [service.predict(PredictRequest(["good film"])) for _ in range(20)]
    assert {(answer.arm, answer.model_version) for (answer,) in answers} == {(STABLE, 1)}
    assert service.rollouts.rolled_back("lstm") is None
    model_client.versions["imdb_lstm"][2] = "AVAILABLE"
    (answer,) = service.predict(PredictRequest(["good film"]))
    assert answer.model_version == 2  # loaded: the candidate takes its share at once
