"""MGDA against the reference note's worked examples and an exact numpy (float64) min-norm solver."""

import itertools

import numpy as np
import pytest

from balancing_checks import assert_same_step, train_step
import tfmtl
from tfmtl._compat import tf
from tfmtl.balancing.mgda import MGDA, min_norm_weights


def _min_norm_numpy(gram):
    """argmin_{w in simplex} w^T gram w by enumerating supports: on each face, the KKT system of
    min w^T K_S w s.t. sum(w) = 1 (least squares); the best feasible point over all faces."""
    k = len(gram)
    best, best_value = None, np.inf
    for size in range(1, k + 1):
        for support in itertools.combinations(range(k), size):
            s = list(support)
            kkt = np.block([[2 * gram[np.ix_(s, s)], np.ones((size, 1))], [np.ones((1, size)), np.zeros((1, 1))]])
            solution = np.linalg.lstsq(kkt, np.r_[np.zeros(size), 1.0], rcond=None)[0][:size]
            if solution.min() < -1e-12 or abs(solution.sum() - 1) > 1e-9:
                continue
            w = np.zeros(k)
            w[s] = solution
            value = w @ gram @ w
            if value < best_value - 1e-15:
                best, best_value = w, value
    return best


def _balance(balancer, gradients, losses=None):
    gradients = np.asarray(gradients, np.float32)
    k = len(gradients)
    if not balancer.tasks:
        balancer.build([tfmtl.Task.binary(f"t{i}") for i in range(k)])
    losses = np.ones(k, np.float32) if losses is None else np.asarray(losses, np.float32)
    d = balancer.balance(gradients, losses).numpy()
    return d, balancer.task_weights().numpy()


@pytest.mark.parametrize(
    "gradients, weights, combined",
    [
        ([[1, 0], [0, 1]], [0.5, 0.5], [0.5, 0.5]),  # O
        ([[1, 0], [-3, 4]], [0.875, 0.125], [0.5, 0.5]),  # C: gamma = 7/8, d . g1 = d . g2
        ([[1, 0.5], [-0.5, 1]], [0.5, 0.5], [0.25, 0.75]),  # orthogonal, equal norms
        ([[1, 0], [0, 2], [1, 1]], [0.8, 0.2, 0.0], [0.8, 0.4]),  # T=3
        ([[1, 0], [0, 1], [-1, -1]], [1 / 3, 1 / 3, 1 / 3], [0.0, 0.0]),  # T=3, Pareto-stationary
    ],
    ids=["O", "C", "orthogonal", "T3", "T3-stationary"],
)
def test_worked_examples(gradients, weights, combined):
    d, w = _balance(MGDA(), gradients)
    np.testing.assert_allclose(w, weights, atol=1e-5)
    np.testing.assert_allclose(d, combined, atol=1e-5)
    np.testing.assert_allclose(w, _min_norm_numpy(np.array(gradients, float) @ np.array(gradients, float).T),
                               atol=1e-5)


def test_normalisations_weight_the_raw_gradients():
    conflicting = [[1, 0], [-3, 4]]
    d, w = _balance(MGDA(normalization="l2"), conflicting)  # unit vectors: w = [.5, .5]
    np.testing.assert_allclose(w, [0.5, 0.5], atol=1e-5)
    np.testing.assert_allclose(d, [-1.0, 2.0], atol=1e-5)  # official rule (LibMTL would give [0.2, 0.4])
    g = np.array(conflicting, float)
    losses = np.array([2.0, 0.5])
    for normalization, divisor in (("loss", losses), ("loss+", losses * np.linalg.norm(g, axis=1))):
        v = g / divisor[:, None]
        expected = _min_norm_numpy(v @ v.T)
        d, w = _balance(MGDA(normalization=normalization), g, losses)
        np.testing.assert_allclose(w, expected, atol=1e-5)
        np.testing.assert_allclose(d, g.T @ expected, atol=1e-5)


def test_two_task_clamps_are_the_references():
    # v1 . v2 >= v1 . v1: gamma = 0.999 (also when the two are identical); v1 . v2 >= v2 . v2: 0.001.
    for gradients, gamma in (([[1, 0], [2, 0]], 0.999), ([[2, 0], [1, 0]], 0.001), ([[1, 1], [1, 1]], 0.999),
                             ([[0, 0], [0, 0]], 0.999)):
        d, w = _balance(MGDA(), gradients)
        np.testing.assert_allclose(w, [gamma, 1 - gamma], atol=1e-6)
        np.testing.assert_allclose(d, np.array(gradients, float).T @ w, atol=1e-6)


# (4, 4, 1253) and (5, 2, 1018) are ill-conditioned: Frank-Wolfe with pairwise steps needed ~500 steps on them.
@pytest.mark.parametrize("k, p, seed", [(3, 6, 0), (4, 6, 1), (4, 7, 2), (5, 3, 3), (3, 2, 4), (4, 4, 1253),
                                        (5, 2, 1018)])
def test_random_problems_match_the_exact_solver(k, p, seed):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(k, p)) * rng.uniform(0.1, 5.0, size=(k, 1))
    expected = _min_norm_numpy(g @ g.T)
    d, w = _balance(MGDA(), g)
    assert abs(w.sum() - 1) < 1e-5 and w.min() >= 0
    np.testing.assert_allclose(d, g.T @ expected, atol=1e-3 * np.abs(g).max())  # the min-norm point is unique
    assert d @ d <= expected @ g @ g.T @ expected * (1 + 1e-4) + 1e-6
    if p >= k:  # full rank: unique weights
        np.testing.assert_allclose(w, expected, atol=1e-3)


def test_solver_stops_early_and_respects_max_iterations():
    g = np.random.default_rng(5).normal(size=(4, 6))
    gram = (g @ g.T).astype(np.float32)
    one_step = min_norm_weights(gram, max_iterations=1).numpy()
    assert np.abs(one_step - _min_norm_numpy(g @ g.T)).max() > 1e-2  # one step (two vertices) is not enough
    compiled = tf.function(lambda m: min_norm_weights(m, 250), jit_compile=True)
    np.testing.assert_allclose(compiled(gram).numpy(), min_norm_weights(gram).numpy(), atol=1e-5)


def test_bad_arguments_and_config():
    with pytest.raises(ValueError, match="MGDA: normalization must be one of"):
        MGDA(normalization="L2")
    with pytest.raises(ValueError, match="MGDA: max_iterations must be an integer >= 1"):
        MGDA(max_iterations=0)
    mgda = MGDA(normalization="loss+", max_iterations=30, layers=["bottom"])
    again = MGDA.from_config(mgda.get_config())
    assert again.get_config() == {"layers": ["bottom"], "normalization": "loss+", "max_iterations": 30}
    assert float(mgda.combine(tf.constant([0.5, 2.0]))) == 2.5  # weights act through balance only


@pytest.fixture(scope="module")
def eager_step():
    return train_step(MGDA(normalization="l2"))


def test_model_step_uses_mgda_on_the_shared_layer(eager_step):
    logs, grads, deltas, _, names, _ = eager_step
    assert all(np.isfinite(value) for value in logs.values())
    shared = [i for i, name in enumerate(names) if name == "bottom"]
    g = np.array([np.concatenate([task[i].ravel() for i in shared]) for task in grads], float)
    v = g / np.linalg.norm(g, axis=1, keepdims=True)
    w = _min_norm_numpy(v @ v.T)
    np.testing.assert_allclose([logs["a/weight"], logs["b/weight"]], w, atol=1e-4)
    np.testing.assert_allclose(np.concatenate([deltas[i].ravel() for i in shared]), g.T @ w, rtol=1e-3, atol=1e-6)
    for i, name in enumerate(names):  # heads: their own task's plain gradient
        if name in ("a", "b"):
            np.testing.assert_allclose(deltas[i], grads["ab".index(name)][i], rtol=1e-4, atol=1e-6)


def test_model_step_is_the_same_under_xla(eager_step):
    assert_same_step(eager_step, train_step(MGDA(normalization="l2"), jit_compile=True))
