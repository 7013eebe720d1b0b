"""PE-LTR (ParetoWeights) against the reference note's worked examples and a numpy copy of TorchEasyRec's steps."""

import numpy as np
import pytest

from balancing_checks import assert_same_step, model, train_step
import tfmtl
from tfmtl._compat import tf
from tfmtl.balancing.pe_ltr import ParetoWeights, pareto_weights
from tfmtl.balancing.simplex import project_to_simplex


def _project_numpy(v, total):
    """argmin ||x - v|| over {x >= 0, sum x = total}: bisection on the shift theta of max(v - theta, 0), float64."""
    low, high = v.min() - total, v.max()
    for _ in range(200):
        theta = (low + high) / 2
        if np.maximum(v - theta, 0).sum() > total:
            low = theta
        else:
            high = theta
    return np.maximum(v - (low + high) / 2, 0)


def _pareto_numpy(g, c):
    """TorchEasyRec's pe_mtl_loss weights in float64: the relaxed KKT least squares, then the projection."""
    k = len(g)
    gram = g @ g.T
    m = np.block([[gram, np.ones((k, 1))], [np.ones((1, k)), np.zeros((1, 1))]])
    z = np.r_[-gram @ c, 1 - c.sum()]
    if np.linalg.matrix_rank(m) == k + 1:
        relaxed = (np.linalg.inv(m.T @ m) @ m @ z)[:k]  # the reference's formula
    else:  # singular (the reference's inv fails): the minimum-norm least-squares solution
        relaxed = np.linalg.lstsq(m, z, rcond=None)[0][:k]
    return _project_numpy(relaxed, 1 - c.sum()) + c


def _balance(balancer, gradients):
    gradients = np.asarray(gradients, np.float32)
    k = len(gradients)
    balancer.build([tfmtl.Task.binary(f"t{i}") for i in range(k)])
    d = balancer.balance(gradients, np.ones(k, np.float32)).numpy()
    return d, balancer.task_weights().numpy()


@pytest.mark.parametrize(
    "gradients, floors, weights",
    [
        ([[1, 0], [0, 1]], None, [0.5, 0.5]),  # O
        ([[1, 0], [0, 1]], [0.2, 0.2], [0.5, 0.5]),
        ([[1, 0], [-3, 4]], None, [0.875, 0.125]),  # C: MGDA's weights
        ([[1, 0], [-3, 4]], [0.2, 0.2], [0.8, 0.2]),  # C: the floor on task 2 is active
        ([[1, 0], [-3, 4]], [0.0, 0.4], [0.6, 0.4]),
    ],
)
def test_worked_examples(gradients, floors, weights):
    d, w = _balance(ParetoWeights(min_weights=floors), gradients)
    np.testing.assert_allclose(w, weights, atol=1e-5)
    np.testing.assert_allclose(d, np.array(gradients, float).T @ np.array(weights), atol=1e-5)
    np.testing.assert_allclose(w, _pareto_numpy(np.array(gradients, float), np.array(floors or [0.0, 0.0])),
                               atol=1e-5)


@pytest.mark.parametrize("k, seed", [(3, 0), (3, 1), (4, 2), (5, 3)])
def test_random_problems_match_the_reference_steps(k, seed):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(k, 7)) * rng.uniform(0.2, 5.0, size=(k, 1))
    floors = rng.dirichlet(np.ones(k)) * 0.6
    for c in (np.zeros(k), floors):
        expected = _pareto_numpy(g, c)
        d, w = _balance(ParetoWeights(min_weights=list(c)), g)
        np.testing.assert_allclose(w, expected, atol=1e-5)
        assert np.all(w >= c - 1e-7) and abs(w.sum() - 1) < 1e-5
        np.testing.assert_allclose(d, g.T @ expected, atol=1e-5 * np.abs(g).max())


def test_singular_and_zero_gradients_give_no_nan():
    for gradients, floors in (([[3.0, 4.0], [3.0, 4.0]], [0.1, 0.0]), ([[0.0, 0.0], [1.0, 2.0]], [0.0, 0.0]),
                              ([[0.0, 0.0], [0.0, 0.0]], [0.2, 0.3]), ([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], None)):
        g = np.array(gradients)
        c = np.zeros(len(g)) if floors is None else np.array(floors)
        d, w = _balance(ParetoWeights(min_weights=floors), g)
        assert np.all(np.isfinite(d)) and np.all(np.isfinite(w))
        np.testing.assert_allclose(w, _pareto_numpy(g, c), atol=1e-5)
        assert np.all(w >= c - 1e-7) and abs(w.sum() - 1) < 1e-5
    # A zero gradient: all the weight it may take goes to it (the min-norm point is 0).
    _, w = _balance(ParetoWeights(min_weights=[0.0, 0.3]), [[0.0, 0.0], [1.0, 2.0]])
    np.testing.assert_allclose(w, [0.7, 0.3], atol=1e-5)


def test_simplex_projection_is_exact():
    rng = np.random.default_rng(7)
    values = rng.normal(size=(20, 5)) * rng.uniform(0.01, 10, size=(20, 1))
    for total in (1.0, 0.35):
        projected = project_to_simplex(values.astype(np.float32), total).numpy()
        expected = np.array([_project_numpy(v, total) for v in values])
        np.testing.assert_allclose(projected, expected, atol=1e-5)
    compiled = tf.function(lambda v: project_to_simplex(v, 0.5), jit_compile=True)
    np.testing.assert_allclose(compiled(values.astype(np.float32)).numpy(),
                               np.array([_project_numpy(v, 0.5) for v in values]), atol=1e-5)
    double = project_to_simplex(values, 1.0)
    assert double.dtype == tf.float64
    compiled = tf.function(lambda m, c: pareto_weights(m, c), jit_compile=True)
    g = rng.normal(size=(3, 4))
    gram, c = (g @ g.T).astype(np.float32), np.array([0.1, 0.2, 0.0], np.float32)
    np.testing.assert_allclose(compiled(gram, c).numpy(), _pareto_numpy(g, c.astype(float)), atol=1e-5)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"ParetoWeights: min_weights must all be >= 0"):
        ParetoWeights(min_weights=[-0.1, 0.2])
    with pytest.raises(ValueError, match=r"ParetoWeights: min_weights must sum to less than 1"):
        ParetoWeights(min_weights=[0.5, 0.5])
    pareto = ParetoWeights(min_weights=[0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match=r"ParetoWeights: min_weights has 3 values but the model has 2 tasks"):
        pareto.build([tfmtl.Task.binary("a"), tfmtl.Task.binary("b")])
    pareto.build([tfmtl.Task.binary(name) for name in "abc"])  # still usable: nothing was built
    assert len(pareto.tasks) == 3
    with pytest.raises(ValueError, match=r"ParetoWeights: min_weights has 3 values but the model has 2 tasks"):
        model(0, b_weight=1.0).compile(optimizer="sgd", balancer=ParetoWeights(min_weights=[0.1, 0.1, 0.1]))
    config = ParetoWeights(min_weights=(0.2, 0.1), layers=["bottom"]).get_config()
    assert config == {"layers": ["bottom"], "min_weights": [0.2, 0.1]}
    assert ParetoWeights.from_config(config).get_config() == config
    assert ParetoWeights().get_config() == {"layers": None, "min_weights": None}
    assert float(ParetoWeights().combine(tf.constant([0.5, 2.0]))) == 2.5  # weights act through balance only


FLOORS = [0.3, 0.3]  # the tiny model's "b" gradient dominates: without a floor "a" would take ~all the weight


@pytest.fixture(scope="module")
def eager_step():
    return train_step(ParetoWeights(min_weights=FLOORS))


def test_model_step_uses_pareto_weights_on_the_shared_layer(eager_step):
    logs, grads, deltas, _, names, _ = eager_step
    assert all(np.isfinite(value) for value in logs.values())
    shared = [i for i, name in enumerate(names) if name == "bottom"]
    g = np.array([np.concatenate([task[i].ravel() for i in shared]) for task in grads], float)
    w = _pareto_numpy(g, np.array(FLOORS))
    np.testing.assert_allclose([logs["a/weight"], logs["b/weight"]], w, atol=1e-4)
    np.testing.assert_allclose(np.concatenate([deltas[i].ravel() for i in shared]), g.T @ w, rtol=1e-3, atol=1e-6)
    for i, name in enumerate(names):  # heads: their own task's plain gradient
        if name in ("a", "b"):
            np.testing.assert_allclose(deltas[i], grads["ab".index(name)][i], rtol=1e-4, atol=1e-6)


def test_model_step_is_the_same_under_xla(eager_step):
    assert_same_step(eager_step, train_step(ParetoWeights(min_weights=FLOORS), jit_compile=True))
