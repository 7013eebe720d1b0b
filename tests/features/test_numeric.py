"""Numbers: statistics, clipping, log transform, standardization and the periodic embedding."""

import numpy as np
import pytest

from tfmtl.features import Categorical, Numeric, PeriodicEmbedding, Schema


def test_moments_are_those_of_the_transformed_values_over_all_batches():
    values = np.random.default_rng(0).lognormal(size=1000)
    spec = Schema([Numeric("x", log=True)]).adapt({"x": values}, batch_size=64)["x"]
    assert spec.mean == pytest.approx(np.log1p(values).mean()) and spec.variance == pytest.approx(np.log1p(values).var())

def test_numeric_log_and_clip_statistics_and_encoding(raw_encoder):
    values = np.array([-5.0, 0.0, 10.0, 1e6], np.float32)
    spec = Schema([Numeric("x", log=True, clip=(0.0, 100.0))]).adapt({"x": values})["x"]
    transformed = np.log1p(np.clip(values.astype(np.float64), 0.0, 100.0))
    assert spec.mean == pytest.approx(transformed.mean()) and spec.variance == pytest.approx(transformed.var())
    out = raw_encoder(Schema([spec]))({"x": values}).numpy()[:, 0]
    np.testing.assert_allclose(out, (transformed - spec.mean) / np.sqrt(spec.variance), rtol=1e-5)


def test_periodic_embedding_matches_numpy_and_replaces_the_standardized_value(raw_encoder):
    spec = Numeric("x", mean=1.0, variance=4.0, embedding_dim=2, frequencies=3)
    encoder = raw_encoder(Schema([Categorical("c", embedding_dim=1, vocabulary=("a",)), spec]))
    values = np.array([-3.0, 1.0, 2.5, 1e4], np.float32)
    out = encoder({"c": np.array(["a"] * 4), "x": values}).numpy()
    layer = encoder.encoders["x"].periodic
    assert isinstance(layer, PeriodicEmbedding) and layer.name == "x_periodic"
    frequencies = layer.coefficients.numpy()
    kernel, bias = (w.numpy() for w in layer.dense.weights)
    phase = 2 * np.pi * ((values[:, None] - 1.0) / 2.0) * frequencies  # standardized first
    expected = np.maximum(np.concatenate([np.cos(phase), np.sin(phase)], 1) @ kernel + bias, 0.0)
    assert encoder.output_widths() == [("c", 1), ("x", 2)] and out.shape == (4, 3)
    np.testing.assert_allclose(out[:, 1:], expected, rtol=1e-4, atol=1e-5)
    assert frequencies.std() > 0 and len({round(float(f), 6) for f in frequencies}) == 3  # drawn, not constant


def test_embedded_numeric_sits_with_the_embeddings_and_plain_numerics_stay_last(raw_encoder):
    schema = Schema([
        Numeric("plain", mean=0.0, variance=1.0),
        Numeric("embedded", mean=0.0, variance=1.0, embedding_dim=4),
        Categorical("c", embedding_dim=2, vocabulary=("a",)),
    ])
    encoder = raw_encoder(schema)
    assert encoder.output_widths() == [("embedded", 4), ("c", 2), ("plain", 1)]
    assert encoder.scalar_features == ["plain"]
    assert Schema.from_config(schema.get_config()) == schema
