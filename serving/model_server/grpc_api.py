"""TF Serving's gRPC services: PredictionService (Predict, GetModelMetadata), ModelService."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message

from serving.model_server import metrics
from serving.model_server.errors import InvalidArgument, ServingError
from serving.model_server.manager import ModelManager
from serving.model_server.servable import LoadedVersion
from serving.model_server.tensors import fill_tensor, tensor_to_array
from serving.tfs_apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

_STATE_CODES = dict(get_model_status_pb2.ModelVersionStatus.State.items())


def model_spec_version(spec: model_pb2.ModelSpec) -> tuple[int | None, str]:
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.version.value, ""
    if choice == "version_label":
        return None, spec.version_label
    return None, ""


def predict(manager: ModelManager, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
    """The Predict request path, shared by the gRPC and REST APIs."""
    version, label = model_spec_version(request.model_spec)
    served = manager.resolve(request.model_spec.name, version, label)
    signature = served.loaded.signature(request.model_spec.signature_name)
    inputs = {}
    for alias, proto in request.inputs.items():
        try:
            inputs[alias] = tensor_to_array(proto)
        except Exception as error:
            raise InvalidArgument(f"input {alias!r} is not a valid tensor: {error}") from error
    signature.check_inputs(inputs)
    wanted = list(request.output_filter) or list(signature.outputs)
    unknown = [alias for alias in wanted if alias not in signature.outputs]
    if unknown:
        raise InvalidArgument(f"output tensor alias not found in signature: {', '.join(unknown)}")
    outputs = served.run(signature, inputs)
    response = predict_pb2.PredictResponse()
    _fill_spec(response.model_spec, served.loaded, signature.name)
    for alias in wanted:
        fill_tensor(response.outputs[alias], outputs[alias])
    return response


def model_metadata(
    manager: ModelManager, request: get_model_metadata_pb2.GetModelMetadataRequest
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    fields = list(request.metadata_field)
    if fields != ["signature_def"]:
        raise InvalidArgument("Metadata field(s) must be exactly [\"signature_def\"]")
    version, label = model_spec_version(request.model_spec)
    served = manager.resolve(request.model_spec.name, version, label)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, definition in served.loaded.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(definition)
    packed = any_pb2.Any()
    packed.Pack(signature_map)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    _fill_spec(response.model_spec, served.loaded, "")
    response.metadata["signature_def"].CopyFrom(packed)
    return response


def model_status(
    manager: ModelManager, request: get_model_status_pb2.GetModelStatusRequest
) -> get_model_status_pb2.GetModelStatusResponse:
    version, label = model_spec_version(request.model_spec)
    if label:
        version = manager.resolve(request.model_spec.name, None, label).loaded.version
    response = get_model_status_pb2.GetModelStatusResponse()
    for number, status in sorted(manager.statuses(request.model_spec.name, version).items()):
        entry = response.model_version_status.add(version=number, state=_STATE_CODES[status.state])
        entry.status.error_code = 2 if status.error else 0
        entry.status.error_message = status.error
    return response


def _fill_spec(spec: model_pb2.ModelSpec, loaded: LoadedVersion, signature_name: str) -> None:
    spec.name = loaded.name
    spec.version.value = loaded.version
    if signature_name:
        spec.signature_name = signature_name


def _answer(context: grpc.ServicerContext, call: Callable[[], Message]) -> Message:
    """``call()``'s response, or the call aborted with the ServingError's status."""
    try:
        return call()
    except ServingError as error:
        context.abort(error.grpc_code, error.message)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager

    def Predict(self, request, context):  # noqa: N802 (gRPC method name)
        return _answer(context, lambda: self._measured_predict(request))

    def _measured_predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        name = request.model_spec.name
        started = time.perf_counter()
        try:
            response = predict(self._manager, request)
        except ServingError as error:
            metrics.REQUEST_COUNT.labels(name, error.grpc_code.name).inc()
            raise
        metrics.REQUEST_COUNT.labels(name, "OK").inc()
        # In microseconds, like TF Serving's, so prometheus-client's time() does not fit.
        metrics.REQUEST_LATENCY.labels(name, "Predict", "GRPC").observe((time.perf_counter() - started) * 1e6)
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802
        return _answer(context, lambda: model_metadata(self._manager, request))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager

    def GetModelStatus(self, request, context):  # noqa: N802
        return _answer(context, lambda: model_status(self._manager, request))


def add_services(server: grpc.Server, manager: ModelManager) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(manager), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager), server)
