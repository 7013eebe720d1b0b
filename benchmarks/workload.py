"""The training-throughput workload, in numpy only (shared with the peer-library scripts).

26 categorical features with vocabularies log-spaced from 10 to 100,000 ids
(Zipf-distributed ids, already 0..n-1), 13 log-normal numeric features, and 2 binary
tasks drawn from a hidden logistic model whose probabilities (the oracle) are
returned too.
"""

from __future__ import annotations

import numpy as np

NUM_CATEGORICAL, NUM_NUMERIC = 26, 13
VOCAB_SIZES = np.round(np.logspace(1, 5, NUM_CATEGORICAL)).astype(int)  # 10 .. 100,000
TASKS = ("ctr", "cvr")


def generate(rows: int, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(features, labels, oracle probabilities)`` for ``rows`` examples."""
    rng = np.random.default_rng(seed)
    features, logit_a, logit_b = {}, np.zeros(rows), np.zeros(rows)
    for index, size in enumerate(VOCAB_SIZES):
        ids = np.minimum(rng.zipf(1.3, size=rows) - 1, size - 1).astype(np.int64)  # heavy-tailed id frequency
        features[f"c{index}"] = ids
        if index % 3 == 0:  # a third of the features carry signal, shared or task-specific
            effect = rng.normal(scale=0.5, size=size)
            logit_a += effect[ids]
            logit_b += (0.6 * effect + 0.8 * rng.normal(scale=0.5, size=size))[ids]
    for index in range(NUM_NUMERIC):
        values = rng.lognormal(sigma=1.0, size=rows).astype(np.float32)
        features[f"n{index}"] = values
        weight = rng.normal(scale=0.3)
        logit_a += weight * np.log(values)
        logit_b += rng.normal(scale=0.3) * np.log(values)
    p_a = 1 / (1 + np.exp(-(logit_a - 1.5)))
    p_b = 1 / (1 + np.exp(-(logit_b - 2.5)))
    labels = {"ctr": (rng.random(rows) < p_a).astype(np.float32), "cvr": (rng.random(rows) < p_b).astype(np.float32)}
    return features, labels, {"ctr": p_a, "cvr": p_b}


def standardized_numerics(train: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> np.ndarray:
    """``[rows, 13]`` numerics of ``other`` standardized with ``train``'s mean and std (for peer models)."""
    stack = lambda f: np.stack([f[f"n{i}"] for i in range(NUM_NUMERIC)], axis=1)  # noqa: E731
    reference = stack(train)
    return ((stack(other) - reference.mean(0)) / reference.std(0)).astype(np.float32)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Exact ROC AUC (Mann-Whitney, ties count 1/2).

    The same as ``tfmtl.data.roc_auc``, repeated here because the peer scripts run in
    environments without tfmtl or TensorFlow.
    """
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    unique, start = np.unique(sorted_scores, return_index=True)
    counts = np.diff(np.append(start, len(scores)))
    average = start + (counts + 1) / 2  # 1-based average rank of each tie group
    ranks[order] = np.repeat(average, counts)
    positives = labels > 0.5
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
