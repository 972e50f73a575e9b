"""Calls the gateway's Open Inference Protocol API with tritonclient, a V2 client written
elsewhere, and prints what came back as JSON.

    python tests/open_inference_clients.py HTTP_HOST:PORT GRPC_HOST:PORT TEXT...

Run as its own process by tests/test_open_inference_interop.py: tritonclient's generated
protobuf module defines the protocol's messages under the same names as the gateway's
(package ``inference``), and one Python process cannot load both.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

OUTPUTS = ("positive_probability", "label", "num_tokens")


def failure(call: Callable[[], object]) -> dict:
    try:
        call()
    except InferenceServerException as error:
        return {"status": str(error.status()), "message": error.message()}
    return {"status": "no error"}


def as_lists(result, names) -> dict:
    values = {}
    for name in names:
        array = result.as_numpy(name)
        values[name] = [v.decode() if isinstance(v, bytes) else v.item() for v in array.reshape(-1)]
    return values


def http_calls(url: str, texts: list[str]) -> dict:
    client = httpclient.InferenceServerClient(url)

    def infer(batch: list[str], model: str = "lstm", datatype: str = "BYTES", outputs=OUTPUTS):
        data = np.array([t.encode() for t in batch], dtype=np.object_) if datatype == "BYTES" else \
            np.ones(len(batch), dtype=np.float32)
        tensor = httpclient.InferInput("text", [len(batch)], datatype)
        tensor.set_data_from_numpy(data, binary_data=False)
        requested = [httpclient.InferRequestedOutput(name, binary_data=False) for name in outputs]
        return client.infer(model, [tensor], outputs=requested, request_id="interop-1")

    one = infer(texts[:1])
    many = infer((texts * 64)[:64])
    return {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready("lstm"),
        "unknown_model_ready": client.is_model_ready("gru"),
        "metadata": client.get_model_metadata("lstm"),
        "one": {"id": one.get_response()["id"], "version": one.get_response()["model_version"],
                **as_lists(one, OUTPUTS)},
        "many": as_lists(many, OUTPUTS),
        "label_only": [o["name"] for o in infer(texts[:1], outputs=("label",)).get_response()["outputs"]],
        "all_texts": as_lists(infer(texts), ("positive_probability",))["positive_probability"],
        "wrong_datatype": failure(lambda: infer(texts[:1], datatype="FP32")),
        "unknown_model": failure(lambda: infer(texts[:1], model="gru")),
    }


def grpc_calls(target: str, texts: list[str]) -> dict:
    client = grpcclient.InferenceServerClient(target)

    def infer(batch: list[str], model: str = "lstm", datatype: str = "BYTES", outputs=OUTPUTS):
        data = np.array([t.encode() for t in batch], dtype=np.object_) if datatype == "BYTES" else \
            np.ones(len(batch), dtype=np.float32)
        tensor = grpcclient.InferInput("text", [len(batch)], datatype)
        tensor.set_data_from_numpy(data)  # sent as raw_input_contents, the protocol's binary form
        requested = [grpcclient.InferRequestedOutput(name) for name in outputs]
        return client.infer(model, [tensor], outputs=requested, request_id="interop-2")

    one = infer(texts[:1])
    many = infer((texts * 64)[:64])
    metadata = client.get_model_metadata("lstm", as_json=True)
    return {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready("lstm"),
        "metadata": metadata,
        "one": {"id": one.get_response().id, "version": one.get_response().model_version, **as_lists(one, OUTPUTS)},
        "many": as_lists(many, OUTPUTS),
        "label_only": [o.name for o in infer(texts[:1], outputs=("label",)).get_response().outputs],
        "all_texts": as_lists(infer(texts), ("positive_probability",))["positive_probability"],
        "wrong_datatype": failure(lambda: infer(texts[:1], datatype="FP32")),
        "unknown_model": failure(lambda: infer(texts[:1], model="gru")),
    }


if __name__ == "__main__":
    http_url, grpc_target, *texts = sys.argv[1:]
    print(json.dumps({"http": http_calls(http_url, texts), "grpc": grpc_calls(grpc_target, texts)}))
