"""Streaming ``(features, labels)`` batches from CSV, TFRecord and Parquet files, built from the schema.

One module per format (:mod:`tfmtl.data.csv_files`, :mod:`tfmtl.data.tfrecord_files`,
:mod:`tfmtl.data.parquet_files`) around one pipeline (:mod:`tfmtl.data.pipeline`);
this module picks a reader by name.
"""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl._compat import tf
from tfmtl.data.csv_files import read_csv, write_csv
from tfmtl.data.parquet_files import read_parquet, write_parquet
from tfmtl.data.pipeline import FORMATS, label_keys
from tfmtl.data.tfrecord_files import read_tfrecord, write_tfrecord
from tfmtl.features.schema import Schema
from tfmtl.tasks.task import Task

def read_files(format: str, paths: Any, schema: Schema, tasks: Sequence[Task], batch_size: int, **kwargs: Any) -> tf.data.Dataset:
    """:func:`read_csv`, :func:`read_parquet` or :func:`read_tfrecord` by ``format``.

    Example:

    >>> import tfmtl
    >>> tfmtl.data.read_files("avro", "x.avro", None, [], 1)
    Traceback (most recent call last):
    ...
    ValueError: unknown data format 'avro'; allowed formats: csv, parquet, tfrecord
    """
    readers = {"csv": read_csv, "parquet": read_parquet, "tfrecord": read_tfrecord}
    if format not in readers:
        raise ValueError(f"unknown data format {format!r}; allowed formats: {', '.join(FORMATS)}")
    return readers[format](paths, schema, tasks, batch_size, **kwargs)


__all__ = [
    "FORMATS", "label_keys", "read_csv", "read_files", "read_parquet", "read_tfrecord", "write_csv", "write_parquet",
    "write_tfrecord",
]
