"""What an export stores of each embedding table: the trained float32 rows, or a smaller copy.

A 1B x 32 float32 table is 119 GiB, more than a serving machine holds. An export can store:

* ``table_dtype="float16"``: every row rounded to half precision (half the bytes; stored as the
  int16 bit patterns and widened by integer ops, so the graph holds no float16 tensor);
* ``table_dtype="int8"``: every row as int8 codes ``q = round(row / s)`` with one float32 scale
  ``s = max|row| / 127`` per row, read back as ``q * s`` (32-dim rows: 36 bytes instead of 128);
* ``keep_ids={"user_id": 1_000_000}``: only a vocabulary's first ids and their rows (an adapted
  vocabulary is ordered most frequent first; one given by hand keeps its order); the other ids
  become out-of-vocabulary ids, answered from the OOV rows as ids never seen in training are.
  The export's vocabulary shrinks too.

Training is untouched: the model keeps its float32 tables, and only the export reads the copy.
What each choice costs in AUC and saves in bytes at 10M ids is measured by
``benchmarks/export_tables.py`` (figures in ``benchmarks/README.md``).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

import numpy as np

from tfmtl._compat import tf

#: The ``table_dtype`` values an export takes.
TABLE_DTYPES = ("float32", "float16", "int8")


def quantize_int8(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-row int8 codes and scales: ``rows ~= codes * scales[:, None]``.

    Each row's scale is its largest absolute value over 127 (1 for an all-zero row), so the
    error of an element is at most half its row's scale.

    Example:

    >>> import numpy as np, tfmtl
    >>> codes, scales = tfmtl.serving.tables.quantize_int8(np.array([[0.5, -1.27], [0.0, 0.0]], np.float32))
    >>> codes.tolist(), [round(float(s), 4) for s in scales]
    ([[50, -127], [0, 0]], [0.01, 1.0])
    """
    rows = np.asarray(rows, np.float32)
    scales = np.abs(rows).max(axis=1) / 127.0 if rows.size else np.zeros([len(rows)], np.float32)
    scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
    codes = np.clip(np.rint(rows / scales[:, None]), -127, 127).astype(np.int8)
    return codes, scales


def float16_bits(rows: np.ndarray) -> np.ndarray:
    """Rows rounded to float16, kept as their int16 bit patterns (see :func:`float32_from_float16_bits`)."""
    return np.asarray(rows, np.float32).astype(np.float16).view(np.int16)


def float32_from_float16_bits(bits: tf.Tensor) -> tf.Tensor:
    """float16 values stored as int16 bit patterns, as float32 (exactly; finite values only).

    Integer ops only: a ``float16`` tensor in the graph makes oneDNN log an error on CPUs without
    AVX-512, in every process that runs the export (TF Serving included).

    Example:

    >>> import numpy as np, tfmtl
    >>> tables = tfmtl.serving.tables
    >>> values = np.array([1.5, -0.1, 6e-8, 0.0, 65504.0], np.float32)
    >>> tables.float32_from_float16_bits(tables.float16_bits(values)).numpy().tolist() == (
    ...     values.astype(np.float16).astype(np.float32).tolist())
    True
    """
    bits = tf.bitwise.bitwise_and(tf.cast(bits, tf.int32), 0xFFFF)
    negative = tf.bitwise.right_shift(bits, 15) > 0
    exponent = tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, 10), 0x1F)
    mantissa = tf.bitwise.bitwise_and(bits, 0x3FF)
    # A normal half 2^(e-15) x 1.m is the float32 with exponent field e - 15 + 127 and the mantissa moved up 13 bits.
    normal = tf.bitcast(
        tf.bitwise.bitwise_or(tf.bitwise.left_shift(exponent + 112, 23), tf.bitwise.left_shift(mantissa, 13)), tf.float32
    )
    subnormal = tf.cast(mantissa, tf.float32) * 2.0**-24
    magnitude = tf.where(exponent == 0, subnormal, normal)
    return tf.where(negative, -magnitude, magnitude)


#: Rows converted at a time: the temporaries of a conversion stay this small, whatever the table.
_CHUNK_ROWS = 1 << 18


def _row_chunks(table: Any, rows: int) -> Iterator[np.ndarray]:
    """The first ``rows`` rows of an embedding variable (or of a table sharded row-wise), in chunks.

    Each chunk is a gather of its rows where the variable lives (a slice would read the whole
    variable first, or pull a whole shard from its parameter server).
    """
    shards = list(getattr(table, "variables", None) or [table])  # a ShardedVariable's shards, in row order
    left = rows
    for shard in shards:
        take = min(left, int(shard.shape[0]))
        for start in range(0, take, _CHUNK_ROWS):
            yield tf.gather(shard, tf.range(start, min(take, start + _CHUNK_ROWS), dtype=tf.int64)).numpy()
        left -= take
        if left == 0:
            return
    raise ValueError(f"the table has {rows - left} rows, fewer than the {rows} to store")


class _StoredTable(tf.Module):
    """One table's first ``rows`` rows, stored as float32, float16 (bit patterns), or int8 codes and scales."""

    def __init__(self, name: str, table: Any, rows: int, dtype: str) -> None:
        super().__init__(name=f"{name}_stored")
        self.dtype, self.scales = dtype, None
        dim = int(table.shape[1])
        stored = np.empty([rows, dim], {"int8": np.int8, "float16": np.int16, "float32": np.float32}[dtype])
        scales = np.empty([rows], np.float32) if dtype == "int8" else None
        start = 0
        for chunk in _row_chunks(table, rows):
            stop = start + len(chunk)
            if dtype != "float32" and not np.all(np.isfinite(chunk)):
                raise ValueError(f"table {name!r} holds NaN or infinite values (the model diverged): it cannot be "
                                 f"stored as {dtype}")
            if dtype == "float16" and np.abs(chunk).max() > np.finfo(np.float16).max:
                raise ValueError(f"table {name!r} holds values beyond float16's range (+-65504): export it with "
                                 "table_dtype='int8' or 'float32'")
            if dtype == "int8":
                stored[start:stop], scales[start:stop] = quantize_int8(chunk)
            else:
                stored[start:stop] = float16_bits(chunk) if dtype == "float16" else chunk
            start = stop
        self.rows = tf.Variable(stored, trainable=False, name=f"{name}_{dtype}_rows")
        if scales is not None:
            self.scales = tf.Variable(scales, trainable=False, name=f"{name}_row_scales")

    def lookup(self, rows: tf.Tensor) -> tf.Tensor:
        values = tf.gather(self.rows, rows)  # [..., D]
        if self.dtype == "float16":
            return float32_from_float16_bits(values)
        if self.scales is None:
            return values
        return tf.cast(values, tf.float32) * tf.expand_dims(tf.gather(self.scales, rows), -1)


class StoredTables:
    """The copies of a model's embedding tables that an export saves in place of the trained ones.

    Built from a model whose features a :class:`~tfmtl.features.FeatureEncoder` encodes (every
    model of :mod:`tfmtl.models`). Tables kept as trained (float32, every id) are not copied.
    :meth:`in_place` points the model's lookups at the copies while the export traces its
    signatures; the export then saves :meth:`replaced_variables` no more.

    Args:
      model: The model to export.
      dtype: ``"float32"`` (rows as trained), ``"float16"`` or ``"int8"`` (per-row scale).
      keep_ids: Table name (a feature's name, or the ``table=`` features share) to how many of its
        vocabulary's first ids to keep (an adapted vocabulary's most frequent); vocabulary tables only.

    Example:

    >>> import tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Categorical("item", embedding_dim=4, vocabulary=("a", "b", "c"))])
    >>> model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(4,))
    >>> stored = tfmtl.serving.tables.StoredTables(model, "int8", keep_ids={"item": 2})
    >>> [(v.dtype.name, v.shape.as_list()) for v in stored.variables]
    [('int8', [3, 4]), ('float32', [3])]
    """

    def __init__(self, model: Any, dtype: str = "float32", keep_ids: Mapping[str, int] | None = None) -> None:
        if dtype not in TABLE_DTYPES:
            raise ValueError(f"table_dtype must be one of {list(TABLE_DTYPES)}, got {dtype!r}")
        keep_ids = dict(keep_ids or {})
        # Imported here: importing tfmtl.serving loads no modelling code. An export runs on a model,
        # so by now this code is loaded anyway.
        from tfmtl.features.categorical import vocabulary_lookup
        from tfmtl.features.encoder import FeatureEncoder
        from tfmtl.features.kinds import EmbeddingTable
        from tfmtl.features.preprocessing import FeaturePreprocessor

        self._encoder = _the_layer(model, FeatureEncoder)
        self._preprocessor = _the_layer(model, FeaturePreprocessor)
        if self._encoder is None or self._preprocessor is None:
            if dtype != "float32" or keep_ids:
                raise ValueError(
                    "table_dtype and keep_ids need a model whose features a tfmtl FeatureEncoder encodes "
                    "(a model from tfmtl.models)"
                )
            self._tables, self._pruned = {}, {}
            return
        tables = self._encoder.embeddings
        unknown = sorted(set(keep_ids) - set(tables))
        if unknown:
            raise ValueError(f"keep_ids names {unknown}, which are not embedding tables; the tables are {sorted(tables)}")
        #: Table name to its stored copy (tables kept as trained are absent).
        self._tables: dict[str, _StoredTable] = {}
        #: Table name to the lookup of its kept ids (for tables that keep fewer ids).
        self._pruned: dict[str, Any] = {}
        for name, layer in tables.items():
            rows = None
            if name in keep_ids:
                spec = self._vocabulary_spec(name, keep_ids[name])
                if keep_ids[name] < len(spec.vocabulary):
                    rows = spec.num_oov_buckets + keep_ids[name]  # the OOV rows come first
                    self._pruned[name] = vocabulary_lookup(
                        spec.id_type, spec.vocabulary[: keep_ids[name]], spec.num_oov_buckets, f"{name}_lookup"
                    )
            if dtype == "float32" and rows is None:
                continue
            if not isinstance(layer, EmbeddingTable):
                raise TypeError(f"table {name!r} is a {type(layer).__name__}, not a tfmtl EmbeddingTable: the export "
                                "cannot store it smaller")
            self._tables[name] = _StoredTable(name, layer.embeddings, rows or int(layer.embeddings.shape[0]), dtype)

    def _vocabulary_spec(self, table: str, keep: Any) -> Any:
        from tfmtl.features.categorical import Categorical

        if not isinstance(keep, (int, np.integer)) or isinstance(keep, bool) or keep < 1:
            raise ValueError(f"keep_ids[{table!r}] must be a positive int, got {keep!r}")
        for spec in self._encoder.schema:
            if isinstance(spec, Categorical) and spec.table_name == table:
                if spec.vocabulary is None:
                    raise ValueError(
                        f"keep_ids[{table!r}]: the table hashes its ids (num_hash_bins); only a vocabulary "
                        "table can keep its first ids"
                    )
                return spec
        raise ValueError(f"keep_ids[{table!r}]: the table is not an id vocabulary (a Categorical, Sequence or "
                         "MultiValued feature's)")

    @property
    def modules(self) -> list[tf.Module]:
        """The stored copies, for the export's root object to track (and save)."""
        return list(self._tables.values())

    @property
    def variables(self) -> list[tf.Variable]:
        """The stored copies' variables."""
        return [v for module in self.modules for v in module.variables]

    @property
    def changed(self) -> bool:
        """Whether any table is stored other than as trained."""
        return bool(self._tables)

    def replaced_variables(self) -> list[tf.Variable]:
        """The trained tables' variables that the copies replace (whole tables, or every shard)."""
        return [v for name in self._tables for v in self._encoder.embeddings[name].weights]

    def replaced_lookups(self) -> list[Any]:
        """The model's vocabulary lookups that the pruned lookups replace."""
        return [self._preprocessor.lookups[name] for name in self._pruned]

    def lookups(self) -> list[Any]:
        """The pruned vocabulary lookups (their hash tables are saved in place of the full ones)."""
        return list(self._pruned.values())

    @contextlib.contextmanager
    def in_place(self) -> Iterator[None]:
        """While inside, the model's lookups read the stored copies and the pruned vocabularies."""
        layers = self._encoder.embeddings if self._encoder is not None else {}
        try:
            for name, stored in self._tables.items():
                layers[name].stored_rows = stored.lookup
            if self._pruned:
                self._preprocessor.stored_lookups = dict(self._pruned)
            yield
        finally:
            for name in self._tables:
                layers[name].stored_rows = None
            if self._preprocessor is not None:
                self._preprocessor.stored_lookups = None


def _the_layer(model: Any, cls: type) -> Any:
    found = [layer for layer in getattr(model, "submodules", ()) if isinstance(layer, cls)]
    return found[0] if len(found) == 1 else None


__all__ = ["StoredTables", "TABLE_DTYPES", "float16_bits", "float32_from_float16_bits", "quantize_int8"]
