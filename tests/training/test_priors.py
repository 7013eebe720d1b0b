"""Label priors: each head's bias from its labels, computed by hand."""

import numpy as np
import pytest

import tfmtl


def _model(tasks):
    schema = tfmtl.Schema([tfmtl.Numeric("x", mean=0.0, variance=1.0)])
    return tfmtl.models.shared_bottom(schema, tasks, bottom_units=(4,))


def test_biases_are_the_priors_of_the_present_labels():
    tasks = [tfmtl.Task.binary("click"), tfmtl.Task.binary("buy", space="click"), tfmtl.Task.regression("watch"),
             tfmtl.Task.multiclass("genre", num_classes=3)]
    model = _model(tasks)
    labels = {
        "click": np.array([1.0, 1.0, 0.0, 0.0, 0.0, np.nan]),
        "buy": np.array([1.0, 0.0, 1.0, 1.0, 1.0, 1.0]),  # only the two clicked rows count
        "watch": np.array([2.0, np.nan, 4.0, 9.0, np.nan, 0.0]),
        "genre": np.array([0, 0, 2, -1, 0, 2], np.float32),
    }
    biases = tfmtl.training.set_label_priors(model, labels)
    assert biases["click"] == pytest.approx([np.log(0.4 / 0.6)])
    assert biases["buy"] == pytest.approx([0.0])  # 1 of 2 in the click space
    assert biases["watch"] == pytest.approx([3.75])
    assert biases["genre"] == pytest.approx(np.log(np.array([4.0, 1.0, 3.0]) / 8.0).tolist())
    for name, bias in biases.items():
        np.testing.assert_allclose(model.get_layer(name).bias.numpy(), bias, rtol=1e-6)


def test_the_model_then_predicts_about_the_rate_and_funnel_heads_are_left_alone():
    tasks = [tfmtl.Task.binary("click"), tfmtl.Task.binary("buy", follows="click")]
    model = _model(tasks)
    before = model.get_layer("buy").get_weights()
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=2000).astype(np.float32)}
    labels = {"click": (rng.random(2000) < 0.1).astype(np.float32), "buy": np.zeros(2000, np.float32)}
    assert sorted(tfmtl.training.set_label_priors(model, labels)) == ["click"]
    predicted = model.predict(data, verbose=0)["click"].mean()
    assert abs(predicted - labels["click"].mean()) < 0.05  # from 0.5 at bias 0
    for a, b in zip(before, model.get_layer("buy").get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_task_without_labels_is_named():
    model = _model([tfmtl.Task.binary("click")])
    with pytest.raises(ValueError, match="task 'click': no present label"):
        tfmtl.training.set_label_priors(model, {"click": np.array([np.nan, np.nan])})
    with pytest.raises(ValueError, match="task 'click': no label 'click' among"):
        tfmtl.training.set_label_priors(model, {"clicks": np.array([1.0])})
