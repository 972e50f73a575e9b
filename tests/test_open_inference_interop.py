"""The Open Inference Protocol (V2) on the real gateway processes, called by a client
nobody here wrote: tritonclient's HTTP and gRPC flavours (run in their own process by
tests/open_inference_clients.py). And parity: V2 HTTP, V2 gRPC and sentiment.v1 over
HTTP and gRPC give the same probabilities."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests
from reviews import NEGATIVE, POSITIVE

from harness.processes import ROOT
from serving.client import SentimentClient

TEXTS = [POSITIVE, NEGATIVE, "Fine.", "Not bad at all, though the ending drags on far too long."]


@pytest.fixture(scope="module")
def answers(gateway, grpc_gateway) -> dict:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "open_inference_clients.py"),
         gateway.url.removeprefix("http://"), grpc_gateway.target, *TEXTS],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("flavour", ["http", "grpc"])
def test_health_metadata_and_inference_through_tritonclient(answers, flavour):
    answer = answers[flavour]
    assert answer["live"] and answer["ready"] and answer["model_ready"]
    metadata = answer["metadata"]
    assert metadata["name"] == "lstm" and metadata["versions"] == ["1"]
    assert [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in metadata["inputs"]] == [
        ("text", "BYTES", [-1])]
    assert [t["name"] for t in metadata["outputs"]] == ["positive_probability", "label", "num_tokens"]
    one = answer["one"]
    assert one["id"] == f"interop-{1 if flavour == 'http' else 2}" and one["version"] == "1"
    assert one["label"] == ["positive"] and one["num_tokens"] == [len(POSITIVE.replace(",", " ").split())]
    assert 0.5 < one["positive_probability"][0] <= 1
    many = answer["many"]
    assert len(many["positive_probability"]) == len(many["label"]) == len(many["num_tokens"]) == 64
    assert many["label"][:4] == ["positive", "negative", *many["label"][2:4]]
    assert answer["label_only"] == ["label"]


@pytest.mark.parametrize("flavour, bad_datatype, unknown_model", [
    ("http", "400", "404"),
    ("grpc", "StatusCode.INVALID_ARGUMENT", "StatusCode.NOT_FOUND"),
])
def test_errors_reach_tritonclient_with_their_status_and_message(answers, flavour, bad_datatype, unknown_model):
    answer = answers[flavour]
    assert answer["wrong_datatype"]["status"] == bad_datatype
    assert "must have datatype BYTES" in answer["wrong_datatype"]["message"]
    assert answer["unknown_model"]["status"] == unknown_model
    assert "unknown model 'gru'" in answer["unknown_model"]["message"]
    # REST answers 404, which tritonclient's HTTP flavour reads as "not ready"; gRPC NOT_FOUND.
    assert answer["unknown_model_ready"] == ({"status": "no error", "answer": False} if flavour == "http" else
                                             {"status": unknown_model, "message": "unknown model 'gru'; "
                                              "choose one of ['lstm', 'simple_rnn']"})


def test_v2_and_sentiment_v1_give_the_same_probabilities(answers, gateway, grpc_gateway):
    v1_http = [p["positive_probability"] for p in requests.post(
        f"{gateway.url}/v1/sentiment", json={"texts": TEXTS}, timeout=15).json()["predictions"]]
    with SentimentClient(grpc_gateway.target) as client:
        v1_grpc = [p.positive_probability for p in client.predict(TEXTS)]
    for probabilities in (answers["http"]["all_texts"], answers["grpc"]["all_texts"], v1_grpc):
        assert probabilities == pytest.approx(v1_http, abs=1e-6)
