"""LazyAdam and RowWiseAdagrad: sparse rows against numpy on the touched rows only; dense variables as Keras Adam."""

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
    assert aucs["lazy"] > 0.6 and aucs["lazy"] > aucs["adam"] - 0.02, aucs  # as well as Adam (or better)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, tfmtl.training.LazyAdam)
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) > 0
    for saved, restored in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy(), err_msg=saved.name)  # moments restored


# ---- RowWiseAdagrad


def _numpy_rowwise_adagrad(table, steps, lr, initial=0.1, epsilon=1e-7):
    table, acc = table.copy(), np.full([len(table), 1], initial)
    for indices, values in steps:
        summed = {}
        for index, value in zip(indices, values):  # duplicate ids add up
            summed[index] = summed.get(index, 0) + value
        for index, grad in summed.items():
            acc[index] += np.mean(grad**2)
            table[index] -= lr * grad / (np.sqrt(acc[index]) + epsilon)
    return table, acc


def _sparse(values, indices, shape):
    return tf.IndexedSlices(tf.constant(values, tf.float32), tf.constant(indices), tf.constant(shape))


def test_rowwise_sparse_updates_touch_only_the_batch_rows_and_match_numpy():
    rng = np.random.default_rng(1)
    start = rng.normal(size=(6, 3)).astype(np.float32)
    steps = [([1, 4, 1], rng.normal(size=(3, 3))), ([4], rng.normal(size=(1, 3))), ([0, 1, 0], rng.normal(size=(3, 3)))]
    table = tf.Variable(start, name="embeddings")
    optimizer = tfmtl.training.RowWiseAdagrad(learning_rate=0.3, initial_accumulator_value=0.2)
    for indices, values in steps:
        optimizer.apply_gradients([(_sparse(values, indices, [6, 3]), table)])
    expected, acc = _numpy_rowwise_adagrad(start.astype(np.float64), steps, lr=0.3, initial=0.2)
    np.testing.assert_allclose(table.numpy(), expected, rtol=1e-5, atol=1e-6)
    accumulator = optimizer.accumulator(table).numpy()
    assert accumulator.shape == (6, 1)
    np.testing.assert_allclose(accumulator, acc, rtol=1e-5)
    np.testing.assert_array_equal(table.numpy()[[2, 3, 5]], start[[2, 3, 5]])  # never in a batch: untouched
    np.testing.assert_array_equal(accumulator[[2, 3, 5]], np.float32(0.2))
    # Row 1's first step used the summed gradient of its two occurrences, not either alone.
    one, _ = _numpy_rowwise_adagrad(start.astype(np.float64), [([1], steps[0][1][:1])], lr=0.3, initial=0.2)
    assert not np.allclose(expected[1], one[1])


def test_rowwise_dense_gradient_on_a_table_updates_all_rows_the_same_way():
    rng = np.random.default_rng(2)
    start = rng.normal(size=(4, 2)).astype(np.float32)
    gradient = rng.normal(size=(4, 2)).astype(np.float32)
    gradient[2] = 0.0  # a row without gradient stays as it was
    table = tf.Variable(start, name="layer/embeddings")
    optimizer = tfmtl.training.RowWiseAdagrad(learning_rate=0.1)
    for _ in range(2):
        optimizer.apply_gradients([(tf.constant(gradient), table)])
    steps = [(list(range(4)), gradient.astype(np.float64))] * 2
    expected, acc = _numpy_rowwise_adagrad(start.astype(np.float64), steps, lr=0.1)
    np.testing.assert_allclose(table.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(optimizer.accumulator(table).numpy(), acc, rtol=1e-5)
    np.testing.assert_array_equal(table.numpy()[2], start[2])


def test_rowwise_non_table_variables_get_exactly_keras_adam():
    rng = np.random.default_rng(3)
    kernel_start = rng.normal(size=(3, 2)).astype(np.float32)
    bias_start = rng.normal(size=(2,)).astype(np.float32)
    table = tf.Variable(np.zeros([5, 2], np.float32), name="embeddings")
    ours = [tf.Variable(kernel_start, name="kernel"), tf.Variable(bias_start, name="bias")]
    theirs = [tf.Variable(kernel_start, name="kernel"), tf.Variable(bias_start, name="bias")]
    rowwise = tfmtl.training.RowWiseAdagrad(learning_rate=0.5, dense_learning_rate=0.05)
    adam = keras.optimizers.Adam(0.05)
    for step in range(3):
        kernel_grad = tf.constant(np.sin(kernel_start + step))
        # A sparse gradient on a variable that is not a table: Keras Adam's sparse branch (all rows decay).
        sparse_grad = _sparse(np.cos(kernel_start[:1] + step), [step % 3], [3, 2]) if step else kernel_grad
        bias_grad = tf.constant(np.cos(bias_start * step))
        table_grad = _sparse(np.ones([1, 2]), [step], [5, 2])
        rowwise.apply_gradients([(sparse_grad, ours[0]), (table_grad, table), (bias_grad, ours[1])])
        adam.apply_gradients([(sparse_grad, theirs[0]), (bias_grad, theirs[1])])
    for mine, keras_adam in zip(ours, theirs):
        np.testing.assert_array_equal(mine.numpy(), keras_adam.numpy())
    assert float(rowwise.learning_rate) == 0.5 and float(rowwise.dense_learning_rate) == np.float32(0.05)


def test_rowwise_slots_one_row_column_per_table_and_m_v_for_the_rest():
    table = tf.Variable(np.zeros([10, 4], np.float32), name="item_embedding/embeddings")
    kernel = tf.Variable(np.zeros([4, 3], np.float32), name="dense/kernel")
    bias = tf.Variable(np.zeros([3], np.float32), name="dense/bias")
    optimizer = tfmtl.training.RowWiseAdagrad()
    optimizer.build([table, kernel, bias])
    slots = [v for v in optimizer.variables if v is not optimizer.iterations]
    assert [tuple(v.shape) for v in slots] == [(10, 1), (4, 3), (4, 3), (3,), (3,)]
    assert optimizer.accumulator(table) is slots[0]
    assert sum(v.shape.num_elements() for v in slots) == 10 + 2 * (12 + 3)  # Adam on the table: 2 * 40
    np.testing.assert_array_equal(slots[0].numpy(), np.full([10, 1], 0.1, np.float32))


@pytest.mark.parametrize(
    ("name", "shape", "table"),
    [
        ("features/item_embedding/embeddings", [4, 2], True),
        ("embeddings", [4, 2], True),
        ("item_embeddings", [4, 2], False),  # a custom weight: not a keras Embedding's
        ("embeddings", [4], False),
        ("dense/kernel", [4, 2], False),
    ],
)
def test_rowwise_table_rule(name, shape, table):
    assert tfmtl.training.is_embedding_table(tf.Variable(tf.zeros(shape), name=name)) is table


def test_rowwise_config_round_trips_and_weight_decay_is_refused():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    optimizer = tfmtl.training.RowWiseAdagrad(
        learning_rate=schedule, dense_learning_rate=0.01, initial_accumulator_value=0.2, epsilon=1e-6, clipnorm=1.0
    )
    config = optimizer.get_config()
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(again) is tfmtl.training.RowWiseAdagrad
    assert again.get_config() == config
    assert config["dense_learning_rate"] == np.float32(0.01) and config["initial_accumulator_value"] == 0.2
    assert isinstance(again._learning_rate, keras.optimizers.schedules.ExponentialDecay)
    both = tfmtl.training.RowWiseAdagrad(dense_learning_rate=schedule)
    assert tfmtl.training.RowWiseAdagrad.from_config(both.get_config()).get_config() == both.get_config()
    with pytest.raises(ValueError, match="does not support weight_decay"):
        tfmtl.training.RowWiseAdagrad(weight_decay=1e-4)


def _slot_kind(variable):
    # (Layer names get numbered per process, so the full names differ between the two models.)
    return variable.name.removeprefix("RowWiseAdagrad/").split("/")[0]


def test_rowwise_checkpoint_restores_the_slots(small_data, small_schema, tmp_path):
    model = tfmtl.models.shared_bottom(small_schema, small_data.tasks, bottom_units=(8,))
    model.compile(optimizer=tfmtl.training.RowWiseAdagrad())
    model.fit(small_data.take(slice(0, 64)).to_dataset(32), verbose=0)
    checkpoints = tfmtl.training.Checkpoints(tmp_path)
    checkpoints.save(model, tfmtl.training.Position(0, 2))
    other = tfmtl.models.shared_bottom(small_schema, small_data.tasks, bottom_units=(8,))
    other.compile(optimizer=tfmtl.training.RowWiseAdagrad())
    checkpoints.restore(other)
    assert int(other.optimizer.iterations) == 2
    assert len(other.optimizer.variables) == len(model.optimizer.variables)
    for saved, restored in zip(model.optimizer.variables, other.optimizer.variables, strict=True):
        assert _slot_kind(saved) == _slot_kind(restored)
        np.testing.assert_array_equal(restored.numpy(), saved.numpy(), err_msg=saved.name)


@pytest.mark.slow
def test_an_mmoe_learns_with_rowwise_adagrad_and_round_trips(tmp_path):
    train, test = tfmtl.data.synthetic_recsys(8000, seed=3).split(0.75, seed=0)
    schema = train.schema.adapt(train.features)
    keras.utils.set_random_seed(0)
    model = tfmtl.models.mmoe(schema, train.tasks, num_experts=2, expert_units=(16,))
    model.compile(optimizer=tfmtl.training.RowWiseAdagrad())
    model.fit(train.to_dataset(128), epochs=2, verbose=0)
    auc = model.evaluate(test.to_dataset(1000), return_dict=True, verbose=0)["click/auc"]
    assert auc > 0.58, auc  # 0.62 on CPU (chance: 0.5; LazyAdam(1e-3): 0.63, LazyAdam(3e-3): 0.67)
    tables = [v for v in model.trainable_variables if tfmtl.training.is_embedding_table(v)]
    assert tables and all(v.name.endswith("embeddings:0") for v in tables)
    optimizer = model.optimizer
    slots = len(optimizer.variables) - 1
    assert slots == len(tables) + 2 * (len(optimizer._index_dict) - len(tables))
    for table in tables:
        assert optimizer.accumulator(table).shape == (table.shape[0], 1)

    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, tfmtl.training.RowWiseAdagrad)
    assert loaded.optimizer.get_config() == optimizer.get_config()
    assert int(loaded.optimizer.iterations) == int(optimizer.iterations) > 0
    for saved, restored in zip(optimizer.variables, loaded.optimizer.variables, strict=True):
        assert _slot_kind(saved) == _slot_kind(restored)
        np.testing.assert_array_equal(restored.numpy(), saved.numpy(), err_msg=saved.name)  # slots restored
    # The restored slots are the ones each variable reads: one more step on the same batch agrees.
    batch = test.take(slice(0, 128)).to_dataset(128)
    model.fit(batch, verbose=0)
    loaded.fit(batch, verbose=0)
    for saved, restored in zip(optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_allclose(restored.numpy(), saved.numpy(), rtol=1e-5, atol=1e-7, err_msg=saved.name)
