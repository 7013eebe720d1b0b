"""SmoothTchebycheff: warm-up, nadir epoch and smooth maximum, against numpy; state through model.save."""

import numpy as np
import pytest

from balancing_checks import (STATIC, built, model, problem, sgd_step, total_and_gradient)
from tfmtl._compat import keras
from tfmtl.balancing import SmoothTchebycheff


def _with_nadir(nadir, mu):
    """A built STCH (warm-up 0) whose nadir is the mean of the one epoch it has seen."""
    balancer = built(SmoothTchebycheff(mu=mu, warmup_epochs=0), len(nadir))
    balancer.observe(np.array(nadir, np.float32))
    balancer.on_epoch_end()
    return balancer


def _numpy_stch(losses, nadir, mu):
    losses, nadir = np.asarray(losses, np.float64), np.asarray(nadir, np.float64)
    scaled = np.log(losses / nadir + 1e-20) / mu
    top = scaled.max()
    total = len(losses) * mu * (top + np.log(np.exp(scaled - top).sum()))
    share = np.exp(scaled - top) / np.exp(scaled - top).sum()
    return total, len(losses) * share / losses


@pytest.mark.parametrize("mu, total, weights", [(1.0, 1.832581, [0.8, 0.8]), (0.5, 1.446919, [0.941176, 0.235294])])
def test_worked_example(mu, total, weights):
    balancer = _with_nadir([1.0, 1.0], mu)
    losses = np.array([2.0, 0.5], np.float32)
    balancer.observe(losses)
    value, gradient = total_and_gradient(balancer, losses)
    assert value == pytest.approx(total, abs=1e-5)
    np.testing.assert_allclose(balancer.task_weights().numpy(), weights, atol=1e-5)
    np.testing.assert_allclose(gradient, weights, atol=1e-5)
    np.testing.assert_allclose(total_and_gradient(balancer, losses, "total")[1], weights, atol=1e-5)


@pytest.mark.parametrize("mu", [0.01, 0.3, 1.0, 4.0])
def test_gradient_on_each_loss_is_the_logged_weight(mu):
    rng = np.random.default_rng(int(mu * 100))
    nadir = rng.uniform(0.2, 2.0, size=3).astype(np.float32)
    losses = rng.uniform(0.05, 3.0, size=3).astype(np.float32)
    balancer = _with_nadir(nadir, mu)
    balancer.observe(losses)
    value, gradient = total_and_gradient(balancer, losses)
    total, weights = _numpy_stch(losses, nadir, mu)
    assert np.isfinite(value) and value == pytest.approx(total, rel=1e-5, abs=1e-5)  # mu = 0.01: exp(l/mu) ~ e^500
    np.testing.assert_allclose(balancer.task_weights().numpy(), weights, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(gradient, weights, rtol=1e-4, atol=1e-7)
    # The weights observe() stores are the plain derivative of the total (combine() only pins them).
    np.testing.assert_allclose(total_and_gradient(balancer, losses, "total")[1], gradient, rtol=1e-4, atol=1e-7)


def test_warmup_then_nadir_epoch_then_stch():
    balancer = built(SmoothTchebycheff(mu=1.0, warmup_epochs=2))
    losses = np.array([2.0, 0.5], np.float32)
    for epoch in range(2):  # e < W: log-sum loss, nothing collected
        balancer.observe(losses)
        value, gradient = total_and_gradient(balancer, losses)
        assert value == pytest.approx(np.log(2.0) + np.log(0.5), abs=1e-6)
        np.testing.assert_allclose(balancer.task_weights().numpy(), [0.5, 2.0], rtol=1e-6)
        np.testing.assert_allclose(gradient, [0.5, 2.0], rtol=1e-6)
        np.testing.assert_allclose(total_and_gradient(balancer, losses, "total")[1], [0.5, 2.0], rtol=1e-6)
        assert float(balancer.steps.numpy()) == 0.0
        balancer.on_epoch_end()
    for step in ([1.0, 2.0], [3.0, 4.0]):  # e = W: still the log-sum loss, and the nadir is collected
        balancer.observe(np.array(step, np.float32))
        value, gradient = total_and_gradient(balancer, step)
        assert value == pytest.approx(np.log(step).sum(), abs=1e-6)
        np.testing.assert_allclose(gradient, 1 / np.array(step), rtol=1e-6)
        np.testing.assert_allclose(total_and_gradient(balancer, step, "total")[1], 1 / np.array(step), rtol=1e-6)
    assert not bool(balancer.ready.numpy())
    balancer.on_epoch_end()
    assert bool(balancer.ready.numpy()) and int(balancer.epochs.numpy()) == 3
    np.testing.assert_allclose(balancer.nadir.numpy(), [2.0, 3.0])
    balancer.observe(losses)  # e > W: STCH with the fixed nadir
    value, gradient = total_and_gradient(balancer, losses)
    total, weights = _numpy_stch(losses, [2.0, 3.0], 1.0)
    assert value == pytest.approx(total, abs=1e-5)
    np.testing.assert_allclose(gradient, weights, rtol=1e-5)
    np.testing.assert_allclose(total_and_gradient(balancer, losses, "total")[1], weights, rtol=1e-5)
    np.testing.assert_allclose(balancer.task_weights().numpy(), weights, rtol=1e-5)
    balancer.observe(np.array([9.0, 9.0], np.float32))
    balancer.on_epoch_end()
    np.testing.assert_allclose(balancer.nadir.numpy(), [2.0, 3.0])  # fixed once


def test_arguments_are_checked():
    for kwargs in ({"mu": 0.0}, {"warmup_epochs": -1}, {"warmup_epochs": 1.5}):
        with pytest.raises(ValueError, match="SmoothTchebycheff"):
            SmoothTchebycheff(**kwargs)
    assert SmoothTchebycheff().get_config() == {"mu": 1.0, "warmup_epochs": 4}  # LibMTL's defaults


def test_warmup_train_step_weights_each_task_by_its_inverse_loss():
    x, y = problem(3)
    logs, weighted, check = sgd_step(model(3), SmoothTchebycheff(), x, y)
    assert logs["loss"] == pytest.approx(np.log(weighted).sum(), rel=1e-4)
    expected = STATIC / weighted  # = 1 / the raw loss
    np.testing.assert_allclose([logs["a/weight"], logs["b/weight"]], expected, rtol=1e-4)
    check(expected)


def test_fit_fixes_the_nadir_after_epoch_w_and_saves_it(tmp_path):
    x, y = problem(4)
    net = model(4)
    balancer = SmoothTchebycheff(mu=0.5, warmup_epochs=1)
    net.compile(optimizer=keras.optimizers.Adam(0.01), balancer=balancer)
    history = net.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0).history
    assert bool(balancer.ready.numpy()) and int(balancer.epochs.numpy()) == 3
    # The nadir: epoch 1's mean (over its 4 steps) of the statically weighted losses.
    np.testing.assert_allclose(balancer.nadir.numpy(), STATIC * [history["a/loss"][1], history["b/loss"][1]],
                               rtol=1e-5)
    for task in "ab":
        assert np.all(np.isfinite(history[f"{task}/weight"]))
    logs = net.train_on_batch(x, y, return_dict=True)
    weighted = STATIC * [logs["a/loss"], logs["b/loss"]]
    total, weights = _numpy_stch(weighted, balancer.nadir.numpy(), 0.5)
    assert logs["loss"] == pytest.approx(total, rel=1e-4)
    np.testing.assert_allclose([logs["a/weight"], logs["b/weight"]], STATIC * weights, rtol=1e-4)

    path = tmp_path / "stch.keras"
    net.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.balancer) is SmoothTchebycheff and loaded.balancer.get_config() == balancer.get_config()
    for name in ("nadir", "ready", "epochs", "loss_sums", "steps", "weights"):
        np.testing.assert_array_equal(getattr(loaded.balancer, name).numpy(), getattr(balancer, name).numpy())
