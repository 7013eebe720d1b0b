"""PEPNet's layers (Chang et al., KDD 2023): the Gate Neural Unit, EPNet and PPNet."""

from __future__ import annotations

from typing import Any, Sequence

from tfmtl._compat import keras, tf
from tfmtl.features.kinds import int_tuple
from tfmtl.layers.regularization import Regularization, fresh, knobs, knobs_config


def _width(value: Any, what: str) -> int:
    """One width >= 1 (an int), else an error naming ``what``."""
    items = int_tuple(value, what, non_empty=True)
    if len(items) != 1:
        raise ValueError(f"{what} must be one int >= 1, got {value!r}")
    return items[0]


def _check_gamma(gamma: Any) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0:
        raise ValueError(f"gamma must be a number > 0 (PEPNet uses 2.0), got {gamma!r}")
    return float(gamma)


@keras.utils.register_keras_serializable(package="tfmtl")
class GateNU(keras.layers.Layer):
    """PEPNet's Gate Neural Unit: ``delta(x) = gamma * sigmoid(W2 relu(W1 x + b1) + b2)``.

    Shapes: B batch, D input width, H hidden units, U output units.
    With ``gamma = 2`` the gate lies in ``(0, 2)``: it can damp (< 1) or amplify
    (> 1) what it multiplies, and starts near 1 when the last layer's output is small.

    Args:
      units: U, the output width (the width of what the gate multiplies).
      hidden_units: H (default: U, as TorchEasyRec's PPNet and EasyRec's GateNN).
      gamma: The scale of the sigmoid (PEPNet: 2).
      kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer: As Keras's
        ``Dense``; each of the two layers gets its own initializer clone.

    Call args:
      inputs: ``[B, D]``.

    Returns:
      ``[B, U]`` gate values in ``(0, gamma)``.

    References:
      Chang et al., "PEPNet: Parameter and Embedding Personalized Network for
      Infusing with Personalized Prior Information", KDD 2023.

    Example:

    >>> import numpy as np, tfmtl
    >>> gate = tfmtl.layers.GateNU(3, kernel_initializer="zeros")
    >>> gate(np.ones([2, 4], np.float32)).numpy()  # sigmoid(0) = 0.5, times gamma = 2
    array([[1., 1., 1.],
           [1., 1., 1.]], dtype=float32)
    """

    def __init__(
        self,
        units: int,
        hidden_units: int | None = None,
        gamma: float = 2.0,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = _width(units, "GateNU units")
        self.hidden_units = self.units if hidden_units is None else _width(hidden_units, "GateNU hidden_units")
        self.gamma = _check_gamma(gamma)
        self._knobs = knobs(kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer)
        self.hidden = keras.layers.Dense(self.hidden_units, activation="relu",
                                         **fresh(self._knobs, self.name, "hidden"), name="hidden")
        self.gate = keras.layers.Dense(self.units, activation="sigmoid", **fresh(self._knobs, self.name, "gate"),
                                       name="gate")

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return self.gamma * self.gate(self.hidden(inputs))  # [B, U]

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "hidden_units": self.hidden_units,
            "gamma": self.gamma,
            **knobs_config(self._knobs),
        }


@keras.utils.register_keras_serializable(package="tfmtl")
class EPNet(keras.layers.Layer):
    """PEPNet's Embedding Personalized Network: a domain gate on the general embeddings.

    Shapes: B batch, D_e general embedding width, D_d domain-side feature width.

        delta_dom = GateNU([e_dom ; stop_gradient(E)])     # [B, D_e]
        O_ep      = delta_dom * E                          # [B, D_e]

    The gate is element-wise over the ``D_e`` columns of ``E`` (TorchEasyRec's
    choice, with hidden width ``D_e``); whether the paper uses one gate value per
    field, broadcast over that field's embedding, is unverified. The stop-gradient
    is on the gate's copy of ``E`` only: ``E`` gets gradient through ``delta_dom * E``
    alone, so the gate does not push the embeddings around.

    Args:
      gamma: GateNU's scale (PEPNet: 2).
      hidden_units: The gate's hidden width (default: ``D_e``).
      regularization: Initializers and regularizers of the gate's layers
        (:class:`Regularization`; default: Glorot, none).

    Call args:
      inputs: ``[E, e_dom]``: the general embeddings ``[B, D_e]`` and the domain-side features ``[B, D_d]``.

    Returns:
      ``[B, D_e]``: the personalised embeddings ``O_ep``.

    References:
      Chang et al., "PEPNet: Parameter and Embedding Personalized Network for
      Infusing with Personalized Prior Information", KDD 2023.
      Reference code: alibaba/TorchEasyRec ``tzrec/modules/personalized_net.py`` (``EPNet``).

    Example:

    >>> import numpy as np, tfmtl
    >>> epnet = tfmtl.layers.EPNet(regularization=tfmtl.layers.Regularization(kernel_initializer="zeros"))
    >>> general, domain = np.array([[1.0, -2.0, 3.0]], np.float32), np.ones([1, 2], np.float32)
    >>> epnet([general, domain]).numpy()  # a zero gate is sigmoid(0) * 2 = 1: E unchanged
    array([[ 1., -2.,  3.]], dtype=float32)
    """

    def __init__(
        self,
        gamma: float = 2.0,
        hidden_units: int | None = None,
        regularization: Regularization | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.gamma = _check_gamma(gamma)
        self.hidden_units = None if hidden_units is None else _width(hidden_units, "EPNet hidden_units")
        self.regularization = Regularization.from_config(regularization)
        self.gate: GateNU | None = None

    def build(self, input_shape: Any) -> None:
        width = int(input_shape[0][-1])  # D_e: the gate has one value per column of E
        self.gate = GateNU(width, self.hidden_units, self.gamma, **self.regularization.layer_kwargs(self.name, "gate"),
                           name="gate")
        super().build(input_shape)

    def call(self, inputs: Sequence[tf.Tensor]) -> tf.Tensor:
        general, domain = inputs  # [B, D_e], [B, D_d]
        delta = self.gate(tf.concat([domain, tf.stop_gradient(general)], axis=-1))  # [B, D_e]
        return delta * general  # [B, D_e]

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "gamma": self.gamma,
            "hidden_units": self.hidden_units,
            "regularization": self.regularization.get_config(),
        }


@keras.utils.register_keras_serializable(package="tfmtl")
class PPNet(keras.layers.Layer):
    """PEPNet's Parameter Personalized Network: one gated ReLU tower per task.

    Shapes: B batch, D input width (``O_ep``), P prior width, T tasks, H_l layer l's units.
    For task t and layer l = 1..L, starting from ``h^0 = O_ep``:

        delta_{t,l} = GateNU_{t,l}([o_prior ; stop_gradient(O_ep)])        # [B, H_l], hidden width H_l
        h^l         = dropout(delta_{t,l} * relu(W_{t,l} h^{l-1} + b_{t,l}))  # [B, H_l]

    Every layer of every task has its own gate (the gate multiplies the layer's
    output, after the activation, as in TorchEasyRec; whether the paper's gate
    multiplies a layer's input or its output is unverified). The gate reads the
    personalised prior features and a stop-gradient copy of the tower input, so the
    tower input gets gradient through the towers only.

    Args:
      task_names: One tower per name.
      units: H_1..H_L, the units of each tower's layers.
      gamma: GateNU's scale (PEPNet: 2).
      regularization: Initializers and regularizers of every dense layer and gate,
        and the dropout after each gated layer (:class:`Regularization`; default: none).

    Call args:
      inputs: ``[O_ep, o_prior]``: ``[B, D]`` and ``[B, P]``.

    Returns:
      dict of task name to ``[B, H_L]``.

    References:
      Chang et al., "PEPNet: Parameter and Embedding Personalized Network for
      Infusing with Personalized Prior Information", KDD 2023.
      Reference code: alibaba/TorchEasyRec ``tzrec/modules/personalized_net.py`` (``PPNet``);
      alibaba/EasyRec ``easy_rec/python/layers/keras/ppnet.py``.

    Example:

    >>> import numpy as np, tfmtl
    >>> ppnet = tfmtl.layers.PPNet(("ctr", "cvr"), units=(8, 4))
    >>> out = ppnet([np.ones([2, 5], np.float32), np.ones([2, 3], np.float32)])
    >>> {name: value.shape.as_list() for name, value in out.items()}
    {'ctr': [2, 4], 'cvr': [2, 4]}
    """

    def __init__(
        self,
        task_names: Sequence[str],
        units: Sequence[int],
        gamma: float = 2.0,
        regularization: Regularization | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(task_names, str) or not task_names or len(set(task_names)) != len(task_names):
            raise ValueError(f"PPNet: task_names must be distinct names, at least one, got {task_names!r}")
        self.task_names = tuple(str(name) for name in task_names)
        self.units = int_tuple(units, "PPNet units", non_empty=True)
        self.gamma = _check_gamma(gamma)
        self.regularization = Regularization.from_config(regularization)
        reg = self.regularization
        # -- sub-layers: per task, one tower of Dense layers, each with its GateNU --
        self.towers = {task: _GatedTower(self.units, self.gamma, reg, name=f"{task}_tower") for task in self.task_names}

    def call(self, inputs: Sequence[tf.Tensor], training: Any = None) -> dict[str, tf.Tensor]:
        tower_input, prior = inputs  # [B, D], [B, P]
        gate_input = tf.concat([prior, tf.stop_gradient(tower_input)], axis=-1)  # [B, P + D]
        return {task: tower([tower_input, gate_input], training=training)  # [B, H_L]
                for task, tower in self.towers.items()}

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "task_names": list(self.task_names),
            "units": list(self.units),
            "gamma": self.gamma,
            "regularization": self.regularization.get_config(),
        }


class _GatedTower(keras.layers.Layer):
    """One task's PPNet tower (see :class:`PPNet`): ``h^l = dropout(GateNU_l(g) * relu(W_l h^{l-1} + b_l))``.

    A layer of its own so that Keras saves its sub-layers (it saves layers held in a
    list or a dict, not in a dict of lists); :class:`PPNet` builds it, so it is not registered.
    """

    def __init__(self, units: Sequence[int], gamma: float, regularization: Regularization, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dense = [
            keras.layers.Dense(width, activation="relu", **regularization.layer_kwargs(self.name, "dense", level),
                               name=f"dense_{level}")
            for level, width in enumerate(units)
        ]
        self.gates = [GateNU(width, width, gamma, **regularization.layer_kwargs(self.name, "gate", level),
                              name=f"gate_{level}")
                      for level, width in enumerate(units)]
        self.dropout = keras.layers.Dropout(regularization.dropout) if regularization.dropout else None

    def call(self, inputs: Sequence[tf.Tensor], training: Any = None) -> tf.Tensor:
        hidden, gate_input = inputs  # [B, D], [B, P + D]
        for dense, gate in zip(self.dense, self.gates):
            hidden = gate(gate_input) * dense(hidden)  # [B, H_l]
            if self.dropout is not None:
                hidden = self.dropout(hidden, training=training)
        return hidden
