import numpy as np
import pytest

from tfmtl._compat import tf
from tfmtl.layers import Experts, MixtureOfExperts


def _relu(x):
    return np.maximum(x, 0.0)


@pytest.mark.parametrize("implementation", ["per_expert", "einsum", "auto"])
def test_experts_match_a_per_expert_numpy_loop(implementation):
    experts = Experts(num_experts=3, units=(5, 4), implementation=implementation)
    x = np.random.default_rng(0).normal(size=(6, 7)).astype(np.float32)
    out = experts(x).numpy()
    kernels = [k.numpy() for k in experts.kernels]
    biases = [b.numpy() for b in experts.biases]
    for e in range(3):
        hidden = _relu(x @ kernels[0][e] + biases[0][e])
        hidden = _relu(hidden @ kernels[1][e] + biases[1][e])
        np.testing.assert_allclose(out[:, e, :], hidden, rtol=1e-5, atol=1e-6)


def test_auto_picks_einsum_for_narrow_experts_only():
    assert Experts(8, (16,)).computation == "einsum"
    assert Experts(8, (32, 16)).computation == "einsum"
    assert Experts(8, (256, 128)).computation == "per_expert"
    assert Experts(8, (16,), implementation="per_expert").computation == "per_expert"
    assert Experts.from_config(Experts(8, (16,)).get_config()).implementation == "auto"


def test_experts_start_from_different_weights_with_per_expert_glorot_scale():
    experts = Experts(num_experts=4, units=(64,))
    experts.build((None, 100))
    kernel = experts.kernels[0].numpy()  # [E, 100, 64]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.allclose(kernel[i], kernel[j])
    limit = np.sqrt(6.0 / (100 + 64))
    assert np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > 0.9 * limit


def test_mixture_is_the_softmax_gate_weighted_sum_of_experts():
    moe = MixtureOfExperts(3, (4,), gate_names=("a", "b"))
    x = np.random.default_rng(1).normal(size=(5, 6)).astype(np.float32)
    out = moe(x)
    expert_out = moe.experts(x).numpy()  # [B, E, H]
    for name in ("a", "b"):
        logits = x @ moe.gates[name].kernel.numpy()  # [B, E]
        weights = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        expected = np.einsum("be,beh->bh", weights, expert_out)
        np.testing.assert_allclose(out[name].numpy(), expected, rtol=1e-5, atol=1e-6)
    # Different gates give different mixtures of the same experts.
    assert not np.allclose(out["a"].numpy(), out["b"].numpy())


def test_layers_round_trip_their_config():
    moe = MixtureOfExperts(2, (3,), gate_names=("x",), name="moe")
    clone = MixtureOfExperts.from_config(moe.get_config())
    assert clone.get_config() == moe.get_config()
    x = np.random.default_rng(2).normal(size=(4, 5)).astype(np.float32)
    moe(x), clone(x)
    clone.set_weights(moe.get_weights())  # same config + same weights = same layer
    np.testing.assert_allclose(clone(x)["x"].numpy(), moe(x)["x"].numpy(), rtol=1e-6)
    experts = Experts(2, (3, 2))
    assert Experts.from_config(experts.get_config()).get_config() == experts.get_config()


@pytest.mark.parametrize("kwargs", [
    {"num_experts": 0, "units": (4,)},
    {"num_experts": 2, "units": ()},
    {"num_experts": 2, "units": (4,), "implementation": "loop"},
])
def test_bad_expert_arguments(kwargs):
    with pytest.raises(ValueError):
        Experts(**kwargs)


def test_gate_weights_sum_to_one():
    moe = MixtureOfExperts(5, (2,), gate_names=("t",))
    weights = moe.gate_weights(tf.random.normal([4, 3]))["t"].numpy()
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
