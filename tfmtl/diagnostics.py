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
      mean: Gate name to the mean weight of each expert it mixes (``[E]``, sums to 1).
      experts: Gate name to the names of those experts, in the same order
        (``mixture_of_experts/expert_3``, ``extraction_0/click_1``, ``extraction_0/shared_0``...).
      entropy: Gate name to the mean per-example entropy of the gate (nats;
        ``log(E)`` for a uniform gate, 0 for a one-hot one).
      collapsed: Gates where one expert takes more than :data:`COLLAPSE_SHARE`
        of the weight for every example.
    """

    mean: dict[str, np.ndarray]
    entropy: dict[str, float]
    collapsed: tuple[str, ...]
    experts: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def matrix(self) -> tuple[list[str], list[str], np.ndarray]:
        """(gate names, expert names, ``[gates, experts]`` mean weights; NaN where a gate cannot pick an expert)."""
        gates = list(self.mean)
        experts = {gate: self.experts.get(gate) or [f"expert_{e}" for e in range(len(self.mean[gate]))] for gate in gates}
        columns: list[str] = []
        for gate in gates:
            columns += [name for name in experts[gate] if name not in columns]
        table = np.full((len(gates), len(columns)), np.nan)
        for row, gate in enumerate(gates):
            for name, weight in zip(experts[gate], self.mean[gate]):
                table[row, columns.index(name)] = weight
        return gates, columns, table

    def as_logs(self) -> dict[str, float]:
        """Flat ``{"<gate>/expert_<e>": mean weight, "<gate>/entropy": entropy}`` (for Keras logs)."""
        logs = {f"{gate}/entropy": value for gate, value in self.entropy.items()}
        for gate, usage in self.mean.items():
            logs.update({f"{gate}/expert_{e}": float(w) for e, w in enumerate(usage)})
        return logs


def _gates(model: Any) -> dict[str, tuple[ExpertGate, list[str]]]:
    """Gate path to (gate, names of the experts it mixes)."""
    gates = {}
    for layer in model.layers:
        owned = getattr(layer, "gates", None)
        if hasattr(owned, "items") and hasattr(layer, "expert_names"):  # MixtureOfExperts, ExtractionLayer (Keras wraps the dict)
            for key, gate in owned.items():
                gates[f"{layer.name}/{gate.name}"] = (gate, layer.expert_names(key))
            continue
        for module in layer.submodules:
            if isinstance(module, ExpertGate):
                gates[f"{layer.name}/{module.name}"] = (module, [f"expert_{e}" for e in range(module.num_experts)])
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
    for gate, _ in gates.values():
        object.__setattr__(gate, "recorded", [])  # untracked by Keras (see ExpertGate)
    try:
        for start in range(0, rows, batch_size):
            model({name: values[start : start + batch_size] for name, values in columns.items()}, training=False)
        missing = [name for name, (gate, _) in gates.items() if not gate.recorded]
        if missing:
            raise RuntimeError(f"gates {missing} recorded nothing: expert_usage needs the model to run eagerly")
        weights = {name: np.concatenate(gate.recorded, axis=0) for name, (gate, _) in gates.items()}  # [N, E]
    finally:
        for gate, _ in gates.values():
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
    experts = {name: names for name, (_, names) in gates.items()}
    return ExpertUsage(mean=mean, entropy=entropy, collapsed=collapsed, experts=experts)


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

    Columns are the model's experts by name (see :meth:`ExpertUsage.matrix`); a
    blank cell is an expert that gate cannot use (e.g. another task's experts in PLE).

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
    names, columns, matrix = usage.matrix()
    width = len(columns)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.5 + 0.8 * width, 0.8 + 0.45 * len(names)))
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(width), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), [f"{n} (H={usage.entropy[n]:.2f})" for n in names])
    for (row, col), value in np.ndenumerate(matrix):
        if not np.isnan(value):
            ax.text(col, row, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 else "black")
    ax.set_title("Mean gate weight per expert")
    ax.figure.colorbar(image, ax=ax)
    return ax
