"""IMTLL: learned loss scales exp(s) trained by the model's optimizer, against numpy."""

import numpy as np
import pytest

from balancing_checks import (STATIC, built, model, problem, sgd_step, total_and_gradient)
from tfmtl._compat import tf
from tfmtl.balancing import IMTLL


def test_total_gradients_on_losses_and_on_s():
    balancer = built(IMTLL(), 3)
    s = np.array([0.3, -0.7, 0.0], np.float32)
    balancer.log_scales.assign(s)
    losses = np.array([2.0, 0.5, 1.2], np.float32)
    total, gradient = total_and_gradient(balancer, losses)
    assert total == pytest.approx(float(np.sum(np.exp(s) * losses - s)), rel=1e-6)
    np.testing.assert_allclose(balancer.task_weights().numpy(), np.exp(s), rtol=1e-6)
    np.testing.assert_allclose(gradient, balancer.task_weights().numpy(), rtol=1e-6)
    with tf.GradientTape() as tape:
        total = balancer.combine(losses)
    np.testing.assert_allclose(tape.gradient(total, balancer.log_scales).numpy(), np.exp(s) * losses - 1, rtol=1e-6)


def test_worked_example_and_fixed_point():
    balancer = built(IMTLL())
    losses = np.array([2.0, 0.5], np.float32)
    with tf.GradientTape() as tape:
        total = balancer.combine(losses)
    np.testing.assert_allclose(tape.gradient(total, balancer.log_scales).numpy(), [1.0, -0.5])
    balancer.log_scales.assign(-np.log(losses))  # s* = -log L: every scaled loss is 1, no gradient on s
    with tf.GradientTape() as tape:
        total = balancer.combine(losses)
    np.testing.assert_allclose(tape.gradient(total, balancer.log_scales).numpy(), [0.0, 0.0], atol=1e-6)
    assert balancer.trainable_variables == (balancer.log_scales,)


def test_optimizer_trains_s_and_the_model_step_uses_its_start_value():
    x, y = problem(2)
    balancer = IMTLL()
    logs, weighted, check = sgd_step(model(2), balancer, x, y)
    check(STATIC * 1.0)  # the model's step used exp(0) = 1
    s = balancer.log_scales.numpy()
    np.testing.assert_allclose(s, -(weighted - 1.0), rtol=1e-4)  # SGD(1): s - (exp(s) L - 1) at s = 0
    np.testing.assert_allclose([logs["a/weight"], logs["b/weight"]], STATIC * np.exp(s), rtol=1e-5)
    assert logs["loss"] == pytest.approx(weighted.sum(), rel=1e-4)  # sum(exp(0) L - 0)
