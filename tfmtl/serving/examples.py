"""tf.Example encoding of raw features, derived from the export's input signature."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from tfmtl._compat import tf


def example_spec(input_specs: Mapping[str, tf.TensorSpec]) -> dict[str, Any]:
    """``tf.io.parse_example`` spec: one required scalar per feature, typed like its input.

    A feature missing from an Example is an error that names it; ids and numbers
    are ``bytes_list`` (strings), ``int64_list`` and ``float_list``.

    Example:

    >>> import tensorflow as tf, tfmtl
    >>> spec = tfmtl.serving.examples.example_spec({"price": tf.TensorSpec([None], tf.float32)})
    >>> spec["price"].dtype.name
    'float32'
    """
    spec = {}
    for name, tensor_spec in input_specs.items():
        if tensor_spec.shape.rank != 1:
            raise ValueError(f"feature {name!r}: tf.Example signatures need [batch] inputs, got {tensor_spec.shape}")
        spec[name] = tf.io.FixedLenFeature([], tensor_spec.dtype)
    return spec


def _feature(value: Any) -> tf.train.Feature:
    if isinstance(value, (bytes, str, np.bytes_, np.str_)):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode() if isinstance(value, str) else bytes(value)]))
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"booleans are not a feature type: {value!r}")
    if isinstance(value, (int, np.integer)):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
    if isinstance(value, (float, np.floating)):
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
    raise TypeError(f"cannot put {type(value).__name__} value {value!r} in a tf.Example")


def to_examples(features: Mapping[str, Any], dtypes: Mapping[str, tf.DType] | None = None) -> list[tf.train.Example]:
    """One ``tf.train.Example`` per row of a dict of equal-length feature arrays.

    ``dtypes`` (feature name to dtype) makes numbers floats or ints as the model
    expects; without it the arrays' own types decide.

    Example:

    >>> import numpy as np, tfmtl
    >>> [example] = tfmtl.serving.examples.to_examples({"item": np.array(["a"]), "price": np.array([2.5])})
    >>> example.features.feature["price"].float_list.value[0]
    2.5
    """
    columns = {name: np.asarray(values).reshape(-1) for name, values in features.items()}
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"features have different numbers of rows: { {k: len(v) for k, v in columns.items()} }")
    rows = lengths.pop() if lengths else 0
    examples = []
    for row in range(rows):
        feature = {}
        for name, values in columns.items():
            value = values[row]
            dtype = dtypes.get(name) if dtypes else None
            if dtype is not None and dtype.is_floating:
                value = float(value)
            elif dtype is not None and dtype.is_integer:
                value = int(value)
            try:
                feature[name] = _feature(value)
            except TypeError as error:
                raise TypeError(f"feature {name!r}: {error}") from None
        examples.append(tf.train.Example(features=tf.train.Features(feature=feature)))
    return examples
