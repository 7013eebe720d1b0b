"""Ids looked up in a frozen table of pre-computed vectors (e.g. item id -> LLM title embedding).

The spec, its table (:class:`VectorTable`), its lookup and its frozen embedding.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.features.categorical import normalize_id, vocabulary_lookup
from tfmtl.features.kinds import (
    EmbeddingTable,
    FeatureKind,
    IdType,
    SharedLayer,
    TableEncoding,
    _OneValuePerExample,
    _positive,
    check_name,
    projection,
)


class VectorTable:
    """An immutable ``{id: vector}`` table: ids (a tuple) and a read-only ``[n, dim]`` float32 matrix.

    Example:

    >>> import tfmtl
    >>> table = tfmtl.features.pretrained_table.VectorTable({"a": [1.0, 0.0], "b": [0.0, 1.0]})
    >>> table.ids, table.dim
    (('a', 'b'), 2)
    """

    def __init__(self, vectors: Mapping[Any, Any]) -> None:
        if not isinstance(vectors, Mapping) or not vectors:
            raise ValueError("a pretrained table needs a non-empty {id: vector} mapping")
        self.ids = tuple(vectors)
        rows = [np.asarray(vectors[i], dtype=np.float32) for i in self.ids]
        lengths = sorted({row.shape for row in rows})
        if len(lengths) != 1 or len(lengths[0]) != 1 or not all(np.all(np.isfinite(row)) for row in rows):
            raise ValueError(f"pretrained vectors must be finite 1-D vectors of equal length, got shapes {lengths}")
        matrix = np.stack(rows)
        matrix.setflags(write=False)
        self.matrix = matrix

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VectorTable) and self.ids == other.ids and np.array_equal(self.matrix, other.matrix)

    def __hash__(self) -> int:
        return hash((self.ids, self.matrix.shape))

    def __repr__(self) -> str:
        return f"VectorTable({len(self)} ids x {self.dim})"

    def __deepcopy__(self, memo: Any) -> "VectorTable":
        return self  # immutable


@dataclasses.dataclass(frozen=True)
class PretrainedTable(_OneValuePerExample):
    """Ids looked up in a frozen table of pre-computed vectors (e.g. item id -> LLM title embedding).

    The table is a non-trainable variable of the model, so an export holds it and a
    server only needs the id. Ids missing from the table get a zero vector.

    Serving contract: ``[batch]`` ids (string or int64), like :class:`Categorical`.

    Args:
      name: Feature name (the id input).
      vectors: ``{id: vector}``; every vector has the same length.
      id_type: ``IdType.STRING`` (default) or ``IdType.INT64``.
      projection_dim: Learn a linear projection to this size (None = use the vectors as is).

    Example:

    >>> import tfmtl
    >>> spec = tfmtl.features.PretrainedTable("item_text", vectors={"i1": [0.5, 1.0], "i2": [0.0, 2.0]})
    >>> spec.output_dim, spec.vectors.ids
    (2, ('i1', 'i2'))
    """

    name: str
    vectors: VectorTable
    id_type: IdType = IdType.STRING
    projection_dim: int | None = None

    kind = FeatureKind.PRETRAINED_TABLE
    is_adapted = True

    def __post_init__(self) -> None:
        check_name(self.name, "feature")
        if not isinstance(self.id_type, IdType):
            object.__setattr__(self, "id_type", IdType(self.id_type))
        if self.projection_dim is not None:
            _positive(self.name, "projection_dim", self.projection_dim)
        vectors = self.vectors
        if not isinstance(vectors, VectorTable):
            if isinstance(vectors, Mapping) and set(vectors) == {"ids", "matrix"}:  # from get_config
                vectors = dict(zip(vectors["ids"], vectors["matrix"]))
            try:
                vectors = VectorTable(vectors)
            except ValueError as error:
                raise ValueError(f"feature {self.name!r}: {error}") from None
        ids = tuple(normalize_id(v, self.id_type, self.name) for v in vectors.ids)
        if ids != vectors.ids:
            vectors = VectorTable(dict(zip(ids, vectors.matrix)))
        object.__setattr__(self, "vectors", vectors)

    @property
    def dtype(self) -> tf.DType:
        return self.id_type.tf_dtype

    @property
    def output_dim(self) -> int:
        return self.projection_dim or self.vectors.dim

    def lookup(self) -> SharedLayer:
        return self.name, lambda: vocabulary_lookup(self.id_type, self.vectors.ids, 1, f"{self.name}_lookup")

    def preprocess(self, features: Mapping[str, tf.Tensor], lookups: Mapping[str, Any]) -> dict[str, tf.Tensor]:
        """``{name: [B] int64}``: the id's row of the frozen table (0: unknown id)."""
        return {self.name: tf.cast(lookups[self.name](features[self.name]), tf.int64)}

    def embedding_table(self) -> SharedLayer:
        return self.name, self._frozen_table

    def _frozen_table(self) -> Any:
        frozen = EmbeddingTable(len(self.vectors) + 1, self.vectors.dim, trainable=False, name=f"{self.name}_embedding")
        frozen.build((None,))
        frozen.set_weights([np.concatenate([np.zeros([1, self.vectors.dim], np.float32), self.vectors.matrix])])
        return frozen

    def encoder(self, tables: Mapping[str, Any]) -> "PretrainedTableEncoder":
        return PretrainedTableEncoder(self, tables[self.name])


class PretrainedTableEncoder(TableEncoding):
    """``[B]`` rows -> ``[B, output_dim]``: the frozen vectors (row 0, unknown ids: zeros), optionally projected."""

    def __init__(self, spec: PretrainedTable, table: Any, **kwargs: Any) -> None:
        super().__init__(spec, table, **kwargs)
        self.projection = projection(spec)

    def call(self, features: Mapping[str, tf.Tensor], encoded: Mapping[str, tf.Tensor]) -> tf.Tensor:
        vectors = self.table(features[self.spec.name])  # [B, dim]
        return self.projection(vectors) if self.projection is not None else vectors


__all__ = ["PretrainedTable", "PretrainedTableEncoder", "VectorTable"]
