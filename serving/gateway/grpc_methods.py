"""What every gRPC service of the gateway shares: requests parsed by the gateway itself,
each call measured and its gateway errors answered with their gRPC status."""

from __future__ import annotations

import logging
import time

import grpc
from google.protobuf.message import DecodeError, Message

from serving.gateway import metrics
from serving.gateway.api_keys import presented_key
from serving.gateway.core import SentimentService
from serving.gateway.errors import GatewayError, InvalidInput, ModelServerTimeout
from serving.gateway.logs import log_access
from serving.gateway.request_ids import METADATA_KEY, request_id

log = logging.getLogger(__name__)
# A call needs at least this much of the client's deadline left to be worth starting.
MIN_USEFUL_SECONDS = 0.005


def decode(message_type: type[Message], raw: bytes) -> Message:
    """Parse a request ourselves: gRPC's own deserializer would answer INTERNAL, while
    a malformed request is the client's error."""
    try:
        return message_type.FromString(raw)
    except DecodeError as error:
        raise InvalidInput(f"malformed request: {error}") from None


def observe(route: str, context: grpc.ServicerContext, call, service: SentimentService, open_to_all: bool = False):
    """Run ``call(labels)`` as the gRPC method ``route``, measured, with gateway errors
    answered by their status; ``labels["model"]`` may be set by ``call`` once it knows it,
    ``labels["request_id"]`` is the call's id (the client's ``x-request-id``, echoed back).
    Unless ``open_to_all``, the caller's API key (``authorization: Bearer <key>``
    metadata) is checked first when the gateway asks for keys."""
    code = grpc.StatusCode.OK
    metadata = {key: value for key, value in context.invocation_metadata() if isinstance(value, str)}
    labels = {"model": "", "request_id": request_id(metadata.get(METADATA_KEY))}
    # In the trailers: a failed call's answer then carries no headers, so the client's retry
    # policy may still retry it (headers commit a gRPC call).
    context.set_trailing_metadata(((METADATA_KEY, labels["request_id"]),))
    in_flight = metrics.IN_FLIGHT.labels("grpc").track_inprogress()
    started = time.perf_counter()
    key_id = answer = None
    with in_flight, metrics.REQUEST_DURATION.labels("grpc", route).time():
        try:
            if not open_to_all:
                key_id = service.authenticate(presented_key(metadata.get("authorization"), metadata.get("x-api-key")),
                                              "grpc")
            answer = call(labels)
            return answer
        except GatewayError as error:
            code = error.grpc_code
            if error.retry_after is not None:  # the retry hint HTTP gives in Retry-After
                context.set_trailing_metadata(((METADATA_KEY, labels["request_id"]),
                                               ("retry-after", str(error.retry_after))))
            context.abort(code, error.message)
        except Exception:  # a bug, not the client's doing: logged here, never shown to the client
            code = grpc.StatusCode.INTERNAL
            log.exception("%s failed", route)
            context.abort(code, "internal error")
        finally:
            metrics.REQUESTS.labels("grpc", route, labels["model"], code.name).inc()
            if service.settings.access_log:
                log_access("GRPC", route, code.name, transport="grpc", request_id=labels["request_id"], key_id=key_id,
                           model=labels["model"] or None, version=labels.get("version"),
                           duration_s=round(time.perf_counter() - started, 6),
                           bytes=answer.ByteSize() if answer is not None else None)


def call_timeout(service: SentimentService, context: grpc.ServicerContext) -> float:
    """The model call's deadline: the gateway's, or less when the client's deadline is nearer."""
    remaining = context.time_remaining()
    timeout = service.settings.rpc_timeout_seconds
    if remaining is not None:
        if remaining < MIN_USEFUL_SECONDS:
            raise ModelServerTimeout("the client's deadline left no time for the model call")
        timeout = min(timeout, remaining)
    return timeout


def generic_handler(service_name: str, methods: dict) -> grpc.GenericRpcHandler:
    """``methods``: name -> (handler taking the raw request bytes, response message type)."""
    return grpc.method_handlers_generic_handler(service_name, {
        name: grpc.unary_unary_rpc_method_handler(method, response_serializer=response.SerializeToString)
        for name, (method, response) in methods.items()
    })
