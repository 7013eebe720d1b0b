"""Feature interactions on the shared input representation, from TFRS: DCN-v2 cross and DLRM dot.

An architecture takes ``interaction=Cross(...)`` or ``interaction=Dot(...)``; the
option is applied to the :class:`~tfmtl.features.FeatureEncoder`'s ``[B, D]`` output
before the architecture's body.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence, Union

from tfmtl._compat import keras, tf, tfrs
from tfmtl.features.encoder import FeatureEncoder


@dataclasses.dataclass(frozen=True)
class Cross:
    """DCN-v2 cross layers: ``x_{l+1} = x_0 * (W x_l + b) + x_l`` (``tfrs.layers.dcn.Cross``).

    Args:
      num_layers: Cross layers (>= 1).
      projection_dim: Low-rank ``W = U V`` with this inner size (None = full rank).

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(4,),
    ...                                    interaction=tfmtl.layers.Cross(num_layers=2, projection_dim=1))
    >>> [layer.name for layer in model.layers if layer.name.startswith("cross")]
    ['cross_0', 'cross_1']
    """

    num_layers: int = 1
    projection_dim: int | None = None

    def __post_init__(self) -> None:
        if self.num_layers < 1:
            raise ValueError(f"Cross needs num_layers >= 1, got {self.num_layers}")

    def __call__(self, shared: tf.Tensor, encoder: FeatureEncoder) -> tf.Tensor:
        x0 = shared  # [B, D]
        for index in range(self.num_layers):
            shared = tfrs.layers.dcn.Cross(projection_dim=self.projection_dim, name=f"cross_{index}")(x0, shared)
        return shared  # [B, D]


@dataclasses.dataclass(frozen=True)
class Dot:
    """DLRM-style pairwise dot products between feature vectors, appended to the representation.

    The encoder's output is cut back into one slice per feature (all numeric
    features together as one slice); slices whose width is not ``dim`` get a
    linear projection to ``dim``; ``tfrs.layers.feature_interaction.DotInteraction``
    takes the dot product of every pair; the result is ``[shared, dots]``.

    Args:
      dim: Common size of the vectors (None: every slice must already share one width).
      self_interaction: Also each vector's dot product with itself.

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Categorical("a", embedding_dim=4, vocabulary=("x",)),
    ...                        tfmtl.Categorical("b", embedding_dim=4, vocabulary=("y",)),
    ...                        tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(4,),
    ...                                    interaction=tfmtl.layers.Dot(dim=4))
    >>> model.get_layer("dot_interaction").output_shape  # 9 encoded values + 3 pairs
    (None, 12)
    """

    dim: int | None = None
    self_interaction: bool = False

    def __call__(self, shared: tf.Tensor, encoder: FeatureEncoder) -> tf.Tensor:
        scalars = encoder.scalar_features
        widths = [width for name, width in encoder.output_widths() if name not in scalars]
        widths += [len(scalars)] if scalars else []  # the plain numeric features are the last values, one vector
        layer = FeatureDotInteraction(widths, self.dim, self.self_interaction, name="dot_interaction")
        return layer(shared)  # [B, D + pairs]


Interaction = Union[Cross, Dot]


@keras.utils.register_keras_serializable(package="tfmtl")
class FeatureDotInteraction(keras.layers.Layer):
    """Cut ``[B, D]`` into slices of ``widths``, project them to ``dim``, append their pairwise dot products.

    Args:
      widths: Width of each slice, in order; they sum to ``D``.
      dim: Size the slices are projected to (slices already that wide are used as
        is); None: all widths must be equal.
      self_interaction: Include each slice's dot product with itself.

    Call args:
      inputs: ``[B, D]`` tensor.

    Returns:
      ``[B, D + P]`` with ``P = n (n - 1) / 2`` pairs (``n (n + 1) / 2`` with self-interaction).

    Example:

    >>> import numpy as np, tfmtl
    >>> layer = tfmtl.layers.FeatureDotInteraction([2, 2])
    >>> layer(np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)).numpy().tolist()  # 1*3 + 2*4
    [[1.0, 2.0, 3.0, 4.0, 11.0]]
    """

    def __init__(self, widths: Sequence[int], dim: int | None = None, self_interaction: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.widths = tuple(int(w) for w in widths)  # a tuple: Keras wraps lists
        if len(self.widths) < 2:
            raise ValueError(f"a dot interaction needs at least 2 feature vectors, got widths {list(self.widths)}")
        if dim is None and len(set(self.widths)) > 1:
            raise ValueError(
                f"feature vectors have different widths {list(self.widths)}: give Dot(dim=...) to project them to one size"
            )
        self.dim = dim
        self.self_interaction = self_interaction
        self.projections = {
            str(index): keras.layers.Dense(dim, use_bias=False, name=f"projection_{index}")
            for index, width in enumerate(self.widths)
            if dim is not None and width != dim
        }
        self.dot = tfrs.layers.feature_interaction.DotInteraction(self_interaction=self_interaction, name="dot")

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        slices = tf.split(inputs, self.widths, axis=-1)  # n x [B, width]
        vectors = [self.projections[str(i)](x) if str(i) in self.projections else x for i, x in enumerate(slices)]
        return tf.concat([inputs, self.dot(vectors)], axis=-1)  # [B, D + P]

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(), "widths": list(self.widths), "dim": self.dim, "self_interaction": self.self_interaction
        }
