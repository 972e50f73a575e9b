"""Hostile clients of the gateway (tests/attacks/test_gateway_attacks.py): calls that never
send their message, oversized messages, health watches held open, V2 raw inputs of a
million empty texts, readiness and explanation floods.

Each runs in the attacker's process (``harness.edge_attacks.attacker``), so that its CPU
time and GIL are not the bystander's; each is bounded in count and time, talks to loopback
only, and answers with what the service told it. HTTP attacks come from a loopback address
of their own, so that the edge's per-address limits tell them apart from the bystander.
"""

from __future__ import annotations

import http.client
import json
import struct
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sentiment.openinference import open_inference_grpc_pb2 as v2
from sentiment.v1 import sentiment_pb2

PREDICT = "/sentiment.v1.SentimentService/Predict"
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
ATTACKER_ADDRESS = "127.0.0.3"


def _own_connection(target: str, **options: int) -> grpc.Channel:
    # A connection of its own, as another client's is (gRPC shares one between channels otherwise).
    return grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1), *options.items()])


def _code(error: grpc.RpcError | None) -> str:
    return error.code().name if error is not None else "OK"


def stalled_calls(target: str, count: int, key: str | None, per_second: float, hold_seconds: float) -> Counter:
    """``count`` Predict calls whose request message never comes (client streaming with an
    iterator that waits), opened at ``per_second`` and held ``hold_seconds`` after the last;
    the outcome of each then: "open", or the status it ended with."""
    release = threading.Event()

    def never_sent():
        release.wait()
        yield from ()

    metadata = (("authorization", f"Bearer {key}"),) if key else ()
    channels = [_own_connection(target) for _ in range((count + 49) // 50)]  # 100 streams a connection at most
    calls = []
    try:
        for index in range(count):
            predict = channels[index // 50].stream_unary(PREDICT, request_serializer=bytes,
                                                         response_deserializer=sentiment_pb2.PredictResponse.FromString)
            calls.append(predict.future(never_sent(), metadata=metadata, timeout=60))
            time.sleep(1 / per_second)  # pacing, within the key's rate
        time.sleep(hold_seconds)
        return Counter("open" if not call.done() else _code(call.exception()) for call in calls)
    finally:
        release.set()
        for call in calls:
            call.cancel()
        for channel in channels:
            channel.close()


def health_watches(target: str, count: int, hold_seconds: float) -> Counter:
    """``count`` health watches without a key, on connections of their own, held open
    ``hold_seconds``: the outcome of each then ("open" once it has its first answer, or the
    status it ended with)."""
    channels = [_own_connection(target) for _ in range((count + 49) // 50)]  # 100 streams a connection at most
    watches = [health_pb2_grpc.HealthStub(channels[index // 50]).Watch(health_pb2.HealthCheckRequest(), timeout=60)
               for index in range(count)]

    def first_answer(watch) -> str:
        try:
            next(watch)
        except grpc.RpcError as error:
            return _code(error)
        return "open"

    try:
        with ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(first_answer, watches))
        time.sleep(hold_seconds)
        return Counter(outcome if outcome != "open" or watch.is_active() else _code(watch)
                       for outcome, watch in zip(outcomes, watches))
    finally:
        for watch in watches:
            watch.cancel()
        for channel in channels:
            channel.close()


def oversized_messages(target: str, count: int, size: int, threads: int) -> Counter:
    """``count`` Predict calls of ``size`` bytes each without a key; their statuses."""
    huge = sentiment_pb2.PredictRequest(texts=["a" * size]).SerializeToString()

    def send(_: int) -> str:
        with _own_connection(target, **{"grpc.max_send_message_length": 2 * size}) as channel:
            predict = channel.unary_unary(PREDICT, request_serializer=bytes,
                                          response_deserializer=sentiment_pb2.PredictResponse.FromString)
            try:
                predict(huge, timeout=20)
            except grpc.RpcError as error:
                return _code(error)
            return "OK"

    with ThreadPoolExecutor(threads) as pool:
        return Counter(pool.map(send, range(count)))


def v2_empty_texts(target: str, key: str, seconds: float, threads: int, per_second: float) -> list[tuple[str, str, float]]:
    """ModelInfer calls whose raw input is ~1 MiB of zero-length BYTES elements (262,000 of
    them), for ``seconds`` from ``threads`` threads, each sending ``per_second``: (status,
    details, seconds) of each."""
    elements = ((1 << 20) - 1024) // 4
    request = v2.ModelInferRequest(
        model_name="lstm",
        inputs=[v2.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[elements])],
        raw_input_contents=[struct.pack("<I", 0) * elements],
    ).SerializeToString()
    answers: list[tuple[str, str, float]] = []
    deadline = time.monotonic() + seconds

    def flood() -> None:
        with _own_connection(target) as channel:
            infer = channel.unary_unary(MODEL_INFER, request_serializer=bytes,
                                        response_deserializer=v2.ModelInferResponse.FromString)
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    infer(request, metadata=(("authorization", f"Bearer {key}"),), timeout=10)
                    answers.append(("OK", "", time.perf_counter() - started))
                except grpc.RpcError as error:
                    answers.append((_code(error), error.details() or "", time.perf_counter() - started))
                time.sleep(max(0.0, 1 / per_second - (time.perf_counter() - started)))  # pacing

    with ThreadPoolExecutor(threads) as pool:
        for running in [pool.submit(flood) for _ in range(threads)]:
            running.result()
    return answers


def http_flood(port: int, method: str, path: str, body: dict | None, headers: dict[str, str], seconds: float,
               threads: int) -> Counter:
    """``method path`` from ``threads`` keep-alive connections for ``seconds``, from the attacker's
    own address: a count of "<status> <error code>" answers."""
    answers: Counter = Counter()
    deadline = time.monotonic() + seconds
    payload = json.dumps(body).encode() if body is not None else None
    sent = {**headers, "Content-Type": "application/json"} if payload is not None else headers

    def flood() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(ATTACKER_ADDRESS, 0))
        try:
            while time.monotonic() < deadline:
                connection.request(method, path, body=payload, headers=sent)
                response = connection.getresponse()
                data = response.read()
                code = json.loads(data)["error"]["code"] if response.status >= 400 and data else "ok"
                answers[f"{response.status} {code}"] += 1
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
        finally:
            connection.close()

    with ThreadPoolExecutor(threads) as pool:
        for running in [pool.submit(flood) for _ in range(threads)]:
            running.result()
    return answers
