import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras, tf
from tfmtl.layers import StemLayer
from tfmtl.models.stem import stem_schema

TASKS = ("a", "b")


def relu(v):
    return np.maximum(v, 0.0)


def softmax(v):
    e = np.exp(v - v.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def inputs(width=4, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    return {key: rng.normal(size=(batch, width)).astype(np.float32) for key in TASKS + ("shared",)}


@pytest.mark.parametrize("gate_units", [(), (3,)], ids=["linear_gate", "mlp_gate"])
def test_one_level_matches_a_numpy_oracle(gate_units):
    x = inputs()
    layer = StemLayer(TASKS, num_shared_experts=1, num_task_experts=1, expert_units=(5,), gate_units=gate_units,
                      shared_gate=True, regularization={"bias_initializer": "random_normal"})
    out = layer(x)

    def bank(experts, v):  # [B, E, H]
        kernel, bias = experts.kernels[0].numpy(), experts.biases[0].numpy()
        return np.stack([relu(v @ kernel[e] + bias[e]) for e in range(kernel.shape[0])], axis=1)

    def gate(name, v):  # [B, E]
        if gate_units:
            dense = layer.gate_hidden[name]._sublayers[0]
            v = relu(v @ dense.kernel.numpy() + dense.bias.numpy())
        return softmax(v @ layer.gates[name].kernel.numpy())

    pool = np.concatenate([bank(layer.task_experts["a"], x["a"]), bank(layer.task_experts["b"], x["b"]),
                           bank(layer.shared_experts, x["shared"])], axis=1)  # [B, 3, 5]: [S_a, S_b, A]
    for t in TASKS:  # gate input x_t + x_S, over all experts
        expected = np.einsum("be,beh->bh", gate(t, x[t] + x["shared"]), pool)
        np.testing.assert_allclose(out[t].numpy(), expected, rtol=1e-5, atol=1e-6)
    expected = np.einsum("be,beh->bh", gate("shared", x["shared"]), pool)
    np.testing.assert_allclose(out["shared"].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert layer.expert_names("a") == [f"{layer.name}/{e}" for e in ("a_0", "b_0", "shared_0")]


def test_layer_all_forward_task_specific_backward():
    x = {k: tf.constant(v) for k, v in inputs().items()}
    layer = StemLayer(TASKS, num_shared_experts=2, num_task_experts=2, expert_units=(4, 3), shared_gate=True)
    layer(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(list(x.values()))
        out = layer(x)
        loss = {k: tf.reduce_sum(v) for k, v in out.items()}
    own, other = layer.task_experts["a"].trainable_weights, layer.task_experts["b"].trainable_weights
    shared = layer.shared_experts.trainable_weights
    grads = tape.gradient(loss["a"], own + other + shared + [x["a"], x["b"], x["shared"]])
    n = len(own)
    assert all(g is not None and np.abs(g.numpy()).sum() > 0 for g in grads[:n])  # own experts
    assert all(g is None or not np.any(g.numpy()) for g in grads[n:2 * n])  # task b's experts: none
    assert all(g is not None and np.abs(g.numpy()).sum() > 0 for g in grads[2 * n:-3])  # shared experts
    assert np.any(grads[-3].numpy()) and np.any(grads[-1].numpy())
    assert grads[-2] is None or not np.any(grads[-2].numpy())  # task b's input
    # the shared output has no stop-gradient: it reaches every expert
    shared_grads = tape.gradient(loss["shared"], other)
    assert all(g is not None and np.abs(g.numpy()).sum() > 0 for g in shared_grads)


def test_layer_config_round_trip_and_argument_checks():
    layer = StemLayer(TASKS, num_shared_experts=2, num_task_experts=1, expert_units=(3,), gate_units=(2,),
                      regularization={"dropout": 0.1})
    clone = StemLayer.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    x = inputs(width=5)
    layer(x), clone(x)
    clone.set_weights(layer.get_weights())
    for t in TASKS:
        np.testing.assert_allclose(clone(x)[t].numpy(), layer(x)[t].numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="distinct names, at least one, none 'shared'"):
        StemLayer(("shared",))
    with pytest.raises(ValueError, match="at least one expert"):
        StemLayer(TASKS, num_shared_experts=0, num_task_experts=0)
    with pytest.raises(ValueError, match="num_task_experts must be an int >= 0, got -1"):
        StemLayer(TASKS, num_task_experts=-1)
    with pytest.raises(ValueError, match=r"keys \['a', 'b', 'shared'\]"):
        layer({"a": x["a"], "b": x["b"]})
    with pytest.raises(ValueError, match="task 'b''s input has width 4, the shared input 5"):
        StemLayer(TASKS)({"a": x["a"], "b": x["b"][:, :4], "shared": x["shared"]})


# -- the architecture ----------------------------------------------------------------

ITEMS = ("i1", "i2", "i3")


def tiny_schema():
    return tfmtl.Schema([
        tfmtl.Categorical("item", embedding_dim=2, vocabulary=ITEMS),
        tfmtl.Categorical("user", embedding_dim=3, vocabulary=("u1", "u2")),
        tfmtl.Numeric("price", mean=0.0, variance=1.0),
    ])


def tiny_features():
    return {"item": np.array(["i1", "i2", "i3", "zz"]), "user": np.array(["u1", "u2", "u2", "u1"]),
            "price": np.array([0.5, -1.0, 2.0, 0.0], np.float32)}


def tiny_model(num_levels=1):
    keras.utils.set_random_seed(0)
    tasks = [tfmtl.Task.binary("click", tower_units=()), tfmtl.Task.regression("rating", tower_units=())]
    return tfmtl.models.stem(tiny_schema(), tasks, num_shared_experts=1, num_task_experts=1, expert_units=(4,),
                             num_levels=num_levels)


def test_the_schema_is_widened_and_each_part_is_its_columns():
    schema = tfmtl.Schema([
        tfmtl.Categorical("item", embedding_dim=2, vocabulary=ITEMS),
        tfmtl.features.Sequence("history", max_len=3, embedding_dim=2, vocabulary=ITEMS, table="item",
                                pooling="attention", query="item"),
        tfmtl.features.MultiValued("tags", max_len=2, embedding_dim=3, vocabulary=("t1", "t2")),
        tfmtl.features.Bucketized("age", embedding_dim=2, boundaries=(1.0, 2.0)),
        tfmtl.Numeric("income", mean=0.0, variance=1.0, embedding_dim=2),
        tfmtl.Numeric("price", mean=0.0, variance=1.0),
        tfmtl.features.DenseVector("text", dim=3),
        tfmtl.features.PretrainedTable("title", vectors={"i1": [0.5, 1.0]}),
    ])
    widened = stem_schema(schema, 2)
    assert {s.name: s.output_dim for s in widened} == {
        "item": 6, "history": 6, "tags": 9, "age": 6, "income": 6, "price": 1, "text": 3, "title": 2}
    every_kind = tfmtl.models.stem(schema, [tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")], expert_units=(2,))
    assert every_kind.schema == widened
    assert every_kind.get_layer("stem_shared_embedding").output.shape[-1] == (2 + 2 + 3 + 2 + 2) + (1 + 3 + 2)
    model = tiny_model()
    assert model.schema["item"].embedding_dim == 6 and model.schema["user"].embedding_dim == 9
    assert model.get_layer("features").embeddings["item"].embeddings.shape == (4, 6)  # one table per feature
    # part t = columns [t*d, (t+1)*d) of each feature's row (order [click, rating, shared]), then the numerics
    parts = keras.Model(model.inputs, [model.get_layer(f"stem_{p}_embedding").output
                                       for p in ("click", "rating", "shared")])
    features = tiny_features()
    got = parts(features)
    rows = model.get_layer("preprocessing")(model.schema.conform(features))["item"].numpy()
    item = model.get_layer("features").embeddings["item"].embeddings.numpy()[rows]
    for p, part in enumerate(got):
        assert part.shape == (4, 2 + 3 + 1)
        np.testing.assert_allclose(part.numpy()[:, :2], item[:, 2 * p:2 * p + 2], rtol=1e-6)
        np.testing.assert_allclose(part.numpy()[:, -1], features["price"], rtol=1e-6)  # unsplit: in every part


def grads_of(model, task, variables):
    features = tiny_features()
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(model(features)[task])
    return [None if g is None else tf.convert_to_tensor(g).numpy() for g in tape.gradient(out, variables)]


def test_model_all_forward_task_specific_backward():
    model = tiny_model()
    level = model.get_layer("stem_0")
    table = model.get_layer("features").embeddings["item"].embeddings  # [rows, 2 * 3]
    own, other, shared = (level.task_experts["click"].kernels[0], level.task_experts["rating"].kernels[0],
                          level.shared_experts.kernels[0])
    variables = [table, own, other, shared, level.gates["rating"].kernel]
    g_table, g_own, g_other, g_shared, g_gate = grads_of(model, "click", variables)
    assert np.any(g_table[:, 0:2]) and np.any(g_table[:, 4:6])  # own and shared embedding parts
    assert not np.any(g_table[:, 2:4])  # task rating's embedding part: zero gradient
    assert np.any(g_own) and np.any(g_shared)
    assert g_other is None or not np.any(g_other)  # task rating's experts: zero gradient
    assert g_gate is None or not np.any(g_gate)
    # ... and yet task rating's experts shape click's forward output
    before = model(tiny_features())["click"].numpy()
    other.assign(other + 1.0)
    assert not np.allclose(model(tiny_features())["click"].numpy(), before, atol=1e-6)


def test_two_levels_reach_the_other_tasks_lower_experts_only_through_the_shared_path():
    model = tiny_model(num_levels=2)
    low, high = model.get_layer("stem_0"), model.get_layer("stem_1")
    assert low.shared_gate and not high.shared_gate
    g_low, g_high = grads_of(model, "click", [low.task_experts["rating"].kernels[0],
                                              high.task_experts["rating"].kernels[0]])
    assert np.any(g_low)  # via stem_0's shared output (no stop-gradient), as in the authors' code
    assert g_high is None or not np.any(g_high)


def test_model_arguments_are_checked():
    tasks = [tfmtl.Task.binary("click")]
    with pytest.raises(ValueError, match="stem takes no cross_layers=2"):
        tfmtl.models.stem(tiny_schema(), tasks, cross_layers=2)
    with pytest.raises(ValueError, match="num_levels must be an int >= 1, got 0"):
        tfmtl.models.stem(tiny_schema(), tasks, num_levels=0)
    with pytest.raises(ValueError, match=r"\['stem_0'\] are the names of stem's layers"):
        tfmtl.models.stem(tiny_schema(), [tfmtl.Task.binary("stem_0")])
    with pytest.raises(ValueError, match="num_tasks must be an int >= 1"):
        stem_schema(tiny_schema(), 0)


def test_save_load_and_a_tiny_fit(small_data, small_schema, tmp_path):
    keras.utils.set_random_seed(2)
    model = tfmtl.models.stem(small_schema, small_data.tasks, num_shared_experts=2, expert_units=(8,), gate_units=(4,),
                              num_levels=2, regularization=tfmtl.layers.Regularization(embedding_l2=1e-6))
    features = {k: v[:256] for k, v in small_data.features.items()}
    labels = {k: v[:256] for k, v in small_data.labels.items()}
    model.compile()
    history = model.fit(features, labels, batch_size=64, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.schema == model.schema
    expected, got = model.predict(features, verbose=0), loaded.predict(features, verbose=0)
    for task in model.task_names:
        np.testing.assert_allclose(got[task], expected[task], rtol=1e-5, atol=1e-6)
