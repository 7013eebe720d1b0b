"""Numpy <-> TensorProto helpers shared by the warmup writer, the client and the dev server."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from tfmtl._compat import tf

#: gRPC channel and server options for messages up to INT32_MAX bytes, TF Serving's limit (gRPC's default
#: of 4 MiB refuses a Predict of about 60,000 rows of a dozen features).
GRPC_MESSAGE_LIMITS = (("grpc.max_send_message_length", 2**31 - 1), ("grpc.max_receive_message_length", 2**31 - 1))


def to_numpy(values: Any, dtype: tf.DType, *, feature: str = "", signature: str = "") -> np.ndarray:
    """Convert a feature column to the numpy type of ``dtype``, or raise naming the feature."""
    where = f"feature {feature!r}" + (f" of signature {signature!r}" if signature else "")
    array = np.asarray(values)
    if array.size == 0:  # np.asarray([]) is float64 whatever the column holds
        return array.astype(object if dtype == tf.string else dtype.as_numpy_dtype)
    if dtype == tf.bool and array.dtype.kind != "b":
        raise TypeError(f"{where} expects booleans, got {array.dtype}")
    if dtype == tf.string:
        if array.dtype.kind == "U":
            return np.char.encode(array, "utf-8").astype(object)
        if array.dtype.kind == "S" or (array.dtype == object and all(isinstance(v, (bytes, str)) for v in array.flat)):
            return np.asarray([v.encode("utf-8") if isinstance(v, str) else v for v in array.flat], dtype=object).reshape(array.shape)
        raise TypeError(f"{where} expects string values, got {array.dtype}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{where} expects {dtype.name} values, got {array.dtype}")
    if dtype.is_integer and array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise TypeError(f"{where} expects integer ids, got non-integer floats")
    converted = array.astype(dtype.as_numpy_dtype)
    if dtype.is_integer and not np.array_equal(converted, array):
        raise ValueError(f"{where}: values out of {dtype.name}'s range")
    return converted


def request_tensor(values: np.ndarray) -> Any:
    """A TensorProto for a request (``tensor_content`` or ``string_val``, as clients send)."""
    return tf.make_tensor_proto(values)


#: numpy type -> (TF dtype, TensorProto field) for the typed-field encoding TF Serving responds with.
_TYPED_FIELDS = {
    np.float32: (tf.float32, "float_val"),
    np.float64: (tf.float64, "double_val"),
    np.int64: (tf.int64, "int64_val"),
    np.int32: (tf.int32, "int_val"),
    np.bool_: (tf.bool, "bool_val"),
}


def response_tensor(values: np.ndarray) -> Any:
    """A TensorProto with typed ``*_val`` fields, the encoding TF Serving's responses use."""
    values = np.asarray(values)
    proto = type(tf.make_tensor_proto(0))()  # TensorProto, without importing tensorflow.core
    for size in values.shape:
        proto.tensor_shape.dim.add(size=size)
    flat = values.reshape(-1)
    if values.dtype == object or values.dtype.kind in "SU":
        proto.dtype = tf.string.as_datatype_enum
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode("utf-8") for v in flat)
        return proto
    typed = _TYPED_FIELDS.get(values.dtype.type)
    if typed is None:
        return tf.make_tensor_proto(values)
    dtype, field = typed
    proto.dtype = dtype.as_datatype_enum
    getattr(proto, field).extend(flat.tolist())
    return proto


def from_tensor(proto: Any) -> np.ndarray:
    """A numpy array from a TensorProto in either encoding."""
    return tf.make_ndarray(proto)


def signature_io(signature_def: Any) -> dict[str, dict[str, tf.DType]]:
    """``{"inputs": {key: dtype}, "outputs": {key: dtype}}`` of a SignatureDef proto."""
    return {
        "inputs": {key: tf.dtypes.as_dtype(info.dtype) for key, info in signature_def.inputs.items()},
        "outputs": {key: tf.dtypes.as_dtype(info.dtype) for key, info in signature_def.outputs.items()},
    }


def check_features(features: Mapping[str, Any], expected: Mapping[str, tf.DType], signature: str) -> dict[str, np.ndarray]:
    """Check a feature dict against a signature's inputs and convert it to its dtypes."""
    unknown = sorted(set(features) - set(expected))
    missing = sorted(set(expected) - set(features))
    if unknown or missing:
        raise ValueError(
            f"signature {signature!r} takes inputs {sorted(expected)}; "
            + (f"unknown: {unknown}. " if unknown else "")
            + (f"missing: {missing}." if missing else "")
        )
    return {
        name: to_numpy(features[name], dtype, feature=name, signature=signature) for name, dtype in expected.items()
    }
