"""The gateway's own gRPC API (``sentiment.v1.SentimentService``), beside the HTTP API.

    python -m serving.gateway.grpc_server     # port from GATEWAY_GRPC_PORT (8600)

Same core as HTTP (validation, tokenization, model calls, metrics). Also serves the
standard health service (``grpc.health.v1``; SERVING exactly when the gateway is
ready) and server reflection. Requests larger than ``GATEWAY_GRPC_MAX_MESSAGE_BYTES``
are refused by gRPC with RESOURCE_EXHAUSTED; requests that are not a valid message
(bad wire format, invalid UTF-8 in a string) get INVALID_ARGUMENT.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sentiment.v1 import sentiment_pb2

from serving.gateway import metrics
from serving.gateway.core import Prediction, SentimentService
from serving.gateway.grpc_methods import call_timeout, decode, generic_handler, observe
from serving.gateway.logs import logging_config
from serving.gateway.open_inference_grpc import SERVICE_NAME as OPEN_INFERENCE_SERVICE
from serving.gateway.open_inference_grpc import OpenInferenceServicer
from serving.gateway.settings import Settings, SettingsError
from serving.termination import TerminationSignal

log = logging.getLogger(__name__)
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

    def __init__(self, service: SentimentService) -> None:
        self._service = service

    def _observe(self, method: str, context: grpc.ServicerContext, call):
        return observe(f"/{SERVICE_NAME}/{method}", context, call, self._service)

    def Predict(self, raw: bytes, context) -> sentiment_pb2.PredictResponse:  # noqa: N802 (gRPC method name)
        def call(labels: dict[str, str]):
            request = decode(sentiment_pb2.PredictRequest, raw)
            labels["model"] = self._service.model_label(request.model)
            timeout = call_timeout(self._service, context)
            predictions = self._service.predict(
                list(request.texts), request.model or None, request.version or None,
                transport="grpc", timeout=timeout,
                explain=request.explain, top_k=request.explain_top_k or None, request_id=labels["request_id"],
            )
            labels["version"] = predictions[0].model_version
            return sentiment_pb2.PredictResponse(predictions=[as_message(p) for p in predictions])

        return self._observe("Predict", context, call)

    def ListModels(self, raw: bytes, context) -> sentiment_pb2.ListModelsResponse:  # noqa: N802
        def call(labels: dict[str, str]):
            decode(sentiment_pb2.ListModelsRequest, raw)
            return sentiment_pb2.ListModelsResponse(models=[
                sentiment_pb2.Model(
                    model=m.model, model_name=m.model_name,
                    versions=[sentiment_pb2.ModelVersion(version=v, state=s) for v, s in m.versions.items()],
                )
                for m in self._service.list_models()
            ])

        return self._observe("ListModels", context, call)

    def handler(self) -> grpc.GenericRpcHandler:
        return generic_handler(SERVICE_NAME, {
            "Predict": (self.Predict, sentiment_pb2.PredictResponse),
            "ListModels": (self.ListModels, sentiment_pb2.ListModelsResponse),
        })


def follow_readiness(
    service: SentimentService, health_servicer: health.HealthServicer, stop: threading.Event, period: float
) -> None:
    """Keep the health status equal to the gateway's readiness."""
    while True:
        ready, _ = service.ready()
        status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            health_servicer.set(name, status)
        if stop.wait(period):
            return


def build_server(settings: Settings, service: SentimentService) -> tuple[grpc.Server, health.HealthServicer, int]:
    size = settings.grpc_max_message_bytes
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_max_workers),
        options=[("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size)],
    )
    server.add_generic_rpc_handlers((SentimentServicer(service).handler(), OpenInferenceServicer(service).handler()))
    health_servicer = health.HealthServicer()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, OPEN_INFERENCE_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    port = server.add_secure_port(address, credentials) if (credentials := server_credentials(settings)) \
        else server.add_insecure_port(address)
    return server, health_servicer, port


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials from the settings' PEM files, or None for plain text."""
    if not settings.grpc_tls_cert:
        return None
    try:
        chain = settings.grpc_tls_cert.read_bytes()
        key = settings.grpc_tls_key.read_bytes()
        client_ca = settings.grpc_tls_client_ca.read_bytes() if settings.grpc_tls_client_ca else None
    except OSError as error:
        raise SettingsError(f"cannot read a TLS file of the gRPC API: {error}") from None
    return grpc.ssl_server_credentials([(key, chain)], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


def main() -> None:
    try:
        settings = Settings.from_env()
        logging.config.dictConfig(logging_config(settings.log_format))
        service = SentimentService(settings)
        server, health_servicer, port = build_server(settings, service)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    metrics.forget_dead_processes()  # e.g. this server's predecessor's in-flight gauge
    server.start()
    termination = TerminationSignal()
    threading.Thread(
        target=follow_readiness,
        args=(service, health_servicer, termination.event, settings.health_check_seconds),
        daemon=True,
    ).start()
    log.info("gRPC API on %s:%d (model server %s)", settings.grpc_host, port, settings.model_server)
    termination.wait()
    log.info("shutting down: refusing new calls, finishing those in flight")
    health_servicer.enter_graceful_shutdown()
    server.stop(settings.grpc_shutdown_grace_seconds).wait()


if __name__ == "__main__":
    main()
