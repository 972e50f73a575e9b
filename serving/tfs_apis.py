"""TF Serving's generated protobuf and gRPC modules, without the TensorFlow runtime.

``tensorflow_serving.apis`` imports ``tensorflow.core.framework.*_pb2``, and
importing any ``tensorflow.*`` submodule first runs ``tensorflow/__init__.py``,
which loads the whole runtime (about 580 MB and 4 s per process). The generated
protobuf modules need none of it. Unless the runtime is already loaded, this
module registers ``tensorflow`` as a bare package pointing at its installed
folder, so that only the protobuf files are imported.

The bare package is removed again once the protobuf modules are imported, so a
process that later imports ``tensorflow`` itself (the model server, the tests)
still gets the real package; the already imported protobuf modules are reused.
"""

from __future__ import annotations

import importlib.util
import sys
import types


def _register_bare_package(name: str) -> bool:
    """Register ``name`` without running its ``__init__``; False if it is already imported."""
    if name in sys.modules:
        return False
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"package {name!r} is not installed")
    package = types.ModuleType(name)
    package.__path__ = list(spec.submodule_search_locations)
    package.__package__ = name
    sys.modules[name] = package
    return True


_registered = _register_bare_package("tensorflow")

from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402

if _registered:
    del sys.modules["tensorflow"]

__all__ = [
    "get_model_metadata_pb2",
    "get_model_status_pb2",
    "model_pb2",
    "model_server_config_pb2",
    "model_service_pb2_grpc",
    "predict_pb2",
    "prediction_service_pb2_grpc",
    "tensor_pb2",
    "tensor_shape_pb2",
    "types_pb2",
]
