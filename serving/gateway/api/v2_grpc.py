"""The Open Inference Protocol's gRPC flavour (``inference.GRPCInferenceService``) on the
gateway's gRPC port, beside ``sentiment.v1``.

Texts arrive in ``contents.bytes_contents`` or in ``raw_input_contents``; outputs go back
in ``raw_output_contents`` (the binary form, as Triton answers, which every V2 client
reads), one entry per output in the order of ``outputs``.
"""

from __future__ import annotations

from concurrent.futures import Executor

import grpc
from sentiment.openinference import open_inference_grpc_pb2 as pb

from serving.gateway.api import v2_codec as v2
from serving.gateway.api.grpc_handlers import decode, generic_handler
from serving.gateway.api.grpc_interceptor import current_call
from serving.gateway.data_plane import DataPlane, PredictRequest
from serving.gateway.errors import InvalidInput

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
# Server health answers probes, as HTTP's does: no key asked.
OPEN_ROUTES = frozenset(f"/{SERVICE_NAME}/{method}" for method in ("ServerLive", "ServerReady"))


def request_texts(request: pb.ModelInferRequest, max_texts: int) -> list[str]:
    v2.check_input([(t.name, t.datatype, list(t.shape)) for t in request.inputs])
    tensor = request.inputs[0]
    if request.raw_input_contents:
        if len(request.raw_input_contents) != 1:
            raise InvalidInput(f"expected 1 raw_input_contents entry (one per input), "
                               f"got {len(request.raw_input_contents)}")
        if tensor.contents.bytes_contents:
            raise InvalidInput(f"input {v2.INPUT_NAME!r} has both contents and raw_input_contents")
        raw = request.raw_input_contents[0]
        elements = v2.split_raw_bytes(raw, max_texts, f"raw input {v2.INPUT_NAME!r}")
    else:
        elements = list(tensor.contents.bytes_contents)
    v2.check_element_count(tensor.shape, len(elements))
    return [v2.decode_text(element, index) for index, element in enumerate(elements)]


class OpenInferenceServicer:
    """The protocol's methods; they take the raw request bytes, as ``sentiment.v1``'s do."""

    def __init__(self, service: DataPlane) -> None:
        self._service = service

    def ServerLive(self, raw: bytes, context) -> pb.ServerLiveResponse:  # noqa: N802 (gRPC method names)
        decode(pb.ServerLiveRequest, raw)
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, raw: bytes, context) -> pb.ServerReadyResponse:  # noqa: N802
        decode(pb.ServerReadyRequest, raw)
        return pb.ServerReadyResponse(ready=self._service.ready())

    def ModelReady(self, raw: bytes, context) -> pb.ModelReadyResponse:  # noqa: N802
        request = decode(pb.ModelReadyRequest, raw)
        current_call().model = self._service.model_label(request.name)
        return pb.ModelReadyResponse(ready=v2.model_ready(self._service, request.name, request.version))

    def ServerMetadata(self, raw: bytes, context) -> pb.ServerMetadataResponse:  # noqa: N802
        decode(pb.ServerMetadataRequest, raw)
        return pb.ServerMetadataResponse(name=v2.SERVER_NAME, version=v2.server_version(), extensions=[])

    def ModelMetadata(self, raw: bytes, context) -> pb.ModelMetadataResponse:  # noqa: N802
        request = decode(pb.ModelMetadataRequest, raw)
        current_call().model = self._service.model_label(request.name)
        metadata = v2.model_metadata(self._service, request.name, request.version)
        tensors = {side: [pb.ModelMetadataResponse.TensorMetadata(**t) for t in metadata[side]]
                   for side in ("inputs", "outputs")}
        return pb.ModelMetadataResponse(name=metadata["name"], versions=metadata["versions"],
                                        platform=metadata["platform"], **tensors)

    def ModelInfer(self, raw: bytes, context) -> pb.ModelInferResponse:  # noqa: N802
        request = decode(pb.ModelInferRequest, raw)
        call = current_call()
        call.model = self._service.model_label(request.model_name)
        self._service.require_model(request.model_name)
        version = v2.model_version(request.model_version)
        texts = request_texts(request, self._service.max_texts)
        names = v2.selected_outputs([o.name for o in request.outputs])
        predictions = self._service.predict(PredictRequest(
            texts, request.model_name, version, request_id=call.request_id,
            timeout=context.time_remaining(), transport="grpc", key_id=call.key_id,
        ))
        call.version = predictions[0].model_version
        tensors = v2.outputs(predictions, names)
        return pb.ModelInferResponse(
            model_name=request.model_name,
            model_version=str(predictions[0].model_version),
            id=request.id,
            outputs=[pb.ModelInferResponse.InferOutputTensor(name=t.name, datatype=t.datatype, shape=t.shape)
                     for t in tensors],
            raw_output_contents=[v2.raw_bytes(t) for t in tensors],
        )

    def handler(self, pool: Executor) -> grpc.GenericRpcHandler:
        return generic_handler(SERVICE_NAME, {
            "ServerLive": (self.ServerLive, pb.ServerLiveResponse),
            "ServerReady": (self.ServerReady, pb.ServerReadyResponse),
            "ModelReady": (self.ModelReady, pb.ModelReadyResponse),
            "ServerMetadata": (self.ServerMetadata, pb.ServerMetadataResponse),
            "ModelMetadata": (self.ModelMetadata, pb.ModelMetadataResponse),
            "ModelInfer": (self.ModelInfer, pb.ModelInferResponse),
        }, pool)
