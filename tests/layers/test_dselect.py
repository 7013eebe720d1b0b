import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras, tf
from tfmtl.layers import DSelectKGate, ExtractionLayer, GateOptions, MixtureOfExperts, make_gate
from tfmtl.layers.dselect import smooth_step


def _np_smooth_step(t, gamma):
    cubic = -2.0 * t**3 / gamma**3 + 3.0 * t / (2.0 * gamma) + 0.5
    return np.where(t <= -gamma / 2, 0.0, np.where(t >= gamma / 2, 1.0, cubic))


def _np_dselect(x, z_kernel, z_bias, w_kernel, w_bias, num_experts, k, gamma):
    """Independent numpy DSelect-k: (a [B, E], r [B, k, E])."""
    bits = int(np.ceil(np.log2(num_experts)))
    z = (x @ z_kernel + z_bias).reshape(len(x), k, bits)  # [B, k, m]
    s = _np_smooth_step(z, gamma)
    r = np.ones((len(x), k, num_experts))
    for i in range(num_experts):
        for b in range(bits):
            bit = (i >> (bits - 1 - b)) & 1  # most significant bit first
            r[:, :, i] *= s[:, :, b] if bit else 1.0 - s[:, :, b]
    w = x @ w_kernel + w_bias  # [B, k]
    alpha = np.exp(w - w.max(-1, keepdims=True))
    alpha /= alpha.sum(-1, keepdims=True)
    return np.einsum("bk,bke->be", alpha, r), r


def _static_gate(num_experts, z, k=1, gamma=1.0, **kwargs):
    """A gate whose Z is the constant ``z`` ([k*m]) and W is 0 for every input (zero kernels, bias = z)."""
    gate = DSelectKGate(num_experts, k=k, gamma=gamma, **kwargs)
    gate.build((None, 3))
    bits = len(z) // k
    gate.set_weights([np.zeros([3, k * bits]), np.asarray(z, np.float32), np.zeros([3, k]), np.zeros([k])])
    return gate


X = np.ones([2, 3], np.float32)


@pytest.mark.parametrize("z, expected", [
    ([0.0, 0.0], [0.25, 0.25, 0.25, 0.25]),
    ([0.5, -0.5], [0.0, 0.0, 1.0, 0.0]),  # code 10 = expert 2
    ([0.25, 0.0], [0.078125, 0.078125, 0.421875, 0.421875]),  # S(0.25) = 0.84375
])
def test_worked_examples_with_four_experts(z, expected):
    gate = _static_gate(4, z)
    np.testing.assert_allclose(gate(X).numpy(), [expected] * 2, atol=1e-6)
    gate(X, training=True)
    assert gate.losses == []  # E = 2^m: no penalty; entropy weight 0: no entropy


def test_worked_example_with_three_experts_penalty_and_entropy():
    gate = _static_gate(3, [0.25, 0.0], entropy_weight=1.0)
    weights = gate(X, training=True).numpy()
    np.testing.assert_allclose(weights, [[0.078125, 0.078125, 0.421875]] * 2, atol=1e-6)
    penalty, entropy = (float(loss) for loss in gate.losses)
    np.testing.assert_allclose(penalty, 1 / 0.578125, atol=1e-5)  # 1.729730
    np.testing.assert_allclose(entropy, 0.762445, atol=1e-5)
    gate(X, training=False)
    assert gate.losses == []  # the losses are training-only, as in the reference


def test_a_selector_stuck_on_unreachable_codes_gives_a_finite_penalty():
    gate = _static_gate(3, [1.0, 1.0])  # S = 1 on both bits: code 11, which no expert has
    with tf.GradientTape() as tape:
        weights = gate(X, training=True)
        penalty = gate.losses[0]
    np.testing.assert_allclose(weights.numpy(), 0.0)
    np.testing.assert_allclose(float(penalty), 1e6, rtol=1e-6)  # 1 / the 1e-6 floor
    grads = tape.gradient(penalty, gate.trainable_weights)
    assert all(g is None or np.all(np.isfinite(g.numpy())) for g in grads)


def test_smooth_step_matches_its_worked_values():
    np.testing.assert_allclose(smooth_step(tf.constant(0.1), 0.5).numpy(), 0.784, atol=1e-6)
    np.testing.assert_allclose(smooth_step(tf.constant(0.25), 1.0).numpy(), 0.84375, atol=1e-6)
    t = np.linspace(-1, 1, 41).astype(np.float32)
    np.testing.assert_allclose(smooth_step(tf.constant(t), 0.7).numpy(), _np_smooth_step(t, 0.7), atol=1e-6)


@pytest.mark.parametrize("num_experts, k", [(5, 2), (8, 3)])
def test_gate_matches_a_numpy_oracle_on_random_weights(num_experts, k):
    rng = np.random.default_rng(num_experts)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    gate = DSelectKGate(num_experts, k=k, gamma=0.7, entropy_weight=0.1)
    gate.build((None, 4))
    # Logits spread over the smooth step's flat and cubic regions.
    gate.set_weights([rng.normal(scale=0.2, size=w.shape).astype(np.float32) for w in gate.get_weights()])
    got = gate(x, training=True).numpy()
    z_kernel, z_bias, w_kernel, w_bias = gate.get_weights()
    expected, r = _np_dselect(x, z_kernel, z_bias, w_kernel, w_bias, num_experts, k, 0.7)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    losses = [float(loss) for loss in gate.losses]
    entropy = 0.1 * np.mean(-(r * np.log(r + 1e-6)).sum(axis=(1, 2)))
    if num_experts == 8:
        np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(losses, [entropy], rtol=1e-5)
    else:
        assert np.all(got.sum(-1) <= 1.0 + 1e-6)
        penalty = np.mean((1.0 / r.sum(-1)).sum(-1))
        assert np.isfinite(penalty)
        np.testing.assert_allclose(losses, [penalty, entropy], rtol=1e-5)


def test_reference_initialisation_keeps_selectors_in_the_smooth_region():
    gate = DSelectKGate(4, k=2, gamma=2.0)
    x = tf.random.normal([8, 16])
    gate(x)
    z_kernel, z_bias, w_kernel, _ = gate.get_weights()
    assert np.abs(z_kernel).max() <= 0.02 and np.abs(z_bias).max() <= 0.02 and np.abs(z_bias).max() > 0
    assert np.abs(w_kernel).max() <= 0.05
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(gate(x)[:, 0])
    grad = tape.gradient(loss, gate.z_logits.kernel)
    assert np.abs(grad.numpy()).max() > 0  # the smooth step passes gradient at the start


def test_config_round_trip_gives_the_same_gate():
    gate = DSelectKGate(6, k=3, gamma=0.5, entropy_weight=1e-3, kernel_regularizer="l2", name="g")
    clone = DSelectKGate.from_config(gate.get_config())
    assert clone.get_config() == gate.get_config()
    x = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    gate(x), clone(x)
    clone.set_weights(gate.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), gate(x).numpy(), rtol=1e-6)
    assert len(gate.losses) == 2  # the kernel regularizer on both Dense kernels


@pytest.mark.parametrize("kwargs, match", [
    ({"num_experts": 1}, "num_experts"),
    ({"num_experts": 4, "k": 0}, "k"),
    ({"num_experts": 4, "gamma": 0.0}, "gamma"),
    ({"num_experts": 4, "entropy_weight": -1.0}, "entropy_weight"),
])
def test_bad_gate_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DSelectKGate(**kwargs)


def test_gate_options_choose_the_gate_and_refuse_options_of_the_other_kind():
    assert type(make_gate(3, GateOptions())).__name__ == "ExpertGate"
    gate = make_gate(3, GateOptions(kind="dselect_k", k=3, gamma=0.5), name="g")
    assert isinstance(gate, DSelectKGate) and (gate.k, gate.gamma, gate.name) == (3, 0.5, "g")
    with pytest.raises(ValueError, match="kind must be one of"):
        GateOptions(kind="topk")
    with pytest.raises(ValueError, match="do not apply to kind='dselect_k'"):
        GateOptions(kind="dselect_k", temperature=2.0)
    with pytest.raises(ValueError, match="do not apply to kind='softmax'"):
        GateOptions(k=3)
    with pytest.raises(ValueError, match="k .* must be an int >= 1"):
        GateOptions(kind="dselect_k", k=0)


def test_moe_layers_use_the_gate_kind_and_load_old_configs_as_softmax():
    moe = MixtureOfExperts(4, (3,), gate_names=("a",), kind="dselect_k", k=2)
    cgc = ExtractionLayer(("a",), 2, 2, (3,), shared_gate=True, kind="dselect_k", k=1, gamma=0.5)
    assert isinstance(moe.gates["a"], DSelectKGate) and isinstance(cgc.gates["shared"], DSelectKGate)
    for layer in (moe, cgc):
        config = layer.get_config()
        clone = type(layer).from_config(config)
        assert clone.get_config() == config
        old = {key: value for key, value in config.items() if key not in ("kind", "k", "gamma")}
        assert type(type(layer).from_config(old).gates["a"]).__name__ == "ExpertGate"


def test_mmoe_with_dselect_gates_trains_saves_and_loads(small_data, small_schema, tmp_path):
    keras.utils.set_random_seed(5)
    data = small_data.take(slice(0, 256))
    model = tfmtl.models.mmoe(small_schema, small_data.tasks, num_experts=3, expert_units=(8,),
                              gate=GateOptions(kind="dselect_k", k=2))
    gate = model.get_layer("mixture_of_experts").gates["click"]
    assert isinstance(gate, DSelectKGate)
    model(data.features, training=True)
    assert len(model.losses) == 2 and all(float(loss) >= 2.0 for loss in model.losses)  # 3 experts: penalty >= k
    model.compile()
    before = [w.numpy().copy() for w in gate.weights]
    model.fit(data.to_dataset(256), epochs=1, verbose=0)
    assert any(not np.allclose(b, w.numpy()) for b, w in zip(before, gate.weights))
    path = tmp_path / "mmoe_dselect.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.get_layer("mixture_of_experts").gates["click"], DSelectKGate)
    sample = small_data.take(slice(0, 50)).features
    expected, got = model.predict(sample, verbose=0), loaded.predict(sample, verbose=0)
    for task in expected:
        np.testing.assert_allclose(got[task], expected[task], atol=1e-6)
    usage = tfmtl.diagnostics.expert_usage(model, sample, warn=False)
    assert usage.mean["mixture_of_experts/click_gate"].shape == (3,)
