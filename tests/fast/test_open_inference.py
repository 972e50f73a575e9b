"""The Open Inference Protocol (V2) in process, REST and gRPC, over the shared core.
(Clients written elsewhere, tritonclient's, are used against real processes in
tests/test_open_inference_interop.py.)"""

import struct

import grpc
import numpy as np
import pytest
from sentiment.openinference import open_inference_grpc_pb2 as pb
from sentiment.openinference import open_inference_grpc_pb2_grpc as pb_grpc

POSITIVE = "A good film, a great plot, good acting."
NEGATIVE = "An awful film: bad plot, bad acting."


def infer_body(texts, shape=None, datatype="BYTES", name="text", **extra) -> dict:
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape or [len(texts)], "data": texts}], **extra}


@pytest.fixture
def stub(grpc_target):
    with grpc.insecure_channel(grpc_target) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def test_health_and_metadata_over_rest(http, model_client):
    assert http.get("/v2/health/live").status_code == 200
    assert http.get("/v2/health/ready").status_code == 200
    assert http.get("/v2").get_json()["name"] == "sentiment-gateway"
    metadata = http.get("/v2/models/lstm").get_json()
    assert metadata == {
        "name": "lstm", "versions": ["1", "2"], "platform": "tensorflow_savedmodel",
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": "positive_probability", "datatype": "FP32", "shape": [-1]},
                    {"name": "label", "datatype": "BYTES", "shape": [-1]},
                    {"name": "num_tokens", "datatype": "INT32", "shape": [-1]}]}
    assert http.get("/v2/models/lstm/versions/2").get_json()["versions"] == ["2"]
    assert http.get("/v2/models/lstm/ready").status_code == 200
    assert http.get("/v2/models/lstm/versions/9/ready").status_code == 404  # no such version
    missing = http.get("/v2/models/gru")
    assert missing.status_code == 404 and "unknown model 'gru'" in missing.get_json()["error"]
    model_client.versions["imdb_simple_rnn"] = {3: "LOADING"}
    assert http.get("/v2/health/ready").status_code == 503
    assert http.get("/v2/models/simple_rnn/ready").status_code == 400  # not ready: as Triton answers
    assert http.get("/v2/models/simple_rnn/versions/3/ready").status_code == 400


@pytest.mark.parametrize("shape, data", [([2], [POSITIVE, NEGATIVE]), ([2, 1], [[POSITIVE], [NEGATIVE]])])
def test_rest_inference_matches_the_sentiment_api(http, shape, data):
    response = http.post("/v2/models/simple_rnn/infer", json=infer_body(data, shape, id="req-7"))
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert (answer["id"], answer["model_name"], answer["model_version"]) == ("req-7", "simple_rnn", "2")
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert [o["name"] for o in answer["outputs"]] == ["positive_probability", "label", "num_tokens"]
    v1 = http.post("/v1/sentiment", json={"texts": [POSITIVE, NEGATIVE], "model": "simple_rnn"}).get_json()
    assert outputs["positive_probability"]["data"] == [p["positive_probability"] for p in v1["predictions"]]
    assert outputs["label"] == {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["positive", "negative"]}
    assert outputs["num_tokens"]["datatype"] == "INT32" and outputs["num_tokens"]["data"] == [8, 7]


def test_rest_outputs_are_the_ones_asked_for_in_their_order_and_versions_can_be_pinned(http, model_client):
    body = infer_body([POSITIVE], outputs=[{"name": "label"}, {"name": "positive_probability"}])
    answer = http.post("/v2/models/lstm/versions/1/infer", json=body).get_json()
    assert [o["name"] for o in answer["outputs"]] == ["label", "positive_probability"]
    assert answer["model_version"] == "1" and "id" not in answer
    assert model_client.calls[-1] == ("imdb_lstm", 1, 1)


@pytest.mark.parametrize("path, body, headers, status, fragment", [
    ("/v2/models/lstm/infer", infer_body([1.5], datatype="FP32"), {}, 400, "must have datatype BYTES"),
    ("/v2/models/lstm/infer", infer_body([POSITIVE], name="review"), {}, 400, "unknown input 'review'"),
    ("/v2/models/lstm/infer", infer_body([POSITIVE], shape=[2]), {}, 400, "has shape [2] but 1 elements"),
    ("/v2/models/lstm/infer", infer_body([POSITIVE], shape=[1, 2]), {}, 400, "shape [n] or [n, 1]"),
    ("/v2/models/lstm/infer", infer_body(["  "]), {}, 400, "texts[0] is empty"),
    ("/v2/models/lstm/infer", infer_body([POSITIVE], outputs=[{"name": "logits"}]), {}, 400, "unknown output 'logits'"),
    ("/v2/models/lstm/infer", {"inputs": "text"}, {}, 400, "'inputs' must be a list"),
    ("/v2/models/lstm/infer", infer_body([POSITIVE], id=None), {}, 400, "'id' must be a string"),
    ("/v2/models/lstm/infer", infer_body([POSITIVE], outputs=[{"name": "label", "parameters": [1]}]), {}, 400,
     "'parameters' of an output must be an object"),
    ("/v2/models/lstm/infer", infer_body([POSITIVE] * 9), {}, 413, "at most 8 per request"),
    ("/v2/models/lstm/infer", infer_body([POSITIVE]), {"Inference-Header-Content-Length": "10"}, 400,
     "the JSON header (the body's first 10 bytes"),  # the binary extension: tests/fast/test_v2_binary.py
    ("/v2/models/lstm/versions/x/infer", infer_body([POSITIVE]), {}, 400, "positive whole number"),
    ("/v2/models/lstm/versions/9/infer", infer_body([POSITIVE]), {}, 404, "version 9"),
    ("/v2/models/gru/infer", infer_body([POSITIVE]), {}, 404, "unknown model 'gru'"),
])
def test_rest_errors_name_the_problem_in_the_protocol_shape(http, model_client, path, body, headers, status,
                                                              fragment):
    response = http.post(path, json=body, headers=headers)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert isinstance(error, str) and fragment in error, error


def test_rest_model_server_trouble_keeps_its_status(http, model_client):
    from serving.gateway.errors import ModelServerUnavailable

    model_client.next_failures = [ModelServerUnavailable("imdb_lstm: the model server is unavailable", retry_after=1)]
    response = http.post("/v2/models/lstm/infer", json=infer_body([POSITIVE]))
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.get_json() == {"error": "imdb_lstm: the model server is unavailable"}


def raw_strings(texts: list[str]) -> bytes:
    return b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)


def decoded_outputs(response: pb.ModelInferResponse) -> dict:
    values = {}
    for tensor, raw in zip(response.outputs, response.raw_output_contents):
        if tensor.datatype == "BYTES":
            items, offset = [], 0
            while offset < len(raw):
                (length,) = struct.unpack_from("<I", raw, offset)
                items.append(raw[offset + 4:offset + 4 + length].decode())
                offset += 4 + length
            values[tensor.name] = items
        else:
            values[tensor.name] = np.frombuffer(raw, dtype={"FP32": "<f4", "INT32": "<i4"}[tensor.datatype]).tolist()
    return values


@pytest.mark.parametrize("raw", [False, True])
def test_grpc_inference_with_contents_or_raw_input(stub, http, raw):
    tensor = pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[2, 1])
    request = pb.ModelInferRequest(model_name="lstm", id="r1", inputs=[tensor])
    if raw:
        request.raw_input_contents.append(raw_strings([POSITIVE, NEGATIVE]))
    else:
        request.inputs[0].contents.bytes_contents.extend([POSITIVE.encode(), NEGATIVE.encode()])
    response = stub.ModelInfer(request, timeout=5)
    assert (response.model_name, response.model_version, response.id) == ("lstm", "2", "r1")
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("positive_probability", "FP32", [2]), ("label", "BYTES", [2]), ("num_tokens", "INT32", [2])]
    values = decoded_outputs(response)
    v1 = http.post("/v1/sentiment", json={"texts": [POSITIVE, NEGATIVE]}).get_json()["predictions"]
    assert values["positive_probability"] == pytest.approx([p["positive_probability"] for p in v1], abs=1e-7)
    assert values["label"] == ["positive", "negative"] and values["num_tokens"] == [8, 7]


@pytest.mark.parametrize("change, code, fragment", [
    (lambda r: setattr(r.inputs[0], "datatype", "FP32"), grpc.StatusCode.INVALID_ARGUMENT, "datatype BYTES"),
    (lambda r: setattr(r, "model_name", "gru"), grpc.StatusCode.NOT_FOUND, "unknown model"),
    (lambda r: r.raw_input_contents.append(b"\x10\x00\x00\x00abc"), grpc.StatusCode.INVALID_ARGUMENT,
     "runs past the data"),
    (lambda r: r.inputs[0].contents.bytes_contents.append(b"\xff\xfe"), grpc.StatusCode.INVALID_ARGUMENT,
     "not UTF-8"),
    (lambda r: r.outputs.add(name="logits"), grpc.StatusCode.INVALID_ARGUMENT, "unknown output"),
])
def test_grpc_errors_have_their_status(stub, change, code, fragment):
    request = pb.ModelInferRequest(model_name="lstm", inputs=[
        pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[1])])
    change(request)
    if not request.raw_input_contents and not request.inputs[0].contents.bytes_contents:
        request.inputs[0].contents.bytes_contents.append(POSITIVE.encode())
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelInfer(request, timeout=5)
    assert error.value.code() == code and fragment in error.value.details()


def test_grpc_health_and_metadata(stub, model_client):
    assert stub.ServerLive(pb.ServerLiveRequest()).live
    assert stub.ServerReady(pb.ServerReadyRequest()).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="lstm")).ready
    model_client.versions["imdb_lstm"][3] = "LOADING"
    assert not stub.ModelReady(pb.ModelReadyRequest(name="lstm", version="3")).ready
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name="simple_rnn"))
    assert (metadata.name, list(metadata.versions), metadata.platform) == ("simple_rnn", ["1", "2"],
                                                                           "tensorflow_savedmodel")
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [("text", "BYTES", [-1])]
    assert stub.ServerMetadata(pb.ServerMetadataRequest()).name == "sentiment-gateway"
    model_client.versions["imdb_lstm"] = {}
    assert not stub.ServerReady(pb.ServerReadyRequest()).ready
