import numpy as np
import pytest

from tfmtl._compat import tf
from tfmtl.layers import ExpertGate, ExtractionLayer, MixtureOfExperts, mix_experts


def test_a_gate_with_equal_logits_mixes_experts_by_their_mean():
    gate = ExpertGate(3, kernel_initializer="zeros")
    experts = tf.random.normal([4, 3, 5])
    mixed = mix_experts(gate(tf.random.normal([4, 6])), experts)
    np.testing.assert_allclose(mixed.numpy(), tf.reduce_mean(experts, axis=1).numpy(), rtol=1e-5, atol=1e-6)


def test_temperature_divides_the_logits():
    x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    cold, hot = ExpertGate(3, temperature=0.5), ExpertGate(3, temperature=4.0)
    cold(x), hot(x)
    hot.set_weights(cold.get_weights())
    logits = x @ cold.kernel.numpy()
    for gate, t in ((cold, 0.5), (hot, 4.0)):
        expected = np.exp(logits / t) / np.exp(logits / t).sum(-1, keepdims=True)
        np.testing.assert_allclose(gate(x).numpy(), expected, rtol=1e-5)
    assert hot(x).numpy().max() < cold(x).numpy().max()  # hotter = flatter
    with pytest.raises(ValueError, match="temperature"):
        ExpertGate(2, temperature=0.0)


def test_cgc_without_task_experts_equals_mmoe_over_the_shared_experts():
    x = np.random.default_rng(1).normal(size=(5, 6)).astype(np.float32)
    mmoe = MixtureOfExperts(3, (4, 2), gate_names=("a", "b"))
    cgc = ExtractionLayer(("a", "b"), num_shared_experts=3, num_task_experts=0, expert_units=(4, 2))
    mmoe(x), cgc(x)
    for variable, source in zip(cgc.shared_experts.weights, mmoe.experts.weights):
        variable.assign(source)
    for name in ("a", "b"):
        cgc.gates[name].kernel.assign(mmoe.gates[name].kernel)
    expected, got = mmoe(x), cgc(x)
    for name in ("a", "b"):
        np.testing.assert_allclose(got[name].numpy(), expected[name].numpy(), rtol=1e-5, atol=1e-6)


def test_extraction_layer_matches_a_numpy_oracle():
    x = {t: np.random.default_rng(i).normal(size=(3, 4)).astype(np.float32) for i, t in enumerate(("a", "b", "shared"))}
    layer = ExtractionLayer(("a", "b"), num_shared_experts=2, num_task_experts=1, expert_units=(5,), shared_gate=True)
    out = layer(x)
    relu = lambda v: np.maximum(v, 0)  # noqa: E731

    def bank(experts, inputs):  # [B, E, H]
        kernel, bias = experts.kernels[0].numpy(), experts.biases[0].numpy()
        return np.stack([relu(inputs @ kernel[e] + bias[e]) for e in range(kernel.shape[0])], axis=1)

    def softmax(v):
        return np.exp(v) / np.exp(v).sum(-1, keepdims=True)

    shared = bank(layer.shared_experts, x["shared"])
    own = {t: bank(layer.task_experts[t], x[t]) for t in ("a", "b")}
    for t in ("a", "b"):
        weights = softmax(x[t] @ layer.gates[t].kernel.numpy())  # [B, 1 + 2]
        expected = np.einsum("be,beh->bh", weights, np.concatenate([own[t], shared], axis=1))
        np.testing.assert_allclose(out[t].numpy(), expected, rtol=1e-5, atol=1e-6)
    weights = softmax(x["shared"] @ layer.gates["shared"].kernel.numpy())  # [B, 2*1 + 2]
    pool = np.concatenate([own["a"], own["b"], shared], axis=1)
    np.testing.assert_allclose(out["shared"].numpy(), np.einsum("be,beh->bh", weights, pool), rtol=1e-5, atol=1e-6)


def test_extraction_layer_config_round_trip_and_checks():
    layer = ExtractionLayer(("a",), num_shared_experts=1, num_task_experts=2, expert_units=(3,), temperature=2.0)
    clone = ExtractionLayer.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    x = np.random.default_rng(3).normal(size=(4, 5)).astype(np.float32)
    layer(x), clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x)["a"].numpy(), layer(x)["a"].numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="must not include 'shared'"):
        ExtractionLayer(("shared",), 1, 1, (2,))
    with pytest.raises(ValueError, match="at least one expert"):
        ExtractionLayer(("a",), 0, 0, (2,))
