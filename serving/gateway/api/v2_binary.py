"""Triton's binary tensor data extension to the Open Inference Protocol's REST flavour,
which tritonclient's HTTP client uses by default.

A request body may be a JSON header followed by raw tensor bytes: the
``Inference-Header-Content-Length`` header gives the JSON header's length, and each
input sent so carries ``parameters.binary_data_size``, its share of the bytes that
follow (in input order). Outputs go back the same way when the request asks for them
(``binary_data`` on an output, or ``binary_data_output`` on the request for every output
not saying otherwise): the answer then carries the same header and each binary output
its ``binary_data_size``. Every check here names what is wrong in an ``InvalidInput``.
"""

from __future__ import annotations

from serving.gateway.errors import InvalidInput

HEADER = "Inference-Header-Content-Length"
CONTENT_TYPE = "application/octet-stream"  # a binary answer is JSON then raw bytes: not JSON


def _shown(value: object) -> str:
    """A client's value in a message, cut short: it may be anything, of any size."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def split_body(raw: bytes, header_length: str | None) -> tuple[bytes, bytes | None]:
    """(the JSON header, the binary data after it) of a request body; without the
    extension's header the whole body is JSON, and there is no binary data (None)."""
    if header_length is None:
        return raw, None
    header_length = header_length.strip()
    if not (header_length.isascii() and header_length.isdigit()):
        raise InvalidInput(f"{HEADER} must be the JSON header's length in bytes, got {_shown(header_length)}")
    # Compared by digit count first: int() of thousands of digits is refused by Python.
    digits = header_length.lstrip("0") or "0"
    if len(digits) > len(str(len(raw))) or int(digits) > len(raw):
        shown = digits if len(digits) <= 20 else digits[:17] + "..."
        raise InvalidInput(f"{HEADER} is {shown} but the body has only {len(raw)} bytes")
    length = int(digits)
    return raw[:length], raw[length:]


def binary_data_size(parameters: dict, where: str) -> int | None:
    """``binary_data_size`` of an input's parameters: None when the input's data is JSON."""
    if "binary_data_size" not in parameters:
        return None
    size = parameters["binary_data_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidInput(f"'binary_data_size' of {where} must be a whole number of bytes, "
                           f"got {_shown(size)}")
    return size


def input_bytes(tensor: dict, where: str, data: bytes | None) -> bytes | None:
    """The binary data of the one input ``tensor`` (None when its data is JSON), which must
    account for every byte after the JSON header (``data``, None without the header)."""
    size = binary_data_size(tensor.get("parameters", {}), where)
    if size is not None and data is None:
        raise InvalidInput(f"{where} has 'binary_data_size' but the request has no {HEADER} header "
                           "saying where the JSON header ends")
    if size is None:
        if data:
            raise InvalidInput(f"{len(data)} bytes follow the JSON header "
                               f"but {where} has no 'binary_data_size'")
        return None
    if "data" in tensor:
        raise InvalidInput(f"{where} has both 'data' and 'binary_data_size': send its data one way")
    if size != len(data):
        raise InvalidInput(f"{where} has binary_data_size {size} but {len(data)} bytes of binary data "
                           f"follow the JSON header ({HEADER})")
    return data


def wants_binary(parameters: dict, key: str, where: str, default: bool) -> bool:
    """A ``binary_data`` / ``binary_data_output`` flag: true or false, ``default`` when absent."""
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise InvalidInput(f"'{key}' of {where} must be true or false, got {_shown(value)}")
    return value

