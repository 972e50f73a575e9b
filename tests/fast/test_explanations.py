"""Explanations by occlusion and texts without a known word, through both APIs in process.

The in-memory model's output is a known function of the ids (the sigmoid of the count
of positive words minus negative ones), so every effect can be computed by hand.
"""

import math

import grpc
import pytest

from serving.client import SentimentClient
from serving.gateway.api.grpc_server import build_server
from serving.gateway.api.http_app import create_app
from serving.gateway.data_plane import DataPlane


def sigmoid(score: float) -> float:
    return 1 / (1 + math.exp(-score))


def explained(http, body: dict) -> list[dict]:
    response = http.post("/v1/sentiment", json={"explain": True, **body})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["predictions"]


def test_effects_are_the_probability_with_each_word_minus_without_it(http, model_client):
    (prediction,) = explained(http, {"text": "Good, good... but bad: the zzyzx film!"})
    with_all = sigmoid(2 - 1)
    assert prediction["positive_probability"] == pytest.approx(with_all)
    effects = {(w["word"], w["position"]): (w["effect"], w["out_of_vocabulary"]) for w in prediction["explanation"]}
    assert effects == {
        ("good", 0): (pytest.approx(with_all - sigmoid(0)), False),
        ("good", 1): (pytest.approx(with_all - sigmoid(0)), False),
        ("bad", 3): (pytest.approx(with_all - sigmoid(2)), False),
        ("but", 2): (0.0, True),
        ("the", 4): (pytest.approx(0.0), False),
        ("zzyzx", 5): (0.0, True),
        ("film", 6): (pytest.approx(0.0), False),
    }
    order = [(w["word"], w["position"]) for w in prediction["explanation"]]
    assert order[:3] == [("good", 0), ("good", 1), ("bad", 3)]  # largest |effect| first, ties by position
    # The original and its 5 variants (one per known word) went out as one call.
    assert model_client.calls[-1] == ("imdb_lstm", 2, 6)


def test_top_k_keeps_the_largest_effects_and_the_answer_is_deterministic(http):
    body = {"texts": ["awful acting, great plot, good film", "bad bad"], "explain_top_k": 2}
    first, again = explained(http, body), explained(http, body)
    assert first == again
    # score 1: without "great" or "good" 0 (effect +0.23 each), without "awful" 2 (effect -0.15)
    assert [[w["word"] for w in p["explanation"]] for p in first] == [["great", "good"], ["bad", "bad"]]


def test_only_the_words_the_model_saw_are_explained(http, settings):
    # maxlen 20: a 25-word text is cut to its last 20 words (the start id goes first).
    words = ["awful"] * 5 + ["bad"] + ["good"] * 19
    (prediction,) = explained(http, {"text": " ".join(words), "explain_top_k": 500})
    assert prediction["truncated"]
    assert sorted(w["position"] for w in prediction["explanation"]) == list(range(5, 25))
    assert {w["word"] for w in prediction["explanation"]} == {"bad", "good"}


def test_a_text_without_a_known_word_is_flagged_and_explained_as_such(http):
    (unknown, known) = explained(http, {"texts": ["🎬🍿 zzyzx qwerty", "good"]})
    assert unknown["no_known_words"] and unknown["explanation"] == []
    assert unknown["explanation_note"] == "no word of the text is in the model's vocabulary"
    assert not known["no_known_words"] and "explanation_note" not in known
    plain = http.post("/v1/sentiment", json={"text": "🎬🍿"}).get_json()["predictions"][0]
    assert plain["no_known_words"] and plain["num_tokens"] == 0
    assert "explanation" not in plain


def test_texts_without_a_known_word_are_refused_when_the_gateway_is_set_to(settings, model_client):
    strict = settings.with_changes(refuse_no_known_words=True)
    service = DataPlane(strict, client=model_client)
    with create_app(strict, service).test_client() as http:
        response = http.post("/v1/sentiment", json={"texts": ["good film", "zzyzx !!"]})
        assert response.status_code == 422
        assert response.get_json()["error"] == {
            "code": "no_known_words", "message": "texts[1] has no word in the model's vocabulary"}
        assert model_client.calls == []
    server, _, port = build_server(strict.with_changes(grpc_host="127.0.0.1", grpc_port=0), service)
    server.start()
    try:
        with SentimentClient(f"127.0.0.1:{port}") as client, pytest.raises(grpc.RpcError) as refused:
            client.predict(["🎬"])
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "no word in the model's vocabulary" in refused.value.details()
    finally:
        server.stop(0)


@pytest.mark.parametrize("body, status, fragment", [
    ({"texts": ["good"] * 9}, 413, "(at most 8 per explained request)"),
    ({"text": "good", "explain_top_k": 0}, 400, "from 1 to 500"),
    ({"text": "good", "explain_top_k": 501}, 400, "from 1 to 500"),
    ({"text": "good", "explain_top_k": "3"}, 400, "'explain_top_k' must be a whole number"),
    ({"text": "good", "explain": "yes"}, 400, "'explain' must be true or false"),
    ({"text": "good", "explain": False, "explain_top_k": 3}, 400, "needs 'explain': true"),
])
def test_bad_explanation_requests_are_named(settings, model_client, body, status, fragment):
    roomy = settings.with_changes(max_texts=16, max_explained_texts=8)  # 9 texts: too many to explain only
    with create_app(roomy, DataPlane(roomy, client=model_client)).test_client() as http:
        response = http.post("/v1/sentiment", json={"explain": True, **body})
    assert response.status_code == status and fragment in response.get_json()["error"]["message"]
    assert model_client.calls == []


def test_grpc_and_http_explain_alike(http, grpc_target):
    text = "great film, awful plot, the acting zzyzx"
    (over_http,) = explained(http, {"text": text, "explain_top_k": 4})
    with SentimentClient(grpc_target) as client:
        (over_grpc,) = client.predict([text], explain=True, explain_top_k=4)
    assert [(w.word, w.position, w.out_of_vocabulary) for w in over_grpc.explanation] == [
        (w["word"], w["position"], w["out_of_vocabulary"]) for w in over_http["explanation"]]
    assert [w.effect for w in over_grpc.explanation] == pytest.approx([w["effect"] for w in over_http["explanation"]])
    assert over_grpc.no_known_words is False and over_grpc.explanation_note == ""
