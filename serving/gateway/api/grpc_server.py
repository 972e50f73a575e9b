"""The gateway's gRPC process: ``sentiment.v1.SentimentService`` (``sentiment_grpc``) and
the Open Inference Protocol's ``GRPCInferenceService`` (``v2_grpc``), beside the HTTP API.

    python -m serving.gateway.api.grpc_server     # port from GATEWAY_GRPC_PORT (8600)

Both are codecs over the data plane HTTP uses. The process also serves the
standard health service (``grpc.health.v1``; SERVING exactly when the gateway is
ready) and, when ``GATEWAY_GRPC_REFLECTION`` is on, server reflection.

The server is gRPC's asyncio server: a call waiting for its request message costs a
coroutine, not a thread. Every call passes ``GatewayInterceptor`` first (request id, API
key, metrics, access line), which refuses a call without a valid key before its message is
read; the methods themselves are blocking functions run on a pool of
``GATEWAY_GRPC_MAX_WORKERS`` threads. Requests larger than ``GATEWAY_GRPC_MAX_MESSAGE_BYTES``
are refused by gRPC with RESOURCE_EXHAUSTED; requests that are not a valid message (bad wire
format, invalid UTF-8 in a string) get INVALID_ARGUMENT.
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from serving.gateway.api.exposure import exposure_warnings
from serving.gateway.api.grpc_interceptor import GatewayInterceptor
from serving.gateway.api.sentiment_grpc import SERVICE_NAME, SentimentServicer
from serving.gateway.api.v2_grpc import OPEN_ROUTES as OPEN_INFERENCE_OPEN_ROUTES
from serving.gateway.api.v2_grpc import SERVICE_NAME as OPEN_INFERENCE_SERVICE
from serving.gateway.api.v2_grpc import OpenInferenceServicer
from serving.gateway.data_plane import DataPlane
from serving.gateway.observability import metrics
from serving.gateway.observability.logs import logging_config
from serving.gateway.settings import Settings, SettingsError
from serving.termination import TerminationSignal

log = logging.getLogger(__name__)
# A connection past its age gets this long for the calls in progress on it.
CONNECTION_AGE_GRACE_MS = 60_000


class GrpcServer:
    """The asyncio server on an event loop thread of its own, with a blocking face for
    ``main`` and for tests: ``start()``, ``stop(grace)``. The health status follows the
    gateway's readiness every ``GATEWAY_HEALTH_CHECK_SECONDS``."""

    def __init__(self, settings: Settings, service: DataPlane) -> None:
        self._settings = settings
        self._service = service
        self._pool = ThreadPoolExecutor(settings.grpc_max_workers, thread_name_prefix="grpc")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc-loop", daemon=True)
        self._thread.start()
        self._readiness: asyncio.Task | None = None
        self._stopped = False
        self.health = HealthServicer()
        try:
            self._server, self.port = self._run(self._build())
        except BaseException:
            self._close()
            raise

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _build(self) -> tuple[grpc.aio.Server, int]:
        settings, service = self._settings, self._service
        size = settings.grpc_max_message_bytes
        server = grpc.aio.server(
            interceptors=[GatewayInterceptor(
                service.authenticate, OPEN_INFERENCE_OPEN_ROUTES, settings.access_log,
                settings.grpc_max_calls_per_key, settings.grpc_max_probe_calls_per_address,
                settings.grpc_message_timeout_seconds,
            )],
            maximum_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
            options=[
                ("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size),
                ("grpc.max_concurrent_streams", settings.grpc_max_concurrent_streams),
                ("grpc.max_connection_age_ms", int(settings.grpc_max_connection_age_seconds * 1000)),
                ("grpc.max_connection_age_grace_ms", CONNECTION_AGE_GRACE_MS),
            ],
        )
        server.add_generic_rpc_handlers((SentimentServicer(service).handler(self._pool),
                                         OpenInferenceServicer(service).handler(self._pool)))
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        if settings.grpc_reflection:
            reflection.enable_server_reflection(
                (SERVICE_NAME, OPEN_INFERENCE_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
            )
        address = f"{settings.grpc_host}:{settings.grpc_port}"
        port = server.add_secure_port(address, credentials) if (credentials := server_credentials(settings)) \
            else server.add_insecure_port(address)
        return server, port

    def start(self) -> None:
        async def start() -> None:
            await self._server.start()
            self._readiness = asyncio.ensure_future(self._follow_readiness())

        self._run(start())

    async def _follow_readiness(self) -> None:
        """Keep the health status equal to the gateway's readiness."""
        loop = asyncio.get_running_loop()
        while True:
            ready = await loop.run_in_executor(self._pool, self._service.ready)
            status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
            for name in ("", SERVICE_NAME):
                await self.health.set(name, status)
            await asyncio.sleep(self._settings.health_check_seconds)

    def stop(self, grace: float | None) -> None:
        """Refuse new calls, give those in progress ``grace`` seconds, then close."""

        async def stop() -> None:
            if self._readiness is not None:
                self._readiness.cancel()
            await self.health.enter_graceful_shutdown()
            await self._server.stop(grace)

        if self._stopped:
            return
        self._stopped = True
        try:
            self._run(stop())
        finally:
            self._close()

    def _close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def build_server(settings: Settings, service: DataPlane) -> tuple[GrpcServer, HealthServicer, int]:
    server = GrpcServer(settings, service)
    return server, server.health, server.port


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
        service = DataPlane(settings)
        server = GrpcServer(settings, service)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    metrics.forget_dead_processes()  # e.g. this server's predecessor's in-flight gauge
    for warning in exposure_warnings(settings, grpc=True):
        log.warning("%s", warning)
    server.start()
    termination = TerminationSignal()
    log.info("gRPC API on %s:%d (model server %s)", settings.grpc_host, server.port, settings.model_server)
    termination.wait()
    log.info("shutting down: refusing new calls, finishing those in flight")
    server.stop(settings.grpc_shutdown_grace_seconds)
    service.close()


if __name__ == "__main__":
    main()
