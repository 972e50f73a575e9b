"""The gRPC server's limits on calls that hold it open: the wait for a request message is
bounded, one key has a bounded number of calls open at once, so has one address for the
calls without a key (probes), and a cancelled call keeps its place until its thread is free."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sentiment.v1 import sentiment_pb2

from harness.processes import wait_until
from serving.gateway.access.api_keys import hash_line, new_key
from serving.gateway.api.grpc_handlers import generic_handler
from serving.gateway.api.grpc_server import build_server
from serving.gateway.data_plane import DataPlane

PREDICT = "/sentiment.v1.SentimentService/Predict"


@pytest.fixture
def keyed(settings, model_client, tmp_path) -> Iterator[tuple[str, str, str]]:
    """A gateway asking for keys, with 4 open calls per key, 2 per address without a key, and
    a 1 s message timeout."""
    holder, other = new_key(), new_key()
    (tmp_path / "keys").write_text(f"{hash_line('holder', holder)}\n{hash_line('other', other)}\n")
    limited = settings.with_changes(api_keys_file=tmp_path / "keys", grpc_host="127.0.0.1", grpc_port=0,
                                    grpc_max_calls_per_key=4, grpc_max_probe_calls_per_address=2,
                                    grpc_message_timeout_seconds=1.0)
    server, _, port = build_server(limited, DataPlane(limited, client=model_client))
    server.start()
    yield f"127.0.0.1:{port}", holder, other
    server.stop(0)


def stalled(channel: grpc.Channel, key: str, count: int, release: threading.Event) -> list[grpc.Future]:
    def never_sent():
        release.wait()
        yield from ()

    predict = channel.stream_unary(PREDICT, request_serializer=bytes,
                                   response_deserializer=sentiment_pb2.PredictResponse.FromString)
    return [predict.future(never_sent(), metadata=(("authorization", f"Bearer {key}"),), timeout=10)
            for _ in range(count)]


def test_a_request_message_that_never_comes_ends_the_call_after_the_message_timeout(keyed):
    target, holder, _ = keyed
    release = threading.Event()
    with grpc.insecure_channel(target) as channel:
        (call,) = stalled(channel, holder, 1, release)
        with pytest.raises(grpc.RpcError) as ended:
            call.result(timeout=5)
        release.set()
    assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert ended.value.details() == "the request message did not arrive within 1 s"


def test_a_key_has_a_bounded_number_of_calls_open_and_other_keys_are_served(keyed):
    target, holder, other = keyed
    release = threading.Event()
    # Separate connections, as separate clients have: one connection's streams are bounded too.
    options = [("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(target, options) as attacker, grpc.insecure_channel(target, options) as channel:
        try:
            calls = stalled(attacker, holder, 6, release)
            predict = channel.unary_unary(PREDICT, request_serializer=sentiment_pb2.PredictRequest.SerializeToString,
                                          response_deserializer=sentiment_pb2.PredictResponse.FromString)
            answer = predict(sentiment_pb2.PredictRequest(texts=["a good film"]),
                             metadata=(("authorization", f"Bearer {other}"),), timeout=5)
            assert answer.predictions[0].label == "positive"
            ended = [call.exception(timeout=5) for call in calls]
        finally:
            release.set()
    # Four held until the message timeout, two refused at once.
    assert Counter(error.code() for error in ended) == Counter({grpc.StatusCode.DEADLINE_EXCEEDED: 4,
                                                                grpc.StatusCode.RESOURCE_EXHAUSTED: 2})
    assert all("has 4 calls open already" in error.details() for error in ended
               if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED)


def test_an_address_has_a_bounded_number_of_health_watches_open_and_keys_are_served(keyed):
    target, holder, _ = keyed
    options = [("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(target, options) as attacker, grpc.insecure_channel(target, options) as channel:
        health = health_pb2_grpc.HealthStub(attacker)
        watches = []

        def watch() -> health_pb2.HealthCheckResponse:  # one at a time: the server sees them in order
            watches.append(health.Watch(health_pb2.HealthCheckRequest(), timeout=10))
            return next(watches[-1])

        try:
            first, second = watch(), watch()
            with pytest.raises(grpc.RpcError) as refused:
                watch()
            predict = channel.unary_unary(PREDICT, request_serializer=sentiment_pb2.PredictRequest.SerializeToString,
                                          response_deserializer=sentiment_pb2.PredictResponse.FromString)
            answer = predict(sentiment_pb2.PredictRequest(texts=["a good film"]),
                             metadata=(("authorization", f"Bearer {holder}"),), timeout=5)
        finally:
            for watch in watches:
                watch.cancel()

        def checked() -> bool:  # the watches' places come back as their cancellations arrive
            try:
                return health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == first.status
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
                return False

        wait_until(checked, 5, "a health check once the watches ended", poll_seconds=0.01)
    assert first.status == second.status == health_pb2.HealthCheckResponse.SERVING
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "has 2 calls open already" in refused.value.details()
    assert answer.predictions[0].label == "positive"


def test_a_cancelled_call_keeps_its_place_until_its_thread_is_free():
    started, release = threading.Event(), threading.Event()

    def slow(raw: bytes, context) -> sentiment_pb2.ListModelsResponse:
        started.set()
        release.wait(10)
        return sentiment_pb2.ListModelsResponse()

    class Details:
        method = "/test.Slow/Call"

    async def cancelled_while_working() -> tuple[bool, bool]:
        with ThreadPoolExecutor(1) as pool:
            handler = generic_handler("test.Slow", {"Call": (slow, sentiment_pb2.ListModelsResponse)}, pool)
            call = asyncio.ensure_future(handler.service(Details()).unary_unary(b"", None))
            await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
            call.cancel()
            done, _ = await asyncio.wait([call], timeout=0.2)
            release.set()
            with pytest.raises(asyncio.CancelledError):
                await call
            return bool(done), call.cancelled()

    ended_while_working, cancelled = asyncio.run(cancelled_while_working())
    assert not ended_while_working  # it held its place while its thread worked
    assert cancelled
