"""tf.Example encoding of raw features, derived from the export's input signature."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from tfmtl._compat import tf


def example_spec(input_specs: Mapping[str, tf.TensorSpec]) -> dict[str, Any]:
    """``tf.io.parse_example`` spec: one required feature per input, typed and sized like it.

    A ``[batch]`` input is one value per Example; a ``[batch, n]`` input (a padded
    sequence, its weights, a dense vector) is exactly ``n`` values per Example,
    padding included. A feature missing from an Example is an error that names it;
    ids and numbers are ``bytes_list`` (strings), ``int64_list`` and ``float_list``.

    Example:

    >>> import tensorflow as tf, tfmtl
    >>> spec = tfmtl.serving.examples.example_spec({"price": tf.TensorSpec([None], tf.float32)})
    >>> spec["price"].dtype.name
    'float32'
    >>> example_spec({"history": tf.TensorSpec([None, 50], tf.string)})["history"].shape
    [50]
    """
    spec = {}
    for name, tensor_spec in input_specs.items():
        shape = tensor_spec.shape
        if shape.rank not in (1, 2) or (shape.rank == 2 and shape[1] is None):
            raise ValueError(
                f"feature {name!r}: tf.Example signatures need [batch] or [batch, n] inputs, got {tensor_spec.shape}"
            )
        spec[name] = tf.io.FixedLenFeature(shape[1:].as_list(), tensor_spec.dtype)
    return spec


def _feature(values: list[Any]) -> tf.train.Feature:
    """One Example feature holding ``values`` (all of one type: strings, ints or floats)."""
    first = values[0] if values else 0.0
    if isinstance(first, (bytes, str, np.bytes_, np.str_)):
        return tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[v.encode() if isinstance(v, str) else bytes(v) for v in values])
        )
    if isinstance(first, (bool, np.bool_)):
        raise TypeError(f"booleans are not a feature type: {first!r}")
    if isinstance(first, (int, np.integer)):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
    if isinstance(first, (float, np.floating)):
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))
    raise TypeError(f"cannot put {type(first).__name__} value {first!r} in a tf.Example")


def to_examples(features: Mapping[str, Any], dtypes: Mapping[str, tf.DType] | None = None) -> list[tf.train.Example]:
    """One ``tf.train.Example`` per row of a dict of equal-length feature arrays.

    A 1-D array gives one value per Example, a 2-D ``[rows, n]`` array ``n`` values.
    ``dtypes`` (feature name to dtype) makes numbers floats or ints as the model
    expects; without it the arrays' own types decide.

    Example:

    >>> import numpy as np, tfmtl
    >>> [example] = tfmtl.serving.examples.to_examples({"item": np.array(["a"]), "price": np.array([2.5])})
    >>> example.features.feature["price"].float_list.value[0]
    2.5
    """
    columns = {}
    for name, values in features.items():
        array = np.asarray(values)
        columns[name] = array if array.ndim == 2 else array.reshape(-1, 1)
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"features have different numbers of rows: { {k: len(v) for k, v in columns.items()} }")
    rows = lengths.pop() if lengths else 0
    examples = []
    for row in range(rows):
        feature = {}
        for name, values in columns.items():
            value = values[row].tolist()
            dtype = dtypes.get(name) if dtypes else None
            if dtype is not None and dtype.is_floating:
                value = [float(v) for v in value]
            elif dtype is not None and dtype.is_integer:
                value = [int(v) for v in value]
            try:
                feature[name] = _feature(value)
            except TypeError as error:
                raise TypeError(f"feature {name!r}: {error}") from None
        examples.append(tf.train.Example(features=tf.train.Features(feature=feature)))
    return examples
