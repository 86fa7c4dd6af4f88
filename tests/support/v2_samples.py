"""Shared v2 test data: one sample array per datatype, signatures, a tensor strategy."""

from __future__ import annotations

import ml_dtypes
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gateway.pb import types_pb2
from gateway.signatures import Signature, TensorSpec

DT = types_pb2.DataType
BF16 = np.dtype(ml_dtypes.bfloat16)

# One array per datatype, with edge values; BF16 as tritonclient holds it (float32).
SAMPLES: dict[str, np.ndarray] = {
    "BOOL": np.array([[True, False, True]]),
    "UINT8": np.array([0, 1, 255], np.uint8),
    "UINT16": np.array([[0], [65535]], np.uint16),
    "UINT32": np.array([0, 2**32 - 1], np.uint32),
    "UINT64": np.array([0, 2**64 - 1], np.uint64),
    "INT8": np.array([-128, 0, 127], np.int8),
    "INT16": np.array([-(2**15), 2**15 - 1], np.int16),
    "INT32": np.array([[-(2**31)], [2**31 - 1]], np.int32),
    "INT64": np.array([-(2**63), 0, 2**63 - 1], np.int64),
    "FP16": np.array([0.5, -65504.0, 1e-7], np.float16),
    "FP32": np.array([[1.0, -2.5], [3.4e38, 1e-45]], np.float32),
    "FP64": np.array([0.1, -1e308, 5e-324], np.float64),
    "BF16": np.array([1.0, -2.0, 0.5, 3.0e38], np.float32),
    "BYTES": np.array([[b"abc", b""], [b"\x00\xff", "é".encode()]], dtype=object),
}


def expected(datatype: str, array: np.ndarray) -> np.ndarray:
    """What the gateway must decode: BF16 is tritonclient's float32 truncated."""
    if datatype != "BF16":
        return array
    return (array.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32).astype(BF16)


def signature(inputs: dict[str, tuple[int, tuple[int, ...] | None]],
              outputs: dict[str, tuple[int, tuple[int, ...] | None]] | None = None) -> Signature:
    def specs(table: dict[str, tuple[int, tuple[int, ...] | None]]) -> dict[str, TensorSpec]:
        return {k: TensorSpec(k, f"{k}:0", dt, shape) for k, (dt, shape) in table.items()}

    return Signature("serving_default", "tensorflow/serving/predict", specs(inputs),
                     specs(outputs or {"y": (DT.DT_FLOAT, (-1,))}))


NUMERIC = {d: SAMPLES[d].dtype for d in SAMPLES if d not in ("BYTES", "BF16")}


@st.composite
def tensors(draw: st.DrawFn) -> tuple[str, np.ndarray]:
    """(datatype, array) of any datatype but BF16; BYTES elements are UTF-8 text."""
    datatype = draw(st.sampled_from([*NUMERIC, "BYTES"]))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    if datatype == "BYTES":
        elements = st.text(max_size=4).map(str.encode)
        array = draw(hnp.arrays(object, shape, elements=elements))
    else:
        array = draw(hnp.arrays(NUMERIC[datatype], shape))
    return datatype, array
