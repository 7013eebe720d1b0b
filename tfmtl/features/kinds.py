"""Feature kinds, id types, pooling choices, padding ids and the checks every feature spec shares."""

from __future__ import annotations

import enum
import re
from typing import Any

import numpy as np

from tfmtl._compat import tf


_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Padding id of string sequence and multi-valued features.
PAD_STRING = ""
#: Padding id of int64 sequence and multi-valued features.
PAD_INT64 = -1


class FeatureKind(enum.Enum):
    """What a feature holds."""

    CATEGORICAL = "categorical"
    NUMERIC = "numeric"
    BUCKETIZED = "bucketized"
    SEQUENCE = "sequence"
    MULTI_VALUED = "multi_valued"
    DENSE_VECTOR = "dense_vector"
    PRETRAINED_TABLE = "pretrained_table"


class IdType(enum.Enum):
    """The raw type of a categorical feature's ids."""

    STRING = "string"
    INT64 = "int64"

    @property
    def tf_dtype(self) -> tf.DType:
        return tf.string if self is IdType.STRING else tf.int64

    @property
    def pad(self) -> Any:
        """The padding id of sequence and multi-valued features with these ids."""
        return PAD_STRING if self is IdType.STRING else PAD_INT64


class Pooling(enum.Enum):
    """How a :class:`Sequence` or :class:`MultiValued` feature is reduced to one vector.

    ``MEAN``, ``SUM`` and ``MAX`` run over the non-padded positions; ``ATTENTION`` is
    DIN-style target attention, the ``query`` feature's embedding attending over the ids.
    An all-padding row pools to zeros.
    """

    MEAN = "mean"
    SUM = "sum"
    MAX = "max"
    ATTENTION = "attention"


def check_name(name: str, what: str) -> str:
    """Return ``name`` if it is a valid feature/task name, else raise ValueError."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ValueError(
            f"invalid {what} name {name!r}: use letters, digits and underscores, "
            "starting with a letter or underscore (it becomes a Keras layer name "
            "and a TF Serving input/output key)"
        )
    return name


def _positive(feature: str, what: str, value: Any) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"feature {feature!r}: {what} must be an int >= 1, got {value!r}")


def _clip_bounds(feature: str, clip: Any) -> tuple[float, float] | None:
    if clip is None:
        return None
    low, high = (float(v) for v in clip)
    if not low < high:
        raise ValueError(f"feature {feature!r}: clip must be (low, high) with low < high, got {clip!r}")
    return (low, high)


def transform_values(values: Any, clip: tuple[float, float] | None, log: bool) -> Any:
    """Clip to ``clip`` then, if ``log``, apply ``sign(x) * log1p(|x|)``: numpy or tf values.

    The same function runs on numpy arrays at adapt time and on tensors in the model.

    Example:

    >>> import numpy as np, tfmtl
    >>> tfmtl.features.kinds.transform_values(np.array([-1.0, 0.0, 1e6]), (0.0, 99.0), True).round(3).tolist()
    [0.0, 0.0, 4.605]
    """
    xp = np if isinstance(values, np.ndarray) else tf.math
    if clip is not None:
        values = np.clip(values, *clip) if xp is np else tf.clip_by_value(values, *clip)
    if log:
        values = xp.sign(values) * xp.log1p(xp.abs(values))
    return values


class _OneValuePerExample:
    """Kinds whose raw input is one value per example: ``{name: [batch] dtype}``."""

    name: str
    dtype: Any

    def input_specs(self) -> dict[str, tf.TensorSpec]:
        """This feature's raw input: ``{name: [batch]}`` of its dtype."""
        return {self.name: tf.TensorSpec([None], self.dtype, name=self.name)}


class _FloatPerExample(_OneValuePerExample):
    """Kinds whose raw input is one float32 per example."""

    @property
    def dtype(self) -> tf.DType:
        return tf.float32
