import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras, tf
from tfmtl.layers import AdaptiveTaskFusion, DSelectKGate, GateOptions

TASKS = ("a", "b")


def _relu(v):
    return np.maximum(v, 0.0)


def _softmax(v):
    e = np.exp(v - v.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _bank(experts, x):
    """Numpy ReLU MLP experts: [B, D] -> [B, E, H], one loop per expert and layer."""
    out = []
    for e in range(experts.num_experts):
        hidden = x
        for kernel, bias in zip(experts.kernels, experts.biases):
            hidden = _relu(hidden @ kernel.numpy()[e] + bias.numpy()[e])
        out.append(hidden)
    return np.stack(out, axis=1)


def _inputs(seed, d=3):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=(4, d)).astype(np.float32) for name in TASKS + ("shared",)}


def _oracle(layer, x):
    """The whole level in numpy, with every weight read from the layer."""
    m, m_s = layer.num_task_experts, layer.num_shared_experts
    pool = [_bank(layer.task_experts[t], x[t]) for t in TASKS]  # T x [B, m, H]
    if m_s:
        pool.append(_bank(layer.shared_experts, x["shared"]))  # [B, m_s, H]
    pool = np.concatenate(pool, axis=1)  # [B, E, H]
    total = pool.shape[1]
    outputs = {}
    for i, name in enumerate(layer.gates.keys()):
        g = _softmax(x[name] @ layer.gates[name].kernel.numpy())  # [B, E]
        fused = np.einsum("be,beh->bh", g, pool)
        if layer.residual:
            start, size = (total - m_s, m_s) if name == "shared" else (TASKS.index(name) * m, m)
            own = pool[:, start:start + size]  # [B, size, H]
            if m == 1 and m_s <= 1:
                fused = fused + own.sum(axis=1)  # + O_t
            else:
                v = (layer.shared_residual if name == "shared" else layer.task_residual[TASKS.index(name)]).numpy()
                fused = fused + np.einsum("k,bkh->bh", v, own)  # + sum_k v_k O_tk
        outputs[name] = fused
    return outputs


@pytest.mark.parametrize("m, m_s, residual", [(1, 1, True), (2, 3, True), (1, 0, True), (1, 1, False)])
def test_fusion_level_matches_a_numpy_oracle(m, m_s, residual):
    x = _inputs(m + m_s)
    layer = AdaptiveTaskFusion(TASKS, num_task_experts=m, num_shared_experts=m_s, expert_units=(2,),
                               shared_gate=m_s > 0, residual=residual)
    out = layer(x)
    assert sorted(out) == sorted(TASKS + (("shared",) if m_s else ()))
    expected = _oracle(layer, x)
    for name in out:
        np.testing.assert_allclose(out[name].numpy(), expected[name], rtol=1e-5, atol=1e-6)


def test_tiny_level_by_hand_t2_m1_ms1():
    """T=2, m=1, m_s=1, D=3, H=2 with set weights: F_a = sum_e g_ae O_e + O_a."""
    layer = AdaptiveTaskFusion(TASKS, 1, 1, expert_units=(2,), shared_gate=True)
    x = _inputs(7)
    layer(x)
    rng = np.random.default_rng(8)
    layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()])
    o = {name: _relu(x[key] @ bank.kernels[0].numpy()[0] + bank.biases[0].numpy()[0])  # [B, H]
         for name, key, bank in (("a", "a", layer.task_experts["a"]), ("b", "b", layer.task_experts["b"]),
                                 ("s", "shared", layer.shared_experts))}
    pool = np.stack([o["a"], o["b"], o["s"]], axis=1)  # [B, 3, H]
    out = layer(x)
    for name, own in (("a", o["a"]), ("b", o["b"]), ("shared", o["s"])):
        g = _softmax(x[name] @ layer.gates[name].kernel.numpy())  # [B, 3]
        np.testing.assert_allclose(out[name].numpy(), np.einsum("be,beh->bh", g, pool) + own, rtol=1e-5, atol=1e-6)


def test_first_level_reads_one_tensor_and_the_last_level_has_no_shared_gate():
    layer = AdaptiveTaskFusion(TASKS, 1, 2, expert_units=(3,), shared_gate=False)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    out = layer(x)
    assert sorted(out) == ["a", "b"] and sorted(layer.gates) == ["a", "b"]
    expected = _oracle(layer, {name: x for name in TASKS + ("shared",)})
    np.testing.assert_allclose(out["a"].numpy(), expected["a"], rtol=1e-5, atol=1e-6)
    assert layer.shared_residual is None and layer.task_residual.shape == (2, 1)  # m_s = 2: learnable v even for m = 1


def test_residual_weights_are_learnable_and_start_in_their_range():
    layer = AdaptiveTaskFusion(TASKS, 4, 2, expert_units=(3,), shared_gate=True)
    x = _inputs(2)
    with tf.GradientTape() as tape:
        out = layer(x)
        loss = tf.reduce_sum(out["a"]) + tf.reduce_sum(out["shared"])
    assert np.abs(layer.task_residual.numpy()).max() <= 0.5  # U(-sqrt(1/4), sqrt(1/4))
    grad_task, grad_shared = tape.gradient(loss, [layer.task_residual, layer.shared_residual])
    assert np.abs(grad_task.numpy()[0]).max() > 0 and np.all(grad_task.numpy()[1] == 0)  # only task a's row
    assert np.abs(grad_shared.numpy()).max() > 0
    np.testing.assert_allclose(layer.residual_weights("b").numpy()[:4], 0.0)  # b's block is 4:8
    np.testing.assert_allclose(layer.residual_weights("b").numpy()[4:8], layer.task_residual.numpy()[1])


def test_dselect_gates_and_config_round_trip():
    layer = AdaptiveTaskFusion(TASKS, 1, 2, expert_units=(3,), shared_gate=True, kind="dselect_k", k=2,
                               regularization=tfmtl.layers.Regularization(kernel_regularizer="l2"), name="fusion")
    assert all(isinstance(gate, DSelectKGate) for gate in layer.gates.values())
    layer(_inputs(3))
    assert len(layer.losses) >= 3 + 3  # an L2 term per expert kernel and per gate kernel
    clone = AdaptiveTaskFusion.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    x = _inputs(3)
    layer(x), clone(x)
    clone.set_weights(layer.get_weights())
    for name, value in layer(x).items():
        np.testing.assert_allclose(clone(x)[name].numpy(), value.numpy(), rtol=1e-6)
    assert layer.expert_names("shared") == ["fusion/a_0", "fusion/b_0", "fusion/shared_0", "fusion/shared_1"]


@pytest.mark.parametrize("kwargs, match", [
    ({"task_names": ("a", "shared")}, "task_names"),
    ({"task_names": ("a", "a")}, "task_names"),
    ({"task_names": ("a",), "num_task_experts": 0}, "num_task_experts"),
    ({"task_names": ("a",), "num_shared_experts": -1}, "num_shared_experts"),
    ({"task_names": ("a",), "num_shared_experts": 0, "shared_gate": True}, "shared_gate"),
    ({"task_names": ("a",), "kind": "dselect_k", "temperature": 2.0}, "do not apply"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdaptiveTaskFusion(**kwargs)


def test_adatt_model_trains_saves_and_loads(small_data, small_schema, tmp_path):
    keras.utils.set_random_seed(6)
    data = small_data.take(slice(0, 256))
    model = tfmtl.models.adatt(small_schema, small_data.tasks, num_levels=2, num_task_experts=2,
                               num_shared_experts=1, expert_units=(8,))
    assert "shared" in model.get_layer("fusion_0").gates and "shared" not in model.get_layer("fusion_1").gates
    model.compile()
    model.fit(data.to_dataset(256), epochs=1, verbose=0)
    path = tmp_path / "adatt.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    sample = small_data.take(slice(0, 50)).features
    expected, got = model.predict(sample, verbose=0), loaded.predict(sample, verbose=0)
    for task in expected:
        np.testing.assert_allclose(got[task], expected[task], atol=1e-6)
    usage = tfmtl.diagnostics.expert_usage(model, sample, warn=False)
    assert usage.experts["fusion_1/click_gate"][-1] == "fusion_1/shared_0"
    with pytest.raises(ValueError, match="num_levels"):
        tfmtl.models.adatt(small_schema, small_data.tasks, num_levels=0)
    sp = tfmtl.models.adatt(small_schema, small_data.tasks, num_levels=2, num_shared_experts=0, expert_units=(4,),
                            gate=GateOptions(temperature=2.0))
    assert sp.get_layer("fusion_0").shared_experts is None and sp.get_layer("fusion_0").gate_options.temperature == 2.0
