"""Value features: numbers (standardized, periodic-embedded or bucketized), dense vectors, frozen tables."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from tfmtl._compat import tf
from tfmtl.features.ids import _normalize_id
from tfmtl.features.kinds import (
    FeatureKind,
    IdType,
    _clip_bounds,
    _FloatPerExample,
    _OneValuePerExample,
    _positive,
    check_name,
)
from tfmtl.features.periodic import PeriodicEmbedding


@dataclasses.dataclass(frozen=True)
class Numeric(_FloatPerExample):
    """A numeric feature, standardized as ``(t(x) - mean) / sqrt(variance)``.

    ``t`` clips to ``clip`` and then, with ``log=True``, applies
    ``sign(x) * log1p(|x|)`` (for heavy-tailed values); ``mean`` and ``variance``
    are those of ``t(x)``. NaN or infinite values are rejected with an error naming
    the feature, in training and at serving time.

    With ``embedding_dim``, the standardized value is not passed on as one number
    but embedded by a :class:`~tfmtl.features.PeriodicEmbedding` (Gorishniy et al.,
    2022): ``frequencies`` trainable sines and cosines, then a ReLU ``Dense`` of
    ``embedding_dim``. The network can then react to a threshold or a band of the
    value, as a tree split does. On census-income it raised the mean income test
    AUC of each of five architectures by about 0.0035 (``benchmarks/README.md``).
    Serving still takes the raw ``[batch]`` float32.

    Args:
      name: Feature name.
      mean: Mean of the transformed values. ``None`` means "learn it with :meth:`Schema.adapt`".
      variance: Variance of the transformed values (learned together with ``mean``).
      log: Log-transform (after clipping).
      clip: ``(low, high)`` bounds applied first, or None.
      embedding_dim: Size of the periodic embedding; None passes the standardized value itself.
      frequencies: Number of frequencies of the periodic embedding.
      frequency_scale: Standard deviation of the initial frequencies, in cycles per
        standard deviation of the value (larger: sharper thresholds can be learned).

    Example:

    >>> import tfmtl
    >>> tfmtl.features.Numeric("price", mean=10.0, variance=4.0).is_adapted
    True
    >>> tfmtl.features.Numeric("capital_gains", log=True, embedding_dim=16).output_dim
    16
    """

    name: str
    mean: float | None = None
    variance: float | None = None
    log: bool = False
    clip: tuple[float, float] | None = None
    embedding_dim: int | None = None
    frequencies: int = PeriodicEmbedding.FREQUENCIES
    frequency_scale: float = PeriodicEmbedding.SCALE

    kind = FeatureKind.NUMERIC

    def __post_init__(self) -> None:
        check_name(self.name, "feature")
        object.__setattr__(self, "clip", _clip_bounds(self.name, self.clip))
        if (self.mean is None) != (self.variance is None):
            raise ValueError(f"feature {self.name!r}: give both mean and variance, or neither")
        if self.variance is not None and not self.variance >= 0:
            raise ValueError(f"feature {self.name!r}: variance must be >= 0, got {self.variance}")
        if self.embedding_dim is None:
            if (self.frequencies, self.frequency_scale) != (PeriodicEmbedding.FREQUENCIES, PeriodicEmbedding.SCALE):
                raise ValueError(
                    f"feature {self.name!r}: frequencies and frequency_scale apply with embedding_dim, which is None"
                )
        else:
            _positive(self.name, "embedding_dim", self.embedding_dim)
        _positive(self.name, "frequencies", self.frequencies)
        if not self.frequency_scale > 0:
            raise ValueError(f"feature {self.name!r}: frequency_scale must be > 0, got {self.frequency_scale}")

    @property
    def is_adapted(self) -> bool:
        return self.mean is not None

    @property
    def output_dim(self) -> int:
        """Width of this feature in the encoder's output: 1, or ``embedding_dim``."""
        return self.embedding_dim or 1


@dataclasses.dataclass(frozen=True)
class Bucketized(_FloatPerExample):
    """A numeric feature cut into buckets (Keras ``Discretization``), then embedded.

    Boundaries are given, or learned by :meth:`Schema.adapt` as the
    ``num_buckets``-quantiles of the (clipped, log-transformed) values, computed on a
    uniform sample of at most 100,000 values. A value ``v`` falls in bucket ``i``
    when ``boundaries[i-1] <= t(v) < boundaries[i]``, ``t`` as in :class:`Numeric`.

    Serving contract: ``[batch]`` float32, like :class:`Numeric`.

    Args:
      name: Feature name.
      embedding_dim: Size of each bucket's embedding.
      boundaries: Increasing bucket boundaries, or None to learn them.
      num_buckets: Buckets to learn (ignored when ``boundaries`` are given).
      log: Log-transform (``sign(x) log1p(|x|)``) before bucketing.
      clip: ``(low, high)`` bounds applied first, or None.

    Example:

    >>> import numpy as np, tfmtl
    >>> spec = tfmtl.features.Bucketized("price", num_buckets=4, log=True)
    >>> schema = tfmtl.Schema([spec]).adapt({"price": np.arange(1.0, 101.0)})
    >>> len(schema["price"].boundaries), schema["price"].table_size
    (3, 4)
    """

    name: str
    embedding_dim: int = 8
    boundaries: tuple[float, ...] | None = None
    num_buckets: int = 10
    log: bool = False
    clip: tuple[float, float] | None = None

    kind = FeatureKind.BUCKETIZED

    def __post_init__(self) -> None:
        check_name(self.name, "feature")
        object.__setattr__(self, "clip", _clip_bounds(self.name, self.clip))
        _positive(self.name, "embedding_dim", self.embedding_dim)
        _positive(self.name, "num_buckets", self.num_buckets)
        if self.boundaries is not None:
            bounds = tuple(float(b) for b in self.boundaries)
            if not bounds or any(not b < c for b, c in zip(bounds, bounds[1:])) or not np.all(np.isfinite(bounds)):
                raise ValueError(f"feature {self.name!r}: boundaries must be finite and strictly increasing, got {bounds}")
            object.__setattr__(self, "boundaries", bounds)

    @property
    def is_adapted(self) -> bool:
        return self.boundaries is not None

    @property
    def table_size(self) -> int:
        """Buckets: one more than the boundaries."""
        if self.boundaries is None:
            raise ValueError(f"feature {self.name!r} has no boundaries yet: call schema.adapt(data) first")
        return len(self.boundaries) + 1


@dataclasses.dataclass(frozen=True)
class DenseVector:
    """A pre-computed embedding (e.g. a 384-dim sentence embedding), optionally projected.

    Serving contract: ``[batch, dim]`` float32; NaN/Inf are rejected naming the feature.

    Args:
      name: Feature name.
      dim: Length of the vector.
      projection_dim: Learn a linear projection to this size (None = use as is).

    Example:

    >>> import tfmtl
    >>> tfmtl.features.DenseVector("title_embedding", dim=384, projection_dim=16).output_dim
    16
    """

    name: str
    dim: int
    projection_dim: int | None = None

    kind = FeatureKind.DENSE_VECTOR
    is_adapted = True

    def __post_init__(self) -> None:
        check_name(self.name, "feature")
        _positive(self.name, "dim", self.dim)
        if self.projection_dim is not None:
            _positive(self.name, "projection_dim", self.projection_dim)

    @property
    def dtype(self) -> tf.DType:
        return tf.float32

    @property
    def output_dim(self) -> int:
        return self.projection_dim or self.dim

    def input_specs(self) -> dict[str, tf.TensorSpec]:
        """``{name: [batch, dim] float32}``."""
        return {self.name: tf.TensorSpec([None, self.dim], tf.float32, name=self.name)}


class VectorTable:
    """An immutable ``{id: vector}`` table: ids (a tuple) and a read-only ``[n, dim]`` float32 matrix.

    Example:

    >>> import tfmtl
    >>> table = tfmtl.features.values.VectorTable({"a": [1.0, 0.0], "b": [0.0, 1.0]})
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
        ids = tuple(_normalize_id(v, self.id_type, self.name) for v in vectors.ids)
        if ids != vectors.ids:
            vectors = VectorTable(dict(zip(ids, vectors.matrix)))
        object.__setattr__(self, "vectors", vectors)

    @property
    def dtype(self) -> tf.DType:
        return self.id_type.tf_dtype

    @property
    def output_dim(self) -> int:
        return self.projection_dim or self.vectors.dim
