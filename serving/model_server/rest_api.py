"""The subset of TF Serving's REST API that clients and health checks use.

    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            model status
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   signature metadata
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict     row ("instances") or
                                                                 columnar ("inputs") format

Responses and error bodies (``{"error": "..."}``) follow TF Serving's JSON shapes,
so a TF Serving REST client works unchanged.
"""

from __future__ import annotations

import json
import logging
import re

import numpy as np
from flask import Flask, Response, jsonify, request
from google.protobuf import json_format
from werkzeug.exceptions import HTTPException

from serving.model_server.data_plane import DataPlane, ModelRef
from serving.model_server.errors import InvalidArgument, ServingError
from serving.model_server.messages import signature_def_map, status_response
from serving.model_server.servable import Signature

log = logging.getLogger(__name__)
_PATH = re.compile(
    r"^(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:predict)?$"
)


def create_rest_app(plane: DataPlane, metrics_path: str | None = None) -> Flask:
    app = Flask(__name__)

    @app.errorhandler(ServingError)
    def serving_error(error: ServingError) -> tuple[Response, int]:
        return jsonify(error=error.message), error.http_status

    @app.errorhandler(404)
    def unknown_route(_error) -> tuple[Response, int]:
        return jsonify(error="Malformed request: unknown path"), 404

    @app.errorhandler(405)
    def wrong_method(_error) -> tuple[Response, int]:
        return jsonify(error=f"Method {request.method} is not allowed on {request.path}"), 405

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[Response, int]:
        if isinstance(error, HTTPException):
            return jsonify(error=error.description or error.name), error.code or 500
        log.exception("unexpected error on %s %s", request.method, request.path)
        return jsonify(error="Internal: the failure was logged by the model server"), 500

    @app.route("/v1/models/<path:rest>", methods=["GET", "POST"])
    def models(rest: str):
        match = _PATH.match(rest)
        if match is None:
            raise InvalidArgument(f"Malformed request: {request.method} {request.path}")
        suffix = match["suffix"] or ""
        if (request.method == "POST") != (suffix == ":predict"):
            return wrong_method(None)
        model = ModelRef(match["name"], int(match["version"]) if match["version"] else None, match["label"] or "")
        if suffix == ":predict":
            return jsonify(_predict(plane, model))
        if suffix == "/metadata":
            loaded = plane.metadata(model)
            return jsonify(
                model_spec={"name": loaded.name, "version": str(loaded.version)},
                metadata={"signature_def": _to_json(signature_def_map(loaded))},
            )
        return jsonify(_to_json(status_response(plane.status(model))))

    if metrics_path:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        @app.get(metrics_path)
        def metrics() -> Response:
            return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)

    return app


def _to_json(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _predict(plane: DataPlane, model: ModelRef) -> dict:
    try:
        body = json.loads(request.get_data())
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        raise InvalidArgument("JSON Parse error: the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidArgument("JSON Parse error: the body must be a JSON object")
    row_format = "instances" in body
    if row_format == ("inputs" in body):
        raise InvalidArgument("JSON Value must contain exactly one of 'instances' or 'inputs'")

    def decode(signature: Signature) -> dict[str, np.ndarray]:
        values = _row_inputs(body["instances"], signature) if row_format else _columnar_inputs(body["inputs"], signature)
        inputs = {}
        for alias, value in values.items():
            spec = signature.inputs.get(alias)
            try:
                inputs[alias] = np.asarray(value, dtype=spec.dtype.as_numpy_dtype if spec else None)
            except (ValueError, TypeError, OverflowError) as error:
                raise InvalidArgument(f"input {alias!r}: {error}") from error
        return inputs

    prediction = plane.predict(model, body.get("signature_name", ""), decode, [], "REST")
    outputs = {alias: array.tolist() for alias, array in prediction.outputs.items()}
    if not row_format:
        return {"outputs": outputs if len(outputs) > 1 else next(iter(outputs.values()))}
    if len(outputs) == 1:
        return {"predictions": next(iter(outputs.values()))}
    rows = len(next(iter(outputs.values())))
    return {"predictions": [{alias: values[i] for alias, values in outputs.items()} for i in range(rows)]}


def _row_inputs(instances, signature) -> dict:
    if not isinstance(instances, list):
        raise InvalidArgument("'instances' must be a JSON list")
    if len(signature.inputs) == 1:
        (alias,) = signature.inputs
        if instances and isinstance(instances[0], dict):
            instances = [row.get(alias) if isinstance(row, dict) else row for row in instances]
        return {alias: instances}
    if not all(isinstance(row, dict) for row in instances):
        raise InvalidArgument("with several inputs every instance must be a JSON object")
    return {alias: [row.get(alias) for row in instances] for alias in signature.inputs}


def _columnar_inputs(inputs, signature) -> dict:
    if isinstance(inputs, dict):
        return inputs
    if len(signature.inputs) != 1:
        raise InvalidArgument("'inputs' must name each input when the signature has several")
    return {next(iter(signature.inputs)): inputs}
