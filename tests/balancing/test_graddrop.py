"""GradDrop against the worked example and a numpy reference of its masks, leak and draws."""

import numpy as np
import pytest

from balancing_checks import assert_same_step, built, train_step
import tfmtl
from tfmtl._compat import tf
from tfmtl.balancing.graddrop import GradDrop, sign_masks


def _numpy_masks(a, u):
    """LibMTL's rule in float64: purity P per unit, then keep the sign P picks against U (a tie drops)."""
    a = np.asarray(a, np.float64)
    purity = 0.5 * (1 + a.sum(0) / (np.abs(a).sum(0) + 1e-7))
    return (purity > u) * (a > 0) + (purity < u) * (a < 0)


def test_worked_example():
    a = np.array([[1.0, -2.0, 3.0], [1.0, 2.0, -1.0]], np.float32)
    masks = sign_masks(a, np.array([0.3, 0.3, 0.9], np.float32)).numpy()
    np.testing.assert_array_equal((a * masks).sum(0), [2.0, 2.0, -1.0])


def test_ties_and_zero_gradients_are_dropped():
    # purity exactly 0.5 against U = 0.5 drops both signs; a zero gradient is never kept
    a = np.array([[1.0, 0.0], [-1.0, 2.0]], np.float32)
    masks = sign_masks(a, np.array([0.5, 0.1], np.float32)).numpy()
    np.testing.assert_array_equal(masks, [[0.0, 0.0], [0.0, 1.0]])


@pytest.mark.parametrize("leak", [0.0, 0.3, 1.0])
def test_balance_draws_per_unit_and_step_against_numpy(leak):
    rng = np.random.default_rng(3)
    balancer = built(GradDrop(leak=leak, seed=5), k=3)
    for step in range(3):
        g = rng.normal(size=(3, 40)).astype(np.float32)
        u = tfmtl.balancing.counter_uniform(5, tf.constant(step, tf.int64), 40).numpy().astype(np.float64)
        factors = leak + (1 - leak) * _numpy_masks(g, u)
        d = balancer.balance(g, np.ones(3, np.float32)).numpy()
        np.testing.assert_allclose(d, (g * factors).sum(0), rtol=1e-6, atol=1e-6, err_msg=f"step {step}")
        np.testing.assert_allclose(balancer.task_weights().numpy(), factors.mean(1), rtol=1e-6)
        if leak < 1:  # random gradients conflict at some units: something is dropped
            assert 0 < factors.mean() < 1
    assert int(balancer.step.numpy()) == 3


def test_arguments_and_config():
    with pytest.raises(ValueError, match=r"GradDrop: leak must be in \[0, 1\], got 2"):
        GradDrop(leak=2)
    balancer = GradDrop.from_config(GradDrop(leak=0.25, seed=3, layers=["x"]).get_config())
    assert (balancer.leak, balancer.seed, balancer.layers) == (0.25, 3, ("x",))


def test_model_trains_one_step_at_the_parameters_with_and_without_xla():
    steps = [train_step(GradDrop(), jit_compile) for jit_compile in (False, True)]
    for step in steps:
        weights = step.balancer.task_weights().numpy()
        assert np.all((weights > 0) & (weights <= 1)), weights
        for index, name in enumerate("ab"):  # the heads move by their own plain gradient
            for grad, delta, layer in zip(step.grads[index], step.deltas, step.names):
                if layer == name:
                    np.testing.assert_allclose(delta, grad, rtol=1e-4, atol=1e-6)
    assert_same_step(*steps)
