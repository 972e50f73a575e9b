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
import tensorflow as tf
from flask import Flask, Response, jsonify, request
from google.protobuf import json_format
from werkzeug.exceptions import HTTPException

from serving.model_server import grpc_api
from serving.model_server.errors import InvalidArgument, ServingError
from serving.model_server.manager import ModelManager
from serving.tfs_apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

log = logging.getLogger(__name__)
_PATH = re.compile(
    r"^(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:predict)?$"
)


def create_rest_app(manager: ModelManager, metrics_path: str | None = None) -> Flask:
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
        spec = {"name": match["name"]}
        if match["version"]:
            spec["version"] = int(match["version"])
        if match["label"]:
            spec["version_label"] = match["label"]
        if suffix == ":predict":
            return jsonify(_predict(manager, spec))
        if suffix == "/metadata":
            proto = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
            _set_spec(proto.model_spec, spec)
            response = grpc_api.model_metadata(manager, proto)
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            response.metadata["signature_def"].Unpack(signature_map)
            return jsonify(
                model_spec=_to_json(response.model_spec),
                metadata={"signature_def": _to_json(signature_map)},
            )
        proto = get_model_status_pb2.GetModelStatusRequest()
        _set_spec(proto.model_spec, spec)
        return jsonify(_to_json(grpc_api.model_status(manager, proto)))

    if metrics_path:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        @app.get(metrics_path)
        def metrics() -> Response:
            return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)

    return app


def _set_spec(target, spec: dict) -> None:
    target.name = spec["name"]
    if "version" in spec:
        target.version.value = spec["version"]
    if "version_label" in spec:
        target.version_label = spec["version_label"]


def _to_json(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _predict(manager: ModelManager, spec: dict) -> dict:
    try:
        body = json.loads(request.get_data())
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        raise InvalidArgument("JSON Parse error: the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidArgument("JSON Parse error: the body must be a JSON object")
    version, label = spec.get("version"), spec.get("version_label", "")
    served = manager.resolve(spec["name"], version, label)
    signature = served.loaded.signature(body.get("signature_name", ""))
    row_format = "instances" in body
    if row_format == ("inputs" in body):
        raise InvalidArgument("JSON Value must contain exactly one of 'instances' or 'inputs'")
    inputs = _row_inputs(body["instances"], signature) if row_format else _columnar_inputs(body["inputs"], signature)

    proto = predict_pb2.PredictRequest()
    _set_spec(proto.model_spec, spec)
    proto.model_spec.signature_name = signature.name
    for alias, value in inputs.items():
        try:
            array = np.asarray(value, dtype=signature.inputs[alias].dtype.as_numpy_dtype)
        except (ValueError, TypeError, OverflowError) as error:
            raise InvalidArgument(f"input {alias!r}: {error}") from error
        proto.inputs[alias].CopyFrom(tf.make_tensor_proto(array))
    outputs = {alias: tf.make_ndarray(t).tolist() for alias, t in grpc_api.predict(manager, proto).outputs.items()}
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
