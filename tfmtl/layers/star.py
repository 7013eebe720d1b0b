"""STAR's layers (Sheng et al., CIKM 2021): partitioned normalisation, the star-topology FCN, the whole network."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl._compat import keras, tf
from tfmtl.features.kinds import count, int_tuple
from tfmtl.layers.mlp import MLP
from tfmtl.layers.regularization import Regularization


def _num_scenarios(value: Any) -> int:
    return count(value, "num_scenarios", minimum=1)


@keras.utils.register_keras_serializable(package="tfmtl")
class PartitionedNormalization(keras.layers.Layer):
    """STAR's partitioned normalisation: batch normalisation with per-scenario statistics, scale and shift.

    Shapes: B batch, D width, S scenarios. Row b belongs to scenario ``p = rows[b]``:

        e'_b = (gamma * gamma_p) * (e_b - mu_p) / sqrt(var_p + epsilon) + (beta + beta_p)

    with shared ``gamma`` (init 1) and ``beta`` (init 0), and per-scenario ``gamma_p``
    (init 1) and ``beta_p`` (init 0), each ``[S, D]``.

    * Training: ``mu_p``, ``var_p`` are the mean and (biased) variance of scenario
      p's rows in the batch, so a row's output depends on its own scenario's rows
      only. Each scenario present in the batch updates its moving averages
      ``m <- momentum * m + (1 - momentum) * batch_statistic``; the global moving
      averages are updated from the whole batch. As in Keras's ``BatchNormalization``
      they start at 0 and 1 and take about ``1 / (1 - momentum)`` steps to settle.
    * Inference: a scenario's moving averages, or for a scenario never seen in
      training (its count ``scenario_rows`` is 0, e.g. the out-of-vocabulary row)
      the global moving averages; its ``gamma_p``, ``beta_p`` are still at their init,
      so such a row gets the shared normalisation ``gamma * (e - mu) / sqrt(var + eps) + beta``.

    The paper uses per-domain statistics at inference; that training uses each
    scenario's own rows of a mixed batch (rather than the whole batch, as
    Scenario-Wise-Rec does, or single-scenario batches) is this implementation's
    choice: it makes training and serving normalise alike. A scenario with one row
    in a batch normalises that row to ``beta + beta_p``, as batch normalisation does.

    Args:
      num_scenarios: S, the rows of the scenario feature's table.
      epsilon: Added to the variance (Keras's ``BatchNormalization`` default).
      momentum: Of the moving averages.

    Call args:
      inputs: ``[x, rows]``: ``[B, D]`` float and ``[B]`` int scenario rows in ``[0, S)``.
      training: Batch statistics (and moving-average updates) if true.

    Returns:
      ``[B, D]``.

    References:
      Sheng et al., "One Model to Serve All: Star Topology Adaptive Recommender
      for Multi-Domain CTR Prediction", CIKM 2021. Reference code:
      Xiaopengli1/Scenario-Wise-Rec ``scenario_wise_rec/models/multi_domain/star.py``.

    Example:

    >>> import numpy as np, tfmtl
    >>> norm = tfmtl.layers.PartitionedNormalization(num_scenarios=2)
    >>> x, rows = np.array([[1.0], [3.0], [10.0], [20.0]], np.float32), np.array([0, 0, 1, 1])
    >>> norm([x, rows], training=True).numpy().round(2).ravel()  # each scenario standardised on its own
    array([-1.,  1., -1.,  1.], dtype=float32)
    >>> norm.scenario_rows.numpy()
    array([2., 2.], dtype=float32)
    """

    def __init__(self, num_scenarios: int, epsilon: float = 1e-3, momentum: float = 0.99, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_scenarios = _num_scenarios(num_scenarios)
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.epsilon = float(epsilon)
        self.momentum = float(momentum)

    def build(self, input_shape: Any) -> None:
        width = int(input_shape[0][-1])
        scenarios = self.num_scenarios

        def weight(name: str, shape: tuple[int, ...], init: str, trainable: bool = True) -> tf.Variable:
            if trainable:
                return self.add_weight(name=name, shape=shape, initializer=init)
            return self.add_weight(  # statistics: per replica, averaged when read (as Keras's BatchNormalization)
                name=name, shape=shape, initializer=init, trainable=False,
                synchronization=tf.VariableSynchronization.ON_READ, aggregation=tf.VariableAggregation.MEAN,
            )

        self.gamma = weight("gamma", (width,), "ones")
        self.beta = weight("beta", (width,), "zeros")
        self.scenario_gamma = weight("scenario_gamma", (scenarios, width), "ones")  # gamma_p
        self.scenario_beta = weight("scenario_beta", (scenarios, width), "zeros")  # beta_p
        self.moving_mean = weight("moving_mean", (scenarios, width), "zeros", trainable=False)
        self.moving_variance = weight("moving_variance", (scenarios, width), "ones", trainable=False)
        self.global_moving_mean = weight("global_moving_mean", (width,), "zeros", trainable=False)
        self.global_moving_variance = weight("global_moving_variance", (width,), "ones", trainable=False)
        self.scenario_rows = weight("scenario_rows", (scenarios,), "zeros", trainable=False)  # rows seen in training
        super().build(input_shape)

    def call(self, inputs: Sequence[tf.Tensor], training: Any = None) -> tf.Tensor:
        x, rows = inputs  # [B, D], [B]
        rows = tf.cast(rows, tf.int32)
        if training:
            mean, variance = self._batch_statistics(x, rows)  # [B, D] each
        else:
            seen = tf.gather(self.scenario_rows, rows)[:, None] > 0  # [B, 1]
            mean = tf.where(seen, tf.gather(self.moving_mean, rows), self.global_moving_mean)  # [B, D]
            variance = tf.where(seen, tf.gather(self.moving_variance, rows), self.global_moving_variance)
        scale = self.gamma * tf.gather(self.scenario_gamma, rows)  # [B, D]
        shift = self.beta + tf.gather(self.scenario_beta, rows)  # [B, D]
        return scale * (x - mean) * tf.math.rsqrt(variance + self.epsilon) + shift

    def _batch_statistics(self, x: tf.Tensor, rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Each row's scenario mean and variance over the batch, ``[B, D]`` each; updates the moving averages."""
        counts = tf.math.unsorted_segment_sum(tf.ones_like(rows, x.dtype), rows, self.num_scenarios)  # [S]
        per_row = tf.maximum(counts, 1.0)[:, None]  # [S, 1]
        scenario_mean = tf.math.unsorted_segment_sum(x, rows, self.num_scenarios) / per_row  # [S, D]
        mean = tf.gather(scenario_mean, rows)  # [B, D]
        scenario_variance = tf.math.unsorted_segment_sum(tf.square(x - mean), rows, self.num_scenarios) / per_row
        present = counts[:, None] > 0  # [S, 1]
        keep = self.momentum

        def moved(average: tf.Variable, value: tf.Tensor, where: Any = None) -> tf.Tensor:
            value = keep * average + (1.0 - keep) * tf.stop_gradient(value)
            return value if where is None else tf.where(where, value, average)

        self.moving_mean.assign(moved(self.moving_mean, scenario_mean, present))
        self.moving_variance.assign(moved(self.moving_variance, scenario_variance, present))
        batch_mean, batch_variance = tf.nn.moments(x, axes=[0])  # [D]
        self.global_moving_mean.assign(moved(self.global_moving_mean, batch_mean))
        self.global_moving_variance.assign(moved(self.global_moving_variance, batch_variance))
        self.scenario_rows.assign_add(counts)
        return mean, tf.gather(scenario_variance, rows)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_scenarios": self.num_scenarios,
            "epsilon": self.epsilon,
            "momentum": self.momentum,
        }


@keras.utils.register_keras_serializable(package="tfmtl")
class StarFCN(keras.layers.Layer):
    """STAR's star-topology fully connected network: shared weights times per-scenario weights.

    Shapes: B batch, D input width, S scenarios, H_l layer l's units. For a row of scenario p:

        W*_p = W ⊙ W_p,   b*_p = b + b_p,   h^l = relu(h^{l-1} W*_p + b*_p)    # [B, H_l]

    The shared ``W`` and ``b`` take the regularization's initializers and
    regularizers; the per-scenario ``W_p`` (``[S, in, out]``) start at ones and ``b_p``
    at zeros, without regularizer, so a scenario starts as (and a scenario that no
    training row reaches stays) the shared network. Each scenario's rows are
    multiplied by their own ``W*_p`` (``tf.dynamic_partition``), so ``W_p`` and ``b_p``
    get gradient from their own scenario's rows only, and the graph holds S matmuls
    per layer: meant for a scenario feature with a small table.

    Every layer, the last included, is followed by ReLU (its output feeds the
    task towers) and by ``regularization.dropout`` while training.

    Args:
      num_scenarios: S.
      units: H_1..H_L.
      regularization: Initializers, regularizers and dropout of the shared layers
        (:class:`Regularization`; default: Glorot, none).

    Call args:
      inputs: ``[x, rows]``: ``[B, D]`` and ``[B]`` int scenario rows in ``[0, S)``.

    Returns:
      ``[B, H_L]``.

    References:
      Sheng et al., "One Model to Serve All: Star Topology Adaptive Recommender
      for Multi-Domain CTR Prediction", CIKM 2021.

    Example:

    >>> import numpy as np, tfmtl
    >>> fcn = tfmtl.layers.StarFCN(3, units=(4,), regularization=tfmtl.layers.Regularization(kernel_initializer="ones"))
    >>> fcn([np.ones([2, 2], np.float32), np.array([0, 2])]).numpy()  # W_p = 1: the shared network
    array([[2., 2., 2., 2.],
           [2., 2., 2., 2.]], dtype=float32)
    """

    def __init__(
        self,
        num_scenarios: int,
        units: Sequence[int],
        regularization: Regularization | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_scenarios = _num_scenarios(num_scenarios)
        self.units = int_tuple(units, "StarFCN units", non_empty=True)
        self.regularization = Regularization.from_config(regularization)
        self.dropout = keras.layers.Dropout(self.regularization.dropout) if self.regularization.dropout else None
        self.kernels: list[tf.Variable] = []
        self.biases: list[tf.Variable] = []
        self.scenario_kernels: list[tf.Variable] = []
        self.scenario_biases: list[tf.Variable] = []

    def build(self, input_shape: Any) -> None:
        fan_in = int(input_shape[0][-1])
        for level, fan_out in enumerate(self.units):
            knobs = self.regularization.layer_kwargs(self.name, level)
            self.kernels.append(self.add_weight(
                name=f"kernel_{level}", shape=(fan_in, fan_out),
                initializer=knobs["kernel_initializer"], regularizer=knobs["kernel_regularizer"],
            ))
            self.biases.append(self.add_weight(
                name=f"bias_{level}", shape=(fan_out,),
                initializer=knobs["bias_initializer"], regularizer=knobs["bias_regularizer"],
            ))
            self.scenario_kernels.append(self.add_weight(
                name=f"scenario_kernel_{level}", shape=(self.num_scenarios, fan_in, fan_out), initializer="ones",
            ))
            self.scenario_biases.append(self.add_weight(
                name=f"scenario_bias_{level}", shape=(self.num_scenarios, fan_out), initializer="zeros",
            ))
            fan_in = fan_out
        super().build(input_shape)

    def call(self, inputs: Sequence[tf.Tensor], training: Any = None) -> tf.Tensor:
        x, rows = inputs  # [B, D], [B]
        rows = tf.cast(rows, tf.int32)
        positions = tf.dynamic_partition(tf.range(tf.shape(x)[0]), rows, self.num_scenarios)  # S x [B_p]
        parts = tf.dynamic_partition(x, rows, self.num_scenarios)  # S x [B_p, D]
        outputs = []
        for scenario, hidden in enumerate(parts):
            for level in range(len(self.units)):
                kernel = self.kernels[level] * self.scenario_kernels[level][scenario]  # W ⊙ W_p: [in, out]
                bias = self.biases[level] + self.scenario_biases[level][scenario]  # b + b_p: [out]
                hidden = tf.nn.relu(tf.matmul(hidden, kernel) + bias)  # [B_p, H_l]
                if self.dropout is not None:
                    hidden = self.dropout(hidden, training=training)
            outputs.append(hidden)
        output = tf.dynamic_stitch(positions, outputs)  # [B, H_L], rows back in batch order
        output.set_shape([x.shape[0], self.units[-1]])
        return output

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_scenarios": self.num_scenarios,
            "units": list(self.units),
            "regularization": self.regularization.get_config(),
        }


@keras.utils.register_keras_serializable(package="tfmtl")
class StarNetwork(keras.layers.Layer):
    """STAR for one shared representation: partitioned normalisation, the star FCN, plus the auxiliary network.

    Shapes: B batch, D input width, A scenario-embedding width, S scenarios, H = ``units[-1]``.

        s_m = StarFCN(PartitionedNormalization(x, p), p)        # [B, H]
        s_a = MLP_aux([e_scenario ; x])                          # [B, H]: ReLU layers aux_units, then linear H
        out = s_m + s_a                                          # [B, H]

    In STAR the main and auxiliary networks each end in a logit and
    ``y = sigmoid(s_m + s_a)``. Here the sum is taken one step earlier, on ``[B, H]``
    representations, because each task's tower and head come after: with a task's
    ``tower_units=()`` its head is linear, so its logit is ``w·s_m + w·s_a + c``, STAR's
    sum of a main and an auxiliary logit (the auxiliary net's last linear layer
    composed with the head). The auxiliary net reads the scenario embedding next to the
    representation (Scenario-Wise-Rec's reads all the embeddings); that the paper's
    reads the domain indicator, and its number of layers, are unverified.

    Args:
      num_scenarios: S.
      units: The star FCN's layer units.
      aux_units: The auxiliary MLP's ReLU layers before its linear ``[B, H]`` output (may be empty).
      epsilon, momentum: Of the partitioned normalisation.
      regularization: Initializers, regularizers and dropout of the shared FCN and
        the auxiliary MLP (:class:`Regularization`).
      scenario_feature: The feature whose table rows are the scenarios (what a warm start
        must not grow: the per-scenario weights are indexed by its rows).

    Call args:
      inputs: ``[x, scenario_embedding, rows]``: ``[B, D]``, ``[B, A]`` and ``[B]`` int rows in ``[0, S)``.

    Returns:
      ``[B, H]``.

    References:
      Sheng et al., "One Model to Serve All: Star Topology Adaptive Recommender
      for Multi-Domain CTR Prediction", CIKM 2021.

    Example:

    >>> import numpy as np, tfmtl
    >>> star = tfmtl.layers.StarNetwork(3, units=(8, 4), aux_units=(4,))
    >>> star([np.ones([2, 5], np.float32), np.ones([2, 2], np.float32), np.array([1, 2])]).shape
    TensorShape([2, 4])
    """

    def __init__(
        self,
        num_scenarios: int,
        units: Sequence[int],
        aux_units: Sequence[int] = (64,),
        epsilon: float = 1e-3,
        momentum: float = 0.99,
        regularization: Regularization | dict[str, Any] | None = None,
        scenario_feature: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.scenario_feature = scenario_feature
        self.regularization = Regularization.from_config(regularization)
        reg = self.regularization
        self.units = int_tuple(units, "STAR units", non_empty=True)
        self.aux_units = int_tuple(aux_units, "STAR aux_units")
        # -- sub-layers --
        self.norm = PartitionedNormalization(num_scenarios, epsilon, momentum, name="partitioned_norm")
        self.fcn = StarFCN(num_scenarios, self.units, reg, name="star_fcn")
        self.aux = MLP(self.aux_units + (self.units[-1],), final_activation=None, **reg.mlp_kwargs(), name="aux")

    def call(self, inputs: Sequence[tf.Tensor], training: Any = None) -> tf.Tensor:
        x, scenario_embedding, rows = inputs  # [B, D], [B, A], [B]
        main = self.fcn([self.norm([x, rows], training=training), rows], training=training)  # [B, H]
        aux = self.aux(tf.concat([scenario_embedding, x], axis=-1), training=training)  # [B, H]
        return main + aux

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_scenarios": self.norm.num_scenarios,
            "units": list(self.units),
            "aux_units": list(self.aux_units),
            "epsilon": self.norm.epsilon,
            "momentum": self.norm.momentum,
            "regularization": self.regularization.get_config(),
            "scenario_feature": self.scenario_feature,
        }
