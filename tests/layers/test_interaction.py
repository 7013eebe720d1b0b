import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras
from tfmtl.layers import Cross, Dot, FeatureDotInteraction

SCHEMA = tfmtl.Schema([
    tfmtl.Categorical("a", embedding_dim=3, vocabulary=("x", "y")),
    tfmtl.Categorical("b", embedding_dim=2, vocabulary=("p",)),
    tfmtl.Numeric("n1", mean=0.0, variance=1.0),
    tfmtl.Numeric("n2", mean=0.0, variance=1.0),
])
BATCH = {"a": np.array(["x", "y"]), "b": np.array(["p", "q"]), "n1": np.array([0.5, -1.0]), "n2": np.array([2.0, 0.0])}


def test_dot_interaction_matches_numpy_pairwise_products():
    keras.utils.set_random_seed(0)  # the projection's initial kernel
    layer = FeatureDotInteraction([2, 3, 2], dim=2)
    x = np.random.default_rng(0).normal(size=(4, 7)).astype(np.float32)
    out = layer(x).numpy()
    projected = x[:, 2:5] @ layer.projections["1"].kernel.numpy()
    vectors = [x[:, :2], projected, x[:, 5:]]
    pairs = [(vectors[i] * vectors[j]).sum(1) for i in range(3) for j in range(i)]  # tfrs order: lower triangle
    np.testing.assert_allclose(out[:, :7], x)
    np.testing.assert_allclose(np.sort(out[:, 7:], axis=1), np.sort(np.stack(pairs, 1), axis=1), rtol=1e-5, atol=1e-6)


def test_dot_needs_one_width_or_a_projection():
    with pytest.raises(ValueError, match=r"different widths \[3, 2, 2\].*Dot\(dim=...\)"):
        tfmtl.models.shared_bottom(SCHEMA, [tfmtl.Task.binary("click")], bottom_units=(4,), interaction=Dot())


@pytest.mark.parametrize("interaction", [Cross(num_layers=2), Cross(projection_dim=2), Dot(dim=3, self_interaction=True)])
def test_interactions_train_and_round_trip_through_keras_save(interaction, tmp_path):
    keras.utils.set_random_seed(0)
    model = tfmtl.models.mmoe(SCHEMA, [tfmtl.Task.binary("click")], num_experts=2, expert_units=(4,),
                              interaction=interaction)
    model.compile()
    model.fit(BATCH, {"click": np.array([1.0, 0.0])}, verbose=0)
    before = model.predict(BATCH, verbose=0)["click"]
    model.save(tmp_path / "m.keras")
    after = keras.models.load_model(tmp_path / "m.keras").predict(BATCH, verbose=0)["click"]
    np.testing.assert_allclose(after, before, rtol=1e-6)


def test_dot_treats_an_embedded_numeric_as_one_vector():
    schema = tfmtl.Schema([
        tfmtl.Categorical("a", embedding_dim=3, vocabulary=("x", "y")),
        tfmtl.Numeric("n1", mean=0.0, variance=1.0, embedding_dim=3),
        tfmtl.Numeric("n2", mean=0.0, variance=1.0),
    ])
    model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(4,),
                                       interaction=Dot(dim=3))
    layer = model.get_layer("dot_interaction")
    assert layer.widths == (3, 3, 1)  # a, n1's periodic embedding, then the plain numerics
    assert layer.output_shape == (None, 7 + 3)


def test_cross_layers_shorthand_equals_the_cross_option_and_excludes_it():
    a = tfmtl.models.shared_bottom(SCHEMA, [tfmtl.Task.binary("click")], bottom_units=(4,), cross_layers=2)
    b = tfmtl.models.shared_bottom(SCHEMA, [tfmtl.Task.binary("click")], bottom_units=(4,), interaction=Cross(2))
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]
    with pytest.raises(ValueError, match="cross_layers or interaction, not both"):
        tfmtl.models.shared_bottom(SCHEMA, [tfmtl.Task.binary("click")], cross_layers=1, interaction=Dot(dim=2))
