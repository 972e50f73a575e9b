"""Calls the gateway's Open Inference Protocol API with tritonclient, a V2 client written
elsewhere, with its defaults (over HTTP: Triton's binary tensor data extension both ways),
and prints what came back as JSON.

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
    """The error ``call`` raised, or what it returned."""
    try:
        answer = call()
    except InferenceServerException as error:
        return {"status": str(error.status()), "message": error.message()}
    return {"status": "no error", "answer": answer if isinstance(answer, bool) else None}


def as_lists(result, names) -> dict:
    values = {}
    for name in names:
        array = result.as_numpy(name)
        values[name] = [v.decode() if isinstance(v, bytes) else v if isinstance(v, str) else v.item()
                        for v in array.reshape(-1)]
    return values


def tensor_data(batch: list[str | bytes], datatype: str) -> np.ndarray:
    """The texts as a BYTES tensor, or (to be refused) numbers of another datatype."""
    if datatype == "BYTES":
        return np.array([t if isinstance(t, bytes) else t.encode() for t in batch], dtype=np.object_)
    return np.ones(len(batch), dtype=np.float32)


def calls(client, infer, response_field, texts: list[str]) -> dict:
    """The same questions through either flavour; ``infer(batch, model, datatype, outputs)``,
    outputs None asking for none by name (all of them come back)."""
    one = infer(texts[:1], "lstm", "BYTES", OUTPUTS)
    many = infer((texts * 64)[:64], "lstm", "BYTES", OUTPUTS)
    unnamed = infer(texts[:2], "lstm", "BYTES", None)
    return {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready("lstm"),
        "unknown_model_ready": failure(lambda: client.is_model_ready("gru")),
        "one": {"id": response_field(one, "id"), "version": response_field(one, "model_version"),
                **as_lists(one, OUTPUTS)},
        "many": as_lists(many, OUTPUTS),
        "unnamed": {"names": [response_field(o, "name") for o in response_field(unnamed, "outputs")],
                    **as_lists(unnamed, OUTPUTS)},
        "label_only": [response_field(output, "name") for output in
                       response_field(infer(texts[:1], "lstm", "BYTES", ("label",)), "outputs")],
        "all_texts": as_lists(infer(texts, "lstm", "BYTES", OUTPUTS), ("positive_probability",))[
            "positive_probability"],
        "wrong_datatype": failure(lambda: infer(texts[:1], "lstm", "FP32", OUTPUTS)),
        "not_utf8": failure(lambda: infer([b"\xff\xfe not text"], "lstm", "BYTES", OUTPUTS)),
        "unknown_model": failure(lambda: infer(texts[:1], "gru", "BYTES", OUTPUTS)),
    }


def http_calls(url: str, texts: list[str]) -> dict:
    client = httpclient.InferenceServerClient(url)

    def infer(batch, model, datatype, outputs):  # tritonclient's defaults: binary data both ways
        tensor = httpclient.InferInput("text", [len(batch)], datatype)
        tensor.set_data_from_numpy(tensor_data(batch, datatype))
        requested = None if outputs is None else [httpclient.InferRequestedOutput(name) for name in outputs]
        return client.infer(model, [tensor], outputs=requested, request_id="interop-1")

    def json_infer(batch):  # the protocol's base form, asked for explicitly
        tensor = httpclient.InferInput("text", [len(batch)], "BYTES")
        tensor.set_data_from_numpy(tensor_data(batch, "BYTES"), binary_data=False)
        return client.infer("lstm", [tensor], outputs=[
            httpclient.InferRequestedOutput(name, binary_data=False) for name in OUTPUTS])

    def field(result_or_output, name):
        found = result_or_output if isinstance(result_or_output, dict) else result_or_output.get_response()
        return found[name]

    def sent_as(result) -> dict:
        """Output name -> how its data came: "binary" (binary_data_size) or "json"."""
        return {o["name"]: "binary" if "binary_data_size" in o.get("parameters", {}) else "json"
                for o in result.get_response()["outputs"]}

    json_mode = json_infer(texts)
    return {
        **calls(client, infer, field, texts),
        "metadata": client.get_model_metadata("lstm"),
        "server_metadata": client.get_server_metadata(),
        "sent_as": {"defaults": sent_as(infer(texts[:1], "lstm", "BYTES", OUTPUTS)),
                    "unnamed": sent_as(infer(texts[:1], "lstm", "BYTES", None)),
                    "json": sent_as(json_mode)},
        "json_mode": as_lists(json_mode, OUTPUTS),
    }


def grpc_calls(target: str, texts: list[str]) -> dict:
    client = grpcclient.InferenceServerClient(target)

    def infer(batch, model, datatype, outputs):
        tensor = grpcclient.InferInput("text", [len(batch)], datatype)
        tensor.set_data_from_numpy(tensor_data(batch, datatype))  # sent as raw_input_contents
        requested = None if outputs is None else [grpcclient.InferRequestedOutput(name) for name in outputs]
        return client.infer(model, [tensor], outputs=requested, request_id="interop-2")

    def field(result_or_output, name):
        found = result_or_output.get_response() if hasattr(result_or_output, "get_response") else result_or_output
        return getattr(found, name)

    return {**calls(client, infer, field, texts), "metadata": client.get_model_metadata("lstm", as_json=True)}


if __name__ == "__main__":
    http_url, grpc_target, *texts = sys.argv[1:]
    print(json.dumps({"http": http_calls(http_url, texts), "grpc": grpc_calls(grpc_target, texts)}))
