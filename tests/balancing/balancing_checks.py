"""Shared by the balancing strategies' test files: gradients of ``combine``, a tiny two-task model, one SGD step."""

from typing import Any, NamedTuple

import numpy as np

import tfmtl
from tfmtl._compat import keras, tf
from tfmtl.features import Numeric, Schema

N = 64
STATIC = np.array([1.0, 0.5])  # the static loss weights of tasks a and b in model()


def built(balancer, k=2):
    """``balancer`` built for ``k`` binary tasks."""
    balancer.build([tfmtl.Task.binary(f"t{i}") for i in range(k)])
    return balancer


def total_and_gradient(balancer, losses, method="combine"):
    """``balancer.<method>(losses)`` (``combine`` or ``total``) and its gradient with respect to the ``[K]`` losses."""
    losses = tf.constant(losses, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(losses)
        total = getattr(balancer, method)(losses)
    return float(total), tape.gradient(total, losses).numpy()


def problem(seed=0):
    """64 rows of four numeric features; a binary task ``a`` and a regression task ``b`` on the same signal."""
    rng = np.random.default_rng(seed)
    x = {f"x{i}": rng.normal(size=N).astype(np.float32) for i in range(4)}
    signal = x["x0"] + 0.5 * x["x1"]
    y = {"a": (signal > 0).astype(np.float32), "b": (-3.0 * signal + rng.normal(size=N)).astype(np.float32)}
    return x, y


def model(seed=0, b_weight=0.5):
    """A shared bottom of 4 units with linear heads ``a`` (loss weight 1) and ``b`` (loss weight ``b_weight``)."""
    keras.utils.set_random_seed(seed)
    schema = Schema([Numeric(f"x{i}", mean=0.0, variance=1.0) for i in range(4)])
    tasks = [tfmtl.Task.binary("a", tower_units=()),
             tfmtl.Task.regression("b", tower_units=(), loss_weight=b_weight)]
    return tfmtl.models.shared_bottom(schema, tasks, bottom_units=(4,))


def raw_losses(net, x, y):
    """Each task's plain mean loss (no static weight) under a tape: ``(tape, {task: loss})``."""
    tape = tf.GradientTape(persistent=True)
    with tape:
        out = net(x, training=True)
        p = tf.reshape(out["a"], [-1])
        losses = {
            "a": -tf.reduce_mean(y["a"] * tf.math.log(p) + (1 - y["a"]) * tf.math.log(1 - p)),
            "b": tf.reduce_mean((tf.reshape(out["b"], [-1]) - y["b"]) ** 2),
        }
    return tape, losses


def sgd_step(net, balancer, x, y):
    """Compile with SGD(1) and ``balancer``, take one ``train_on_batch``.

    Returns ``(logs, statically weighted losses before the step [2], check)``; ``check(weights)``
    asserts that each task's head moved by ``weights[task] x`` its task's plain gradient.
    """
    net.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), balancer=balancer)
    variables = net.trainable_variables
    tape, losses = raw_losses(net, x, y)
    grads = {task: [None if g is None else g.numpy() for g in tape.gradient(loss, variables)]
             for task, loss in losses.items()}
    before = [v.numpy().copy() for v in variables]
    logs = net.train_on_batch(x, y, return_dict=True)

    def check(weights):
        checked = 0
        for i, v in enumerate(variables):
            for index, task in enumerate("ab"):
                if v.name.startswith(f"{task}/"):
                    np.testing.assert_allclose(before[i] - v.numpy(), weights[index] * grads[task][i],
                                               rtol=1e-4, atol=1e-6, err_msg=v.name)
                    checked += 1
        assert checked >= 2  # both heads' kernels at least

    return logs, STATIC * np.array([float(losses["a"]), float(losses["b"])]), check


def batch():
    """64 rows: ``a`` is ``x0 > 0``, ``b`` is ``-3 x0`` plus noise (the gradient strategies' model step)."""
    rng = np.random.default_rng(0)
    x = {f"x{i}": rng.normal(size=N).astype(np.float32) for i in range(4)}
    y = {"a": (x["x0"] > 0).astype(np.float32), "b": (-3 * x["x0"] + rng.normal(size=N)).astype(np.float32)}
    return x, y


class Step(NamedTuple):
    """What :func:`train_step` saw."""

    logs: dict[str, float]
    grads: list[list[np.ndarray]]  # per task (a, b): its plain loss's gradient per variable (zeros where none)
    deltas: list[np.ndarray]  # per variable: the update applied (before - after)
    variables: list[np.ndarray]  # per variable: its value after the step
    names: list[str]  # per variable: its layer's name ("bottom", "a", "b")
    balancer: Any


def train_step(balancer, jit_compile=False, learning_rate=1.0):
    """One SGD step on :func:`batch` of :func:`model` with both static weights 1, compiled with ``balancer``."""
    x, y = batch()
    net = model(0, b_weight=1.0)
    net.compile(optimizer=keras.optimizers.SGD(learning_rate), balancer=balancer, jit_compile=jit_compile)
    variables = net.trainable_variables
    tape, losses = raw_losses(net, x, y)
    grads = [[np.zeros(v.shape) if g is None else g.numpy() for g, v in zip(tape.gradient(loss, variables), variables)]
             for loss in losses.values()]
    before = [v.numpy() for v in variables]
    logs = net.train_on_batch(x, y, return_dict=True)
    after = [v.numpy() for v in variables]
    names = [v.name.split("/")[0] for v in variables]
    return Step(logs, grads, [b - a for b, a in zip(before, after)], after, names, balancer)


def assert_same_step(eager, xla):
    """Two :func:`train_step` results (without and with XLA) agree: the same log keys and values, the same variables."""
    assert set(eager.logs) == set(xla.logs) and "a/weight" in eager.logs
    for key in eager.logs:
        np.testing.assert_allclose(xla.logs[key], eager.logs[key], rtol=1e-4, err_msg=key)
    for value, xla_value in zip(eager.variables, xla.variables):
        np.testing.assert_allclose(xla_value, value, rtol=1e-4, atol=1e-6)
