"""Shared by the balancing strategies' test files: gradients of ``combine``, a tiny two-task model, one SGD step."""

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


def model(seed=0):
    """A shared bottom of 4 units with linear heads ``a`` (loss weight 1) and ``b`` (loss weight 0.5)."""
    keras.utils.set_random_seed(seed)
    schema = Schema([Numeric(f"x{i}", mean=0.0, variance=1.0) for i in range(4)])
    tasks = [tfmtl.Task.binary("a", tower_units=()), tfmtl.Task.regression("b", tower_units=(), loss_weight=0.5)]
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
