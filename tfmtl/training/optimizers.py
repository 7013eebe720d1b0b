"""Optimizers that update only the embedding rows a batch touched."""

from __future__ import annotations

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
    >>> import tf_keras; tf_keras.utils.set_random_seed(0)  # 16 ReLUs: none dead on this input
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
