"""The Open Inference Protocol (V2) on the real gateway processes, called by a client
nobody here wrote: tritonclient's HTTP and gRPC flavours with their defaults (run in their
own process by tests/open_inference_clients.py; over HTTP that is Triton's binary tensor
data extension both ways). Parity: V2 HTTP (binary and JSON), V2 gRPC and sentiment.v1
over HTTP and gRPC give the same probabilities. And malformed binary bodies sent to the
real HTTP server: each refused with 400 naming the problem, the service serving on."""

from __future__ import annotations

import json
import struct
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
    unnamed = answer["unnamed"]  # no outputs named: all of them, in binary over HTTP (binary_data_output)
    assert unnamed["names"] == ["positive_probability", "label", "num_tokens"]
    assert unnamed["label"] == ["positive", "negative"] and unnamed["num_tokens"] == many["num_tokens"][:2]
    assert unnamed["positive_probability"] == pytest.approx(answer["all_texts"][:2], abs=1e-6)


def test_tritonclient_s_http_defaults_travel_in_binary_and_json_stays_available(answers):
    answer = answers["http"]
    every = dict.fromkeys(["positive_probability", "label", "num_tokens"], "binary")
    assert answer["sent_as"] == {"defaults": every, "unnamed": every, "json": dict.fromkeys(every, "json")}
    assert "binary_tensor_data" in answer["server_metadata"]["extensions"]
    json_mode = answer["json_mode"]
    assert json_mode["positive_probability"] == pytest.approx(answer["all_texts"], abs=1e-6)
    assert json_mode["label"] == answer["many"]["label"][:len(TEXTS)] and json_mode["label"][:2] == [
        "positive", "negative"]
    assert json_mode["num_tokens"] == answer["many"]["num_tokens"][:len(TEXTS)]


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
    assert answer["not_utf8"]["status"] == bad_datatype
    assert "element 0 of input 'text' is not UTF-8 text" in answer["not_utf8"]["message"]
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


# -- malformed binary bodies against the real HTTP server ---------------------------------------

HEADER = "Inference-Header-Content-Length"
JSON_BODY = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["Fine."]}]}).encode()


def prefixed(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def binary_request(data: bytes, size: object = None, header_length: object = None,
                   datatype: str = "BYTES", shape: tuple = (1,)) -> tuple[bytes, dict]:
    """A body in the binary extension's form: JSON header, then ``data``; the header's length
    and ``binary_data_size`` are the true ones unless told."""
    header = json.dumps({"inputs": [{"name": "text", "datatype": datatype, "shape": list(shape), "parameters": {
        "binary_data_size": len(data) if size is None else size}}]}).encode()
    return header + data, {HEADER: str(len(header) if header_length is None else header_length)}


@pytest.mark.parametrize("body, headers, fragment", [
    (*binary_request(prefixed(b"Fine."), header_length=10**30), HEADER + " is 10000000000000000... but the body"),
    (*binary_request(prefixed(b"Fine."), header_length=-3), HEADER + " must be the JSON header's length"),
    (*binary_request(prefixed(b"Fine."), header_length=3), "the JSON header (the body's first 3 bytes"),
    (*binary_request(prefixed(b"Fine."), size=4), "has binary_data_size 4 but 9 bytes of binary data follow"),
    (*binary_request(prefixed(b"Fine."), size=-1), "'binary_data_size' of input 'text' must be a whole number"),
    (*binary_request(prefixed(b"Fine."), size=2**63 - 1), f"has binary_data_size {2**63 - 1} but 9 bytes"),
    (*binary_request(prefixed(b"Fine.")[:3]), "ends inside an element's 4-byte length prefix"),
    (*binary_request(struct.pack("<I", 2**32 - 1) + b"Fine."), "an element of 4294967295 bytes runs past"),
    (*binary_request(prefixed(b"caf\xe9")), "element 0 of input 'text' is not UTF-8 text"),
    (*binary_request(struct.pack("<f", 1.0), datatype="FP32"), "must have datatype BYTES"),
    (*binary_request(prefixed(b"Fine.", b"Good.")), "has shape [1] but 2 elements"),
    (JSON_BODY + b"trailing bytes", {HEADER: str(len(JSON_BODY))},
     "14 bytes follow the JSON header but input 'text' has no"),
])
def test_malformed_binary_bodies_get_400_naming_the_problem_and_the_gateway_serves_on(gateway, body, headers,
                                                                                    fragment):
    response = requests.post(f"{gateway.url}/v2/models/lstm/infer", data=body, headers=headers, timeout=15)
    assert response.status_code == 400 and response.headers["Content-Type"] == "application/json"
    assert fragment in response.json()["error"], response.json()
    body, headers = binary_request(prefixed(POSITIVE.encode()))
    served = requests.post(f"{gateway.url}/v2/models/lstm/infer", data=body, headers=headers, timeout=15)
    assert served.status_code == 200 and served.json()["outputs"][1]["data"] == ["positive"]


def test_binary_bodies_keep_the_body_and_text_limits(gateway):
    infer = f"{gateway.url}/v2/models/lstm/infer"
    body, headers = binary_request(prefixed(b"word " * 220_000))  # over the 1 MiB body limit
    too_big = requests.post(infer, data=body, headers=headers, timeout=15)
    assert too_big.status_code == 413 and "request body over 1048576 bytes" in too_big.json()["error"]
    body, headers = binary_request(prefixed(*[b""] * 100_000), shape=(100_000,))  # 400 kB of empty texts
    too_many = requests.post(infer, data=body, headers=headers, timeout=15)
    assert too_many.status_code == 413 and "at most 64 per request" in too_many.json()["error"]
    body, headers = binary_request(prefixed(b"word " * 4_001))  # 20,005 characters
    too_long = requests.post(infer, data=body, headers=headers, timeout=15)
    assert too_long.status_code == 413 and "(at most 20000)" in too_long.json()["error"]
