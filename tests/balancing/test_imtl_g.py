"""IMTL-G against the paper's own formula in numpy (float64), its defining property and degenerate Gram matrices."""

import numpy as np

from balancing_checks import assert_same_step, train_step
import tfmtl
from tfmtl.balancing.imtl_g import IMTLG, imtl_g_weights

ATOL = 1e-5


def _balancer(k):
    balancer = IMTLG()
    balancer.build([tfmtl.Task.binary(f"t{i}") for i in range(k)])
    return balancer


def _run(gradients):
    gradients = np.asarray(gradients, np.float32)
    balancer = _balancer(len(gradients))
    d = balancer.balance(gradients, np.zeros(len(gradients), np.float32)).numpy()
    return d, balancer.task_weights().numpy()


def _paper_alpha(gradients):
    """The paper's form: D rows g_1 - g_i, U rows u_1 - u_i (i >= 2), alpha_{2:K} = g_1 U^T (D U^T)^-1."""
    g = np.asarray(gradients, np.float64)
    u = g / np.linalg.norm(g, axis=1, keepdims=True)
    d_mat, u_mat = g[:1] - g[1:], u[:1] - u[1:]
    rest = g[0] @ u_mat.T @ np.linalg.inv(d_mat @ u_mat.T)
    return np.concatenate([[1.0 - rest.sum()], rest])


def test_orthogonal_pair():
    d, alpha = _run([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(alpha, [0.5, 0.5], atol=ATOL)
    np.testing.assert_allclose(d, [0.5, 0.5], atol=ATOL)


def test_conflicting_pair_worked_example():
    d, alpha = _run([[1.0, 0.0], [-3.0, 4.0]])
    np.testing.assert_allclose(alpha, [5 / 6, 1 / 6], atol=ATOL)
    np.testing.assert_allclose(d, [1 / 3, 2 / 3], atol=ATOL)
    np.testing.assert_allclose(alpha, _paper_alpha([[1.0, 0.0], [-3.0, 4.0]]), atol=ATOL)


def test_random_three_tasks_equal_projections():
    rng = np.random.default_rng(7)
    g = (rng.normal(size=(3, 9)) * np.array([[0.5], [2.0], [4.0]])).astype(np.float32)
    g[2] -= 1.5 * g[0]  # a conflicting pair
    d, alpha = _run(g)
    g64 = g.astype(np.float64)
    np.testing.assert_allclose(alpha, _paper_alpha(g64), atol=ATOL)
    np.testing.assert_allclose(alpha.sum(), 1.0, atol=ATOL)
    np.testing.assert_allclose(d, alpha.astype(np.float64) @ g64, rtol=1e-5, atol=ATOL)
    projections = (g64 / np.linalg.norm(g64, axis=1, keepdims=True)) @ d
    np.testing.assert_allclose(projections, projections[0], rtol=1e-4)
    assert projections[0] > 0


def test_duplicate_gradient_gives_the_pair_update_without_nan():
    g1, g2 = [1.0, 0.0, 2.0], [-3.0, 4.0, 0.0]
    d_pair, _ = _run([g1, g2])
    d, alpha = _run([g1, g2, g1])  # singular Gram: a pseudo-inverse, no NaN
    assert np.all(np.isfinite(d)) and np.all(np.isfinite(alpha))
    np.testing.assert_allclose(d, d_pair, atol=ATOL)
    np.testing.assert_allclose(alpha[0], alpha[2], atol=ATOL)  # the duplicate's share is split evenly
    u = np.array([g1, g2, g1]) / np.linalg.norm([g1, g2, g1], axis=1, keepdims=True)
    np.testing.assert_allclose(u @ d, (u @ d)[0], rtol=1e-4)


def test_zero_gradients():
    d, alpha = _run([[1.0, 2.0], [0.0, 0.0], [-2.0, 1.0]])  # a task with no gradient gets no share
    assert np.all(np.isfinite(d))
    np.testing.assert_allclose(alpha[1], 0.0, atol=ATOL)
    np.testing.assert_allclose(alpha, [0.5, 0.0, 0.5], atol=ATOL)
    d, alpha = _run(np.zeros([3, 4]))
    np.testing.assert_array_equal(d, 0.0)
    np.testing.assert_array_equal(alpha, 0.0)  # |sum v| < 1e-12: alpha = 0


def test_helper_and_task_specific_parameters():
    np.testing.assert_allclose(imtl_g_weights(np.array([[1.0, 0.0], [-3.0, 4.0]], np.float32)), [5 / 6, 1 / 6],
                               atol=ATOL)
    balancer = _balancer(2)
    balancer.balance(np.array([[1.0, 0.0], [-3.0, 4.0]], np.float32), np.zeros(2, np.float32))
    assert float(balancer.combine(np.array([2.0, 3.0], np.float32))) == 5.0  # plain sum for the towers
    assert IMTLG.from_config(IMTLG(layers=["bottom"]).get_config()).layers == ("bottom",)


def test_model_trains_one_step_with_and_without_xla():
    steps = [train_step(IMTLG(), jit_compile, learning_rate=0.1) for jit_compile in (False, True)]
    for step in steps:
        assert all(np.isfinite(value) for value in step.logs.values()), step.logs
        weights = step.balancer.task_weights().numpy()
        assert np.all(np.isfinite(weights)) and abs(weights.sum() - 1.0) < 1e-4
    assert_same_step(*steps)
