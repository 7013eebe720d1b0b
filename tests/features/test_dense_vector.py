"""Pre-computed vectors: checked for NaN/Inf, passed on or projected."""

import numpy as np
import pytest

from tfmtl._compat import tf
from tfmtl.features import DenseVector, Schema


def test_projection_is_a_learned_linear_map_and_the_plain_vector_passes_as_is(raw_encoder):
    vectors = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    plain = raw_encoder(Schema([DenseVector("v", dim=3)]))
    np.testing.assert_array_equal(plain({"v": vectors}).numpy(), vectors)
    projected = raw_encoder(Schema([DenseVector("v", dim=3, projection_dim=2)]))
    out = projected({"v": vectors}).numpy()
    kernel, bias = (w.numpy() for w in projected.encoders["v"].projection.weights)
    np.testing.assert_allclose(out, vectors @ kernel + bias, rtol=1e-5)
    assert out.shape == (4, 2) and projected.output_dim == 2


def test_nan_in_a_vector_is_refused_naming_the_feature(raw_encoder):
    with pytest.raises(tf.errors.InvalidArgumentError, match="'v' contains NaN"):
        raw_encoder(Schema([DenseVector("v", dim=2)]))({"v": np.array([[1.0, np.inf]], np.float32)})
