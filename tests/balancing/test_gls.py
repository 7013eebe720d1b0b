"""GeometricLossStrategy: the geometric mean of the losses, and its effective weights, against numpy."""

import numpy as np
import pytest

from balancing_checks import (STATIC, built, model, problem, sgd_step, total_and_gradient)
from tfmtl.balancing import GeometricLossStrategy


def test_worked_example_total_and_effective_weights():
    balancer = built(GeometricLossStrategy())
    balancer.observe(np.array([4.0, 1.0], np.float32))
    total, gradient = total_and_gradient(balancer, [4.0, 1.0])
    assert total == pytest.approx(2.0, rel=1e-6)  # sqrt(4 * 1)
    np.testing.assert_allclose(balancer.task_weights().numpy(), [0.25, 1.0], rtol=1e-6)
    np.testing.assert_allclose(gradient, balancer.task_weights().numpy(), rtol=1e-6)
    np.testing.assert_allclose(total_and_gradient(balancer, [4.0, 1.0], "total")[1], [0.25, 1.0], rtol=1e-6)
    assert not np.allclose(balancer.task_weights().numpy(), [0.5, 0.125])  # LibMTL's logged value is not the weight


@pytest.mark.parametrize("k", [2, 3, 5])
def test_gradient_on_each_loss_is_the_logged_weight(k):
    losses = np.random.default_rng(k).uniform(0.05, 3.0, size=k).astype(np.float32)
    balancer = built(GeometricLossStrategy(), k)
    balancer.observe(losses)
    total, gradient = total_and_gradient(balancer, losses)
    geometric = np.prod(losses.astype(np.float64)) ** (1.0 / k)
    assert total == pytest.approx(geometric, rel=1e-5)
    np.testing.assert_allclose(balancer.task_weights().numpy(), geometric / (k * losses), rtol=1e-5)
    np.testing.assert_allclose(gradient, balancer.task_weights().numpy(), rtol=1e-5)
    # The weights observe() stores are the plain derivative of the geometric mean (combine() only pins them).
    np.testing.assert_allclose(total_and_gradient(balancer, losses, "total")[1], gradient, rtol=1e-5)


def test_a_zero_loss_gives_no_nan_and_no_weight():
    balancer = built(GeometricLossStrategy(), 3)
    losses = np.array([0.0, 0.5, 2.0], np.float32)
    balancer.observe(losses)
    total, gradient = total_and_gradient(balancer, losses)
    assert np.isfinite(total) and np.all(np.isfinite(gradient))
    assert total == pytest.approx((1e-12 * 0.5 * 2.0) ** (1 / 3), rel=1e-4)  # the zero is clipped at the floor
    np.testing.assert_allclose(gradient, balancer.task_weights().numpy(), rtol=1e-5)
    np.testing.assert_allclose(total_and_gradient(balancer, losses, "total")[1], gradient, rtol=1e-5)
    assert balancer.task_weights().numpy()[0] == 0.0


def test_floor_is_checked_and_kept_in_the_config():
    with pytest.raises(ValueError, match="floor must be > 0"):
        GeometricLossStrategy(floor=0.0)
    assert GeometricLossStrategy.from_config(GeometricLossStrategy(floor=1e-6).get_config()).floor == 1e-6


def test_train_step_applies_the_logged_weights_to_each_task():
    """With SGD(1), each head moves by (logged weight) x (its task's plain gradient); weights = L_GLS / (K L_i)."""
    x, y = problem(1)
    logs, weighted, check = sgd_step(model(1), GeometricLossStrategy(), x, y)
    geometric = np.sqrt(weighted.prod())
    assert logs["loss"] == pytest.approx(geometric, rel=1e-4)
    expected = STATIC * geometric / (2 * weighted)  # the static weight times GLS's
    np.testing.assert_allclose([logs["a/weight"], logs["b/weight"]], expected, rtol=1e-4)
    check(expected)
