"""The Open Inference Protocol ("V2") over the gateway's data plane.

A V2 request carries raw review text as a BYTES tensor named ``text`` (shape ``[n]`` or
``[n, 1]``, like MLServer's ``str`` codec); the answer has up to three outputs, one
element per text. This module holds what the REST and gRPC flavours share: the model
metadata, the checks of an input tensor, the outputs and their binary form. Both
flavours then call ``DataPlane.predict``: the same limits, coalescing, metrics
and errors as ``sentiment.v1``, no second request path.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

import numpy as np

from serving.gateway.data_plane import DataPlane, Prediction
from serving.gateway.errors import InvalidInput, ModelNotFound, PayloadTooLarge

INPUT_NAME = "text"
# Output name -> V2 datatype, in the order the outputs are returned.
OUTPUTS = {"positive_probability": "FP32", "label": "BYTES", "num_tokens": "INT32"}
PLATFORM = "tensorflow_savedmodel"
SERVER_NAME = "sentiment-gateway"


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str
    values: list  # float, str or int per text

    @property
    def shape(self) -> list[int]:
        return [len(self.values)]


def server_version() -> str:
    try:
        return package_version("sentiment-serving")
    except PackageNotFoundError:
        return "unknown"


def model_version(text: str) -> int | None:
    """A V2 ``model_version`` ("" = the newest available) as the core's version."""
    if text == "":
        return None
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise InvalidInput(f"model_version must be a positive whole number, got {text!r}")
    return int(text)


def model_metadata(service: DataPlane, model: str, version: str = "") -> dict:
    info = service.model(model)
    model_version(version)
    available = [str(v) for v in info.available]
    if version and version not in available:
        raise ModelNotFound(f"model {model!r} has no available version {version!r}")
    return {
        "name": model,
        "versions": [version] if version else available,
        "platform": PLATFORM,
        "inputs": [{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": output, "datatype": datatype, "shape": [-1]} for output, datatype in OUTPUTS.items()],
    }


def model_ready(service: DataPlane, model: str, version: str = "") -> bool:
    return service.model_ready(model, model_version(version))


def check_parameters(fields: dict, where: str) -> None:
    """The protocol's ``parameters`` of a JSON object, when given, are an object (none is used here)."""
    if "parameters" in fields and not isinstance(fields["parameters"], dict):
        raise InvalidInput(f"'parameters' of {where} must be an object")


def check_input(inputs: Sequence[tuple[str, str, Sequence[int]]]) -> None:
    """``inputs`` as (name, datatype, shape): exactly one BYTES tensor ``text`` of shape [n] or [n, 1]."""
    if len(inputs) != 1:
        raise InvalidInput(f"expected one input tensor {INPUT_NAME!r}, got {len(inputs)}")
    name, datatype, shape = inputs[0]
    if name != INPUT_NAME:
        raise InvalidInput(f"unknown input {name!r}; the input is {INPUT_NAME!r}")
    if datatype != "BYTES":
        raise InvalidInput(f"input {INPUT_NAME!r} must have datatype BYTES (the review texts), got {datatype!r}")
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 0:
        raise InvalidInput(f"input {INPUT_NAME!r} must have shape [n] or [n, 1], got {list(shape)}")


def check_element_count(shape: Sequence[int], count: int) -> None:
    if shape[0] != count:
        raise InvalidInput(f"input {INPUT_NAME!r} has shape {list(shape)} but {count} elements")


def selected_outputs(names: Sequence[str]) -> list[str]:
    """The requested outputs in the order asked (all when none is named)."""
    for name in names:
        if name not in OUTPUTS:
            raise InvalidInput(f"unknown output {name!r}; the outputs are {', '.join(OUTPUTS)}")
    return list(dict.fromkeys(names)) or list(OUTPUTS)


def outputs(predictions: list[Prediction], names: list[str]) -> list[OutputTensor]:
    return [OutputTensor(name, OUTPUTS[name], [getattr(p, name) for p in predictions]) for name in names]


def decode_text(element: bytes, index: int) -> str:
    try:
        return element.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"element {index} of input {INPUT_NAME!r} is not UTF-8 text") from None


def split_raw_bytes(raw: bytes, max_elements: int, where: str) -> list[bytes]:
    """The elements of a BYTES tensor in the protocol's binary form (``where`` names it in
    errors): each a 4-byte little-endian length, then that many bytes. Stops at
    ``max_elements`` + 1: a request of a million empty elements is refused after the first
    few, not parsed whole."""
    elements, offset = [], 0
    while offset < len(raw):
        if len(elements) == max_elements:
            raise PayloadTooLarge(f"too many texts: more than {max_elements} in {where} "
                                  f"(at most {max_elements} per request)")
        if offset + 4 > len(raw):
            raise InvalidInput(f"{where} ends inside an element's 4-byte length prefix")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidInput(f"{where}: an element of {length} bytes runs past the data")
        elements.append(raw[offset:offset + length])
        offset += length
    return elements


def raw_bytes(tensor: OutputTensor) -> bytes:
    """``tensor``'s data in the protocol's binary form."""
    if tensor.datatype == "BYTES":
        encoded = [value.encode("utf-8") for value in tensor.values]
        return b"".join(struct.pack("<I", len(value)) + value for value in encoded)
    dtype = {"FP32": "<f4", "INT32": "<i4"}[tensor.datatype]
    return np.asarray(tensor.values, dtype=dtype).tobytes()
