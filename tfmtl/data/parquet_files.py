"""Parquet files (needs ``pyarrow``: ``pip install "tfmtl[parquet]"``): one column per input and label.

``[batch, n]`` inputs are list columns (sequences are padded or truncated like
:func:`~tfmtl.features.pad_sequences`, dense vectors must have ``n`` values). A null
label is NaN (no label); a null feature value, or a null inside a list, is an error
naming the file, the column and the row. Files are read in row batches of
``read_rows`` (never whole), through ``tf.data.Dataset.from_generator``, so the reading
itself runs in Python. The pipeline is :mod:`tfmtl.data.pipeline`'s.
"""

from __future__ import annotations

import pathlib
from typing import Any, Iterable, Sequence

import numpy as np

from tfmtl._compat import tf
from tfmtl.data.dataset import MultiTaskData
from tfmtl.data.pipeline import _columns, _expand, _label_columns, _pipeline, label_keys
from tfmtl.features.sequence import pad_sequences
from tfmtl.features.schema import Schema
from tfmtl.tasks.task import Task

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


__all__ = ["read_parquet", "write_parquet"]
