"""Gate diagnostics for MoE models: how much each task uses each expert, and collapse warnings."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Mapping

import numpy as np

from tfmtl._compat import keras
from tfmtl.layers.gate import ExpertGate

#: A gate has collapsed when one expert gets more than this share of the weight for every example.
COLLAPSE_SHARE = 0.9


@dataclasses.dataclass(frozen=True)
class ExpertUsage:
    """Statistics of every gate of a model over some data.

    Gates are named ``<layer>/<gate>``, e.g. ``mixture_of_experts/click_gate`` or
    ``extraction_1/conversion_gate``.

    Attributes:
      mean: Gate name to the mean weight of each expert (``[E]``, sums to 1).
      entropy: Gate name to the mean per-example entropy of the gate (nats;
        ``log(E)`` for a uniform gate, 0 for a one-hot one).
      collapsed: Gates where one expert takes more than :data:`COLLAPSE_SHARE`
        of the weight for every example.
    """

    mean: dict[str, np.ndarray]
    entropy: dict[str, float]
    collapsed: tuple[str, ...]

    def as_logs(self) -> dict[str, float]:
        """Flat ``{"<gate>/expert_<e>": mean weight, "<gate>/entropy": entropy}`` (for Keras logs)."""
        logs = {f"{gate}/entropy": value for gate, value in self.entropy.items()}
        for gate, usage in self.mean.items():
            logs.update({f"{gate}/expert_{e}": float(w) for e, w in enumerate(usage)})
        return logs


def _gates(model: Any) -> dict[str, ExpertGate]:
    gates = {}
    for layer in model.layers:
        for module in layer.submodules:
            if isinstance(module, ExpertGate):
                gates[f"{layer.name}/{module.name}"] = module
    return gates


def expert_usage(model: Any, features: Mapping[str, Any], *, batch_size: int = 2048, warn: bool = True) -> ExpertUsage:
    """Run ``features`` through ``model`` and summarise every gate's weights.

    Args:
      model: A model with :class:`~tfmtl.layers.ExpertGate` gates (MMoE, OMoE, CGC, PLE).
      features: Raw feature arrays keyed by feature name (a sample is enough).
      batch_size: Rows per forward pass.
      warn: Emit a ``UserWarning`` naming each collapsed gate.

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.mmoe(schema, [tfmtl.Task.binary("click")], num_experts=3, expert_units=(4,))
    >>> usage = tfmtl.diagnostics.expert_usage(model, {"price": np.linspace(-1, 1, 100)})
    >>> sorted(usage.mean), round(float(usage.mean["mixture_of_experts/click_gate"].sum()), 5)
    (['mixture_of_experts/click_gate'], 1.0)
    """
    gates = _gates(model)
    if not gates:
        raise ValueError(f"model {model.name!r} has no expert gates (it is not an MoE architecture)")
    columns = {name: np.asarray(values) for name, values in features.items()}
    rows = len(next(iter(columns.values())))
    if rows == 0:
        raise ValueError("expert_usage needs at least one row")
    for gate in gates.values():
        object.__setattr__(gate, "recorded", [])  # untracked by Keras (see ExpertGate)
    try:
        for start in range(0, rows, batch_size):
            model({name: values[start : start + batch_size] for name, values in columns.items()}, training=False)
        weights = {name: np.concatenate(gate.recorded, axis=0) for name, gate in gates.items()}  # [N, E]
    finally:
        for gate in gates.values():
            object.__setattr__(gate, "recorded", None)
    mean = {name: w.mean(axis=0) for name, w in weights.items()}
    entropy = {name: float(-(w * np.log(np.clip(w, 1e-12, 1.0))).sum(axis=1).mean()) for name, w in weights.items()}
    collapsed = tuple(
        name for name, w in weights.items()
        if w.shape[1] > 1 and np.all(w.max(axis=1) > COLLAPSE_SHARE) and len(set(w.argmax(axis=1))) == 1
    )
    if warn:
        for name in collapsed:
            expert = int(weights[name][0].argmax())
            warnings.warn(
                f"gate {name} has collapsed: expert {expert} takes more than {COLLAPSE_SHARE:.0%} of the weight "
                "for every example. Consider GateOptions(temperature>1, expert_dropout or load_balance).",
                stacklevel=2,
            )
    return ExpertUsage(mean=mean, entropy=entropy, collapsed=collapsed)


class ExpertUsageCallback(keras.callbacks.Callback):
    """Log every gate's expert usage and entropy at the end of each epoch (into ``History``).

    Args:
      features: Raw features to measure the gates on (e.g. a few thousand validation rows).
      batch_size: Rows per forward pass.

    Example:

    >>> import tfmtl
    >>> data = tfmtl.data.synthetic_recsys(2000, seed=0)
    >>> model = tfmtl.models.mmoe(data.schema.adapt(data.features), data.tasks, expert_units=(4,))
    >>> model.compile()
    >>> callback = tfmtl.diagnostics.ExpertUsageCallback(data.take(slice(0, 500)).features)
    >>> history = model.fit(data.to_dataset(500), epochs=1, verbose=0, callbacks=[callback])
    >>> "mixture_of_experts/click_gate/entropy" in history.history
    True
    """

    def __init__(self, features: Mapping[str, Any], *, batch_size: int = 2048) -> None:
        super().__init__()
        self.features = features
        self.batch_size = batch_size
        self.last: ExpertUsage | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.last = expert_usage(self.model, self.features, batch_size=self.batch_size)
        if logs is not None:
            logs.update(self.last.as_logs())


def plot_expert_usage(usage: ExpertUsage, ax: Any = None) -> Any:
    """Plot the gate x expert mean-usage matrix (matplotlib); returns the Axes.

    Gates with different numbers of experts (e.g. PLE's shared gates) are padded with blanks.

    Example:

    >>> import numpy as np, tfmtl
    >>> usage = tfmtl.diagnostics.ExpertUsage({"moe/a_gate": np.array([0.7, 0.3])}, {"moe/a_gate": 0.6}, ())
    >>> ax = tfmtl.diagnostics.plot_expert_usage(usage)
    >>> ax.get_title()
    'Mean gate weight per expert'
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("plot_expert_usage needs matplotlib: pip install matplotlib") from error
    names = list(usage.mean)
    width = max(len(w) for w in usage.mean.values())
    matrix = np.full((len(names), width), np.nan)
    for row, name in enumerate(names):
        matrix[row, : len(usage.mean[name])] = usage.mean[name]
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.7 * width, 0.8 + 0.45 * len(names)))
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(width), [f"expert {e}" for e in range(width)])
    ax.set_yticks(range(len(names)), [f"{n} (H={usage.entropy[n]:.2f})" for n in names])
    for (row, col), value in np.ndenumerate(matrix):
        if not np.isnan(value):
            ax.text(col, row, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 else "black")
    ax.set_title("Mean gate weight per expert")
    ax.figure.colorbar(image, ax=ax)
    return ax
