"""DB-MTL against the worked example, a numpy multi-step reference and one model step computed by hand."""

import numpy as np
import pytest

from balancing_checks import assert_same_step, built, model, problem, train_step
import tfmtl
from tfmtl._compat import keras
from tfmtl.balancing.db_mtl import DBMTL


def _reference(steps, beta=0.9, sigma=0.0):
    """LibMTL's DB_MTL in float64: per step the update d and the logged weights alpha / L."""
    averages, out = None, []
    for t, (g, losses) in enumerate(steps, start=1):
        h = np.asarray(g, np.float64) / (np.asarray(losses, np.float64)[:, None] + 1e-8)
        b = beta / t**sigma
        averages = (1 - b) * h if averages is None else b * averages + (1 - b) * h
        norms = np.linalg.norm(averages, axis=1)
        alpha = norms.max() / (norms + 1e-8)
        out.append((alpha @ averages, (1 - b) * alpha / (np.asarray(losses, np.float64) + 1e-8)))
    return out


def _db(k=2, size=2, **kwargs):
    balancer = built(DBMTL(**kwargs), k)
    balancer.build_shared(size)
    return balancer


def test_worked_example_two_steps():
    balancer = _db()
    g, losses = np.array([[2.0, 0.0], [-1.5, 2.0]], np.float32), np.array([2.0, 0.5], np.float32)
    np.testing.assert_allclose(balancer.balance(g, losses).numpy(), [0.2, 0.4], atol=1e-6)
    np.testing.assert_allclose(balancer.task_weights().numpy(), [0.25, 0.2], rtol=1e-6)  # 0.1 [5, 1] / L
    np.testing.assert_allclose(balancer.balance(g, losses).numpy(), [0.38, 0.76], atol=1e-6)


@pytest.mark.parametrize("beta, sigma", [(0.9, 0.0), (0.5, 0.5)])
def test_three_tasks_four_steps_against_numpy(beta, sigma):
    rng = np.random.default_rng(8)
    steps = [((rng.normal(size=(3, 7)) * [[0.1], [3.0], [1.0]]).astype(np.float32),
              rng.uniform(0.1, 4.0, size=3).astype(np.float32)) for _ in range(4)]
    balancer = _db(3, 10, beta=beta, beta_sigma=sigma)  # a buffer larger than P: the first 7 columns are used
    for index, ((g, losses), (want_d, want_w)) in enumerate(zip(steps, _reference(steps, beta, sigma))):
        np.testing.assert_allclose(balancer.balance(g, losses).numpy(), want_d, rtol=1e-5, atol=1e-6,
                                   err_msg=f"step {index}")
        np.testing.assert_allclose(balancer.task_weights().numpy(), want_w, rtol=1e-5, err_msg=f"step {index}")
    np.testing.assert_array_equal(balancer.averages.numpy()[:, 7:], 0.0)


def test_static_weights_cancel_and_a_task_without_labels_or_a_skipped_step_waits():
    rng = np.random.default_rng(2)
    g, losses = rng.normal(size=(2, 5)).astype(np.float32), np.array([0.7, 2.0], np.float32)
    plain, weighted = _db(size=5), _db(size=5)
    scale = np.array([[1.0], [0.5]], np.float32)  # static weights multiply both the gradient and the loss
    np.testing.assert_allclose(weighted.balance(g * scale, losses * scale[:, 0]).numpy(),
                               plain.balance(g, losses).numpy(), rtol=1e-5)
    before, weights = plain.averages.numpy().copy(), plain.task_weights().numpy().copy()
    plain.balance(np.stack([rng.normal(size=5), np.zeros(5)]).astype(np.float32), np.array([0.9, 0.0], np.float32))
    np.testing.assert_array_equal(plain.averages.numpy()[1], before[1])  # task 1 had no labels: kept
    assert plain.task_weights().numpy()[1] == weights[1] and np.all(plain.averages.numpy()[0] != before[0])
    step = float(plain.step.numpy())
    plain.balance(np.zeros((2, 5), np.float32), np.zeros(2, np.float32))  # an overflow step (finite_or_zero)
    np.testing.assert_array_equal(plain.averages.numpy()[1], before[1])
    assert float(plain.step.numpy()) == step and np.all(np.isfinite(plain.task_weights().numpy()))


def test_the_moving_averages_survive_save_and_load(tmp_path):
    x, y = problem(3)
    net = model()
    net.compile(optimizer="sgd", balancer=DBMTL())
    net.train_on_batch(x, y)
    net.train_on_batch(x, y)
    averages = net.balancer.averages.numpy()
    assert np.any(averages != 0)
    net.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.balancer.averages.numpy(), averages)
    assert float(loaded.balancer.step.numpy()) == 2.0


def test_towers_train_on_the_log_losses_and_the_shared_update_is_the_scaled_average():
    step = train_step(DBMTL())
    losses = np.array([step.logs["a/loss"], step.logs["b/loss"]])
    bottom = [i for i, name in enumerate(step.names) if name == "bottom"]
    # the shared update at step 1: sum_i alpha_i 0.1 g_i / L_i over the bottom's variables
    h = np.stack([np.concatenate([step.grads[t][i].ravel() for i in bottom]) / losses[t] for t in range(2)])
    norms = np.linalg.norm(0.1 * h, axis=1)
    expected = (norms.max() / norms) @ (0.1 * h)
    np.testing.assert_allclose(np.concatenate([step.deltas[i].ravel() for i in bottom]), expected,
                               rtol=1e-4, atol=1e-6)
    for index, name in enumerate("ab"):  # each head: the gradient of log L, its plain gradient over L
        for grad, delta, layer in zip(step.grads[index], step.deltas, step.names):
            if layer == name:
                np.testing.assert_allclose(delta, grad / losses[index], rtol=1e-4, atol=1e-6)


def test_same_step_with_and_without_xla():
    assert_same_step(*[train_step(DBMTL(), jit_compile) for jit_compile in (False, True)])


def test_refuses_the_representation_and_a_model_of_another_size():
    net = model()
    with pytest.raises(ValueError, match="DBMTL takes the gradients at the parameters only, not "
                                         "gradients_at='representation'"):
        net.compile(balancer=DBMTL(), gradients_at="representation")
    balancer = DBMTL()
    net.compile(balancer=balancer)
    net.compile(balancer=balancer)  # the same model again: state kept
    with pytest.raises(ValueError, match="already in use by a model with 30 candidate shared parameters"):
        tfmtl.models.shared_bottom(net.schema, net.tasks, bottom_units=(8,)).compile(balancer=balancer)
    with pytest.raises(ValueError, match=r"DBMTL: beta must be in \[0, 1\), got 1"):
        DBMTL(beta=1)
    with pytest.raises(ValueError, match="DBMTL: beta_sigma must be >= 0"):
        DBMTL(beta_sigma=-1)
