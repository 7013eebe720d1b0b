"""FAMO: effective weights, the logits' Adam step after the update, against numpy; one train step end to end."""

import numpy as np
import pytest

from balancing_checks import (STATIC, built, model, problem, raw_losses, sgd_step, total_and_gradient)
from tfmtl.balancing import FAMO


def _softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


def _numpy_famo(pairs, learning_rate, gamma):
    """The logits after one Adam step (PyTorch's, coupled L2) per ``(losses, updated losses)`` pair."""
    xi, m, v = (np.zeros(len(pairs[0][0])) for _ in range(3))
    for t, (before, after) in enumerate(pairs, start=1):
        z = _softmax(xi)
        delta = np.log(np.asarray(before, np.float64) + 1e-8) - np.log(np.asarray(after, np.float64) + 1e-8)
        grad = z * (delta - z @ delta) + gamma * xi
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        xi = xi - learning_rate * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return xi


def test_worked_example_weights_and_first_logit_step():
    balancer = built(FAMO(gamma=0.0))
    losses = np.array([2.0, 0.5], np.float32)
    balancer.observe(losses)
    np.testing.assert_allclose(balancer.task_weights().numpy(), [0.2, 0.8], rtol=1e-6)  # z = 1/2, c = 1.25
    _, gradient = total_and_gradient(balancer, losses)
    np.testing.assert_allclose(gradient, [0.2, 0.8], rtol=1e-6)
    np.testing.assert_allclose(total_and_gradient(balancer, losses, "total")[1], [0.2, 0.8], rtol=1e-6)
    balancer.after_update(losses, np.array([1.8, 0.5], np.float32))
    np.testing.assert_allclose(balancer.logits.numpy(), [-0.025, 0.025], atol=1e-6)
    np.testing.assert_allclose(_softmax(balancer.logits.numpy()), [0.487503, 0.512497], atol=1e-6)
    balancer.observe(losses)  # the next step's weights come from the new logits
    z = np.array([0.487503, 0.512497])
    np.testing.assert_allclose(balancer.task_weights().numpy(), z / ((z / losses).sum() * losses), rtol=1e-5)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_gradient_on_each_loss_is_the_logged_weight(k):
    rng = np.random.default_rng(k)
    balancer = built(FAMO(), k)
    balancer.logits.assign(rng.normal(size=k).astype(np.float32))
    losses = rng.uniform(0.05, 3.0, size=k).astype(np.float32)
    balancer.observe(losses)
    total, gradient = total_and_gradient(balancer, losses)
    z = _softmax(balancer.logits.numpy().astype(np.float64))
    d = losses.astype(np.float64) + 1e-8
    c = (z / d).sum()
    assert total == pytest.approx((z * np.log(d)).sum() / c, rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(balancer.task_weights().numpy(), z / (c * d), rtol=1e-5)
    np.testing.assert_allclose(gradient, balancer.task_weights().numpy(), rtol=1e-5)
    # The weights observe() stores are the plain derivative of the total (combine() only pins them).
    np.testing.assert_allclose(total_and_gradient(balancer, losses, "total")[1], gradient, rtol=1e-5)
    assert balancer.task_weights().numpy().sum() == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("gamma", [0.0, 1e-3, 0.5])
def test_three_adam_steps_equal_numpy(gamma):
    pairs = [([2.0, 0.5, 1.0], [1.8, 0.5, 0.9]), ([1.8, 0.45, 0.9], [1.7, 0.3, 0.88]),
             ([1.7, 0.3, 0.88], [1.5, 0.29, 0.7])]
    balancer = built(FAMO(learning_rate=0.1, gamma=gamma), 3)
    for before, after in pairs:
        balancer.observe(np.array(before, np.float32))
        balancer.after_update(np.array(before, np.float32), np.array(after, np.float32))
    np.testing.assert_allclose(balancer.logits.numpy(), _numpy_famo(pairs, 0.1, gamma), rtol=1e-5, atol=1e-6)
    assert float(balancer.updates.numpy()) == 3.0
    if gamma == 0.5:  # the decay pulls the logits toward 0 from the second step on
        assert np.abs(balancer.logits.numpy() - _numpy_famo(pairs, 0.1, 0.0)).max() > 1e-3


def test_arguments_are_checked_and_defaults_are_libmtls():
    with pytest.raises(ValueError, match="FAMO"):
        FAMO(learning_rate=0.0)
    with pytest.raises(ValueError, match="FAMO"):
        FAMO(gamma=-1.0)
    assert FAMO().get_config() == {"learning_rate": 0.025, "gamma": 1e-3}
    assert FAMO.needs_updated_losses


def test_train_step_weights_the_tasks_and_moves_the_logits_from_the_updated_losses():
    x, y = problem(5)
    net = model(5)
    balancer = FAMO()
    logs, weighted, check = sgd_step(net, balancer, x, y)
    z = np.array([0.5, 0.5])
    expected = z / ((z / weighted).sum() * weighted)
    np.testing.assert_allclose([logs["a/weight"], logs["b/weight"]], STATIC * expected, rtol=1e-4)
    check(STATIC * expected)
    # after_update ran: one Adam step from the same batch's losses after the model's update.
    _, after = raw_losses(net, x, y)
    updated = STATIC * np.array([float(after["a"]), float(after["b"])])
    logits = balancer.logits.numpy()
    assert float(balancer.updates.numpy()) == 1.0 and np.abs(logits).min() > 0.02
    np.testing.assert_allclose(logits, _numpy_famo([(weighted, updated)], 0.025, 1e-3), rtol=1e-4)
