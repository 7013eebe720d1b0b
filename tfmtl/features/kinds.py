"""What every feature kind provides, id types, pooling choices, padding ids and the checks specs share.

Each feature kind lives in one module of :mod:`tfmtl.features` that holds all of it:

=====================  ====================================================================
kind                   module
=====================  ====================================================================
``Categorical``        :mod:`tfmtl.features.categorical` (also the vocabulary lookups and
                       the shared-table rules of every id kind)
``Sequence``           :mod:`tfmtl.features.sequence` (also the masked pooling layers)
``MultiValued``        :mod:`tfmtl.features.multi_valued`
``Numeric``            :mod:`tfmtl.features.numeric` (also the periodic embedding)
``Bucketized``         :mod:`tfmtl.features.bucketized`
``DenseVector``        :mod:`tfmtl.features.dense_vector`
``PretrainedTable``    :mod:`tfmtl.features.pretrained_table`
=====================  ====================================================================

A kind is a frozen dataclass subclassing :class:`FeatureSpec`; the schema, the adapt
pass, :class:`~tfmtl.features.FeaturePreprocessor` and
:class:`~tfmtl.features.FeatureEncoder` only call the methods listed there, so adding a
kind means one module (and its test), a :class:`FeatureKind` member and an import in
:mod:`tfmtl.features`.
"""

from __future__ import annotations

import enum
import re
from typing import Any, Callable, ClassVar, Mapping, Protocol

import numpy as np

from tfmtl._compat import keras, tf


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


def count(value: Any, what: str, minimum: int = 0) -> int:
    """``value`` as an int ``>= minimum`` (never a bool), else a ValueError naming ``what``.

    Example:

    >>> from tfmtl.features.kinds import count
    >>> count(3, "num_experts", minimum=1)
    3
    >>> count(True, "num_experts", minimum=1)
    Traceback (most recent call last):
    ValueError: num_experts must be an int >= 1, got True
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {value!r}")
    return int(value)


def int_tuple(value: Any, what: str, *, non_empty: bool = False) -> tuple[int, ...]:
    """``value`` (an int, or a sequence of ints >= 1; never a string) as a tuple, else an error naming ``what``.

    Example:

    >>> from tfmtl.features.kinds import int_tuple
    >>> int_tuple([64, 32], "tower_units"), int_tuple(16, "tower_units")
    ((64, 32), (16,))
    >>> int_tuple("16", "task 'click': tower_units")
    Traceback (most recent call last):
    TypeError: task 'click': tower_units must be an int or a sequence of ints, e.g. (64, 32); got '16'
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        value = (value,)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{what} must be an int or a sequence of ints, e.g. (64, 32); got {value!r}")
    items = tuple(value)
    wrong = next((v for v in items if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer))), None)
    if wrong is not None:
        raise TypeError(f"{what} must hold ints; got {wrong!r} ({type(wrong).__name__}) in {value!r}")
    if any(v < 1 for v in items):
        raise ValueError(f"{what} must be >= 1; got {items}")
    if non_empty and not items:
        raise ValueError(f"{what} must be a non-empty list of positive ints, got {value!r}")
    return tuple(int(v) for v in items)


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


def float_values(feature: str, values: np.ndarray, clip: tuple[float, float] | None, log: bool) -> np.ndarray:
    """Adapt time: a numeric feature's values as transformed float64, or an error naming it."""
    if values.dtype.kind not in "biuf":
        raise TypeError(f"feature {feature!r} is numeric and expects float values, got {values.dtype}")
    values = values.astype(np.float64).reshape(-1)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"feature {feature!r} contains NaN or infinite values")
    return transform_values(values, clip, log)


def checked_numbers(value: tf.Tensor, name: str) -> tf.Tensor:
    """Preprocessing: ``value`` as float32, or an InvalidArgumentError naming the input if it holds NaN/Inf."""
    return tf.debugging.check_numerics(tf.cast(value, tf.float32), f"numeric feature '{name}' contains NaN or Inf")


class Accumulator(Protocol):
    """Adapt-time statistics of a group of features (see :meth:`FeatureSpec.accumulator`)."""

    names: list[str]

    def update(self, values: np.ndarray, name: str) -> None:
        """Add one batch of feature ``name``'s raw values."""

    def result(self) -> dict[str, Any]:
        """The adapted spec of every feature of the group, keyed by name."""


#: A layer built once per key and shared by the features that name the key (``(key, build)``).
SharedLayer = tuple[str, Callable[[], Any]]


class FeatureSpec:
    """The interface of a feature kind: what the schema, adapt, preprocessing and encoding call.

    Schema:
      * ``kind``, ``name``, :meth:`input_specs`, ``is_adapted``;
      * ``padded``: conforming pads or truncates its ``[B, L]`` inputs to ``L``;
      * :meth:`check_in`: checks against the other features of a schema.

    Adapt (one pass over the data, :meth:`~tfmtl.features.Schema.adapt`):
      * :attr:`adapt_group`: features with the same group learn one statistic together
        (the members of an embedding table learn one vocabulary);
      * :meth:`accumulator`: the group's :class:`Accumulator`.

    Preprocessing (:class:`~tfmtl.features.FeaturePreprocessor`, no trainable weights,
    may hold hash tables and string ops):
      * :meth:`lookup`: a lookup layer shared by key (a vocabulary table), or None;
      * :meth:`preprocess`: conformed raw inputs to the trainable stage's ids/values.

    Encoding (:class:`~tfmtl.features.FeatureEncoder`, numeric ops only, compiles with XLA):
      * :meth:`embedding_table`: an ``Embedding`` shared by key, or None;
      * :meth:`encoder`: the layer from preprocessed inputs to ``[B, output_dim]``;
      * ``output_dim``; ``is_scalar`` (passed on as one standardized number: those come
        last in the encoder's output and form one vector for ``Dot``); :attr:`depends_on`
        (features whose encodings the encoder reads).
    """

    name: str
    kind: ClassVar[FeatureKind]
    padded: ClassVar[bool] = False
    is_scalar: ClassVar[bool] = False

    def input_specs(self) -> dict[str, tf.TensorSpec]:  # pragma: no cover - every kind defines it
        raise NotImplementedError

    def check_in(self, features: Mapping[str, "FeatureSpec"]) -> None:
        """Raise a ValueError naming this feature if it does not fit with ``features`` (name to spec)."""

    @property
    def adapt_group(self) -> str:
        return self.name

    @classmethod
    def accumulator(cls, members: list[Any]) -> Accumulator:
        raise ValueError(f"feature {members[0].name!r} has nothing to adapt")  # pragma: no cover

    def lookup(self) -> SharedLayer | None:
        return None

    def preprocess(self, features: Mapping[str, tf.Tensor], lookups: Mapping[str, Any]) -> dict[str, tf.Tensor]:
        raise NotImplementedError  # pragma: no cover

    def embedding_table(self) -> SharedLayer | None:
        return None

    @property
    def depends_on(self) -> tuple[str, ...]:
        return ()

    def encoder(self, tables: Mapping[str, Any]) -> Any:
        raise NotImplementedError  # pragma: no cover


class FeatureEncoding(keras.layers.Layer):
    """Base of the per-kind encoders: ``call(features, encoded)`` -> ``[B, output_dim]``.

    ``features`` holds every preprocessed input of the schema, ``encoded`` the outputs
    of the features in :attr:`FeatureSpec.depends_on`.
    """

    def __init__(self, spec: FeatureSpec, **kwargs: Any) -> None:
        kwargs.setdefault("name", f"{spec.name}_encoder")
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.spec = spec


@keras.utils.register_keras_serializable(package="tfmtl")
class EmbeddingTable(keras.layers.Embedding):
    """A feature's embedding table: a Keras ``Embedding`` whose rows an export may store smaller.

    Training reads and updates :attr:`embeddings` as Keras does. While
    :attr:`stored_rows` is set (by :func:`tfmtl.serving.export` with ``table_dtype`` or
    ``keep_ids``, for the time it traces the signatures), a lookup reads that function
    of the ``[...]`` rows instead, e.g. int8 rows times their scale.

    Example:

    >>> import numpy as np, tensorflow as tf, tfmtl
    >>> table = tfmtl.features.EmbeddingTable(3, 2)
    >>> table.stored_rows = lambda rows: tf.ones([*rows.shape, 2])
    >>> table(np.array([0, 2])).numpy().tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """

    #: While set, what a lookup returns for ``[...]`` int64 rows: ``[..., output_dim]`` floats. A class
    #: attribute, so that setting it on a layer adds nothing to what Keras tracks and saves.
    stored_rows: Callable[[tf.Tensor], tf.Tensor] | None = None

    #: Weight of the L2 penalty on the distinct rows a training batch looks up (:func:`distinct_squares`;
    #: set by the model's :class:`~tfmtl.features.FeatureEncoder` from ``Regularization.embedding_l2``).
    l2: float = 0.0

    def call(self, inputs: tf.Tensor, valid: tf.Tensor | None = None, training: Any = None) -> tf.Tensor:
        """Rows ``[...]`` -> ``[..., output_dim]``; ``valid`` (``[...]`` bool) marks the lookups the L2 counts."""
        if self.stored_rows is not None:
            return tf.cast(self.stored_rows(tf.cast(inputs, tf.int64)), self.compute_dtype)
        rows = super().call(inputs)
        if self.l2 and training and self.trainable:
            self.add_loss(self.l2 * distinct_squares(inputs, rows, valid))
        return rows


def distinct_squares(ids: tf.Tensor, rows: tf.Tensor, valid: tf.Tensor | None = None) -> tf.Tensor:
    """``sum ||row||^2`` over the distinct table rows a batch looks up (each row once, however often it is looked up).

    ``ids`` ``[...]`` int, ``rows`` ``[..., D]`` their embeddings, ``valid`` ``[...]`` bool (padding: False).
    Sort-based, so it also compiles with XLA. As DIN's mini-batch aware regularization
    (Zhou et al., KDD 2018, Eq. 7 without its 1/n_j), an id seen in few batches is held back
    as often as it is trained, and an id the batch does not look up gets no gradient.

    Example:

    >>> import numpy as np, tfmtl
    >>> ids = np.array([3, 5, 3]); rows = np.array([[1.0, 1.0], [2.0, 0.0], [1.0, 1.0]], np.float32)
    >>> float(tfmtl.features.kinds.distinct_squares(ids, rows))  # row 3 once (2) + row 5 (4)
    6.0
    """
    flat_ids = tf.reshape(tf.cast(ids, tf.int64), [-1])  # [N]
    squares = tf.reduce_sum(tf.square(tf.reshape(tf.cast(rows, tf.float32), [tf.size(flat_ids), -1])), axis=-1)  # [N]
    if valid is not None:
        flat_ids = tf.where(tf.reshape(valid, [-1]), flat_ids, -1)  # padding: one shared id, dropped below
    order = tf.argsort(flat_ids, stable=True)
    sorted_ids = tf.gather(flat_ids, order)  # [N]
    first = tf.concat([tf.ones([1], tf.bool), sorted_ids[1:] != sorted_ids[:-1]], axis=0) & (sorted_ids >= 0)
    return tf.reduce_sum(tf.where(first, tf.gather(squares, order), 0.0))


class TableEncoding(FeatureEncoding):
    """A per-kind encoder that reads one (possibly shared) embedding table: by default, the feature's rows."""

    def __init__(self, spec: FeatureSpec, table: Any, **kwargs: Any) -> None:
        super().__init__(spec, **kwargs)
        self.table = table

    def call(self, features: Mapping[str, tf.Tensor], encoded: Mapping[str, tf.Tensor]) -> tf.Tensor:
        return self.table(features[self.spec.name])  # [B, D]


def projection(spec: Any) -> Any:
    """The optional learned ``Dense(projection_dim)`` of a vector kind, or None."""
    if not getattr(spec, "projection_dim", None):
        return None
    return keras.layers.Dense(spec.projection_dim, name=f"{spec.name}_projection")


class _OneValuePerExample(FeatureSpec):
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
