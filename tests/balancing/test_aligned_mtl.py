"""Aligned-MTL against a numpy (float64) transcription of LibMTL's/TorchJD's balance transformation, the aligned
components' equal norms, and rank-deficient Gram matrices."""

import numpy as np
import pytest

from balancing_checks import assert_same_step, train_step
import tfmtl
from tfmtl.balancing.aligned_mtl import AlignedMTL, aligned_weights

ATOL = 1e-5
EPS32 = np.finfo(np.float32).eps


def _run(gradients, scale="min"):
    gradients = np.asarray(gradients, np.float32)
    balancer = AlignedMTL(scale=scale)
    balancer.build([tfmtl.Task.binary(f"t{i}") for i in range(len(gradients))])
    d = balancer.balance(gradients, np.zeros(len(gradients), np.float32)).numpy()
    return d, balancer.task_weights().numpy()


def _reference(gradients, scale="min"):
    """(alpha, B, lambda_s): eigenpairs sorted descending, the rank-r ones kept, B = sqrt(lambda_s) V L^-1/2 V^T."""
    g = np.asarray(gradients, np.float64)
    m = g @ g.T
    lam, v = np.linalg.eigh(m)
    rank = int(np.sum(lam > lam.max() * len(m) * EPS32))
    if rank == 0:
        return np.ones(len(m)), np.eye(len(m)), 0.0
    order = np.argsort(lam)[::-1]
    lam, v = lam[order][:rank], v[:, order][:, :rank]
    chosen = {"min": lam[-1], "median": np.sort(lam)[(rank - 1) // 2], "rmse": lam.mean()}[scale]
    b = np.sqrt(chosen) * (v / np.sqrt(lam)) @ v.T
    return b.sum(axis=0), b, chosen


def test_orthogonal_pair():
    d, alpha = _run([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(alpha, [1.0, 1.0], atol=ATOL)
    np.testing.assert_allclose(d, [1.0, 1.0], atol=ATOL)


def test_conflicting_pair_worked_example():
    g = [[1.0, 0.0], [-3.0, 4.0]]
    d, alpha = _run(g)
    np.testing.assert_allclose(alpha, [1.089572, 0.272393], atol=ATOL)
    np.testing.assert_allclose(d, [0.272393, 1.089572], atol=ATOL)
    # with two tasks the lower median is the minimum; rmse uses the mean eigenvalue 13
    np.testing.assert_allclose(_run(g, "median")[1], alpha, atol=ATOL)
    lam_min = 13 - np.sqrt(153)
    np.testing.assert_allclose(_run(g, "rmse")[1], alpha * np.sqrt(13 / lam_min), rtol=1e-5)


@pytest.mark.parametrize("scale", ["min", "median", "rmse"])
def test_random_three_tasks(scale):
    rng = np.random.default_rng(3)
    g = (rng.normal(size=(3, 8)) * np.array([[0.3], [1.0], [5.0]])).astype(np.float32)
    g[1] -= 0.8 * g[2] / 5.0  # some conflict
    d, alpha = _run(g, scale)
    ref_alpha, b, chosen = _reference(g, scale)
    np.testing.assert_allclose(alpha, ref_alpha, rtol=1e-5, atol=ATOL)
    np.testing.assert_allclose(d, ref_alpha @ g.astype(np.float64), rtol=1e-5, atol=ATOL)
    aligned = b @ g.astype(np.float64)  # the aligned task components: orthogonal, each of norm sqrt(lambda_s)
    np.testing.assert_allclose(aligned @ aligned.T, chosen * np.eye(3), atol=1e-6 * chosen)
    if scale == "median":  # the middle of three eigenvalues
        assert np.isclose(chosen, np.sort(np.linalg.eigvalsh(g.astype(np.float64) @ g.T.astype(np.float64)))[1])


def test_rank_deficient_gram():
    g = np.array([[1.0, 0.0, 2.0, -1.0], [-3.0, 4.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
    g[2] = g[0] + g[1]  # exact in float32: rank 2
    d, alpha = _run(g)
    assert np.all(np.isfinite(d)) and np.all(np.isfinite(alpha))
    ref_alpha, b, chosen = _reference(g)
    np.testing.assert_allclose(alpha, ref_alpha, atol=ATOL)
    np.testing.assert_allclose(d, ref_alpha @ g, atol=ATOL)
    aligned = b @ g.astype(np.float64)
    gram = aligned @ aligned.T  # sqrt(lambda_s)^2 times the projector onto the kept eigenvectors
    np.testing.assert_allclose(gram @ gram, chosen * gram, atol=1e-5 * chosen**2)
    np.testing.assert_allclose(np.trace(gram), 2 * chosen, rtol=1e-5)
    d, alpha = _run(np.zeros([3, 4]))  # nothing kept: B = I, as TorchJD
    np.testing.assert_array_equal(alpha, 1.0)
    np.testing.assert_array_equal(d, 0.0)
    d, alpha = _run([[1.0, 2.0], [2.0, 4.0]])  # parallel: rank 1, sqrt(lambda) * v v^T / sqrt(lambda)
    np.testing.assert_allclose(alpha, _reference([[1.0, 2.0], [2.0, 4.0]])[0], atol=ATOL)
    assert np.all(np.isfinite(d))


def test_arguments_config_and_plain_tower_loss():
    with pytest.raises(ValueError, match="AlignedMTL: scale must be one of 'min', 'median', 'rmse', got 'max'"):
        AlignedMTL(scale="max")
    with pytest.raises(ValueError, match="AlignedMTL: scale"):
        aligned_weights(np.eye(2, dtype=np.float32), "mean")
    balancer = AlignedMTL.from_config(AlignedMTL(scale="rmse", layers=["bottom"]).get_config())
    assert (balancer.scale, balancer.layers) == ("rmse", ("bottom",))
    balancer.build([tfmtl.Task.binary("a"), tfmtl.Task.binary("b")])
    balancer.balance(np.array([[1.0, 0.0], [-3.0, 4.0]], np.float32), np.zeros(2, np.float32))
    assert float(balancer.combine(np.array([2.0, 3.0], np.float32))) == 5.0  # plain sum for the towers


def test_model_trains_one_step_with_and_without_xla():
    steps = [train_step(AlignedMTL(), jit_compile, learning_rate=0.1) for jit_compile in (False, True)]
    for step in steps:
        assert all(np.isfinite(value) for value in step.logs.values()), step.logs
        assert np.all(np.isfinite(step.balancer.task_weights().numpy()))
    assert_same_step(*steps)
