"""TFRecord files of ``tf.train.Example``, parsed with the serving signature's spec.

:func:`tfmtl.serving.examples.example_spec` is the spec, so training reads exactly what
the ``serving_default``/Classify path reads; labels are float features, NaN when absent.
The pipeline is :mod:`tfmtl.data.pipeline`'s.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any, Iterable, Sequence

from tfmtl._compat import tf
from tfmtl.data.dataset import MultiTaskData
from tfmtl.data.pipeline import _columns, _expand, _label_columns, _pipeline
from tfmtl.features.schema import Schema
from tfmtl.serving.examples import example_spec, to_examples
from tfmtl.tasks.task import Task

def read_tfrecord(
    paths: str | pathlib.Path | Iterable[str | pathlib.Path],
    schema: Schema,
    tasks: Sequence[Task],
    batch_size: int,
    *,
    shuffle_buffer: int = 0,
    seed: Any = None,
    input_context: tf.distribute.InputContext | None = None,
    drop_remainder: bool = False,
    compression_type: str | None = None,
    preprocess: bool | None = None,
) -> tf.data.Dataset:
    """Batches of ``(features, labels)`` streamed from TFRecord files of ``tf.train.Example``.

    Features are parsed with the export's signature spec (every input required,
    ``[batch, n]`` inputs as ``n`` values); labels are float features, NaN when absent.
    Arguments as :func:`read_csv`, plus ``compression_type`` (``"GZIP"``, ``"ZLIB"``).

    Example:

    >>> import tempfile, numpy as np, tfmtl
    >>> data = tfmtl.data.MultiTaskData({"price": np.array([1.0, 2.0])}, {"click": np.array([1.0, np.nan])},
    ...                                 tfmtl.Schema([tfmtl.Numeric("price")]), (tfmtl.Task.binary("click"),))
    >>> paths = tfmtl.data.write_tfrecord(data, tempfile.mkdtemp() + "/train.tfrecord")
    >>> features, labels = next(iter(tfmtl.data.read_tfrecord(paths, data.schema, data.tasks, batch_size=2)))
    >>> labels["click"].numpy().tolist()
    [1.0, nan]
    """
    files = _expand(paths)
    spec = example_spec(schema.input_specs())
    labels = _label_columns(spec, tasks)
    for key in labels:
        spec[key] = tf.io.FixedLenFeature([], tf.float32, default_value=math.nan)

    def reader(path: tf.Tensor) -> tf.data.Dataset:
        return tf.data.TFRecordDataset(path, compression_type=compression_type)

    # [batch, n] inputs are read as variable-length lists and checked here, so a record with
    # another count gets an error naming the feature and n (ParseExample's names neither reliably).
    widths = {name: s.shape[1] for name, s in schema.input_specs().items() if s.shape.rank == 2}
    for name in widths:
        spec[name] = tf.io.VarLenFeature(spec[name].dtype)

    def parse(records: tf.Tensor) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
        parsed = tf.io.parse_example(records, spec)
        for name, width in widths.items():
            parsed[name] = _fixed_width(parsed[name], name, width, tf.shape(records)[0])
        return {name: parsed[name] for name in schema.input_specs()}, {key: parsed[key] for key in labels}

    return _pipeline(
        files, reader, parse, batch_size, shuffle_buffer=shuffle_buffer, seed=seed, input_context=input_context,
        drop_remainder=drop_remainder, schema=schema, preprocess=preprocess,
    )


def _fixed_width(values: tf.SparseTensor, name: str, width: int, rows: tf.Tensor) -> tf.Tensor:
    """``[rows, width]`` from a parsed variable-length feature, after checking every Example has ``width`` values."""
    counts = tf.math.bincount(tf.cast(values.indices[:, 0], tf.int32), minlength=rows, maxlength=rows)
    check = tf.debugging.Assert(tf.reduce_all(tf.equal(counts, width)), [
        f"TFRecord feature `{name}` needs exactly {width} values per Example (ids padded to max_len, or the "
        "vector's length); values per Example in this batch:", counts,
    ], summarize=8)
    with tf.control_dependencies([check]):
        return tf.reshape(values.values, [-1, width])


def write_tfrecord(data: MultiTaskData, path: str | pathlib.Path, *, shards: int = 1, chunk_rows: int = 10_000) -> list[str]:
    """Write ``data``'s inputs and labels as ``tf.train.Example`` records; returns the file names.

    With ``shards > 1`` rows go round-robin to ``<path>-00000-of-0000N`` files (one
    per worker or more). Rows are converted ``chunk_rows`` at a time.

    Example:

    >>> import tempfile, numpy as np, tfmtl
    >>> data = tfmtl.data.MultiTaskData({"price": np.arange(4.0)}, {"click": np.ones(4)},
    ...                                 tfmtl.Schema([tfmtl.Numeric("price")]), (tfmtl.Task.binary("click"),))
    >>> [name.split("/")[-1] for name in tfmtl.data.write_tfrecord(data, tempfile.mkdtemp() + "/rows", shards=2)]
    ['rows-00000-of-00002', 'rows-00001-of-00002']
    """
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    columns, dtypes = _columns(data)
    names = [str(path)] if shards == 1 else [f"{path}-{i:05d}-of-{shards:05d}" for i in range(shards)]
    writers = [tf.io.TFRecordWriter(name) for name in names]
    try:
        for start in range(0, len(data), chunk_rows):
            chunk = {name: values[start:start + chunk_rows] for name, values in columns.items()}
            for offset, example in enumerate(to_examples(chunk, dtypes)):
                writers[(start + offset) % shards].write(example.SerializeToString())
    finally:
        for writer in writers:
            writer.close()
    return names


__all__ = ["read_tfrecord", "write_tfrecord"]
