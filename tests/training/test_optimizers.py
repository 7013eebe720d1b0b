"""LazyAdam: sparse rows against a numpy Adam on the touched rows only; dense variables as Keras Adam."""

from __future__ import annotations

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras, tf


def _numpy_lazy_adam(table, steps, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    table, m, v = table.copy(), np.zeros_like(table), np.zeros_like(table)
    for t, (indices, values) in enumerate(steps, start=1):
        summed = {}
        for index, value in zip(indices, values):  # duplicate ids add up
            summed[index] = summed.get(index, 0) + value
        alpha = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        for index, grad in summed.items():
            m[index] = beta_1 * m[index] + (1 - beta_1) * grad
            v[index] = beta_2 * v[index] + (1 - beta_2) * grad**2
            table[index] -= alpha * m[index] / (np.sqrt(v[index]) + epsilon)
    return table, m, v


def test_sparse_updates_touch_only_the_batch_rows_and_match_numpy():
    rng = np.random.default_rng(0)
    start = rng.normal(size=(6, 3)).astype(np.float32)
    steps = [([1, 4, 1], rng.normal(size=(3, 3))), ([4], rng.normal(size=(1, 3))), ([0, 1], rng.normal(size=(2, 3)))]
    table = tf.Variable(start)
    optimizer = tfmtl.training.LazyAdam(0.1)
    for indices, values in steps:
        gradient = tf.IndexedSlices(tf.constant(values, tf.float32), tf.constant(indices), tf.constant([6, 3]))
        optimizer.apply_gradients([(gradient, table)])
    expected, m, v = _numpy_lazy_adam(start.astype(np.float64), steps, lr=0.1)
    np.testing.assert_allclose(table.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(table.numpy()[[2, 3, 5]], start[[2, 3, 5]])  # never in a batch: untouched
    momentum, velocity = optimizer._momentums[0].numpy(), optimizer._velocities[0].numpy()
    np.testing.assert_allclose(momentum, m, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(velocity, v, rtol=1e-4, atol=1e-9)  # 1 - beta_2 in float32
    # Row 4 was absent from step 3: its moments kept step 2's values (Keras Adam would decay them).
    assert not np.allclose(table.numpy()[4], start[4])


def test_dense_gradients_get_exactly_keras_adam():
    start = np.arange(6, dtype=np.float32).reshape(2, 3)
    lazy, plain = tf.Variable(start), tf.Variable(start)
    lazy_opt, plain_opt = tfmtl.training.LazyAdam(0.05), keras.optimizers.Adam(0.05)
    for step in range(3):
        gradient = tf.constant(np.sin(start + step))
        lazy_opt.apply_gradients([(gradient, lazy)])
        plain_opt.apply_gradients([(gradient, plain)])
    np.testing.assert_array_equal(lazy.numpy(), plain.numpy())


def test_amsgrad_is_refused():
    with pytest.raises(ValueError, match="LazyAdam does not support amsgrad"):
        tfmtl.training.LazyAdam(amsgrad=True)


@pytest.mark.slow
def test_an_mmoe_learns_as_well_as_with_adam_and_round_trips(tmp_path):
    train, test = tfmtl.data.synthetic_recsys(12000, seed=3).split(0.75, seed=0)
    schema = train.schema.adapt(train.features)
    aucs = {}
    for name, optimizer in (("adam", keras.optimizers.Adam(3e-3)), ("lazy", tfmtl.training.LazyAdam(3e-3))):
        keras.utils.set_random_seed(0)
        model = tfmtl.models.mmoe(schema, train.tasks, num_experts=2, expert_units=(16,))
        model.compile(optimizer=optimizer)
        model.fit(train.to_dataset(128), epochs=2, verbose=0)
        aucs[name] = model.evaluate(test.to_dataset(1000), return_dict=True, verbose=0)["click/auc"]
    assert aucs["lazy"] > 0.6 and abs(aucs["lazy"] - aucs["adam"]) < 0.02, aucs
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, tfmtl.training.LazyAdam)
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) > 0
    for saved, restored in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy(), err_msg=saved.name)  # moments restored
