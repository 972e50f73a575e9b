"""What every gRPC service of the gateway shares: requests parsed by the gateway itself, and
methods written as plain blocking functions, run on a worker pool off the server's event loop."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import Executor

import grpc
from google.protobuf.message import DecodeError, Message

from serving.gateway.errors import InvalidInput

Method = Callable[[bytes, grpc.ServicerContext], Message]  # raw request bytes -> response


def decode(message_type: type[Message], raw: bytes) -> Message:
    """Parse a request ourselves: gRPC's own deserializer would answer INTERNAL, while
    a malformed request is the client's error."""
    try:
        return message_type.FromString(raw)
    except DecodeError as error:
        raise InvalidInput(f"malformed request: {error}") from None


def generic_handler(service_name: str, methods: dict[str, tuple[Method, type[Message]]],
                    pool: Executor) -> grpc.GenericRpcHandler:
    """``methods``: name -> (blocking handler taking the raw request bytes, response message
    type). Each call runs on ``pool``, in a copy of the caller's context (the interceptor's
    ``current_call``), once its request has been read."""

    def on_pool(method: Method):
        async def run(raw: bytes, context: grpc.aio.ServicerContext) -> Message:
            call = contextvars.copy_context()
            working = asyncio.get_running_loop().run_in_executor(pool, call.run, method, raw, context)
            try:
                return await asyncio.shield(working)
            except asyncio.CancelledError:
                # The client went away, but its thread works on (a thread cannot be stopped):
                # the call keeps its key's place until the thread is free, so cancelling
                # calls cannot hold more threads than the key may have calls open.
                await asyncio.wait([working])
                raise

        return run

    return grpc.method_handlers_generic_handler(service_name, {
        name: grpc.unary_unary_rpc_method_handler(on_pool(method), response_serializer=response.SerializeToString)
        for name, (method, response) in methods.items()
    })
