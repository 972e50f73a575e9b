"""Triton's binary tensor data extension on the V2 REST flavour, in process: the framing's
checks one by one, then whole requests as tritonclient builds them (its own request
encoder and response decoder), and every malformed body refused with 400 naming it."""

import json
import struct

import numpy as np
import pytest
import tritonclient.http as httpclient

from serving.gateway.api import v2_binary
from serving.gateway.api.v2_codec import split_raw_bytes
from serving.gateway.errors import InvalidInput, PayloadTooLarge

POSITIVE = "A good film, a great plot, good acting."
NEGATIVE = "An awful film: bad plot, bad acting."
HEADER = "Inference-Header-Content-Length"
INFER = "/v2/models/lstm/infer"


def prefixed(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def framed(header: dict, binary: bytes, header_length: int | str | None = None) -> tuple[bytes, dict]:
    """A body in the extension's form, and its headers (the JSON header's length unless told)."""
    text = json.dumps(header).encode()
    return text + binary, {HEADER: str(len(text) if header_length is None else header_length)}


def binary_input(binary: bytes, size: object = None, **extra) -> dict:
    parameters = {"binary_data_size": len(binary) if size is None else size}
    tensor = {"name": "text", "datatype": "BYTES", "shape": [1], "parameters": parameters}
    return {"inputs": [tensor], **extra}


# -- the framing, one check at a time -----------------------------------------------------------

def test_a_body_splits_at_the_header_length_and_is_all_json_without_it():
    assert v2_binary.split_body(b'{"a":1}xyz', None) == (b'{"a":1}xyz', None)
    assert v2_binary.split_body(b'{"a":1}xyz', "7") == (b'{"a":1}', b"xyz")
    assert v2_binary.split_body(b'{"a":1}xyz', " 0007 ") == (b'{"a":1}', b"xyz")
    assert v2_binary.split_body(b'{"a":1}', "7") == (b'{"a":1}', b"")


@pytest.mark.parametrize("value, fragment", [
    ("abc", "must be the JSON header's length in bytes, got 'abc'"),
    ("-1", "must be the JSON header's length in bytes, got '-1'"),
    ("1e3", "must be the JSON header's length in bytes"),
    ("\u0663", "must be the JSON header's length in bytes"),  # a digit, but not an ASCII one
    ("", "must be the JSON header's length in bytes"),
    ("11", "is 11 but the body has only 10 bytes"),
    ("9" * 5000, "is 99999999999999999... but the body has only 10 bytes"),  # no int() of 5000 digits
])
def test_a_header_length_that_is_no_length_or_past_the_body_is_refused(value, fragment):
    with pytest.raises(InvalidInput) as error:
        v2_binary.split_body(b"0123456789", value)
    assert fragment in error.value.message


@pytest.mark.parametrize("size", [-1, 1.5, True, "12", None, [1] * 100])
def test_binary_data_size_must_be_a_whole_number_of_bytes(size):
    with pytest.raises(InvalidInput) as error:
        v2_binary.binary_data_size({"binary_data_size": size}, "input 'text'")
    message = error.value.message
    assert "'binary_data_size' of input 'text' must be a whole number of bytes" in message
    assert len(message) < 140  # a huge value is cut short


@pytest.mark.parametrize("tensor, data, fragment", [
    ({"parameters": {"binary_data_size": 3}}, None, "'binary_data_size' but the request has no " + HEADER),
    ({}, b"abc", "3 bytes follow the JSON header but input 'text' has no 'binary_data_size'"),
    ({"data": [], "parameters": {"binary_data_size": 3}}, b"abc", "has both 'data' and 'binary_data_size'"),
    ({"parameters": {"binary_data_size": 4}}, b"abc", "has binary_data_size 4 but 3 bytes of binary data"),
    ({"parameters": {"binary_data_size": 2}}, b"abc", "has binary_data_size 2 but 3 bytes of binary data"),
])
def test_an_input_s_binary_data_must_account_for_every_byte_after_the_header(tensor, data, fragment):
    with pytest.raises(InvalidInput) as error:
        v2_binary.input_bytes(tensor, "input 'text'", data)
    assert fragment in error.value.message


def test_an_input_takes_the_binary_data_or_its_json():
    assert v2_binary.input_bytes({"parameters": {"binary_data_size": 3}}, "input 'text'", b"abc") == b"abc"
    assert v2_binary.input_bytes({"data": ["x"]}, "input 'text'", b"") is None
    assert v2_binary.input_bytes({"data": ["x"]}, "input 'text'", None) is None


def test_binary_flags_are_booleans_with_a_default():
    assert v2_binary.wants_binary({}, "binary_data", "output 'label'", True)
    assert not v2_binary.wants_binary({"binary_data": False}, "binary_data", "output 'label'", True)
    with pytest.raises(InvalidInput, match="'binary_data' of output 'label' must be true or false, got 1"):
        v2_binary.wants_binary({"binary_data": 1}, "binary_data", "output 'label'", False)


@pytest.mark.parametrize("raw, error, fragment", [
    (prefixed(b"ab") + b"\x01\x00", InvalidInput, "ends inside an element's 4-byte length prefix"),
    (prefixed(b"ab") + struct.pack("<I", 2**32 - 1) + b"xy", InvalidInput, "an element of 4294967295 bytes"),
    (prefixed(*[b""] * 9), PayloadTooLarge, "more than 8 in the data (at most 8 per request)"),
])
def test_length_prefixed_elements_are_checked_as_they_are_read(raw, error, fragment):
    with pytest.raises(error) as raised:
        split_raw_bytes(raw, 8, "the data")
    assert fragment in raised.value.message


# -- whole requests as tritonclient sends them ----------------------------------------------------

def triton_request(texts: list[str], outputs: list | None, **options) -> tuple[bytes, dict]:
    """The body and headers tritonclient's HTTP client sends with its defaults (binary data)."""
    tensor = httpclient.InferInput("text", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=np.object_))
    body, json_size = httpclient.InferenceServerClient.generate_request_body([tensor], outputs, **options)
    return body, {} if json_size is None else {HEADER: str(json_size)}


def triton_result(response) -> httpclient.InferResult:
    return httpclient.InferenceServerClient.parse_response_body(
        response.get_data(), header_length=response.headers.get(HEADER))


@pytest.mark.parametrize("outputs", [
    None,  # tritonclient then asks every output in binary with "binary_data_output"
    [httpclient.InferRequestedOutput(name) for name in ("positive_probability", "label", "num_tokens")],
])
def test_tritonclient_s_defaults_go_both_ways_in_binary(http, outputs):
    body, headers = triton_request([POSITIVE, NEGATIVE], outputs, request_id="b1")
    assert HEADER in headers and b"binary_data" in body
    response = http.post(INFER, data=body, headers=headers)
    assert response.status_code == 200, response.get_data()
    assert response.content_type == "application/octet-stream"
    header_length = int(response.headers[HEADER])
    header = json.loads(response.get_data()[:header_length])
    assert header["id"] == "b1" and all("data" not in o for o in header["outputs"])
    assert [o["parameters"]["binary_data_size"] for o in header["outputs"]] == [8, 4 + 8 + 4 + 8, 8]
    assert len(response.get_data()) == header_length + 8 + 24 + 8
    result = triton_result(response)
    as_json = http.post(INFER, json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2],
                                                 "data": [POSITIVE, NEGATIVE]}]}).get_json()
    expected = {o["name"]: o["data"] for o in as_json["outputs"]}
    assert result.as_numpy("positive_probability").tolist() == pytest.approx(expected["positive_probability"])
    assert result.as_numpy("positive_probability").dtype == np.float32
    assert [label.decode() for label in result.as_numpy("label")] == expected["label"]
    assert expected["label"] == ["positive", "negative"]
    assert result.as_numpy("num_tokens").tolist() == expected["num_tokens"] == [8, 7]


def test_binary_input_with_json_outputs_and_a_mix(http):
    asked = [httpclient.InferRequestedOutput("label", binary_data=False),
             httpclient.InferRequestedOutput("num_tokens")]
    body, headers = triton_request([POSITIVE], asked)
    response = http.post(INFER, data=body, headers=headers)
    header = json.loads(response.get_data()[:int(response.headers[HEADER])])
    assert header["outputs"][0] == {"name": "label", "datatype": "BYTES", "shape": [1], "data": ["positive"]}
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 4}
    assert triton_result(response).as_numpy("num_tokens").tolist() == [8]
    body, headers = triton_request([POSITIVE], [httpclient.InferRequestedOutput("label", binary_data=False)])
    response = http.post(INFER, data=body, headers=headers)
    assert HEADER not in response.headers and response.get_json()["outputs"][0]["data"] == ["positive"]


def test_binary_data_output_is_the_default_an_output_may_override(http):
    request = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [POSITIVE]}],
               "parameters": {"binary_data_output": True},
               "outputs": [{"name": "label", "parameters": {"binary_data": False}}, {"name": "num_tokens"}]}
    response = http.post(INFER, json=request)
    header = json.loads(response.get_data()[:int(response.headers[HEADER])])
    assert header["outputs"][0]["data"] == ["positive"] and "data" not in header["outputs"][1]
    assert response.get_data()[int(response.headers[HEADER]):] == struct.pack("<i", 8)


def test_json_stays_json_and_the_server_metadata_names_the_extension(http):
    response = http.post(INFER, json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1],
                                                  "data": [POSITIVE]}], "outputs": [{"name": "label"}]})
    assert HEADER not in response.headers and response.content_type == "application/json"
    assert response.get_json()["outputs"] == [{"name": "label", "datatype": "BYTES", "shape": [1],
                                               "data": ["positive"]}]
    assert http.get("/v2").get_json()["extensions"] == ["binary_tensor_data"]


def sent(binary: bytes, size: object = None, header_length: int | str | None = None, **extra) -> tuple:
    """``binary`` as the one input's data, in the extension's form."""
    return framed(binary_input(binary, size, **extra), binary, header_length)


FP32_INPUT = {"inputs": [{"name": "text", "datatype": "FP32", "shape": [1],
                          "parameters": {"binary_data_size": 4}}]}
JSON_INPUT = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [POSITIVE]}]}
ONE = prefixed(b"x")


@pytest.mark.parametrize("body, headers, status, fragment", [
    (*sent(ONE, header_length=10_000), 400, HEADER + " is 10000 but the body has only"),
    (*sent(ONE, header_length="ten"), 400, HEADER + " must be the JSON header's length in bytes, got 'ten'"),
    (*sent(ONE, header_length=5), 400, "the JSON header (the body's first 5 bytes, as " + HEADER + " says)"),
    (*sent(ONE, size=99), 400, "has binary_data_size 99 but 5 bytes of binary data follow"),
    (*sent(ONE, size=-5), 400, "'binary_data_size' of input 'text' must be a whole number of bytes, got -5"),
    (*sent(ONE, size=2**62), 400, f"has binary_data_size {2**62} but 5 bytes"),
    (*sent(b"\x05\x00"), 400, "ends inside an element's 4-byte length prefix"),
    (*sent(b"\x05\x00\x00\x00ab"), 400, "the binary data of input 'text': an element of 5 bytes runs past"),
    (*sent(prefixed(b"\xff\xfe")), 400, "element 0 of input 'text' is not UTF-8"),
    (*framed(FP32_INPUT, b"\x00\x00\x80?"), 400, "must have datatype BYTES"),
    (*framed(JSON_INPUT, b"junk"), 400, "4 bytes follow the JSON header but input 'text' has no"),
    (json.dumps(binary_input(ONE)).encode() + ONE, {}, 400, "the body is not valid JSON"),
    (json.dumps(binary_input(b"")).encode(), {}, 400, "'binary_data_size' but the request has no " + HEADER),
    (*sent(ONE, outputs=[{"name": "label", "parameters": {"binary_data": "yes"}}]), 400,
     "'binary_data' of output 'label' must be true or false, got 'yes'"),
    (*sent(ONE, parameters={"binary_data_output": None}), 400,
     "'binary_data_output' of the request must be true or false, got None"),
    (*sent(prefixed(b"a", b"b")), 400, "has shape [1] but 2 elements"),
    (*sent(prefixed(*[b"fine"] * 9)), 413, "at most 8 per request"),
    (*sent(prefixed(b"fine " * 101)), 413, "characters (at most 500)"),
    (*sent(prefixed(b"x" * 5000)), 413, "request body over 4096 bytes"),
])
def test_malformed_binary_bodies_are_refused_naming_the_problem(http, body, headers, status, fragment):
    response = http.post(INFER, data=body, headers=headers)
    assert response.status_code == status and response.content_type == "application/json"
    error = response.get_json()["error"]
    assert isinstance(error, str) and fragment in error, error
