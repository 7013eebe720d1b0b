"""Initializers, regularizers, dropout and embedding L2: reaching every layer, starting experts apart, saved with the model."""

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras, tf
from tfmtl.features.kinds import distinct_squares


def test_seeded_initializers_still_start_every_expert_and_layer_apart():
    experts = tfmtl.layers.Experts(3, (4,), kernel_initializer=keras.initializers.GlorotUniform(seed=7), name="bank")
    experts(tf.ones([1, 5]))
    kernel = experts.kernels[0].numpy()  # [E, 5, 4]
    assert not np.allclose(kernel[0], kernel[1]) and not np.allclose(kernel[1], kernel[2])
    limit = np.sqrt(6 / (5 + 4))  # one expert's Glorot fan-in and fan-out, not the stacked weight's
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.5 * limit
    again = tfmtl.layers.Experts(3, (4,), kernel_initializer=keras.initializers.GlorotUniform(seed=7), name="bank")
    again(tf.ones([1, 5]))
    np.testing.assert_allclose(again.kernels[0].numpy(), kernel)  # seeded: reproducible (same layer name)


def test_regularizers_reach_every_kernel_and_dropout_acts_only_while_training():
    reg = tfmtl.layers.Regularization(kernel_regularizer=keras.regularizers.L2(0.5), bias_regularizer="l1", dropout=0.5)
    schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    model = tfmtl.models.mmoe(schema, [tfmtl.Task.binary("click", tower_units=(4,))], num_experts=2,
                              expert_units=(8,), regularization=reg)
    x = {"price": np.linspace(-1, 1, 64).astype(np.float32)}
    model(x)
    experts = model.get_layer("mixture_of_experts").experts
    gate = model.get_layer("mixture_of_experts").gates["click"]
    tower = model.get_layer("click_tower")
    expected = 0.5 * (np.sum(np.square(experts.kernels[0].numpy())) + np.sum(np.square(gate.kernel.numpy()))
                      + np.sum(np.square(tower._sublayers[0].kernel.numpy())))
    expected += 0.01 * (np.abs(experts.biases[0].numpy()).sum() + np.abs(tower._sublayers[0].bias.numpy()).sum())
    assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-5)
    inference = [model(x)["click"].numpy() for _ in range(2)]
    np.testing.assert_allclose(inference[0], inference[1])
    training = [model(x, training=True)["click"].numpy() for _ in range(2)]
    assert not np.allclose(training[0], training[1])


def test_distinct_squares_counts_each_looked_up_row_once_and_skips_padding():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 6, size=(4, 5))
    valid = rng.random((4, 5)) > 0.3
    table = rng.normal(size=(6, 3)).astype(np.float32)
    rows = table[ids]
    expected = sum(np.sum(table[i] ** 2) for i in np.unique(ids[valid]))
    assert float(distinct_squares(ids, rows, valid)) == pytest.approx(expected, rel=1e-5)


def test_embedding_l2_penalises_the_batch_rows_once_and_only_while_training(tmp_path):
    schema = tfmtl.Schema([tfmtl.Categorical("item", embedding_dim=3, vocabulary=("a", "b", "c")),
                           tfmtl.features.Sequence("history", max_len=3, embedding_dim=3, vocabulary=("a", "b", "c"), table="item")])
    model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(4,),
                                       regularization=tfmtl.layers.Regularization(embedding_l2=0.1))
    x = {"item": np.array(["a", "a", "zz"]), "history": np.array([["b", "", ""], ["a", "b", ""], ["", "", ""]])}
    model(x)
    assert not model.losses  # inference: no penalty
    model(x, training=True)
    table = model.get_layer("features").embeddings["item"].embeddings.numpy()
    rows = model.preprocess(x)
    # the item feature and the history share a table but are two lookups: each counts its own distinct rows
    item_rows = set(rows["item"].numpy().tolist())
    history_rows = {r for r in rows["history"].numpy().ravel().tolist() if r >= 0}
    expected = 0.1 * (sum(np.sum(table[r] ** 2) for r in item_rows) + sum(np.sum(table[r] ** 2) for r in history_rows))
    assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-5)
    with tf.GradientTape() as tape:
        model(x, training=True)
        penalty = tf.add_n(model.losses)
    gradient = tape.gradient(penalty, model.get_layer("features").embeddings["item"].embeddings)
    assert isinstance(gradient, tf.IndexedSlices)  # sparse: only the batch's rows
    model.compile()
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.get_layer("features").embedding_l2 == 0.1
    assert loaded.get_layer("features").embeddings["item"].l2 == 0.1


def test_regularization_errors_and_config_round_trip():
    reg = tfmtl.layers.Regularization(kernel_initializer=keras.initializers.HeNormal(seed=3),
                                      kernel_regularizer=keras.regularizers.L2(1e-4), dropout=0.2, embedding_l2=1e-5)
    again = tfmtl.layers.Regularization.from_config(reg.get_config())
    assert again.get_config() == reg.get_config()
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.5"):
        tfmtl.layers.Regularization(dropout=1.5)
    with pytest.raises(ValueError, match="embedding_l2 must be >= 0"):
        tfmtl.layers.Regularization(embedding_l2=-1.0)
    with pytest.raises(ValueError):
        tfmtl.layers.Regularization(kernel_initializer="no_such_initializer")
    with pytest.raises(TypeError, match="must be a tfmtl.layers.Regularization"):
        tfmtl.models.mmoe(tfmtl.Schema([tfmtl.Numeric("x", mean=0.0, variance=1.0)]), [tfmtl.Task.binary("y")],
                          regularization=0.1)


def test_seeded_initializers_start_sibling_gates_towers_and_banks_apart():
    reg = tfmtl.layers.Regularization(kernel_initializer=keras.initializers.GlorotUniform(seed=3))
    schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0), tfmtl.Numeric("age", mean=0.0, variance=1.0)])
    tasks = [tfmtl.Task.binary("click", tower_units=(4,)), tfmtl.Task.binary("buy", tower_units=(4,))]
    model = tfmtl.models.ple(schema, tasks, num_levels=1, num_shared_experts=1, num_task_experts=1,
                             expert_units=(4,), regularization=reg)
    level = model.get_layer("extraction_0")
    kernels = [level.task_experts["click"].kernels[0], level.task_experts["buy"].kernels[0],
               level.shared_experts.kernels[0], level.gates["click"].kernel, level.gates["buy"].kernel,
               model.get_layer("click_tower")._sublayers[0].kernel, model.get_layer("buy_tower")._sublayers[0].kernel]
    values = [k.numpy() for k in kernels]
    for a in range(len(values)):
        for b in range(a + 1, len(values)):
            if values[a].shape == values[b].shape:
                assert not np.allclose(values[a], values[b]), (kernels[a].name, kernels[b].name)


def test_seeded_initializers_start_pepnet_and_star_layers_apart():
    """The Keras Dense layers PEPNet and STAR build get keyed clones: per tower, per level, per gate layer."""
    reg = tfmtl.layers.Regularization(kernel_initializer=keras.initializers.GlorotUniform(seed=3))

    def ppnet():
        layer = tfmtl.layers.PPNet(["click", "buy"], units=(4, 4), regularization=reg)
        layer([tf.ones([2, 4]), tf.ones([2, 4])])
        return layer

    layer = ppnet()
    towers = [layer.towers[task] for task in ("click", "buy")]
    kernels = {}
    for tower in towers:
        parts = {"dense_1": tower.dense[1], "gate_0/hidden": tower.gates[0].hidden, "gate_0/gate": tower.gates[0].gate,
                 "gate_1/gate": tower.gates[1].gate}
        kernels.update({f"{tower.name}/{part}": dense.kernel.numpy() for part, dense in parts.items()})
    names = sorted(kernels)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            if kernels[names[a]].shape == kernels[names[b]].shape:
                assert not np.allclose(kernels[names[a]], kernels[names[b]]), (names[a], names[b])
    again = ppnet()  # seeded: the same layer names draw the same weights
    np.testing.assert_allclose(again.towers["buy"].gates[1].gate.kernel.numpy(), kernels["buy_tower/gate_1/gate"])

    star = tfmtl.layers.StarFCN(2, units=(4, 4), regularization=reg)
    star([tf.ones([2, 4]), tf.constant([0, 1])])
    assert not np.allclose(star.kernels[0].numpy(), star.kernels[1].numpy())
