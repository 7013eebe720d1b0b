"""CSV files: one header line naming the columns; one column per ``[batch]`` input and per label.

An empty label field is NaN (no label); an empty feature field is an error. Inputs of
shape ``[batch, n]`` (sequences, dense vectors) need TFRecord or Parquet. A field that is
empty or not a number where one is needed fails the batch with an error naming the
file, the row, the column and the value. The pipeline is :mod:`tfmtl.data.pipeline`'s.
"""

from __future__ import annotations

import csv
import itertools
import math
import pathlib
from typing import Any, Iterable, Sequence

import numpy as np

from tfmtl._compat import tf
from tfmtl.data.dataset import MultiTaskData
from tfmtl.data.pipeline import _columns, _expand, _label_columns, _pipeline
from tfmtl.features.schema import Schema
from tfmtl.tasks.task import Task

#: What CSV fields ``read_csv`` takes as numbers: what ``tf.strings.to_number`` (and TensorFlow's own CSV
#: reader) converts, leading and trailing blanks, exponents, ``nan``/``inf``/``infinity`` and hex included.
_FLOAT_TEXT = r"\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|0[xX][0-9a-fA-F]+|(?i:inf|infinity|nan))\s*"
_INT_TEXT = r"\s*[+-]?0*\d{1,19}\s*"  # more digits overflow int64 (19-digit values past 2**63 - 1 too, unnamed)
#: A CSV record's place, ``file index * _ROWS_PER_FILE + row`` (rows from 1 after the header).
_ROWS_PER_FILE = 2**40
#: Data rows whose field count is checked when a CSV file is opened (see ``_csv_header``).
_CHECKED_ROWS = 100


def _csv_header(path: str, field_delim: str) -> list[str]:
    """The header of a CSV file; its first rows may not have more fields than it (a stray delimiter)."""
    with tf.io.gfile.GFile(path, "rb") as handle:
        lines = (line.decode("utf-8", "replace") for line in handle)
        rows = csv.reader(lines, delimiter=field_delim)
        header = next(rows, [])
        try:
            for row, fields in enumerate(itertools.islice(rows, _CHECKED_ROWS), 1):
                if len(fields) > len(header):
                    raise ValueError(f"{path}: row {row} after the header has {len(fields)} fields, more than the "
                                     f"{len(header)} columns of the header {header}; is a value missing its quotes?")
        except csv.Error:  # not Python's CSV dialect: left to TensorFlow's reader
            pass
    return header


def _csv_valid(text: tf.Tensor, dtype: tf.DType, label: bool) -> tf.Tensor:
    """Which fields of a CSV column ``read_csv`` can convert: ids non-empty, numbers numbers, labels also empty."""
    if dtype == tf.string:
        return tf.strings.length(text) > 0
    valid = tf.strings.regex_full_match(text, _FLOAT_TEXT if dtype.is_floating else _INT_TEXT)
    return tf.logical_or(valid, tf.equal(text, "")) if label else valid


def _csv_value(text: tf.Tensor, dtype: tf.DType, label: bool) -> tf.Tensor:
    """A CSV column converted to ``dtype`` (after ``_csv_valid``): empty labels are NaN."""
    if dtype == tf.string:
        return tf.identity(text)
    if label:
        text = tf.where(tf.equal(text, ""), "nan", text)
    return tf.strings.to_number(text, dtype)


def _csv_problem(name: str, value: tf.Tensor, dtype: tf.DType, label: bool) -> tf.Tensor:
    """What is wrong with ``value``, an invalid field of column ``name`` (see ``_csv_valid``)."""
    # Backquotes: the message goes through tf.debugging.Assert, which escapes quotes.
    shown = tf.strings.join(["`", tf.strings.substr(value, 0, 100), "`"])
    if label:
        return tf.strings.join([f"label column `{name}` has ", shown,
                                ", which is not a float (an empty field means no label)"])
    empty = f"column `{name}` has an empty value; every feature needs one"
    if dtype == tf.string:
        return tf.constant(empty)
    kind = "a float" if dtype.is_floating else "an integer (int64)"
    wrong = tf.strings.join([f"column `{name}` has ", shown, f", which is not {kind}"])
    return tf.where(tf.equal(value, ""), empty, wrong)


def _csv_check(valid: dict[str, tf.Tensor], texts: dict[str, tf.Tensor], where: tf.Tensor, files: tf.Tensor,
               labels: Sequence[str], dtypes: dict[str, tf.DType]) -> tf.Tensor:
    """A check failing on a batch's first invalid field, naming its file, row, column and value.

    ``where`` holds each record's ``file index * _ROWS_PER_FILE + row``. The messages are
    built only when some field is invalid (one ``tf.cond`` per batch).
    """

    def fail() -> tf.Tensor:
        checks: list[Any] = []
        for name, ok in valid.items():  # the columns in file order
            first = tf.argmin(tf.cast(ok, tf.int32))
            place = where[first]
            message = tf.strings.join([
                tf.gather(files, place // _ROWS_PER_FILE), ", row ", tf.strings.as_string(place % _ROWS_PER_FILE),
                " after the header: CSV ", _csv_problem(name, texts[name][first], dtypes[name], name in labels),
            ])
            with tf.control_dependencies(checks):
                checks = [tf.debugging.Assert(tf.reduce_all(ok), [message])]
        with tf.control_dependencies(checks):
            return tf.constant(False)

    everything = tf.reduce_all(tf.stack([tf.reduce_all(ok) for ok in valid.values()]))
    return tf.cond(everything, lambda: tf.constant(True), fail)


def read_csv(
    paths: str | pathlib.Path | Iterable[str | pathlib.Path],
    schema: Schema,
    tasks: Sequence[Task],
    batch_size: int,
    *,
    shuffle_buffer: int = 0,
    seed: Any = None,
    input_context: tf.distribute.InputContext | None = None,
    drop_remainder: bool = False,
    field_delim: str = ",",
    preprocess: bool | None = None,
) -> tf.data.Dataset:
    """Batches of ``(features, labels)`` streamed from CSV files with a header line.

    Fields are read as text and converted per column in the batch map: ids must not be
    empty, numeric features must be numbers (what ``tf.strings.to_number`` reads: blanks
    around them, exponents, ``nan``, ``inf``), int64 ids integers, labels numbers or
    empty (NaN). Otherwise the batch fails with an ``InvalidArgumentError`` naming the
    file, the row (counting from 1 after the header), the column and the value. A row
    with more fields than the header is a ``ValueError`` naming the file when it is among
    the first 100 rows of a file (checked when the dataset is made); further down it
    goes unnoticed (TensorFlow's reader ignores fields past the last column it reads).

    Args:
      paths: A file, a glob pattern, or a list of them (sorted; read in that order
        when not shuffled).
      schema: The feature schema; every ``[batch]`` input must be a column.
      tasks: The tasks; their label (and space, sample weight) columns are read.
      batch_size: Global batch size (per replica with ``input_context``).
      shuffle_buffer: Records in the shuffle buffer (0 = keep the file order).
      seed: Shuffle seed (an int or a scalar int64 tensor); with a seed the order
        is the same on every pass, so give ``seed + epoch`` for a new one per epoch.
      input_context: Shard for one input pipeline of a distribution strategy.
      drop_remainder: Drop the last, smaller batch.
      field_delim: Column separator.
      preprocess: Preprocess the features in the pipeline (see the module
        docstring); None: when the schema is adapted.

    Returns:
      A ``tf.data.Dataset`` of ``(features, labels)`` dicts.

    Example:

    >>> import tempfile, numpy as np, tfmtl
    >>> data = tfmtl.data.MultiTaskData({"price": np.array([1.0, 2.0, 3.0])}, {"click": np.array([1.0, np.nan, 0.0])},
    ...                                 tfmtl.Schema([tfmtl.Numeric("price")]), (tfmtl.Task.binary("click"),))
    >>> path = tfmtl.data.write_csv(data, tempfile.mkdtemp() + "/train.csv")
    >>> features, labels = next(iter(tfmtl.data.read_csv(path, data.schema, data.tasks, batch_size=3)))
    >>> features["price"].numpy().tolist(), labels["click"].numpy().tolist()
    ([1.0, 2.0, 3.0], [1.0, nan, 0.0])
    """
    files = _expand(paths)
    specs = schema.input_specs()
    wide = [name for name, spec in specs.items() if spec.shape.rank != 1]
    if wide:
        raise ValueError(f"feature(s) {wide} take [batch, n] values, which CSV cannot hold; use read_tfrecord")
    labels = _label_columns(specs, tasks)
    header = _csv_header(files[0], field_delim)
    for name in files[1:]:
        if _csv_header(name, field_delim) != header:
            raise ValueError(f"{name}: its header differs from {files[0]}'s ({header})")
    columns = {**{name: spec.dtype for name, spec in specs.items()}, **{key: tf.float32 for key in labels}}
    missing = [name for name in columns if name not in header]
    if missing:
        raise ValueError(f"{files[0]}: no column(s) {missing}; the header has {header}")
    picked = sorted((header.index(name), name) for name in columns)  # CsvDataset wants file order
    names = tf.constant(files)

    def reader(path: tf.Tensor) -> tf.data.Dataset:
        # Every column as text ("" when empty, so that no field is "missing"): ``parse`` converts
        # and checks the values, naming the column. Each record carries its file and row.
        records = tf.data.experimental.CsvDataset(
            path, [tf.constant([""])] * len(picked), header=True, field_delim=field_delim,
            select_cols=[index for index, _ in picked],
        )
        start = tf.argmax(tf.cast(tf.equal(names, path), tf.int64)) * _ROWS_PER_FILE  # (not counter(): slow)
        return tf.data.Dataset.zip((records, tf.data.Dataset.range(start + 1, start + _ROWS_PER_FILE)))

    def parse(texts: tuple[tf.Tensor, ...], where: tf.Tensor) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
        by_name = {name: text for (_, name), text in zip(picked, texts)}
        valid = {name: _csv_valid(by_name[name], columns[name], name in labels) for _, name in picked}
        with tf.control_dependencies([_csv_check(valid, by_name, where, names, labels, columns)]):
            values = {name: _csv_value(by_name[name], columns[name], name in labels) for name in columns}
        return {name: values[name] for name in specs}, {key: values[key] for key in labels}

    return _pipeline(
        files, reader, parse, batch_size, shuffle_buffer=shuffle_buffer, seed=seed, input_context=input_context,
        drop_remainder=drop_remainder, schema=schema, preprocess=preprocess,
    )


def write_csv(data: MultiTaskData, path: str | pathlib.Path) -> str:
    """Write ``data``'s inputs and labels as CSV with a header; NaN labels become empty fields.

    Floats are written with enough digits to read back bit-identical float32 values.
    Only ``[batch]`` inputs fit (see :func:`read_csv`).

    Example:

    >>> import tempfile, numpy as np, tfmtl
    >>> data = tfmtl.data.MultiTaskData({"price": np.array([0.1, 2.0])}, {"click": np.array([1.0, np.nan])},
    ...                                 tfmtl.Schema([tfmtl.Numeric("price")]), (tfmtl.Task.binary("click"),))
    >>> print(open(tfmtl.data.write_csv(data, tempfile.mkdtemp() + "/rows.csv")).read())
    price,click
    0.10000000149011612,1.0
    2.0,
    <BLANKLINE>
    """
    columns, dtypes = _columns(data)
    wide = [name for name, values in columns.items() if values.ndim != 1]
    if wide:
        raise ValueError(f"feature(s) {wide} take [batch, n] values, which CSV cannot hold; use write_tfrecord")

    def text(value: Any, dtype: tf.DType) -> str:
        if dtype.is_floating:
            value = float(np.float32(value))
            return "" if math.isnan(value) else repr(value)
        return value.decode() if isinstance(value, bytes) else str(value)

    with tf.io.gfile.GFile(str(path), "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(list(columns))
        for row in range(len(data)):
            writer.writerow([text(values[row], dtypes[name]) for name, values in columns.items()])
    return str(path)


__all__ = ["read_csv", "write_csv"]
