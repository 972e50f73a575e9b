"""TF Serving's gRPC services, PredictionService (Predict, GetModelMetadata) and ModelService,
over the data plane."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import numpy as np
from google.protobuf import any_pb2
from google.protobuf.message import Message

from serving.model_server.data_plane import DataPlane, InputDecoder, ModelRef
from serving.model_server.errors import InvalidArgument, ServingError
from serving.model_server.messages import signature_def_map, status_response
from serving.model_server.servable import LoadedVersion, Signature
from serving.model_server.tensors import fill_tensor, tensor_to_array
from serving.tfs_apis import (
    get_model_metadata_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)


def model_ref(spec: model_pb2.ModelSpec) -> ModelRef:
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return ModelRef(spec.name, version=spec.version.value)
    if choice == "version_label":
        return ModelRef(spec.name, label=spec.version_label)
    return ModelRef(spec.name)


def _decode_inputs(request: predict_pb2.PredictRequest) -> InputDecoder:
    def decode(_signature: Signature) -> dict[str, np.ndarray]:
        inputs = {}
        for alias, proto in request.inputs.items():
            try:
                inputs[alias] = tensor_to_array(proto)
            except Exception as error:
                raise InvalidArgument(f"input {alias!r} is not a valid tensor: {error}") from error
        return inputs

    return decode


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
    def __init__(self, plane: DataPlane) -> None:
        self._plane = plane

    def Predict(self, request, context):  # noqa: N802 (gRPC method name)
        return _answer(context, lambda: self._predict(request))

    def _predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        prediction = self._plane.predict(model_ref(request.model_spec), request.model_spec.signature_name,
                                         _decode_inputs(request), list(request.output_filter), "GRPC")
        response = predict_pb2.PredictResponse()
        _fill_spec(response.model_spec, prediction.served, prediction.signature_name)
        for alias, array in prediction.outputs.items():
            fill_tensor(response.outputs[alias], array)
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802
        return _answer(context, lambda: self._metadata(request))

    def _metadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest):
        if list(request.metadata_field) != ["signature_def"]:
            raise InvalidArgument("Metadata field(s) must be exactly [\"signature_def\"]")
        loaded = self._plane.metadata(model_ref(request.model_spec))
        packed = any_pb2.Any()
        packed.Pack(signature_def_map(loaded))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        _fill_spec(response.model_spec, loaded, "")
        response.metadata["signature_def"].CopyFrom(packed)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, plane: DataPlane) -> None:
        self._plane = plane

    def GetModelStatus(self, request, context):  # noqa: N802
        return _answer(context, lambda: status_response(self._plane.status(model_ref(request.model_spec))))


def add_services(server: grpc.Server, plane: DataPlane) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(plane), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(plane), server)
