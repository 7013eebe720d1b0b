"""The one path: a custom body through the public build_model, features a body can read, old files still loading."""

import json
from pathlib import Path

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras, tf

LEGACY = Path(__file__).parent.parent / "data" / "legacy"


def test_a_custom_body_gets_towers_transfer_heads_and_saves(tmp_path):
    schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0),
                           tfmtl.Categorical("item", embedding_dim=3, vocabulary=("a", "b", "c"))])
    tasks = [tfmtl.Task.binary("click", tower_units=(4,)),
             tfmtl.Task.binary("buy", tower_units=(4,), follows="click", transfer=True, order_weight=0.5)]

    def two_layers(features, tasks):  # one dense layer per task over the item's embedding and the price
        picked = features.select(["item", "price"], name="picked")  # [B, 4]
        return {task.name: keras.layers.Dense(5, activation="relu", name=f"{task.name}_body")(picked) for task in tasks}

    model = tfmtl.models.build_model(schema, tasks, two_layers, name="custom")
    x = {"price": np.array([0.5, -1.0], np.float32), "item": np.array(["b", "zzz"])}
    encoded = keras.Model(model.inputs, model.get_layer("features").output)(x).numpy()  # [B, 3 + 1]
    np.testing.assert_allclose(keras.Model(model.inputs, model.get_layer("picked").output)(x).numpy(), encoded)
    for name in ("click_tower", "buy_tower", "buy_transfer"):
        model.get_layer(name)  # built by build_model from the tasks
    model.compile()
    model.save(tmp_path / "custom.keras")
    loaded = keras.models.load_model(tmp_path / "custom.keras")
    for task, values in model(x).items():
        np.testing.assert_allclose(loaded(x)[task].numpy(), values.numpy(), atol=1e-6)


def test_body_errors_name_what_is_wrong():
    schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    with pytest.raises(ValueError, match=r"no representation for task\(s\) \['buy'\]"):
        tfmtl.models.build_model(schema, [tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")],
                                 lambda features, tasks: {"click": features.shared}, name="m")
    with pytest.raises(ValueError, match=r"\['age'\] are not among the encoded features \['price'\]"):
        tfmtl.models.build_model(schema, [tfmtl.Task.binary("click")],
                                 lambda features, tasks: {"click": features.select(["age"], name="s")}, name="m")
    with pytest.raises(ValueError, match="'price' must be a categorical feature"):
        tfmtl.models.build_model(schema, [tfmtl.Task.binary("click")],
                                 lambda features, tasks: {"click": features.rows("price")}, name="m")


def test_rows_are_the_lookup_of_a_categorical_feature():
    schema = tfmtl.Schema([tfmtl.Categorical("item", embedding_dim=2, vocabulary=("a", "b"))])
    seen = {}

    def body(features, tasks):
        seen["rows"] = features.rows("item")
        return {"click": features.shared}

    model = tfmtl.models.build_model(schema, [tfmtl.Task.binary("click")], body, name="m")
    rows = keras.Model(model.inputs, seen["rows"])({"item": np.array(["a", "b", "new", "a"])}).numpy()
    assert rows.dtype == np.int64 and len(set(rows[:3].tolist())) == 3 and rows[0] == rows[3]


@pytest.mark.parametrize("name", ["aitm", "esmm"])
def test_models_saved_before_the_one_path_still_load_and_answer_the_same(name):
    """tests/data/legacy holds .keras files written by commit 5142793 (AITM with its FunnelHead)."""
    expected = json.loads((LEGACY / "expected.json").read_text())
    model = keras.models.load_model(LEGACY / f"{name}.keras")
    x = {key: np.asarray(values) for key, values in expected["features"].items()}
    got = model.predict(x, verbose=0)
    for task, values in expected["predictions"][name].items():
        np.testing.assert_allclose(got[task][:, 0], values, atol=1e-6)
    if name == "aitm":  # the old head keeps its calibrator: one loss term, as before
        assert isinstance(model.get_layer("conversion"), tfmtl.tasks.funnel.FunnelHead)


def test_aitm_calibrator_is_the_order_penalty_of_the_objective():
    """The new AITM adds alpha * mean(max(p_conv - p_click, 0)) through the task's order_weight, as the old head did."""
    schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    model = tfmtl.models.aitm(schema, [tfmtl.Task.binary("click"), tfmtl.Task.binary("conversion")],
                              tower_units=4, calibration_weight=0.6)
    model.compile()
    x = {"price": np.linspace(-2, 2, 16).astype(np.float32)}
    out = model(x)
    extra = model.objective.extra_loss(out)
    expected = 0.6 * np.maximum(out["conversion"].numpy() - out["click"].numpy(), 0).mean()
    assert float(extra) == pytest.approx(expected, rel=1e-5, abs=1e-7)
    with pytest.raises(ValueError, match="step 'conversion' follows 'view', but the step before it"):
        tfmtl.models.aitm(schema, [tfmtl.Task.binary("view"), tfmtl.Task.binary("click"),
                                   tfmtl.Task.binary("conversion", follows="view")])
