"""MetaBalance against the worked example, its three strategies and a numpy multi-step reference."""

import numpy as np
import pytest

from balancing_checks import assert_same_step, train_step
import tfmtl
from tfmtl.balancing.metabalance import MetaBalance

ATOL = 1e-5
C = np.array([[1.0, 0.0], [-3.0, 4.0]], np.float32)


def _built(names=("a", "b"), **kwargs):
    balancer = MetaBalance(**kwargs)
    balancer.build([tfmtl.Task.binary(name) for name in names])
    return balancer


def _step(balancer, g):
    d = balancer.balance(np.asarray(g, np.float32), np.zeros(len(g), np.float32)).numpy()
    return d, balancer.task_weights().numpy()


def _reference(steps, target=0, relax=0.7, beta=0.9, strategy="C"):
    """Algorithm 2, float64: per step (d, w) with the norms' moving averages from 0."""
    m = np.zeros(len(steps[0]))
    out = []
    for g in steps:
        g = np.asarray(g, np.float64)
        m = beta * m + (1 - beta) * np.linalg.norm(g, axis=1)
        w = np.ones(len(g))
        for i in range(len(g)):
            if i == target:
                continue
            if strategy == "C" or (strategy == "A" and m[i] > m[target]) or (strategy == "B" and m[i] < m[target]):
                w[i] = relax * m[target] / m[i] + (1 - relax)
        out.append((w @ g, w))
    return out


def test_worked_example():
    balancer = _built()
    d, w = _step(balancer, C)
    np.testing.assert_allclose(w, [1.0, 0.44], atol=ATOL)
    np.testing.assert_allclose(d, [-0.32, 1.76], atol=ATOL)
    np.testing.assert_allclose(balancer.norms.numpy(), [0.1, 0.5], atol=ATOL)


def test_strategies_a_and_b():
    # the auxiliary gradient is larger than the target's: A shrinks it, B leaves it
    d, w = _step(_built(strategy="A"), C)
    np.testing.assert_allclose(w, [1.0, 0.44], atol=ATOL)
    d, w = _step(_built(strategy="B"), C)
    np.testing.assert_allclose(w, [1.0, 1.0], atol=ATOL)
    np.testing.assert_allclose(d, [-2.0, 4.0], atol=ATOL)
    # target "b" (norm 5), auxiliary "a" (norm 1): A leaves it, B enlarges it (0.7 * 5 + 0.3), as C
    d, w = _step(_built(target="b", strategy="A"), C)
    np.testing.assert_allclose(w, [1.0, 1.0], atol=ATOL)
    for strategy in ("B", "C"):
        d, w = _step(_built(target="b", strategy=strategy), C)
        np.testing.assert_allclose(w, [3.8, 1.0], atol=ATOL)
        np.testing.assert_allclose(d, [0.8, 4.0], atol=ATOL)


@pytest.mark.parametrize("strategy", ["A", "B", "C"])
def test_three_tasks_three_steps_against_numpy(strategy):
    rng = np.random.default_rng(4)
    scales = [np.array([[1.0], [3.0], [0.2]]), np.array([[1.0], [0.5], [0.3]]), np.array([[2.0], [0.1], [6.0]])]
    steps = [(rng.normal(size=(3, 5)) * s).astype(np.float32) for s in scales]
    balancer = _built(("x", "y", "z"), target="y", relax=0.6, beta=0.5, strategy=strategy)
    for index, ((want_d, want_w), g) in enumerate(zip(_reference(steps, 1, 0.6, 0.5, strategy), steps)):
        d, w = _step(balancer, g)
        np.testing.assert_allclose(w, want_w, rtol=1e-5, err_msg=f"step {index}")
        np.testing.assert_allclose(d, want_d, rtol=1e-5, atol=ATOL, err_msg=f"step {index}")
    if strategy != "C":  # the sequence makes both conditions hold at some point
        scaled = [w for _, w in _reference(steps, 1, 0.6, 0.5, strategy)]
        assert any(np.any(w != 1.0) for w in scaled) and any(np.any(np.delete(w, 1) == 1.0) for w in scaled)


def test_zero_auxiliary_gradient():
    d, w = _step(_built(), [[1.0, 0.0], [0.0, 0.0]])
    assert np.all(np.isfinite(w))
    np.testing.assert_allclose(d, [1.0, 0.0], atol=ATOL)


def test_arguments():
    with pytest.raises(ValueError, match="MetaBalance: relax must be in \\[0, 1\\], got 1.5"):
        MetaBalance(relax=1.5)
    with pytest.raises(ValueError, match="MetaBalance: beta must be in \\[0, 1\\), got 1.0"):
        MetaBalance(beta=1.0)
    with pytest.raises(ValueError, match="MetaBalance: strategy must be one of 'A', 'B', 'C', got 'D'"):
        MetaBalance(strategy="D")
    with pytest.raises(TypeError, match="MetaBalance: target must be a task name"):
        MetaBalance(target=1)
    balancer = MetaBalance(target="buy")
    with pytest.raises(ValueError, match=r"MetaBalance: target 'buy' is not one of the model's tasks \['a', 'b'\]"):
        balancer.build([tfmtl.Task.binary("a"), tfmtl.Task.binary("b")])
    balancer.build([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])  # still usable
    assert balancer.target_index == 1


def test_config_and_plain_tower_loss():
    config = MetaBalance(target="b", relax=0.5, beta=0.8, strategy="B", layers=["x"]).get_config()
    balancer = MetaBalance.from_config(config)
    assert (balancer.target, balancer.relax, balancer.beta, balancer.strategy, balancer.layers) == (
        "b", 0.5, 0.8, "B", ("x",))
    balancer.build([tfmtl.Task.binary("a"), tfmtl.Task.binary("b")])
    _step(balancer, C)
    assert float(balancer.combine(np.array([2.0, 3.0], np.float32))) == 5.0  # plain sum for the towers


def test_model_trains_one_step_with_and_without_xla():
    steps = [train_step(MetaBalance(target="b"), jit_compile, learning_rate=0.1) for jit_compile in (False, True)]
    for step in steps:
        assert all(np.isfinite(value) for value in step.logs.values()), step.logs
        weights = step.balancer.task_weights().numpy()
        assert np.all(np.isfinite(weights)) and weights[1] == 1.0 and weights[0] != 1.0
    assert_same_step(*steps)
