"""Pre-computed vectors (e.g. a sentence embedding per example): the spec, its check and its optional projection."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from tfmtl._compat import tf
from tfmtl.features.kinds import FeatureEncoding, FeatureKind, FeatureSpec, _positive, check_name, checked_numbers, projection


@dataclasses.dataclass(frozen=True)
class DenseVector(FeatureSpec):
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

    def preprocess(self, features: Mapping[str, tf.Tensor], lookups: Mapping[str, Any]) -> dict[str, tf.Tensor]:
        """``{name: [B, dim] float32}``, checked for NaN/Inf."""
        return {self.name: checked_numbers(features[self.name], self.name)}

    def encoder(self, tables: Mapping[str, Any]) -> "DenseVectorEncoder":
        return DenseVectorEncoder(self)


class DenseVectorEncoder(FeatureEncoding):
    """``[B, dim]`` -> ``[B, output_dim]``: the vector, or its learned projection."""

    def __init__(self, spec: DenseVector, **kwargs: Any) -> None:
        super().__init__(spec, **kwargs)
        self.projection = projection(spec)

    def call(self, features: Mapping[str, tf.Tensor], encoded: Mapping[str, tf.Tensor]) -> tf.Tensor:
        vector = tf.cast(features[self.spec.name], tf.float32)  # [B, dim]
        return self.projection(vector) if self.projection is not None else vector


__all__ = ["DenseVector", "DenseVectorEncoder"]
