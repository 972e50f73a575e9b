"""TensorProto <-> numpy conversions, as TF Serving reads requests and writes responses."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from serving.tfs_apis import tensor_pb2, types_pb2


def tensor_to_array(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """A TensorProto as a numpy array; packed ``tensor_content`` is read without a copy."""
    if proto.tensor_content and proto.dtype != types_pb2.DT_STRING:
        shape = [dim.size for dim in proto.tensor_shape.dim]
        return np.frombuffer(proto.tensor_content, dtype=tf.as_dtype(proto.dtype).as_numpy_dtype).reshape(shape)
    return tf.make_ndarray(proto)


def fill_tensor(target: tensor_pb2.TensorProto, array: np.ndarray) -> None:
    """Write a numeric array as packed ``tensor_content``, as TF Serving's responses do."""
    array = np.ascontiguousarray(array)
    target.dtype = tf.as_dtype(array.dtype).as_datatype_enum
    for size in array.shape:
        target.tensor_shape.dim.add(size=size)
    target.tensor_content = array.tobytes()
