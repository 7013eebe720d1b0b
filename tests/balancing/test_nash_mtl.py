"""Nash-MTL's in-graph approximation against the worked examples and a float64 solution of alpha * (K alpha) = 1."""

import numpy as np
import pytest

from balancing_checks import assert_same_step, train_step
import tfmtl
from tfmtl._compat import tf
from tfmtl.balancing.nash_mtl import NashMTL, nash_weights


def _nash_numpy(gram, sweeps=20000):
    """alpha > 0 with alpha_i (gram alpha)_i = 1 by exact cyclic coordinate minimisation of
    alpha^T gram alpha / 2 - sum log alpha (each coordinate: the positive root of a quadratic), float64."""
    k = len(gram)
    alpha = np.ones(k)
    for _ in range(sweeps):
        for i in range(k):
            b = gram[i] @ alpha - gram[i, i] * alpha[i]
            alpha[i] = (-b + np.sqrt(b * b + 4 * gram[i, i])) / (2 * gram[i, i])
        if np.abs(alpha * (gram @ alpha) - 1).max() < 1e-13:
            break
    assert np.abs(alpha * (gram @ alpha) - 1).max() < 1e-10  # the reference itself converged
    return alpha


def _balance(balancer, gradients):
    gradients = np.asarray(gradients, np.float32)
    k = len(gradients)
    if not balancer.tasks:
        balancer.build([tfmtl.Task.binary(f"t{i}") for i in range(k)])
    d = balancer.balance(gradients, np.ones(k, np.float32)).numpy()
    return d, balancer.task_weights().numpy()


def test_worked_examples():
    d, weights = _balance(NashMTL(max_norm=0.0), [[1, 0], [0, 1]])  # O
    np.testing.assert_allclose(weights, [1.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(d, [1.0, 1.0], atol=1e-5)
    d, weights = _balance(NashMTL(), [[1, 0], [0, 1]])  # clipped to norm 1
    np.testing.assert_allclose(d, [0.707107, 0.707107], atol=1e-5)
    np.testing.assert_allclose(weights, [0.707107, 0.707107], atol=1e-5)
    nash = NashMTL(max_norm=0.0)
    d, weights = _balance(nash, [[1, 0], [-3, 4]])  # C: alpha = [5, 1] / sqrt(10)
    np.testing.assert_allclose(weights, [1.581139, 0.316228], atol=1e-5)
    np.testing.assert_allclose(nash.alpha.numpy(), [1.581139, 0.316228], atol=1e-5)
    np.testing.assert_allclose(d, [0.632456, 1.264911], atol=1e-5)
    np.testing.assert_allclose(d @ np.array([[1, 0], [-3, 4]]).T, 1 / np.array([1.581139, 0.316228]), rtol=1e-5)
    nash = NashMTL()
    d, weights = _balance(nash, [[1, 0], [-3, 4]])
    np.testing.assert_allclose(d, [0.447214, 0.894427], atol=1e-5)
    np.testing.assert_allclose(weights, np.array([1.581139, 0.316228]) / np.sqrt(2), atol=1e-5)  # coef * alpha
    np.testing.assert_allclose(nash.alpha.numpy(), [1.581139, 0.316228], atol=1e-5)  # the state is unclipped


@pytest.mark.parametrize("k, seed, spread", [(3, 0, 1.0), (3, 1, 1.0), (3, 2, 10.0), (3, 3, 1e3), (4, 4, 10.0)])
def test_random_problems_match_a_float64_solution(k, seed, spread):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(k, 8)) * np.exp(rng.uniform(0, np.log(spread), size=(k, 1)))
    gram = g @ g.T
    expected = _nash_numpy(gram)
    d, weights = _balance(NashMTL(max_norm=0.0), g)
    np.testing.assert_allclose(weights, expected, rtol=1e-4)  # measured: within 6e-7
    alpha = weights.astype(float)
    assert np.abs(alpha * (gram @ alpha) - 1).max() < 1e-4
    np.testing.assert_allclose(d, g.T @ expected, rtol=1e-4, atol=1e-5 * np.abs(g.T @ expected).max())
    np.testing.assert_allclose(d @ d, k, rtol=1e-4)  # ||d||^2 = K at the solution


def test_singular_gram_gives_no_nan():
    # Two identical gradients: singular, but alpha_1 = alpha_2 = 1 / (sqrt(2) ||g||) solves it.
    d, weights = _balance(NashMTL(max_norm=0.0), [[3.0, 4.0], [3.0, 4.0]])
    np.testing.assert_allclose(weights, [1 / (5 * np.sqrt(2))] * 2, rtol=1e-5)
    np.testing.assert_allclose(d, np.array([3.0, 4.0]) * 2 / (5 * np.sqrt(2)), rtol=1e-5)
    # No solution (a zero gradient, opposite gradients, all zero): the previous alpha (ones at first) is kept.
    for gradients in ([[0.0, 0.0], [1.0, 2.0]], [[1.0, 2.0], [-1.0, -2.0]], [[0.0, 0.0], [0.0, 0.0]],
                      [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]):
        nash = NashMTL()
        d, weights = _balance(nash, gradients)
        g = np.array(gradients)
        assert np.all(np.isfinite(d)) and np.all(np.isfinite(weights))
        np.testing.assert_allclose(nash.alpha.numpy(), np.ones(len(g)))
        expected = g.sum(0) * min(1.0, 1.0 / (np.linalg.norm(g.sum(0)) + 1e-6))
        np.testing.assert_allclose(d, expected, atol=1e-6)
    # After a solved step, an unsolvable one keeps that step's alpha.
    nash = NashMTL(max_norm=0.0)
    _balance(nash, [[1, 0], [-3, 4]])
    _, weights = _balance(nash, [[0.0, 0.0], [1.0, 2.0]])
    np.testing.assert_allclose(weights, [1.581139, 0.316228], atol=1e-5)


def test_update_every_reuses_alpha_and_warm_start_changes_nothing():
    nash = NashMTL(max_norm=0.0, update_every=2)
    conflicting, orthogonal = [[1, 0], [-3, 4]], [[1, 0], [0, 1]]
    _, first = _balance(nash, conflicting)
    d, second = _balance(nash, orthogonal)  # step 1: alpha reused
    np.testing.assert_allclose(second, first)
    np.testing.assert_allclose(d, np.array(orthogonal).T @ first, atol=1e-6)
    _, third = _balance(nash, orthogonal)  # step 2: recomputed (from a warm start)
    np.testing.assert_allclose(third, [1.0, 1.0], atol=1e-5)
    assert int(nash.step.numpy()) == 3
    compiled = tf.function(lambda m, a: nash_weights(m, a), jit_compile=True)
    gram = np.array([[4.0, -1.0, 0.5], [-1.0, 1.0, 0.2], [0.5, 0.2, 2.0]], np.float32)
    for start in ([1.0, 1.0, 1.0], [0.3, 2.0, 0.01]):
        start = np.array(start, np.float32)
        np.testing.assert_allclose(compiled(gram, start).numpy(), _nash_numpy(gram.astype(float)), rtol=1e-5)
        np.testing.assert_allclose(nash_weights(gram, start).numpy(), _nash_numpy(gram.astype(float)), rtol=1e-5)


def test_bad_arguments_and_config():
    with pytest.raises(ValueError, match="NashMTL: max_norm must be >= 0"):
        NashMTL(max_norm=-1.0)
    with pytest.raises(ValueError, match="NashMTL: update_every must be an integer >= 1"):
        NashMTL(update_every=0)
    with pytest.raises(ValueError, match="NashMTL: max_iterations must be an integer >= 1"):
        NashMTL(max_iterations=2.5)
    nash = NashMTL(max_norm=2.0, update_every=3, max_iterations=10)
    assert NashMTL.from_config(nash.get_config()).get_config() == {
        "layers": None, "max_norm": 2.0, "update_every": 3, "max_iterations": 10,
    }
    assert float(nash.combine(tf.constant([0.5, 2.0]))) == 2.5  # weights act through balance only


@pytest.fixture(scope="module")
def eager_step():
    return train_step(NashMTL())


def test_model_step_uses_nash_mtl_on_the_shared_layer(eager_step):
    logs, grads, deltas, _, names, _ = eager_step
    assert all(np.isfinite(value) for value in logs.values())
    shared = [i for i, name in enumerate(names) if name == "bottom"]
    g = np.array([np.concatenate([task[i].ravel() for i in shared]) for task in grads], float)
    alpha = _nash_numpy(g @ g.T)
    d = g.T @ alpha
    coefficient = min(1.0, 1.0 / (np.linalg.norm(d) + 1e-6))
    np.testing.assert_allclose([logs["a/weight"], logs["b/weight"]], alpha * coefficient, rtol=1e-3)
    np.testing.assert_allclose(np.concatenate([deltas[i].ravel() for i in shared]), d * coefficient, rtol=1e-3,
                               atol=1e-6)
    for i, name in enumerate(names):  # heads: their own task's plain gradient
        if name in ("a", "b"):
            np.testing.assert_allclose(deltas[i], grads["ab".index(name)][i], rtol=1e-4, atol=1e-6)


def test_model_step_is_the_same_under_xla(eager_step):
    assert_same_step(eager_step, train_step(NashMTL(), jit_compile=True))
