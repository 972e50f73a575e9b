"""The Open Inference Protocol's REST flavour (``/v2/...``) in the gateway's Flask app.

Errors take the protocol's shape, ``{"error": "message"}``, with the gateway's HTTP
statuses; health and readiness answer by status code alone (200 or 503), as the
protocol says. Tensor data is JSON (the protocol's base form) or, with Triton's
binary tensor data extension (tritonclient's default, ``v2_binary``), raw bytes after
a JSON header, both ways.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from serving.gateway.api import v2_binary
from serving.gateway.api import v2_codec as v2
from serving.gateway.api.responses import json_response
from serving.gateway.data_plane import DataPlane, Prediction, PredictRequest
from serving.gateway.errors import GatewayError, InvalidInput

EXTENSIONS = ["binary_tensor_data"]  # Triton's name for the extension, in the server metadata
INPUT = f"input {v2.INPUT_NAME!r}"


@dataclass(frozen=True)
class InferRequest:
    texts: list
    outputs: dict[str, bool]  # output name -> answered in binary, in the order asked
    request_id: str | None


def _error(status: int, message: str, retry_after: int | None = None) -> Response:
    return json_response({"error": message}, status, retry_after)  # the protocol's error shape


def _status(ok: bool, not_ok: int = 503) -> Response:
    return Response(status=200 if ok else not_ok)


def _texts(tensor: dict, binary: bytes | None, max_texts: int) -> list:
    """The texts of the input tensor: from its binary data when sent so, else its JSON
    data, flat or nested one level for shape [n, 1]."""
    if binary is not None:
        elements = v2.split_raw_bytes(binary, max_texts, f"the binary data of {INPUT}")
        return [v2.decode_text(element, index) for index, element in enumerate(elements)]
    data = tensor.get("data")
    if not isinstance(data, list):
        raise InvalidInput(f"{INPUT} needs 'data', a list of strings, or its data in binary "
                           f"('binary_data_size' and the {v2_binary.HEADER} header)")
    return [item[0] if isinstance(item, list) and len(item) == 1 else item for item in data]


def _requested_outputs(body: dict) -> dict[str, bool]:
    """Output name -> answered in binary: an output's ``binary_data``, else the request's
    ``binary_data_output``, else JSON."""
    requested = body.get("outputs", [])
    if not isinstance(requested, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                  for o in requested):
        raise InvalidInput("'outputs' must be a list of objects with a 'name'")
    default = v2_binary.wants_binary(body.get("parameters", {}), "binary_data_output", "the request", False)
    binary: dict[str, bool] = {}
    for output in requested:
        v2.check_parameters(output, "an output")
        where = f"output {output['name']!r}"
        binary.setdefault(output["name"],
                          v2_binary.wants_binary(output.get("parameters", {}), "binary_data", where, default))
    return {name: binary.get(name, default) for name in v2.selected_outputs([o["name"] for o in requested])}


def parse_infer_request(body: object, binary: bytes | None, max_texts: int) -> InferRequest:
    """A decoded V2 inference request, with ``binary``, the bytes after its JSON header
    (None without the binary extension's header)."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(tensor, dict) for tensor in inputs):
        raise InvalidInput("'inputs' must be a list of tensor objects")
    v2.check_parameters(body, "the request")
    described = []
    for tensor in inputs:
        v2.check_parameters(tensor, "an input")
        shape = tensor.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise InvalidInput("every input needs 'shape', a list of whole numbers")
        described.append((tensor.get("name"), tensor.get("datatype"), shape))
    v2.check_input(described)
    tensor = inputs[0]
    texts = _texts(tensor, v2_binary.input_bytes(tensor, INPUT, binary), max_texts)
    v2.check_element_count(described[0][2], len(texts))
    outputs = _requested_outputs(body)
    request_id = body.get("id")
    if "id" in body and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    return InferRequest(texts, outputs, request_id)


def infer_response(model: str, predictions: list[Prediction], asked: InferRequest) -> Response:
    """The answer: JSON, or a JSON header and the binary outputs' bytes when any is asked in binary."""
    described, blobs = [], []
    for tensor in v2.outputs(predictions, list(asked.outputs)):
        entry: dict = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape}
        if asked.outputs[tensor.name]:
            blobs.append(v2.raw_bytes(tensor))
            entry["parameters"] = {"binary_data_size": len(blobs[-1])}
        else:
            entry["data"] = tensor.values
        described.append(entry)
    answer: dict = {"model_name": model, "model_version": str(predictions[0].model_version),
                    "outputs": described}
    if asked.request_id is not None:
        answer = {"id": asked.request_id, **answer}
    if not blobs:
        return jsonify(answer)
    header = json.dumps(answer, separators=(",", ":")).encode()
    return Response(header + b"".join(blobs), content_type=v2_binary.CONTENT_TYPE,
                    headers={v2_binary.HEADER: str(len(header))})


def _decode(raw: bytes, header_length: str | None, decode_json) -> tuple[object, bytes | None]:
    """(the decoded JSON, the binary data after it) of a request body."""
    header, binary = v2_binary.split_body(raw, header_length)
    try:
        return decode_json(header), binary
    except InvalidInput:
        if header_length is None:
            raise
        raise InvalidInput(f"the JSON header (the body's first {len(header)} bytes, as "
                           f"{v2_binary.HEADER} says) is not valid JSON") from None


def open_inference_blueprint(service: DataPlane, decode_json) -> Blueprint:
    routes = Blueprint("open_inference", __name__)

    @routes.errorhandler(GatewayError)
    def gateway_error(error: GatewayError) -> Response:
        return _error(error.http_status, error.message, error.retry_after)

    @routes.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        if error.code == 413:
            return _error(413, f"request body over {current_app.config['MAX_CONTENT_LENGTH']} bytes")
        return _error(error.code or 400, error.description or error.name)

    @routes.get("/v2/health/live")
    def live() -> Response:
        return _status(True)

    @routes.get("/v2/health/ready")
    def ready() -> Response:
        return _status(service.ready())

    @routes.get("/v2")
    def server_metadata() -> Response:
        return jsonify(name=v2.SERVER_NAME, version=v2.server_version(), extensions=EXTENSIONS)

    @routes.get("/v2/models/<model>")
    @routes.get("/v2/models/<model>/versions/<model_version>")
    def model_metadata(model: str, model_version: str = "") -> Response:
        g.model = service.model_label(model)
        return jsonify(v2.model_metadata(service, model, model_version))

    @routes.get("/v2/models/<model>/ready")
    @routes.get("/v2/models/<model>/versions/<model_version>/ready")
    def model_ready(model: str, model_version: str = "") -> Response:
        g.model = service.model_label(model)
        # A model that is not ready: 400, as Triton answers (the protocol: "a 4xx status code").
        return _status(v2.model_ready(service, model, model_version), not_ok=400)

    @routes.post("/v2/models/<model>/infer")
    @routes.post("/v2/models/<model>/versions/<model_version>/infer")
    def infer(model: str, model_version: str = "") -> Response:
        g.model = service.model_label(model)
        service.require_model(model)
        version_number = v2.model_version(model_version)
        body, binary = _decode(request.get_data(), request.headers.get(v2_binary.HEADER), decode_json)
        asked = parse_infer_request(body, binary, service.max_texts)
        predictions = service.predict(PredictRequest(asked.texts, model, version_number,
                                                     request_id=g.request_id, transport="http",
                                                     key_id=g.get("key_id")))
        g.version = predictions[0].model_version
        return infer_response(model, predictions, asked)

    return routes
