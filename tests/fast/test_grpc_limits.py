"""The gRPC server's limits on calls that hold it open: the wait for a request message is
bounded, and one key has a bounded number of calls open at once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import grpc
import pytest
from sentiment.v1 import sentiment_pb2

from serving.gateway.api_keys import hash_line, new_key
from serving.gateway.core import SentimentService
from serving.gateway.grpc_server import build_server

PREDICT = "/sentiment.v1.SentimentService/Predict"


@pytest.fixture
def keyed(settings, model_client, tmp_path) -> Iterator[tuple[str, str, str]]:
    """A gateway asking for keys, with 4 open calls per key and a 1 s message timeout."""
    holder, other = new_key(), new_key()
    (tmp_path / "keys").write_text(f"{hash_line('holder', holder)}\n{hash_line('other', other)}\n")
    limited = replace(settings, api_keys_file=tmp_path / "keys", grpc_host="127.0.0.1", grpc_port=0,
                      grpc_max_calls_per_key=4, grpc_message_timeout_seconds=1.0)
    server, _, port = build_server(limited, SentimentService(limited, client=model_client))
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
