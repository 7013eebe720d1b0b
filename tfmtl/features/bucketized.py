"""Bucketized numbers: the spec, its boundaries (quantiles learned by adapt), its bucketing and bucket embeddings."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Mapping

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.features.kinds import (
    EmbeddingTable,
    FeatureKind,
    SharedLayer,
    TableEncoding,
    _clip_bounds,
    _FloatPerExample,
    _positive,
    check_name,
    checked_numbers,
    float_values,
    transform_values,
)

#: Values kept (a uniform sample) to learn a bucketized feature's quantiles.
QUANTILE_SAMPLE_SIZE = 100_000


@dataclasses.dataclass(frozen=True)
class Bucketized(_FloatPerExample):
    """A numeric feature cut into buckets, then embedded.

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

    @property
    def output_dim(self) -> int:
        return self.embedding_dim

    @classmethod
    def accumulator(cls, members: list[Any]) -> "QuantileSampler":
        return QuantileSampler(members[0])

    def preprocess(self, features: Mapping[str, tf.Tensor], lookups: Mapping[str, Any]) -> dict[str, tf.Tensor]:
        """``{name: [B] int64}``: the bucket of the clipped, log-transformed value."""
        value = transform_values(checked_numbers(features[self.name], self.name), self.clip, self.log)
        return {self.name: tf.cast(tf.raw_ops.Bucketize(input=value, boundaries=list(self.boundaries)), tf.int64)}

    def embedding_table(self) -> SharedLayer:
        return self.name, lambda: EmbeddingTable(self.table_size, self.embedding_dim, name=f"{self.name}_embedding")

    def encoder(self, tables: Mapping[str, Any]) -> "BucketizedEncoder":
        return BucketizedEncoder(self, tables[self.name])


class BucketizedEncoder(TableEncoding):
    """``[B]`` buckets -> ``[B, embedding_dim]``: each bucket's embedding."""


class QuantileSampler:
    """A uniform sample (without replacement) of at most QUANTILE_SAMPLE_SIZE values, then quantiles."""

    def __init__(self, spec: Bucketized) -> None:
        self.spec = spec
        self.names = [spec.name]
        self.rng = np.random.default_rng(0)
        self.sample = np.empty([0])
        self.keys = np.empty([0])

    def update(self, values: np.ndarray, name: str) -> None:
        values = float_values(self.spec.name, values, self.spec.clip, self.spec.log)
        # Keep the values with the smallest random keys: a uniform sample of the stream.
        self.sample = np.concatenate([self.sample, values])
        self.keys = np.concatenate([self.keys, self.rng.random(values.size)])
        if self.sample.size > QUANTILE_SAMPLE_SIZE:
            keep = np.argpartition(self.keys, QUANTILE_SAMPLE_SIZE)[:QUANTILE_SAMPLE_SIZE]
            self.sample, self.keys = self.sample[keep], self.keys[keep]

    def result(self) -> dict[str, Any]:
        if self.sample.size == 0:
            raise ValueError(f"feature {self.spec.name!r}: no values to adapt on")
        levels = np.linspace(0.0, 1.0, self.spec.num_buckets + 1)[1:-1]
        boundaries = np.unique(np.quantile(self.sample, levels)) if levels.size else np.empty([0])
        boundaries = boundaries[boundaries > self.sample.min()]  # no empty first bucket
        if boundaries.size < levels.size:
            warnings.warn(
                f"feature {self.spec.name!r}: repeated values leave {boundaries.size + 1} distinct buckets "
                f"of the {self.spec.num_buckets} asked for",
                stacklevel=4,
            )
        if boundaries.size == 0:
            boundaries = np.array([float(np.max(self.sample))])  # constant: its value opens the top bucket
        return {self.spec.name: dataclasses.replace(self.spec, boundaries=tuple(float(b) for b in boundaries))}


__all__ = ["Bucketized", "BucketizedEncoder", "QuantileSampler"]
