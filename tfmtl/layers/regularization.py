"""How a model's dense layers start and are held back: initializers, regularizers, dropout, embedding L2."""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any

from tfmtl._compat import keras


def clone_initializer(initializer: Any, *key: Any) -> Any:
    """A fresh initializer object with ``initializer``'s config; a seed, if it has one, mixed with ``key``.

    A Keras initializer object hands out the same values at every call, and so do two
    objects with one seed: each weight gets its own clone, and a seeded one gets a seed
    derived from ``(seed, *key)`` (the layer's name, the weight's, an expert's index), so
    seeded sibling experts, gates and towers are reproducible and still start apart.
    Plain callables are returned as they are.

    Example:

    >>> import tfmtl
    >>> from tfmtl._compat import keras
    >>> init = keras.initializers.GlorotUniform(seed=1)
    >>> a, b = tfmtl.layers.clone_initializer(init, "experts", 0), tfmtl.layers.clone_initializer(init, "experts", 1)
    >>> a is not init, bool((a([3, 2]) != b([3, 2])).numpy().any())
    (True, True)
    """
    initializer = keras.initializers.get(initializer)
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    config = keras.initializers.serialize(initializer)
    seed = config.get("config", {}).get("seed")
    if seed is not None and key:
        config["config"]["seed"] = zlib.crc32(repr((seed, *key)).encode()) % (2**31 - 1)
    return keras.initializers.deserialize(config)


def serialize(value: Any) -> Any:
    """An initializer or regularizer (object, string or None) as a JSON-able config."""
    if value is None or isinstance(value, str):
        return value
    return keras.utils.serialize_keras_object(value)


@dataclasses.dataclass(frozen=True)
class Regularization:
    """The initializers, regularizers and dropout of an architecture's dense layers, and L2 on its embeddings.

    One object describes the whole model: :func:`tfmtl.models.build_model` hands
    it to the body (experts, gates, bottoms, fusion units) and applies it to the
    towers and to the embedding tables. Each layer gets its own clone of the
    initializers (:func:`clone_initializer`), so experts start different.

    Args:
      kernel_initializer: Initializer of every kernel (a Keras initializer or its name).
      bias_initializer: Initializer of every bias.
      kernel_regularizer: Regularizer of every kernel (e.g. ``keras.regularizers.L2(1e-5)``), or None.
      bias_regularizer: Regularizer of every bias, or None.
      dropout: Dropout rate after each hidden layer of the experts, bottoms and towers (training only).
      embedding_l2: ``embedding_l2 * sum ||row||^2`` over the distinct embedding rows each lookup
        of a training batch reads (ids and sequence items, not padding; a table two features
        share counts once per feature), added to the loss: DIN's mini-batch aware
        regularization. Only the batch's rows get its gradient, so sparse embedding updates
        (``LazyAdam``, ``RowWiseAdagrad``) stay sparse.

    Example:

    >>> import tfmtl
    >>> from tfmtl._compat import keras
    >>> reg = tfmtl.layers.Regularization(kernel_regularizer=keras.regularizers.L2(1e-5), dropout=0.1)
    >>> sorted(reg.layer_kwargs())
    ['bias_initializer', 'bias_regularizer', 'kernel_initializer', 'kernel_regularizer']
    """

    kernel_initializer: Any = "glorot_uniform"
    bias_initializer: Any = "zeros"
    kernel_regularizer: Any = None
    bias_regularizer: Any = None
    dropout: float = 0.0
    embedding_l2: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"Regularization: dropout must be in [0, 1), got {self.dropout!r}")
        if not self.embedding_l2 >= 0.0:
            raise ValueError(f"Regularization: embedding_l2 must be >= 0, got {self.embedding_l2!r}")
        for field in ("kernel_initializer", "bias_initializer"):
            keras.initializers.get(getattr(self, field))  # fails here, naming Keras's reason, not in a layer
        for field in ("kernel_regularizer", "bias_regularizer"):
            keras.regularizers.get(getattr(self, field))

    def get_config(self) -> dict[str, Any]:
        """A JSON-able description (for the ``get_config`` of layers that take one); ``from_config`` inverts it."""
        return {**dataclasses.asdict(self), **{name: serialize(getattr(self, name)) for name in KNOBS}}

    @classmethod
    def from_config(cls, config: Any) -> "Regularization":
        """A :class:`Regularization` from its config, from None (the defaults) or from itself."""
        if config is None:
            return cls()
        if isinstance(config, Regularization):
            return config
        if not isinstance(config, dict):
            raise TypeError(f"regularization must be a tfmtl.layers.Regularization, got {type(config).__name__}")
        return cls(**config)

    def mlp_kwargs(self) -> dict[str, Any]:
        """:meth:`layer_kwargs` plus ``dropout``: the arguments of :class:`~tfmtl.layers.MLP` and :class:`~tfmtl.layers.Experts`."""
        return {**self.layer_kwargs(), "dropout": self.dropout}

    def gate_kwargs(self) -> dict[str, Any]:
        """The arguments of a gate (no bias, no dropout): kernel initializer and regularizer."""
        return {"kernel_initializer": clone_initializer(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.get(self.kernel_regularizer)}

    def layer_kwargs(self, *key: Any) -> dict[str, Any]:
        """Keyword arguments for one layer: fresh initializer clones and the regularizers.

        ``key`` (for a layer that does not key its weights itself, e.g. a Keras ``Dense``: its
        parent's name and its own) mixes a seeded initializer's seed, so that sibling layers
        of one shape start apart (:func:`clone_initializer`).
        """
        values = knobs(self.kernel_initializer, self.bias_initializer, self.kernel_regularizer, self.bias_regularizer)
        return fresh(values, *key) if key else values


#: The four arguments every tfmtl layer with weights takes, as Keras's own layers name them.
KNOBS = ("kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer")


def knobs(
    kernel_initializer: Any = "glorot_uniform",
    bias_initializer: Any = "zeros",
    kernel_regularizer: Any = None,
    bias_regularizer: Any = None,
) -> dict[str, Any]:
    """The four arguments as Keras objects (initializers cloned), for a layer to keep and pass on."""
    return {
        "kernel_initializer": clone_initializer(kernel_initializer),
        "bias_initializer": clone_initializer(bias_initializer),
        "kernel_regularizer": keras.regularizers.get(kernel_regularizer),
        "bias_regularizer": keras.regularizers.get(bias_regularizer),
    }


def knobs_config(values: dict[str, Any]) -> dict[str, Any]:
    """:func:`knobs`' values as ``get_config`` entries."""
    return {name: serialize(values[name]) for name in KNOBS}


def fresh(values: dict[str, Any], *key: Any) -> dict[str, Any]:
    """The same arguments with fresh initializer clones (seeds mixed with ``key``), for one more weight or sub-layer."""
    return {**values, "kernel_initializer": clone_initializer(values["kernel_initializer"], *key, "kernel"),
            "bias_initializer": clone_initializer(values["bias_initializer"], *key, "bias")}


__all__ = ["KNOBS", "Regularization", "clone_initializer", "fresh", "knobs", "knobs_config", "serialize"]
