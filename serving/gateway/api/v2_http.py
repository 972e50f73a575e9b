"""The Open Inference Protocol's REST flavour (``/v2/...``) in the gateway's Flask app.

Errors take the protocol's shape, ``{"error": "message"}``, with the gateway's HTTP
statuses; health and readiness answer by status code alone (200 or 503), as the
protocol says. Tensor data is JSON (the protocol's base form); Triton's binary-data
extension is refused with a message saying so.
"""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from serving.gateway.api import v2_codec as v2
from serving.gateway.api.responses import json_response
from serving.gateway.data_plane import DataPlane, PredictRequest
from serving.gateway.errors import GatewayError, InvalidInput


def _error(status: int, message: str, retry_after: int | None = None) -> Response:
    return json_response({"error": message}, status, retry_after)  # the protocol's error shape


def _status(ok: bool, not_ok: int = 503) -> Response:
    return Response(status=200 if ok else not_ok)


def _texts(tensor: dict) -> list:
    """The texts of a JSON input tensor: its data flat, or nested one level for shape [n, 1]."""
    data = tensor.get("data")
    if not isinstance(data, list):
        raise InvalidInput(f"input {v2.INPUT_NAME!r} needs 'data', a list of strings")
    return [item[0] if isinstance(item, list) and len(item) == 1 else item for item in data]


def parse_infer_request(body: object) -> tuple[list, list[str], str | None]:
    """(texts, output names, request id) from a decoded V2 inference request."""
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
    texts = _texts(inputs[0])
    v2.check_element_count(described[0][2], len(texts))
    requested = body.get("outputs", [])
    if not isinstance(requested, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                  for o in requested):
        raise InvalidInput("'outputs' must be a list of objects with a 'name'")
    for output in requested:
        v2.check_parameters(output, "an output")
    request_id = body.get("id")
    if "id" in body and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    return texts, v2.selected_outputs([o["name"] for o in requested]), request_id


def open_inference_blueprint(service: DataPlane, decode_json) -> Blueprint:
    routes = Blueprint("open_inference", __name__)

    @routes.errorhandler(GatewayError)
    def gateway_error(error: GatewayError) -> Response:
        return _error(error.http_status, error.message, error.retry_after)

    @routes.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return _error(error.code or 400, error.description or error.name)

    @routes.get("/v2/health/live")
    def live() -> Response:
        return _status(True)

    @routes.get("/v2/health/ready")
    def ready() -> Response:
        return _status(service.ready())

    @routes.get("/v2")
    def server_metadata() -> Response:
        return jsonify(name=v2.SERVER_NAME, version=v2.server_version(), extensions=[])

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
        if "Inference-Header-Content-Length" in request.headers:
            raise InvalidInput("binary tensor data (Triton's extension) is not supported: send the data as JSON")
        service.require_model(model)
        version_number = v2.model_version(model_version)
        texts, names, request_id = parse_infer_request(decode_json(request.get_data()))
        predictions = service.predict(PredictRequest(texts, model, version_number, request_id=g.request_id,
                                                     transport="http", key_id=g.get("key_id")))
        g.version = predictions[0].model_version
        answer: dict = {
            "model_name": model,
            "model_version": str(predictions[0].model_version),
            "outputs": [{"name": t.name, "datatype": t.datatype, "shape": t.shape, "data": t.values}
                        for t in v2.outputs(predictions, names)],
        }
        if request_id is not None:
            answer = {"id": request_id, **answer}
        return jsonify(answer)

    return routes
