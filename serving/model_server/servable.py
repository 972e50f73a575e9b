"""One loaded SavedModel version and the checks TF Serving applies to its inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from serving.model_server.errors import InvalidArgument

SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"
# The attribute tf.function(jit_compile=True) leaves on its functions and call sites.
XLA_MUST_COMPILE = "_XlaMustCompile"


@dataclass(frozen=True)
class TensorSpec:
    dtype: tf.dtypes.DType
    shape: tuple[int | None, ...] | None  # None = unknown rank; None dims are free


@dataclass(frozen=True)
class Signature:
    name: str
    function: tf.types.experimental.ConcreteFunction
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]

    def check_inputs(self, inputs: dict[str, np.ndarray]) -> None:
        """INVALID_ARGUMENT unless ``inputs`` match the signature's names, dtypes and shapes."""
        missing = sorted(set(self.inputs) - set(inputs))
        unknown = sorted(set(inputs) - set(self.inputs))
        if unknown:
            raise InvalidArgument(
                f"input tensor alias not found in signature: {', '.join(unknown)}. "
                f"Inputs expected to be in the set {{{', '.join(sorted(self.inputs))}}}."
            )
        if missing:
            raise InvalidArgument(f"missing input tensors for signature {self.name}: {', '.join(missing)}")
        batch_sizes = set()
        for alias, array in inputs.items():
            spec = self.inputs[alias]
            if array.dtype != spec.dtype.as_numpy_dtype:
                raise InvalidArgument(
                    f"input {alias!r} has dtype {tf.as_dtype(array.dtype).name}, "
                    f"but the signature expects {spec.dtype.name}"
                )
            if spec.shape is not None and (
                len(array.shape) != len(spec.shape)
                or any(want is not None and want != got for want, got in zip(spec.shape, array.shape))
            ):
                expected = [-1 if dim is None else dim for dim in spec.shape]
                raise InvalidArgument(
                    f"input {alias!r} has shape {list(array.shape)}, but the signature expects {expected}"
                )
            if array.ndim:
                batch_sizes.add(array.shape[0])
        if len(batch_sizes) > 1:
            raise InvalidArgument(f"inputs have different batch sizes {sorted(batch_sizes)}")


class LoadedVersion:
    """A SavedModel version in memory, ready to run its signatures."""

    def __init__(self, name: str, version: int, path: Path, *, xla_enabled: bool = False) -> None:
        self.name = name
        self.version = version
        self.path = path
        meta_graph = read_serving_meta_graph(path)
        if not xla_enabled and uses_xla(meta_graph):
            # TF Serving fails such a model on first use (its warmup): say why, before loading.
            raise XlaDisabled(
                f"{path}: the SavedModel has XLA-compiled functions (jit_compile); "
                "start the server with --xla_cpu_compilation_enabled=true, or export with --no-xla"
            )
        self.signature_defs = {
            key: value
            for key, value in meta_graph.signature_def.items()
            if not key.startswith("__")  # __saved_model_init_op is not a serving signature
        }
        self._module = tf.saved_model.load(str(path), tags=[SERVE_TAG])
        self.signatures = {
            key: _signature(key, self._module.signatures[key], self.signature_defs[key])
            for key in self._module.signatures.keys()
        }

    def signature(self, name: str) -> Signature:
        key = name or DEFAULT_SIGNATURE
        if key not in self.signatures:
            raise InvalidArgument(
                f"Serving signature name: \"{key}\" not found in signature def "
                f"(available: {', '.join(sorted(self.signatures))})"
            )
        return self.signatures[key]

    def run(self, signature: Signature, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = signature.function(**{alias: tf.constant(value) for alias, value in inputs.items()})
        return {alias: tensor.numpy() for alias, tensor in outputs.items()}


class XlaDisabled(ValueError):
    """A SavedModel needs XLA, and the server runs without it."""


def read_serving_meta_graph(path: Path) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraph tagged ``serve``: its SignatureDefs are what TF Serving reports in metadata."""
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ValueError(f"{path}: no MetaGraph tagged {SERVE_TAG!r}")


def uses_xla(meta_graph: meta_graph_pb2.MetaGraphDef) -> bool:
    """Whether any function of the graph, or any call site, must be compiled by XLA."""
    functions = meta_graph.graph_def.library.function
    nodes = [*meta_graph.graph_def.node, *(node for function in functions for node in function.node_def)]
    attributes = [function.attr for function in functions] + [node.attr for node in nodes]
    return any(XLA_MUST_COMPILE in attrs and attrs[XLA_MUST_COMPILE].b for attrs in attributes)


def _signature(
    name: str, function: tf.types.experimental.ConcreteFunction, definition: meta_graph_pb2.SignatureDef
) -> Signature:
    def spec(info: meta_graph_pb2.TensorInfo) -> TensorSpec:
        shape = None
        if not info.tensor_shape.unknown_rank:
            shape = tuple(None if dim.size < 0 else dim.size for dim in info.tensor_shape.dim)
        return TensorSpec(tf.as_dtype(info.dtype), shape)

    return Signature(
        name=name,
        function=function,
        inputs={alias: spec(info) for alias, info in definition.inputs.items()},
        outputs={alias: spec(info) for alias, info in definition.outputs.items()},
    )
