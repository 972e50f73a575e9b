"""Per-key rate limits in process: the token bucket, and its answers over HTTP and gRPC."""

from __future__ import annotations

import grpc
import pytest
from sentiment.v1 import sentiment_pb2

from serving.gateway.access.api_keys import hash_line, new_key
from serving.gateway.access.rate_limits import RateLimiter
from serving.gateway.api.grpc_server import build_server
from serving.gateway.api.http_app import create_app
from serving.gateway.data_plane import DataPlane
from serving.gateway.settings import Settings, SettingsError


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate_per_client():
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.admit("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.admit("a") == pytest.approx(0.5)  # one token comes back every 1/rate s
    assert limiter.admit("b") == 0  # another client has its own bucket
    clock.now += 0.5
    assert limiter.admit("a") == 0 and limiter.admit("a") > 0
    clock.now += 60
    assert [limiter.admit("a") for _ in range(4)] == [0, 0, 0, pytest.approx(0.5)]  # never more than the burst


def test_a_rate_without_keys_is_refused_at_start():
    with pytest.raises(SettingsError, match="needs GATEWAY_API_KEYS_FILE"):
        Settings.from_env({"GATEWAY_RATE_LIMIT_PER_KEY": "10"})


@pytest.fixture
def limited(settings, model_client, tmp_path):
    noisy, quiet = new_key(), new_key()
    (tmp_path / "keys").write_text(f"{hash_line('noisy', noisy)}\n{hash_line('quiet', quiet)}\n")
    limited_settings = settings.with_changes(api_keys_file=tmp_path / "keys", rate_limit_per_key=0.5, rate_limit_burst=2)
    return limited_settings, DataPlane(limited_settings, client=model_client), noisy, quiet


def test_http_answers_429_with_retry_after_to_the_key_over_its_rate_only(limited):
    settings, service, noisy, quiet = limited
    with create_app(settings, service).test_client() as http:
        def status(key: str):
            return http.post("/v1/sentiment", json={"text": "a good film"}, headers={"X-API-Key": key})

        assert [status(noisy).status_code for _ in range(2)] == [200, 200]
        refused = status(noisy)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "2"
        assert refused.get_json()["error"]["code"] == "rate_limited" and "'noisy'" in refused.get_json()["error"]["message"]
        assert status(quiet).status_code == 200
        assert 'sentiment_rate_limited_total{key_id="noisy",transport="http"} 1.0' in http.get("/metrics").text


def test_grpc_answers_resource_exhausted_with_a_retry_hint(limited):
    settings, service, noisy, _ = limited
    server, _, port = build_server(settings.with_changes(grpc_host="127.0.0.1", grpc_port=0), service)
    server.start()
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        predict = channel.unary_unary("/sentiment.v1.SentimentService/Predict",
                                      request_serializer=sentiment_pb2.PredictRequest.SerializeToString,
                                      response_deserializer=sentiment_pb2.PredictResponse.FromString)
        request, metadata = sentiment_pb2.PredictRequest(texts=["a good film"]), (("authorization", f"Bearer {noisy}"),)
        for _ in range(2):
            predict(request, metadata=metadata, timeout=5)
        with pytest.raises(grpc.RpcError) as refused:
            predict(request, metadata=metadata, timeout=5)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert dict(refused.value.trailing_metadata())["retry-after"] == "2"
        channel.close()
    finally:
        server.stop(0)


def test_a_cost_takes_that_many_tokens_and_never_more_than_the_burst():
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=10, clock=clock)
    assert limiter.admit("a", 7) == 0 and limiter.admit("a", 4) == pytest.approx(0.5)  # 3 left, 1 short
    clock.now += 60
    assert limiter.admit("a", 50) == 0 and limiter.admit("a") == pytest.approx(0.5)  # charged as the burst: 10


def test_explanations_are_charged_by_their_model_rows(settings, model_client, tmp_path):
    """A plain request of up to max_texts (8 here) texts costs 1; an explanation costs a request per
    max_texts rows it asks the model for (one per text, then one per known word and one per text),
    at most a full bucket."""
    key, big = new_key(), new_key()
    (tmp_path / "keys").write_text(f"{hash_line('explainer', key)}\n{hash_line('big', big)}\n")
    limited = settings.with_changes(api_keys_file=tmp_path / "keys", rate_limit_per_key=0.001, rate_limit_burst=20)
    with create_app(limited, DataPlane(limited, client=model_client)).test_client() as http:
        def explain(texts: list[str], by: str = key):
            return http.post("/v1/sentiment", json={"texts": texts, "explain": True}, headers={"X-API-Key": by})

        text = "good great bad awful plot acting film the " * 2  # 16 known words
        assert explain([text]).status_code == 200  # 1 + 17 rows: a cost of 3; 17 tokens left
        assert explain([text] * 5).status_code == 200  # 5 + 85 rows: 12; 5 left
        refused = explain([text] * 3)  # 3 + 51 rows: 7, of which the 1 paid on arrival leaves 4
        assert refused.status_code == 429 and "54 rows: 7 requests' worth" in refused.get_json()["error"]["message"]
        plain = http.post("/v1/sentiment", json={"texts": [text] * 8}, headers={"X-API-Key": key})
        assert plain.status_code == 200  # a plain request still costs 1
        longest = " ".join(["good", "great", "bad", "awful", "plot", "acting"] * 10)  # 60 known words
        assert explain([longest] * 8, by=big).status_code == 200  # 496 rows, 62: charged as the burst, 20
        assert explain([text], by=big).status_code == 429


def test_an_explanation_answered_by_stable_instead_of_a_pending_candidate_is_charged_too(settings, model_client,
                                                                                      tmp_path):
    key = new_key()
    (tmp_path / "keys").write_text(f"{hash_line('explainer', key)}\n")
    limited = settings.with_changes(api_keys_file=tmp_path / "keys", rate_limit_per_key=0.001, rate_limit_burst=20,
                                    rollouts="lstm: {stable: 1, candidate: 2, canary_percent: 100}")
    model_client.versions["imdb_lstm"][2] = "LOADING"  # every request tries the candidate, then falls back
    with create_app(limited, DataPlane(limited, client=model_client)).test_client() as http:
        def explain():
            return http.post("/v1/sentiment", json={"texts": ["good great bad awful plot acting film the " * 2] * 5,
                                                    "explain": True}, headers={"X-API-Key": key})

        answered = explain()  # 5 + 85 rows: 12 of the 20 tokens
        assert answered.status_code == 200 and answered.get_json()["predictions"][0]["model_version"] == 1
        assert explain().status_code == 429
