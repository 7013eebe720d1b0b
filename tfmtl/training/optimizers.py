"""Optimizers that update only the embedding rows a batch touched."""

from __future__ import annotations

import re
from typing import Any

from tfmtl._compat import keras, tf


@keras.utils.register_keras_serializable(package="tfmtl")
class LazyAdam(keras.optimizers.Adam):
    """Adam that updates only the embedding rows present in the batch.

    Keras's ``Adam`` decays the first and second moments of *every* row of an
    embedding table on every step, and then rewrites every row, although the
    gradient (a ``tf.IndexedSlices``) names only the ids in the batch. With large
    vocabularies that dense work dominates a step. ``LazyAdam`` gathers the touched
    rows' moments, applies the Adam update to those rows only and scatters them
    back; dense variables (experts, towers, gates) get Keras's ``Adam`` update
    unchanged.

    The difference from ``Adam``: a row's moments are not decayed on the steps
    where its id is absent, so a rare id's step size after a long absence is
    larger than under ``Adam`` (the same semantics as TensorFlow Addons'
    ``LazyAdam`` and PyTorch's ``SparseAdam``). On dense gradients the two are
    identical. ``amsgrad`` is not supported.

    Args:
      learning_rate: A float or a ``keras.optimizers.schedules`` schedule.
      **kwargs: Keras ``Adam`` arguments (``beta_1``, ``beta_2``, ``epsilon``,
        ``clipnorm``, ...).

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Categorical("item", embedding_dim=2, vocabulary=("a", "b", "c"))])
    >>> tfmtl.keras.utils.set_random_seed(0)  # 16 ReLUs: none dead on this input
    >>> model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("ctr")], bottom_units=(16,))
    >>> model.compile(optimizer=tfmtl.training.LazyAdam(1e-2))
    >>> table = model.get_layer("features").embeddings["item"].embeddings
    >>> before = table.numpy()
    >>> _ = model.fit({"item": np.array(["a"])}, {"ctr": np.array([1.0])}, verbose=0)
    >>> changed = np.abs(table.numpy() - before).sum(axis=1) > 0   # row 0 is the out-of-vocabulary id
    >>> changed.tolist()
    [False, True, False, False]
    """

    def __init__(self, learning_rate: Any = 0.001, **kwargs: Any) -> None:
        if kwargs.get("amsgrad"):
            raise ValueError("LazyAdam does not support amsgrad=True; use keras.optimizers.Adam")
        kwargs.setdefault("name", "LazyAdam")
        super().__init__(learning_rate=learning_rate, **kwargs)

    def update_step(self, gradient: Any, variable: tf.Variable) -> Any:
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        # Keras's apply_gradients has already summed duplicate indices.
        dtype = variable.dtype
        lr = tf.cast(self.learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        epsilon = self.epsilon * tf.sqrt(1 - tf.pow(beta_2, step)) if self.adaptive_epsilon else self.epsilon
        index = self._index_dict[self._var_key(variable)]
        m, v = self._momentums[index], self._velocities[index]
        rows, values = gradient.indices, tf.cast(gradient.values, dtype)
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        return variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + epsilon), rows))


_TABLE_NAME = re.compile(r"(^|/)embeddings(:\d+)?$")


def is_embedding_table(variable: Any) -> bool:
    """Whether :class:`RowWiseAdagrad` treats ``variable`` as an embedding table.

    The rule: a rank-2 variable whose name's last component is ``embeddings``
    (``features/item_embedding/embeddings:0``), i.e. the weight of a
    ``keras.layers.Embedding``. ``item_embeddings:0`` or a rank-1 ``embeddings``
    is not a table.

    Example:

    >>> import tfmtl
    >>> from tfmtl._compat import tf
    >>> tfmtl.training.is_embedding_table(tf.Variable(tf.zeros([4, 2]), name="item_embedding/embeddings"))
    True
    >>> tfmtl.training.is_embedding_table(tf.Variable(tf.zeros([4, 2]), name="item_embeddings"))
    False
    """
    return variable.shape.rank == 2 and _TABLE_NAME.search(variable.name) is not None


@keras.utils.register_keras_serializable(package="tfmtl")
class RowWiseAdagrad(keras.optimizers.Optimizer):
    """Row-wise Adagrad for embedding tables, Adam for every other variable.

    Each embedding table (see :func:`is_embedding_table`: the rank-2 ``embeddings``
    weight of a ``keras.layers.Embedding``) keeps one accumulator per row, a
    ``[rows, 1]`` slot, as TorchRec's ``EXACT_ROWWISE_ADAGRAD`` (FBGEMM) does. For
    a row ``r`` with gradient ``g`` (duplicate ids in a batch summed first, by
    Keras's ``apply_gradients``)::

        acc[r] += mean(g ** 2)                  # over the embedding dimension
        table[r] -= learning_rate * g / (sqrt(acc[r]) + epsilon)

    A sparse gradient (``tf.IndexedSlices``) touches only the batch's rows; rows
    absent from a batch are left exactly as they were. A dense gradient on a table
    updates every row the same way (a zero gradient row is unchanged).

    Every other variable (kernels, biases, a balancer's weights) gets Keras's
    ``Adam`` update at ``dense_learning_rate`` (``m`` and ``v`` slots). So the
    optimizer state of a ``[1M, 16]`` table is 1M floats, where Adam keeps 32M.

    Args:
      learning_rate: The tables' Adagrad step size (float or
        ``keras.optimizers.schedules`` schedule). Default 0.05: Adagrad's step
        shrinks as a row's accumulator grows, so it starts larger than Adam's.
        ``optimizer.learning_rate`` (and so Keras's learning-rate callbacks) is
        this rate.
      dense_learning_rate: Adam's step size for the non-table variables (float or
        schedule). Default 1e-3, Keras Adam's default.
      initial_accumulator_value: A table row's accumulator at the start. Default
        0.1, Keras ``Adagrad``'s default: a row's first step is then
        ``learning_rate * g / (sqrt(0.1 + mean(g ** 2)) + epsilon)``, not a
        sign-like ``learning_rate`` per element as from 0.
      epsilon: Added to the square roots of the accumulator and of Adam's ``v``.
        Default 1e-7, Keras's ``Adagrad`` and ``Adam`` default.
      beta_1, beta_2: Adam's decay rates for the non-table variables.
      **kwargs: Keras optimizer arguments (``clipnorm``, ``global_clipnorm``,
        ``clipvalue``, ``use_ema``, ``jit_compile``, ``name``). ``weight_decay``
        is refused: Keras applies it to every row of every table on every step.

    Example:

    >>> import tfmtl
    >>> from tfmtl._compat import keras, tf
    >>> layer = keras.layers.Embedding(4, 3)
    >>> layer.build((None,))
    >>> before = layer.embeddings.numpy()
    >>> optimizer = tfmtl.training.RowWiseAdagrad()
    >>> with tf.GradientTape() as tape:
    ...     loss = tf.reduce_sum(layer(tf.constant([1, 3, 1])))  # id 1 twice: gradient 2 on each dim
    >>> _ = optimizer.apply_gradients(zip(tape.gradient(loss, [layer.embeddings]), [layer.embeddings]))
    >>> (layer.embeddings.numpy() != before).any(axis=1).tolist()  # rows 0 and 2 untouched
    [False, True, False, True]
    >>> accumulator = optimizer.accumulator(layer.embeddings)  # one column per row
    >>> accumulator.shape.as_list(), accumulator.numpy().ravel().astype(float).round(2).tolist()
    ([4, 1], [0.1, 4.1, 0.1, 1.1])
    """

    def __init__(
        self,
        learning_rate: Any = 0.05,
        dense_learning_rate: Any = 1e-3,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        **kwargs: Any,
    ) -> None:
        if kwargs.pop("weight_decay", None):
            raise ValueError(
                "RowWiseAdagrad does not support weight_decay (it would rewrite every table row each step)"
            )
        if initial_accumulator_value < 0:
            raise ValueError(f"RowWiseAdagrad: initial_accumulator_value must be >= 0, got {initial_accumulator_value}")
        kwargs.setdefault("name", "RowWiseAdagrad")
        # weight_decay=None: the distributed Optimizer's default (0) would still rewrite every variable.
        super().__init__(weight_decay=None, **kwargs)
        self._learning_rate = self._build_learning_rate(learning_rate)
        if isinstance(dense_learning_rate, keras.optimizers.schedules.LearningRateSchedule):
            self._dense_learning_rate = dense_learning_rate
        else:
            with tf.init_scope():
                self._dense_learning_rate = tf.Variable(
                    dense_learning_rate, name="dense_learning_rate", dtype=keras.backend.floatx(), trainable=False
                )
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon
        self.beta_1 = beta_1
        self.beta_2 = beta_2

    @property
    def dense_learning_rate(self) -> Any:
        """Adam's step size for the non-table variables at the current step."""
        rate = self._dense_learning_rate
        if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
            return rate(self.iterations)
        return rate

    @dense_learning_rate.setter
    def dense_learning_rate(self, value: float) -> None:
        if isinstance(self._dense_learning_rate, keras.optimizers.schedules.LearningRateSchedule):
            raise TypeError("dense_learning_rate is a schedule and cannot be set")
        self._dense_learning_rate.assign(value)

    def build(self, var_list: Any) -> None:
        super().build(var_list)
        if getattr(self, "_built", False):
            return
        self._built = True
        self._accumulators: list[tf.Variable] = []
        self._momentums: list[tf.Variable] = []
        self._velocities: list[tf.Variable] = []
        # variable key -> position in _accumulators (tables) or in _momentums/_velocities (the rest)
        self._table_slot = self._no_dependency({})
        self._adam_slot = self._no_dependency({})
        for variable in var_list:
            key = self._var_key(variable)
            if is_embedding_table(variable):
                dtype = getattr(variable, "true_dtype", variable.dtype)
                start = tf.fill([variable.shape[0], 1], tf.constant(self.initial_accumulator_value, dtype))
                self._table_slot[key] = len(self._accumulators)
                self._accumulators.append(
                    self.add_variable_from_reference(variable, "accumulator", initial_value=start)
                )
            else:
                self._adam_slot[key] = len(self._momentums)
                self._momentums.append(self.add_variable_from_reference(variable, "m"))
                self._velocities.append(self.add_variable_from_reference(variable, "v"))

    def accumulator(self, variable: tf.Variable) -> tf.Variable:
        """The ``[rows, 1]`` accumulator of the embedding table ``variable`` (after ``build``)."""
        return self._accumulators[self._table_slot[self._var_key(variable)]]

    def update_step(self, gradient: Any, variable: tf.Variable) -> Any:
        key = self._var_key(variable)
        if key in self._table_slot:
            return self._table_step(gradient, variable, self._accumulators[self._table_slot[key]])
        return self._adam_step(gradient, variable, self._adam_slot[key])

    def _table_step(self, gradient: Any, variable: tf.Variable, accumulator: tf.Variable) -> Any:
        dtype = variable.dtype
        lr = tf.cast(self.learning_rate, dtype)
        if isinstance(gradient, tf.IndexedSlices):
            # Keras's apply_gradients has already summed duplicate indices.
            rows, values = gradient.indices, tf.cast(gradient.values, dtype)
            summed = tf.gather(accumulator, rows) + tf.reduce_mean(tf.square(values), axis=1, keepdims=True)
            accumulator.scatter_update(tf.IndexedSlices(summed, rows))
            return variable.scatter_sub(tf.IndexedSlices(lr * values / (tf.sqrt(summed) + self.epsilon), rows))
        gradient = tf.cast(gradient, dtype)
        accumulator.assign_add(tf.reduce_mean(tf.square(gradient), axis=1, keepdims=True))
        return variable.assign_sub(lr * gradient / (tf.sqrt(accumulator) + self.epsilon))

    def _adam_step(self, gradient: Any, variable: tf.Variable, index: int) -> Any:
        # Keras Adam's update_step (amsgrad=False, adaptive_epsilon=False), op for op.
        lr = tf.cast(self.dense_learning_rate, variable.dtype)
        local_step = tf.cast(self.iterations + 1, variable.dtype)
        beta_1_power = tf.pow(tf.cast(self.beta_1, variable.dtype), local_step)
        beta_2_power = tf.pow(tf.cast(self.beta_2, variable.dtype), local_step)
        m, v = self._momentums[index], self._velocities[index]
        alpha = lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        if isinstance(gradient, tf.IndexedSlices):
            m.assign_add(-m * (1 - self.beta_1))
            m.scatter_add(tf.IndexedSlices(gradient.values * (1 - self.beta_1), gradient.indices))
            v.assign_add(-v * (1 - self.beta_2))
            v.scatter_add(tf.IndexedSlices(tf.square(gradient.values) * (1 - self.beta_2), gradient.indices))
        else:
            m.assign_add((gradient - m) * (1 - self.beta_1))
            v.assign_add((tf.square(gradient) - v) * (1 - self.beta_2))
        return variable.assign_sub((m * alpha) / (tf.sqrt(v) + self.epsilon))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({
            "learning_rate": self._serialize_hyperparameter(self._learning_rate),
            "dense_learning_rate": self._serialize_hyperparameter(self._dense_learning_rate),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
        })
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> "RowWiseAdagrad":
        config = dict(config)
        if isinstance(config.get("dense_learning_rate"), dict):
            config["dense_learning_rate"] = keras.optimizers.schedules.deserialize(
                config["dense_learning_rate"], custom_objects=custom_objects
            )
        return super().from_config(config, custom_objects=custom_objects)
