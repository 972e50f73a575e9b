"""One interceptor for every gRPC method of the gateway: the request id, the API key, the
metrics and the access line of each call.

It runs on the server's event loop once a call's metadata has arrived and before gRPC reads
the request message. A call without a valid key (or over its key's rate) is answered there:
its message is never read, and it takes no worker thread, so clients without a key can
neither hold the gateway's threads by never sending a message nor make it read large ones.
A key holder's call then waits for its message on the event loop, not on a thread, for at
most ``GATEWAY_GRPC_MESSAGE_TIMEOUT_SECONDS``, and a key has at most
``GATEWAY_GRPC_MAX_CALLS_PER_KEY`` calls open at once in the process. Probes, which bring
no key (the health service and the open routes), are bounded per client address instead:
at most ``GATEWAY_GRPC_MAX_PROBE_CALLS_PER_ADDRESS`` open at once, health watches included.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import grpc

from serving.gateway.access.api_keys import presented_key
from serving.gateway.access.request_ids import METADATA_KEY, request_id
from serving.gateway.errors import GatewayError, InvalidInput, RateLimited, RequestTimeout
from serving.gateway.observability import metrics
from serving.gateway.observability.logs import log_access

log = logging.getLogger(__name__)

HEALTH_SERVICE = "/grpc.health.v1.Health/"
# Tooling the interceptor leaves alone (off in production: GATEWAY_GRPC_REFLECTION).
UNOBSERVED_SERVICES = ("/grpc.reflection.",)
Authenticate = Callable[[str | None, str], str | None]  # (presented key, transport) -> key id


@dataclass
class Call:
    """What the interceptor knows of a call; the method fills in the model and version."""

    route: str
    request_id: str
    key_id: str | None = None
    model: str = ""
    version: int | None = None


_CURRENT: ContextVar[Call] = ContextVar("grpc_call")


def current_call() -> Call:
    """The call being served (set by the interceptor for the method's context)."""
    return _CURRENT.get()


class GatewayInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, authenticate: Authenticate, open_routes: frozenset[str], access_log: bool,
                 max_calls_per_key: int, max_probe_calls_per_address: int, message_timeout: float) -> None:
        self._authenticate = authenticate
        self._open_routes = open_routes  # routes that take no key (probes)
        self._access_log = access_log
        self._max_calls_per_key = max_calls_per_key
        self._max_probe_calls = max_probe_calls_per_address
        self._message_timeout = message_timeout
        # Per key id, and per address for probes; only the event loop's thread counts.
        self._open_calls: Counter[str] = Counter()

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None or details.method.startswith(UNOBSERVED_SERVICES):
            return handler
        if details.method.startswith(HEALTH_SERVICE):
            return self._probe_bounded(handler)
        metadata = {key: value for key, value in details.invocation_metadata or () if isinstance(value, str)}
        call = Call(details.method, request_id(metadata.get(METADATA_KEY)))
        refusal: GatewayError | None = None
        if details.method not in self._open_routes:
            try:
                call.key_id = self._authenticate(
                    presented_key(metadata.get("authorization"), metadata.get("x-api-key")), "grpc")
            except GatewayError as error:
                refusal = error
        behavior = handler.unary_unary

        async def answer(context: grpc.aio.ServicerContext):
            if refusal is not None:
                raise refusal
            with (self._held_by_probe(context) if details.method in self._open_routes
                  else self._held_by(call.key_id, self._max_calls_per_key, f"API key {call.key_id!r}")):
                request = await self._request_message(context)
                return await behavior(request, context)

        # Served as client streaming, whatever the client called: gRPC then reads the request
        # only when asked, so a refused call is answered without reading it, and the wait for it
        # is bounded and counted against the caller's key.
        async def observed(requests, context: grpc.aio.ServicerContext):
            return await self._measured(call, context, lambda: answer(context))

        return grpc.stream_unary_rpc_method_handler(observed, response_serializer=handler.response_serializer)

    @contextmanager
    def _held_by(self, bucket: str | None, bound: int, holder: str) -> Iterator[None]:
        """Count a call against its bucket's open calls, refusing it over ``bound``; with keys
        off (no bucket), calls are bounded by the server's limits only."""
        if bucket is None:
            yield
            return
        if self._open_calls[bucket] >= bound:
            raise RateLimited(f"{holder} has {bound} calls open already (at most {bound} at once); "
                              "retry shortly", retry_after=1)
        self._open_calls[bucket] += 1
        try:
            yield
        finally:
            self._open_calls[bucket] -= 1
            if not self._open_calls[bucket]:
                del self._open_calls[bucket]

    def _held_by_probe(self, context: grpc.aio.ServicerContext):
        address = client_address(context.peer())
        # Key ids are never bracketed, so a probe's bucket cannot be a key's.
        return self._held_by(f"<probe {address}>", self._max_probe_calls, f"address {address}")

    def _probe_bounded(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """A health method bounded like the open routes, answered as gRPC answers it: a
        Check is cheap, but a Watch stays open as long as its client wants."""
        behavior = handler.unary_unary or handler.unary_stream

        async def bounded(request, context: grpc.aio.ServicerContext):
            try:
                with self._held_by_probe(context):
                    return await behavior(request, context)  # a watch writes with context.write
            except RateLimited as refusal:
                await context.abort(refusal.grpc_code, refusal.message)

        wrap = grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.unary_stream_rpc_method_handler
        return wrap(bounded, request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer)

    async def _request_message(self, context: grpc.aio.ServicerContext) -> bytes:
        """The call's one request message, within the message timeout."""
        try:
            message = await asyncio.wait_for(context.read(), self._message_timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout(f"the request message did not arrive within {self._message_timeout:g} s") from None
        if message is grpc.aio.EOF:
            if context.cancelled():  # the client went away, or gRPC refused what it sent
                raise asyncio.CancelledError
            raise InvalidInput("the call ended without its request message")
        return message

    async def _measured(self, call: Call, context: grpc.aio.ServicerContext, run: Callable[[], Awaitable]):
        token = _CURRENT.set(call)
        # In the trailers: a failed call's answer then carries no headers, so the client's retry
        # policy may still retry it (headers commit a gRPC call).
        trailers = [(METADATA_KEY, call.request_id)]
        context.set_trailing_metadata(tuple(trailers))
        code, details, answer, started = grpc.StatusCode.OK, "", None, time.perf_counter()
        try:
            with metrics.IN_FLIGHT.labels("grpc").track_inprogress(), \
                    metrics.REQUEST_DURATION.labels("grpc", call.route).time():
                try:
                    answer = await run()
                except asyncio.CancelledError:  # the client cancelled, or its deadline passed
                    code = grpc.StatusCode.CANCELLED
                    raise
                except GatewayError as error:
                    code, details = error.grpc_code, error.message
                    if error.retry_after is not None:  # the retry hint HTTP gives in Retry-After
                        trailers.append(("retry-after", str(error.retry_after)))
                except Exception:  # a bug, not the client's doing: logged here, never shown to the client
                    code, details = grpc.StatusCode.INTERNAL, "internal error"
                    log.exception("%s failed", call.route)
        finally:
            _CURRENT.reset(token)
            # Counted before answering: a client that reads the metrics after its answer finds its call.
            metrics.REQUESTS.labels("grpc", call.route, call.model, code.name).inc()
            if self._access_log:
                log_access("GRPC", call.route, code.name, transport="grpc", request_id=call.request_id,
                           key_id=call.key_id, model=call.model or None, version=call.version,
                           duration_s=round(time.perf_counter() - started, 6),
                           bytes=answer.ByteSize() if answer is not None else None)
        if code != grpc.StatusCode.OK:
            await context.abort(code, details, tuple(trailers))  # sends the status, then raises
        return answer


def client_address(peer: str) -> str:
    """The client's address without its port: "ipv4:10.0.0.7:51234" -> "ipv4:10.0.0.7"."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        return f"{kind}:{rest.rsplit(':', 1)[0]}"
    return peer  # unix sockets and the like: one bucket each
