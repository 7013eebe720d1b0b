"""Streaming ``(features, labels)`` batches from CSV, TFRecord and Parquet files, built from the schema.

Both readers return a ``tf.data`` pipeline that reads the files lazily (nothing is
loaded into memory): list the files, shard them per input pipeline, interleave the
readers, shuffle in a bounded buffer, batch, parse, prefetch. Their batches are the
same dicts as :meth:`MultiTaskData.to_dataset`: features keyed by input name (shaped
as ``schema.input_specs()``), labels keyed by label key (float32, NaN = no label).

* CSV: one header line naming the columns; one column per ``[batch]`` input and per
  label. An empty label field is NaN (no label); an empty feature field is an error.
  Inputs of shape ``[batch, n]`` (sequences, dense vectors) need TFRecord. A field that
  is empty or not a number where one is needed fails the batch with an error naming
  the file, the row, the column and the value.
* TFRecord: ``tf.train.Example`` records parsed with the serving signature's spec
  (:func:`tfmtl.serving.examples.example_spec`), so training reads exactly what the
  ``serving_default``/Classify path reads; labels are float features, NaN when absent.
* Parquet (needs ``pyarrow``: ``pip install "tfmtl[parquet]"``): one column per input
  and label; ``[batch, n]`` inputs are list columns (sequences are padded or truncated
  like :func:`~tfmtl.features.pad_sequences`, dense vectors must have ``n`` values). A
  null label is NaN (no label); a null feature value, or a null inside a list, is an
  error naming the file, the column and the row. Files are read in
  row batches of ``read_rows`` (never whole), through ``tf.data.Dataset.from_generator``,
  so the reading itself runs in Python.

Preprocessing: with an adapted schema, the batches are preprocessed in the pipeline
(``preprocess=None``, the default; see :class:`~tfmtl.features.FeaturePreprocessor`):
the lookups, hashing and standardization run in ``tf.data``'s threads, overlapping the
training step, and a model checks that the batches carry its own schema's fingerprint.
``preprocess=False`` keeps raw values (for ``compile(gauc_by=...)`` evaluation, or to
look at the data).

Sharding: pass ``input_context`` (from ``strategy.distribute_datasets_from_function``)
and each input pipeline reads its own files (its own records when there are fewer
files than pipelines) with the per-replica batch size. Without it the dataset carries
``auto_shard_policy=AUTO``, so ``strategy.experimental_distribute_dataset`` and
Keras ``fit`` under a multi-worker strategy shard it by file, else by record.
"""

from __future__ import annotations

import csv
import itertools
import math
import pathlib
from typing import Any, Iterable, Sequence

import numpy as np

from tfmtl._compat import tf
from tfmtl.data.dataset import MultiTaskData, preprocessed
from tfmtl.features.ids import pad_sequences
from tfmtl.features.schema import Schema
from tfmtl.serving.examples import example_spec, to_examples
from tfmtl.tasks.task import Task, check_tasks

#: File formats the readers take (``read_files``'s ``format``).
FORMATS = ("csv", "parquet", "tfrecord")


def label_keys(tasks: Sequence[Task]) -> list[str]:
    """Every label column the tasks read: labels, sample spaces and sample weights, in task order.

    Example:

    >>> import tfmtl
    >>> label_keys([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy", space="click", sample_weight="w")])
    ['click', 'buy', 'w']
    """
    keys: list[str] = []
    for task in check_tasks(tasks):
        for key in (task.label_key, task.space, task.sample_weight):
            if key is not None and key not in keys:
                keys.append(key)
    return keys


def _label_columns(inputs: Iterable[str], tasks: Sequence[Task]) -> list[str]:
    """:func:`label_keys`, none of which may also be an input: a file has one column per name."""
    labels, inputs = label_keys(tasks), set(inputs)
    clash = [key for key in labels if key in inputs]
    if clash:
        raise ValueError(f"label(s) {clash} are also features of the schema; a file has one column per name")
    return labels


def _expand(paths: str | pathlib.Path | Iterable[str | pathlib.Path]) -> list[str]:
    patterns = [paths] if isinstance(paths, (str, pathlib.Path)) else list(paths)
    files = sorted({name for pattern in patterns for name in tf.io.gfile.glob(str(pattern))})
    if not files:
        raise FileNotFoundError(f"no files match {[str(p) for p in patterns]}")
    return files


def _pipeline(
    files: list[str],
    reader: Any,
    parse: Any,
    batch_size: int,
    *,
    shuffle_buffer: int,
    seed: Any,
    input_context: tf.distribute.InputContext | None,
    drop_remainder: bool,
    schema: Schema,
    preprocess: bool | None,
) -> tf.data.Dataset:
    """files -> shard -> interleave(reader) -> shuffle -> batch -> parse -> preprocess -> prefetch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dataset = tf.data.Dataset.from_tensor_slices(files)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.AUTO
    by_record = False
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
        pipelines, index = input_context.num_input_pipelines, input_context.input_pipeline_id
        if len(files) >= pipelines:
            dataset = dataset.shard(pipelines, index)
        else:
            by_record = True
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    dataset = dataset.interleave(
        reader, cycle_length=min(len(files), 4), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    if by_record:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = preprocessed(dataset, schema, preprocess)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


#: What CSV fields ``read_csv`` takes as numbers: what ``tf.strings.to_number`` (and TensorFlow's own CSV
#: reader) converts, leading and trailing blanks, exponents, ``nan``/``inf``/``infinity`` and hex included.
_FLOAT_TEXT = r"\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|0[xX][0-9a-fA-F]+|(?i:inf|infinity|nan))\s*"
_INT_TEXT = r"\s*[+-]?0*\d{1,19}\s*"  # more digits overflow int64
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

    def parse(records: tf.Tensor) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
        parsed = tf.io.parse_example(records, spec)
        return {name: parsed[name] for name in schema.input_specs()}, {key: parsed[key] for key in labels}

    return _pipeline(
        files, reader, parse, batch_size, shuffle_buffer=shuffle_buffer, seed=seed, input_context=input_context,
        drop_remainder=drop_remainder, schema=schema, preprocess=preprocess,
    )


def _pyarrow() -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``, or an ImportError that says how to get them."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ImportError('Parquet files need pyarrow, which tfmtl does not install by default: '
                          'pip install "tfmtl[parquet]" (or pyarrow), or convert the files to TFRecord') from None
    return pyarrow, pyarrow.parquet


def _check_parquet_column(path: str, name: str, column: Any, spec: tf.TensorSpec, pa: Any) -> None:
    """The Arrow type of a feature column against the input spec, before any row is read."""
    kind = column.type
    if spec.shape.rank == 2:
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)):
            raise TypeError(f"{path}: feature {name!r} takes [batch, {spec.shape[1]}] values, so it must be a "
                            f"list column; got {kind}")
        kind = kind.value_type
    if spec.dtype == tf.string:
        ok = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    elif spec.dtype.is_floating:
        ok = pa.types.is_floating(kind) or pa.types.is_integer(kind)
    else:
        ok = pa.types.is_integer(kind)
    if not ok:
        raise TypeError(f"{path}: feature {name!r} expects {spec.dtype.name} values, the file has {kind}")


def _parquet_values(path: str, name: str, column: Any, spec: tf.TensorSpec, first_row: int = 0) -> np.ndarray:
    """One feature column of a record batch (rows from ``first_row`` of file ``path``) as its input spec takes.

    Nulls are errors naming the file, the column and the first row (counting from 0) holding one:
    a null value, or a null inside a list (an id list's or a vector's).
    """
    if column.null_count:
        row = first_row + int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))
        raise ValueError(f"{path}: feature {name!r} has {column.null_count} empty value(s) (null; the first in row "
                         f"{row}, counting from 0); every feature needs a value in every row")
    if spec.shape.rank == 2:
        items = column.flatten()
        if items.null_count:
            import pyarrow.compute as pc

            parents = pc.list_parent_indices(column).to_numpy()
            row = first_row + int(parents[np.argmax(items.is_null().to_numpy(zero_copy_only=False))])
            if spec.dtype.is_floating:
                problem = f"every vector needs {spec.shape[1]} numbers"
            else:
                problem = "nulls inside id lists are not allowed (leave the id out instead)"
            raise ValueError(f"{path}: feature {name!r} has {items.null_count} null(s) inside its lists (the first "
                             f"in row {row}, counting from 0); {problem}")
    values = column.to_numpy(zero_copy_only=False)
    if spec.shape.rank == 2:
        width = spec.shape[1]
        if spec.dtype.is_floating:  # dense vectors: exactly n values
            lengths = {len(row) for row in values}
            if lengths - {width}:
                raise ValueError(f"{path}: feature {name!r} takes {width} values per row, a Parquet row has "
                                 f"{sorted(lengths)}")
            return np.stack(values).astype(np.float32).reshape(-1, width)
        return pad_sequences(values, width, "string" if spec.dtype == tf.string else "int64")
    if spec.dtype == tf.string:
        return values.astype(object)
    return values.astype(spec.dtype.as_numpy_dtype)


def read_parquet(
    paths: str | pathlib.Path | Iterable[str | pathlib.Path],
    schema: Schema,
    tasks: Sequence[Task],
    batch_size: int,
    *,
    shuffle_buffer: int = 0,
    seed: Any = None,
    input_context: tf.distribute.InputContext | None = None,
    drop_remainder: bool = False,
    read_rows: int = 8192,
    preprocess: bool | None = None,
) -> tf.data.Dataset:
    """Batches of ``(features, labels)`` streamed from Parquet files (needs ``pyarrow``).

    Arguments as :func:`read_csv`, plus ``read_rows``: rows read from a file at a
    time. Every file's columns are checked against the schema (names and Arrow
    types) before anything is read.

    Example:

    >>> import tempfile, numpy as np, tfmtl
    >>> data = tfmtl.data.MultiTaskData({"price": np.array([1.0, 2.0])}, {"click": np.array([1.0, np.nan])},
    ...                                 tfmtl.Schema([tfmtl.Numeric("price")]), (tfmtl.Task.binary("click"),))
    >>> path = tfmtl.data.write_parquet(data, tempfile.mkdtemp() + "/train.parquet")
    >>> features, labels = next(iter(tfmtl.data.read_parquet(path, data.schema, data.tasks, batch_size=2)))
    >>> features["price"].numpy().tolist(), labels["click"].numpy().tolist()
    ([1.0, 2.0], [1.0, nan])
    """
    pa, pq = _pyarrow()
    files = _expand(paths)
    specs = schema.input_specs()
    labels = _label_columns(specs, tasks)
    for path in files:
        columns = pq.read_schema(path)
        missing = [name for name in (*specs, *labels) if name not in columns.names]
        if missing:
            raise ValueError(f"{path}: no column(s) {missing}; the file has {columns.names}")
        for name, spec in specs.items():
            _check_parquet_column(path, name, columns.field(name), spec, pa)
    signature = {name: tf.TensorSpec([None, *spec.shape[1:]], spec.dtype) for name, spec in specs.items()}
    signature.update({key: tf.TensorSpec([None], tf.float32) for key in labels})

    def batches(path: bytes) -> Any:
        path, first_row = path.decode(), 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=read_rows, columns=list(signature)):
            out = {
                name: _parquet_values(path, name, batch.column(name), spec, first_row) for name, spec in specs.items()
            }
            first_row += batch.num_rows
            for key in labels:  # nulls become NaN
                out[key] = batch.column(key).to_numpy(zero_copy_only=False).astype(np.float32)
            yield out

    def reader(path: tf.Tensor) -> tf.data.Dataset:
        return tf.data.Dataset.from_generator(batches, output_signature=signature, args=(path,)).unbatch()

    def parse(batch: dict[str, tf.Tensor]) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
        return {name: batch[name] for name in specs}, {key: batch[key] for key in labels}

    return _pipeline(
        files, reader, parse, batch_size, shuffle_buffer=shuffle_buffer, seed=seed, input_context=input_context,
        drop_remainder=drop_remainder, schema=schema, preprocess=preprocess,
    )


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


def _columns(data: MultiTaskData) -> tuple[dict[str, np.ndarray], dict[str, tf.DType]]:
    """The input and label columns of ``data`` with their dtypes (labels float32)."""
    specs = data.schema.input_specs()
    columns = {name: data.features[name] for name in specs}
    columns.update({key: data.labels[key] for key in label_keys(data.tasks)})
    dtypes = {name: spec.dtype for name, spec in specs.items()}
    dtypes.update({key: tf.float32 for key in label_keys(data.tasks)})
    return columns, dtypes


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


def write_parquet(data: MultiTaskData, path: str | pathlib.Path, *, row_group_rows: int = 100_000) -> str:
    """Write ``data``'s inputs and labels as one Parquet file (needs ``pyarrow``); NaN labels become nulls.

    ``[batch, n]`` inputs become list columns.

    Example:

    >>> import tempfile, numpy as np, tfmtl
    >>> data = tfmtl.data.MultiTaskData({"price": np.array([0.5, 2.0])}, {"click": np.array([1.0, np.nan])},
    ...                                 tfmtl.Schema([tfmtl.Numeric("price")]), (tfmtl.Task.binary("click"),))
    >>> import pyarrow.parquet as pq
    >>> pq.read_table(tfmtl.data.write_parquet(data, tempfile.mkdtemp() + "/rows.parquet")).to_pydict()
    {'price': [0.5, 2.0], 'click': [1.0, None]}
    """
    pa, pq = _pyarrow()
    columns, dtypes = _columns(data)
    labels = set(label_keys(data.tasks))
    arrays = {}
    for name, values in columns.items():
        values = np.asarray(values)
        if dtypes[name].is_floating:  # numerics, vectors and labels as float32
            values = values.astype(np.float32)
        if name in labels:
            arrays[name] = pa.array(values, mask=np.isnan(values))
        elif values.ndim == 2:
            arrays[name] = pa.array(list(values))
        else:
            arrays[name] = pa.array(values.astype(str) if dtypes[name] == tf.string else values)
    pq.write_table(pa.table(arrays), str(path), row_group_size=row_group_rows)
    return str(path)


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


__all__ = [
    "FORMATS", "label_keys", "read_csv", "read_files", "read_parquet", "read_tfrecord", "write_csv", "write_parquet",
    "write_tfrecord",
]
