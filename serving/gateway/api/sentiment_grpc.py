"""The gateway's own gRPC service, ``sentiment.v1.SentimentService``: a codec between its
messages and the data plane."""

from __future__ import annotations

from concurrent.futures import Executor

import grpc
from sentiment.v1 import sentiment_pb2

from serving.gateway.api.grpc_handlers import decode, generic_handler
from serving.gateway.api.grpc_interceptor import current_call
from serving.gateway.data_plane import DataPlane, Prediction, PredictRequest

SERVICE_NAME = sentiment_pb2.DESCRIPTOR.services_by_name["SentimentService"].full_name


def as_message(prediction: Prediction) -> sentiment_pb2.Prediction:
    fields = prediction.to_json()
    fields.pop("explanation", None)
    fields.pop("explanation_note", None)
    message = sentiment_pb2.Prediction(**fields)
    if prediction.explanation is not None:
        message.explanation.extend(sentiment_pb2.WordEffect(**word.to_json()) for word in prediction.explanation.words)
        message.explanation_note = prediction.explanation.note or ""
    return message


class SentimentServicer:
    """The service's methods; they take the raw request bytes (see ``decode``)."""

    def __init__(self, service: DataPlane) -> None:
        self._service = service

    def Predict(self, raw: bytes, context) -> sentiment_pb2.PredictResponse:  # noqa: N802 (gRPC method name)
        request = decode(sentiment_pb2.PredictRequest, raw)
        call = current_call()
        call.model = self._service.model_label(request.model)
        predictions = self._service.predict(PredictRequest(
            list(request.texts), request.model or None, request.version or None,
            explain=request.explain, top_k=request.explain_top_k or None, request_id=call.request_id,
            timeout=context.time_remaining(), transport="grpc", key_id=call.key_id,
        ))
        call.version = predictions[0].model_version
        return sentiment_pb2.PredictResponse(predictions=[as_message(p) for p in predictions])

    def ListModels(self, raw: bytes, context) -> sentiment_pb2.ListModelsResponse:  # noqa: N802
        decode(sentiment_pb2.ListModelsRequest, raw)
        return sentiment_pb2.ListModelsResponse(models=[
            sentiment_pb2.Model(
                model=m.model, model_name=m.model_name,
                versions=[sentiment_pb2.ModelVersion(version=v, state=s) for v, s in m.versions.items()],
            )
            for m in self._service.models()
        ])

    def handler(self, pool: Executor) -> grpc.GenericRpcHandler:
        return generic_handler(SERVICE_NAME, {
            "Predict": (self.Predict, sentiment_pb2.PredictResponse),
            "ListModels": (self.ListModels, sentiment_pb2.ListModelsResponse),
        }, pool)
