"""GradVac against the worked two-task numbers and a numpy transcription of LibMTL's loop (vectors, not the Gram
matrix) that visits the tasks in the order read from the same counter_uniform draw."""

import numpy as np
import pytest

from balancing_checks import assert_same_step, train_step
import tfmtl
from tfmtl.balancing.base import counter_uniform
from tfmtl.balancing.gradvac import GradVac

ATOL = 1e-5
C = np.array([[1.0, 0.0], [-3.0, 4.0]], np.float32)


def _built(k, **kwargs):
    balancer = GradVac(**kwargs)
    balancer.build([tfmtl.Task.binary(f"t{i}") for i in range(k)])
    return balancer


def _orders(seed, step, k):
    """Row i: the order in which task i visits the tasks (the same draw as GradVac's)."""
    draw = counter_uniform(seed, np.int64(step), k * k).numpy().reshape(k, k)
    return np.argsort(draw, axis=1, kind="stable")


def _reference_step(g, rho_hat, orders, beta, always_update=False):
    """LibMTL GradVac.backward, group_type 0, in float64 (plus always_update: the EMA for every pair)."""
    g = np.asarray(g, np.float64)
    rho_hat = np.array(rho_hat, np.float64)
    pc = g.copy()
    for i in range(len(g)):
        for j in orders[i]:
            if j == i:
                continue
            rho = pc[i] @ g[j] / (np.linalg.norm(pc[i]) * np.linalg.norm(g[j]) + 1e-8)
            target = rho_hat[i, j]
            if rho < target:
                w = np.linalg.norm(pc[i]) * (target * np.sqrt(1 - rho**2) - rho * np.sqrt(1 - target**2)) / (
                    np.linalg.norm(g[j]) * np.sqrt(1 - target**2) + 1e-8)
                pc[i] += g[j] * w
            if rho < target or always_update:
                rho_hat[i, j] = (1 - beta) * target + beta * rho
    return pc.sum(axis=0), rho_hat


def test_orthogonal_pair_is_unchanged():
    balancer = _built(2)
    d = balancer.balance(np.eye(2, dtype=np.float32), np.zeros(2, np.float32)).numpy()
    np.testing.assert_allclose(d, [1.0, 1.0], atol=ATOL)
    np.testing.assert_array_equal(balancer.target.numpy(), 0.0)
    np.testing.assert_allclose(balancer.task_weights().numpy(), [1.0, 1.0], atol=ATOL)


def test_conflicting_pair_worked_example_two_steps():
    balancer = _built(2)
    d = balancer.balance(C, np.zeros(2, np.float32)).numpy()
    np.testing.assert_allclose(d, [0.64, 4.48], atol=ATOL)
    np.testing.assert_allclose(balancer.target.numpy(), [[0.0, -0.3], [-0.3, 0.0]], atol=ATOL)
    # d = g~_1 + g~_2 = (g_1 + 0.12 g_2) + (g_2 + 3 g_1): coefficients 4 and 1.12
    np.testing.assert_allclose(balancer.task_weights().numpy(), [4.0, 1.12], atol=ATOL)
    d = balancer.balance(C, np.zeros(2, np.float32)).numpy()
    np.testing.assert_allclose(d, [-0.466989, 4.278729], atol=ATOL)
    np.testing.assert_allclose(balancer.target.numpy(), [[0.0, -0.45], [-0.45, 0.0]], atol=ATOL)
    np.testing.assert_allclose(balancer.task_weights().numpy(), [1 + 1.742058, 1 + 0.069682], atol=ATOL)
    assert int(balancer.step.numpy()) == 2


@pytest.mark.parametrize("always_update", [False, True])
def test_random_three_tasks_three_steps(always_update):
    rng = np.random.default_rng(11)
    base = rng.normal(size=(3, 6)) * np.array([[1.0], [3.0], [0.5]])
    base[1] -= 2.0 * base[0]  # conflicts between 0 and 1, and more
    seed, beta = 5, 0.3
    balancer = _built(3, beta=beta, seed=seed, always_update=always_update)
    rho_hat = np.zeros([3, 3])
    order_matters = False
    for step in range(3):
        g = (base + 0.3 * rng.normal(size=base.shape)).astype(np.float32)
        orders = _orders(seed, step, 3)
        want_d, want_rho = _reference_step(g, rho_hat, orders, beta, always_update)
        other_d, _ = _reference_step(g, rho_hat, orders[:, ::-1], beta, always_update)
        order_matters |= not np.allclose(want_d, other_d, atol=1e-3)
        d = balancer.balance(g, np.zeros(3, np.float32)).numpy()
        np.testing.assert_allclose(d, want_d, rtol=1e-5, atol=ATOL, err_msg=f"step {step}")
        np.testing.assert_allclose(balancer.target.numpy(), want_rho, atol=ATOL, err_msg=f"step {step}")
        np.testing.assert_allclose(balancer.task_weights().numpy() @ g.astype(np.float64), want_d, rtol=1e-5,
                                   atol=ATOL)  # the logged weights are d's coefficients on the g_j
        rho_hat = want_rho
    assert order_matters  # the problem tells the visiting orders apart
    if not always_update:
        assert np.all(rho_hat <= 0) and np.any(rho_hat < 0)  # LibMTL: rho^ only moves down
    else:
        assert np.any(rho_hat > 0)  # the moving average of every pair's cosine


def test_zero_gradient_is_skipped():
    balancer = _built(3)
    for _ in range(2):  # the second step has negative targets
        g = np.array([[1.0, 0.0], [0.0, 0.0], [-3.0, 4.0]], np.float32)
        d = balancer.balance(g, np.zeros(3, np.float32)).numpy()
        weights = balancer.task_weights().numpy()
        assert np.all(np.isfinite(d)) and np.all(np.abs(weights) < 10), weights
    np.testing.assert_allclose(d, [-0.466989, 4.278729], atol=ATOL)  # as the pair without the zero task
    d = _built(2).balance(np.zeros([2, 3], np.float32), np.zeros(2, np.float32)).numpy()
    np.testing.assert_array_equal(d, 0.0)


def test_arguments_config_and_plain_tower_loss():
    for beta in (-0.1, 1.5):
        with pytest.raises(ValueError, match=f"GradVac: beta must be in \\[0, 1\\], got {beta}"):
            GradVac(beta=beta)
    balancer = GradVac.from_config(GradVac(beta=0.2, seed=3, always_update=True, layers=["x"]).get_config())
    assert (balancer.beta, balancer.seed, balancer.always_update, balancer.layers) == (0.2, 3, True, ("x",))
    balancer.build([tfmtl.Task.binary("a"), tfmtl.Task.binary("b")])
    balancer.balance(C, np.zeros(2, np.float32))
    assert float(balancer.combine(np.array([2.0, 3.0], np.float32))) == 5.0  # plain sum for the towers


def test_model_trains_one_step_with_and_without_xla():
    steps = [train_step(GradVac(), jit_compile, learning_rate=0.1) for jit_compile in (False, True)]
    for step in steps:
        assert all(np.isfinite(value) for value in step.logs.values()), step.logs
        assert np.all(np.isfinite(step.balancer.task_weights().numpy()))
        assert int(step.balancer.step.numpy()) == 1
    assert_same_step(*steps)
