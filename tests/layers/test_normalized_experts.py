"""HoME's expert bank: batch-normalised Swish experts with low-rank feature gates, against numpy."""

import numpy as np
import pytest

from tfmtl._compat import keras
from tfmtl.layers import NormalizedExperts


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def randomize(layer, seed):
    """Random values for every weight, with positive moving variances (so BN's inference branch is non-trivial)."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        if "moving_variance" in w.name:
            w.assign(rng.uniform(0.5, 2.0, w.shape))
        elif "gamma" in w.name:
            w.assign(rng.uniform(0.5, 1.5, w.shape))
        else:
            w.assign(rng.normal(0.0, 0.6, w.shape))


def bank(experts, x):
    """Numpy NormalizedExperts at inference: [B, D] -> [B, E, H]."""
    E = experts.num_experts
    h = np.repeat(x[:, None, :], E, axis=1)  # [B, E, D]
    if experts.feature_gate_rank:
        A, B = experts.gate_down.numpy(), experts.gate_up.numpy()
        h = np.stack([x * 2 * sigmoid(x @ A[e] @ B[e]) for e in range(E)], axis=1)
    for kernel, bn in zip(experts.kernels, experts.batch_norms):
        W = kernel.numpy()
        pre = np.stack([h[:, e] @ W[e] for e in range(E)], axis=1)  # [B, E, H]
        mean, var = bn.moving_mean.numpy()[0], bn.moving_variance.numpy()[0]  # [E, H]: per expert and unit
        normed = bn.gamma.numpy()[0] * (pre - mean) / np.sqrt(var + bn.epsilon) + bn.beta.numpy()[0]
        h = normed * sigmoid(normed)  # swish
    return h


def test_batch_norm_uses_batch_statistics_per_expert_in_training_and_moving_ones_at_inference():
    x = np.random.default_rng(3).normal(size=(8, 4)).astype(np.float32)
    experts = NormalizedExperts(2, (3,), momentum=0.9)
    experts(x)
    randomize(experts, seed=4)
    bn = experts.batch_norms[0]
    moving_mean, moving_var = bn.moving_mean.numpy()[0], bn.moving_variance.numpy()[0]
    W = experts.kernels[0].numpy()
    pre = np.stack([x @ W[e] for e in range(2)], axis=1)  # [B, E, H]
    mean, var = pre.mean(axis=0), pre.var(axis=0)  # per expert and unit, over the batch only
    normed = bn.gamma.numpy()[0] * (pre - mean) / np.sqrt(var + bn.epsilon) + bn.beta.numpy()[0]
    np.testing.assert_allclose(experts(x, training=True).numpy(), normed * sigmoid(normed), rtol=1e-4, atol=1e-5)
    # the moving averages moved toward the batch statistics (Keras uses the unbiased batch variance)
    np.testing.assert_allclose(bn.moving_mean.numpy()[0], 0.9 * moving_mean + 0.1 * mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy()[0], 0.9 * moving_var + 0.1 * var, rtol=1e-4)
    # inference: the (updated) moving statistics, not this batch's
    np.testing.assert_allclose(experts(x, training=False).numpy(), bank(experts, x), rtol=1e-4, atol=1e-5)
    assert not np.allclose(experts(x, training=False).numpy(), experts(x, training=True).numpy(), atol=1e-3)


def test_feature_gates_start_at_one_and_experts_start_apart_even_with_a_seeded_initializer():
    x = np.random.default_rng(5).normal(size=(4, 6)).astype(np.float32)
    seeded = keras.initializers.GlorotUniform(seed=7)
    experts = NormalizedExperts(3, (4,), feature_gate_rank=2, kernel_initializer=seeded, name="bank")
    experts(x)
    np.testing.assert_array_equal(experts.feature_gates(x).numpy(), np.ones([4, 3, 6], np.float32))  # B = 0
    W = experts.kernels[0].numpy()
    assert not np.allclose(W[0], W[1]) and not np.allclose(W[1], W[2])
    again = NormalizedExperts(3, (4,), feature_gate_rank=2, kernel_initializer=seeded, name="bank")
    again(x)
    np.testing.assert_array_equal(again.kernels[0].numpy(), W)  # seeded: reproducible (same bank name)
    limit = np.sqrt(6.0 / (6 + 4))  # Glorot of one expert's [6, 4] kernel, not of the stacked [3, 6, 4]
    assert np.abs(W).max() <= limit and np.abs(W).max() > 0.5 * limit


def test_config_round_trip_and_argument_errors():
    experts = NormalizedExperts(2, (3, 2), feature_gate_rank=1, momentum=0.9)
    assert NormalizedExperts.from_config(experts.get_config()).get_config() == experts.get_config()
    with pytest.raises(ValueError, match=r"num_experts must be an int >= 1, got 0"):
        NormalizedExperts(0, (3,))
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
        NormalizedExperts(1, (3,), momentum=1.0)
