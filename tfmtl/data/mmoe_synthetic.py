"""The MMoE paper's synthetic two-task regression data with a controlled task correlation.

Ma et al. (KDD 2018, §3.3): two unit directions u1 ⟂ u2 in R^d, weights
``w1 = c u1`` and ``w2 = c (p u1 + sqrt(1 - p^2) u2)`` (so ``cos(w1, w2) = p``),
``x ~ N(0, I_d)`` and for each task
``y_k = w_k.x + sum_i sin(alpha_i w_k.x + beta_i) + eps_k``, the same alpha and
beta for both tasks. The sines make the label correlation smaller than p, which
is why the paper varies p and measures the label correlation.

Constants the paper leaves out follow ``shared/PAPERS.md`` §2.4 (our calibration,
which reproduces the shape of the paper's Fig. 2): d = 100, c = 1, m = 10 sines,
``alpha ~ N(0, 8^2)``, ``beta ~ N(0, 1)``, noise std 0.1. The directions, alpha and
beta are drawn once per ``seed`` and kept for every p, so only p changes between
correlations. The ``"ple"`` preset uses the PLE paper's constants (``alpha ~ N(0, 1)``,
d = 512).
"""

from __future__ import annotations

import numpy as np

from tfmtl.data.dataset import MultiTaskData
from tfmtl.features.schema import Schema
from tfmtl.features.dense_vector import DenseVector
from tfmtl.tasks.task import Task

PRESETS = {
    "mmoe": {"input_dim": 100, "scale": 1.0, "num_sines": 10, "alpha_std": 8.0},
    "ple": {"input_dim": 512, "scale": 1.0, "num_sines": 10, "alpha_std": 1.0},
}


def mmoe_synthetic(
    num_rows: int = 10_000,
    *,
    correlation: float = 0.5,
    preset: str = "mmoe",
    noise_std: float = 0.1,
    alpha_std: float | None = None,
    seed: int = 0,
    rows_seed: int | None = None,
) -> MultiTaskData:
    """Generate the MMoE paper's synthetic data (tasks ``y1`` and ``y2``, regression).

    Args:
      num_rows: Rows to generate.
      correlation: p, the cosine between the two tasks' weight vectors, in [-1, 1].
      preset: ``"mmoe"`` or ``"ple"`` constants (see the module docstring).
      noise_std: Standard deviation of each label's Gaussian noise.
      alpha_std: Standard deviation of the sines' frequencies alpha (default: the
        preset's, 8 or 1). Higher makes the labels harder to learn and less correlated.
      seed: Draws the directions, alpha and beta (the "task pair"), the same for every p.
      rows_seed: Draws x and the noise; default: derived from ``seed`` (so the
        rows are the same for every p too, and only the labels' relation changes).

    Returns:
      :class:`MultiTaskData` with one ``[rows, d]`` dense-vector feature ``x``, labels ``y1``
      and ``y2``, and the noise-free targets as ``oracle``.

    Example:

    >>> import numpy as np, tfmtl
    >>> same = tfmtl.data.mmoe_synthetic(2000, correlation=1.0, seed=0)
    >>> bool(np.corrcoef(same.labels["y1"], same.labels["y2"])[0, 1] > 0.99)
    True
    """
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    if not -1.0 <= correlation <= 1.0:
        raise ValueError(f"correlation must be in [-1, 1], got {correlation}")
    d, c, m, preset_alpha_std = (PRESETS[preset][k] for k in ("input_dim", "scale", "num_sines", "alpha_std"))
    if alpha_std is None:
        alpha_std = preset_alpha_std
    elif not (isinstance(alpha_std, (int, float)) and alpha_std >= 0):
        raise ValueError(f"alpha_std must be a number >= 0, got {alpha_std!r}")
    pair = np.random.default_rng([seed, 0])
    directions, _ = np.linalg.qr(pair.normal(size=(d, 2)))  # orthonormal columns u1, u2
    u1, u2 = directions[:, 0], directions[:, 1]
    alpha = pair.normal(scale=alpha_std, size=m)
    beta = pair.normal(size=m)
    w1 = c * u1
    w2 = c * (correlation * u1 + np.sqrt(1.0 - correlation**2) * u2)
    rows = np.random.default_rng([seed if rows_seed is None else rows_seed, 1])
    x = rows.normal(size=(num_rows, d))
    targets = {}
    for name, w in (("y1", w1), ("y2", w2)):
        z = x @ w  # [N]
        targets[name] = z + np.sin(np.outer(z, alpha) + beta).sum(axis=1)
    labels = {name: (t + rows.normal(scale=noise_std, size=num_rows)).astype(np.float32) for name, t in targets.items()}
    schema = Schema([DenseVector("x", dim=d)])  # x ~ N(0, I): already standardized
    return MultiTaskData(
        features={"x": x.astype(np.float32)},
        labels=labels,
        schema=schema,
        tasks=(Task.regression("y1", tower_units=(8,)), Task.regression("y2", tower_units=(8,))),
        oracle={name: t.astype(np.float32) for name, t in targets.items()},
    )
