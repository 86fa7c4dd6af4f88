"""TensorProto ↔ numpy for the model server (official TF protos; TensorFlow imported lazily).

Inputs go through ``tf.make_ndarray`` (every typed field, ``tensor_content``, broadcast);
numeric outputs are written as one ``tensor_content`` blob, strings as ``string_val``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gateway.errors import InvalidInput

__all__ = ["shape_of", "tensor_from_array", "tensor_to_array"]


def shape_of(proto_shape: Any) -> list[int] | None:
    """Dims of a TensorShapeProto (``None`` for unknown rank)."""
    if proto_shape.unknown_rank:
        return None
    return [dim.size for dim in proto_shape.dim]


def tensor_to_array(alias: str, proto: Any) -> np.ndarray:
    """Decode request tensor ``alias``; malformed content → ``InvalidInput`` naming it."""
    import tensorflow as tf

    try:
        return tf.make_ndarray(proto)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f'Input "{alias}" could not be decoded: {exc}') from None


def tensor_from_array(array: np.ndarray) -> Any:
    """A TensorProto for an output array (``tensor_content`` for numeric dtypes)."""
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2, types_pb2

    proto = tensor_pb2.TensorProto()
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size
    if array.dtype == object:
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(_as_bytes(value) for value in array.reshape(-1))
        return proto
    proto.dtype = tf.as_dtype(array.dtype).as_datatype_enum
    proto.tensor_content = np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()
    return proto


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()
