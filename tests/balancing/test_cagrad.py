"""CAGrad against the reference note's worked examples and a float64 numpy grid-and-zoom solver of its inner problem."""

import itertools

import numpy as np
import pytest

from balancing_checks import assert_same_step, train_step
import tfmtl
from tfmtl._compat import tf
from tfmtl.balancing.cagrad import CAGrad, cagrad_weights


def _radius(gram, c):
    return c * np.sqrt(gram.mean() + 1e-8) + 1e-8


def _objective(w, gram, radius):
    """The inner objective for each row of w (float64)."""
    k = len(gram)
    return w @ gram @ np.full(k, 1.0 / k) + radius * np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", w, gram, w), 0) + 1e-8)


def _solve_numpy(gram, radius, n=None):
    """min over the simplex by brute force: every point of a simplex grid of step 1/n, then six rounds of a
    finer lattice (in the plane sum(w) = 1) around the best point, each 5 times finer."""
    k = len(gram)
    n = n or {2: 4000, 3: 300, 4: 50, 5: 20}[k]
    bars = np.array(list(itertools.combinations(range(n + k - 1), k - 1)))  # stars and bars
    edges = np.concatenate([np.full((len(bars), 1), -1), bars, np.full((len(bars), 1), n + k - 1)], 1)
    grid = (np.diff(edges, axis=1) - 1) / n
    best = grid[np.argmin(_objective(grid, gram, radius))]
    radius_of_search, m = 2.0 / n, {2: 401, 3: 151, 4: 31, 5: 13}[k]
    directions = np.eye(k)[:-1] - np.eye(k)[-1]  # [k-1, k], each sums to 0
    for _ in range(6):
        steps = np.array(list(itertools.product(np.linspace(-radius_of_search, radius_of_search, m), repeat=k - 1)))
        points = best + steps @ directions
        points = points[points.min(axis=1) >= 0]
        best = points[np.argmin(_objective(points, gram, radius))]
        radius_of_search /= 5
    return best, _objective(best[None], gram, radius)[0]


def _cagrad_numpy(g, c, rescale, w):
    """The update d and the coefficients of the g_i in it, for inner weights w."""
    k = len(g)
    radius = _radius(g @ g.T, c)
    g_w = g.T @ w
    lam = radius / (np.linalg.norm(g_w) + 1e-8)
    divisor = (1.0, 1.0 + c**2, 1.0 + c)[rescale]
    return (g.mean(0) + lam * g_w) / divisor, (1.0 / k + lam * w) / divisor


def _balance(balancer, gradients):
    gradients = np.asarray(gradients, np.float32)
    k = len(gradients)
    balancer.build([tfmtl.Task.binary(f"t{i}") for i in range(k)])
    d = balancer.balance(gradients, np.ones(k, np.float32)).numpy()
    return d, balancer.task_weights().numpy()


def test_worked_examples():
    d, weights = _balance(CAGrad(c=0.5), [[1, 0], [0, 1]])  # O: w = [.5, .5], d = 1.5 g0 / 1.25
    np.testing.assert_allclose(d, [0.6, 0.6], atol=1e-5)
    np.testing.assert_allclose(weights, [0.6, 0.6], atol=1e-5)
    d, weights = _balance(CAGrad(c=0.5), [[1, 0], [-3, 4]])  # C: w = [1, 0]
    np.testing.assert_allclose(d, [0.094427, 1.6], atol=1e-5)
    np.testing.assert_allclose(weights, (np.array([0.5, 0.5]) + 0.5 * np.sqrt(5) * np.array([1.0, 0.0])) / 1.25,
                               atol=1e-5)
    np.testing.assert_allclose(np.array([[1, 0], [-3, 4]]).T @ weights, d, atol=1e-5)  # the logged coefficients


def test_rescale_modes_and_c_zero():
    g = np.array([[1.0, 0.0], [-3.0, 4.0]])
    raw = np.array([0.118034, 2.0])
    for rescale, divisor in ((0, 1.0), (1, 1.25), (2, 1.5)):
        d, _ = _balance(CAGrad(c=0.5, rescale=rescale), g)
        np.testing.assert_allclose(d, raw / divisor, atol=1e-5)
    d, weights = _balance(CAGrad(c=0.0), g)  # plain averaging
    np.testing.assert_allclose(d, g.mean(0), atol=1e-5)
    np.testing.assert_allclose(weights, [0.5, 0.5], atol=1e-5)


def _problem(k, p, seed, kind):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(k, p)) * rng.uniform(0.2, 5.0, size=(k, 1))
    if kind == "conflict":  # task 1 against task 0: the optimum sits on a face of the simplex
        g[1] = -0.7 * g[0] + 0.3 * g[1]
    elif kind == "parallel":
        g[1] = 0.999 * g[0] + 0.01 * g[1]
    elif kind == "inside":  # task 2 nearly the mean of tasks 0 and 1: a nearly flat direction
        g[2] = 0.5 * g[0] + 0.5 * g[1] + 0.001 * g[2]
    return g


@pytest.mark.parametrize(
    "k, p, seed, c, kind",
    [(2, 6, 0, 0.5, "random"), (3, 6, 1, 0.5, "random"), (3, 6, 2, 0.4, "conflict"), (4, 6, 3, 0.5, "random"),
     (4, 6, 4, 0.8, "conflict"), (3, 6, 5, 2.0, "conflict"), (5, 6, 6, 0.5, "conflict"), (3, 4, 7, 0.6, "parallel"),
     (4, 4, 5041, 0.5, "conflict"), (4, 4, 5143, 2.0, "inside")],
)
def test_inner_solver_objective_matches_a_brute_force_reference(k, p, seed, c, kind):
    g = _problem(k, p, seed, kind)
    gram = (g @ g.T).astype(np.float32).astype(float)  # the Gram the solver sees
    radius = _radius(gram, c)
    w_ref, f_ref = _solve_numpy(gram, radius)
    d, weights = _balance(CAGrad(c=c, rescale=0), g)
    lam = weights.sum() - 1.0  # rescale=0: weights = 1/K + lambda w, and sum(w) = 1
    w = (weights.astype(float) - 1.0 / k) / lam
    assert abs(w.sum() - 1) < 1e-5 and w.min() >= -1e-6
    f = _objective(w[None], gram, radius)[0]
    assert abs(f - f_ref) <= 1e-3 * abs(f_ref), (f, f_ref)  # measured: at most 1.8e-4 ("inside"), else < 1e-7
    assert f <= f_ref + 2e-4 * abs(f_ref)
    expected_d, expected_weights = _cagrad_numpy(g, c, 0, w)
    np.testing.assert_allclose(d, expected_d, rtol=1e-4, atol=1e-5 * np.abs(expected_d).max())
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-4, atol=1e-6)
    # The update's worst task improvement is at least that of plain averaging (the conflict-averse goal).
    assert (g @ d).min() >= (g @ g.mean(0)).min() - 1e-5 * np.abs(g @ g.mean(0)).max()


def test_near_pareto_stationary_problems_are_solved_to_the_float32_gram_precision():
    # Three gradients in a plane around the origin: the optimum has g_w ~ 0, where the Gram's float32 rounding
    # (it is not even positive semi-definite any more) dominates; the excess stays below ~1e-4 of ||g0||^2.
    for seed, c, kind in ((5019, 2.0, "random"), (5091, 2.0, "conflict"), (5106, 1.0, "conflict")):
        g = _problem(3, 2, seed, kind)
        gram = (g @ g.T).astype(np.float32).astype(float)
        radius = _radius(gram, c)
        _, f_ref = _solve_numpy(gram, radius)
        w = cagrad_weights(gram.astype(np.float32), np.float32(radius)).numpy().astype(float)
        assert _objective(w[None], gram, radius)[0] <= f_ref + 3e-4 * gram.mean()  # (sometimes below the grid's)


def test_zero_and_identical_gradients_give_no_nan():
    d, weights = _balance(CAGrad(), np.zeros((3, 5)))
    assert np.all(d == 0) and np.all(np.isfinite(weights))
    d, weights = _balance(CAGrad(), [[1.0, 2.0], [1.0, 2.0], [0.0, 0.0]])
    assert np.all(np.isfinite(d)) and np.all(np.isfinite(weights))


def test_bad_arguments_and_config():
    with pytest.raises(ValueError, match="CAGrad: c must be >= 0, got -1"):
        CAGrad(c=-1)
    with pytest.raises(ValueError, match="CAGrad: rescale must be 0, 1 or 2"):
        CAGrad(rescale=3)
    with pytest.raises(ValueError, match="CAGrad: max_iterations must be an integer >= 1"):
        CAGrad(max_iterations=0.5)
    cagrad = CAGrad(c=0.4, rescale=2, max_iterations=50)
    assert CAGrad.from_config(cagrad.get_config()).get_config() == {
        "layers": None, "c": 0.4, "rescale": 2, "max_iterations": 50,
    }
    assert float(cagrad.combine(tf.constant([0.5, 2.0]))) == 2.5  # weights act through balance only


@pytest.fixture(scope="module")
def eager_step():
    return train_step(CAGrad())


def test_model_step_uses_cagrad_on_the_shared_layer(eager_step):
    logs, grads, deltas, _, names, _ = eager_step
    assert all(np.isfinite(value) for value in logs.values())
    shared = [i for i, name in enumerate(names) if name == "bottom"]
    g = np.array([np.concatenate([task[i].ravel() for i in shared]) for task in grads], float)
    w, _ = _solve_numpy(g @ g.T, _radius(g @ g.T, 0.5))
    d, weights = _cagrad_numpy(g, 0.5, 1, w)
    np.testing.assert_allclose([logs["a/weight"], logs["b/weight"]], weights, rtol=1e-3)
    np.testing.assert_allclose(np.concatenate([deltas[i].ravel() for i in shared]), d, rtol=1e-3, atol=1e-6)
    for i, name in enumerate(names):  # heads: their own task's plain gradient
        if name in ("a", "b"):
            np.testing.assert_allclose(deltas[i], grads["ab".index(name)][i], rtol=1e-4, atol=1e-6)


def test_model_step_is_the_same_under_xla(eager_step):
    assert_same_step(eager_step, train_step(CAGrad(), jit_compile=True))
