import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras, tf
from tfmtl.features import Categorical, IdType, Numeric, Schema


@pytest.fixture(scope="module")
def tiny_schema():
    return Schema([
        Categorical("item", embedding_dim=3, vocabulary=("a", "b", "c")),
        Categorical("hour", embedding_dim=2, vocabulary=(1, 2), id_type=IdType.INT64),
        Numeric("price", mean=1.0, variance=1.0),
    ])


TASKS = (tfmtl.Task.binary("ctr", label="click"), tfmtl.Task.regression("rating", loss_weight=0.5))
BATCH = {"item": np.array(["a", "zzz"]), "hour": np.array([1, 99]), "price": np.array([0.5, 2.0], np.float32)}


@pytest.mark.parametrize("build", [
    lambda s, t: tfmtl.models.mmoe(s, t, num_experts=3, expert_units=(8, 4)),
    lambda s, t: tfmtl.models.shared_bottom(s, t, bottom_units=(8,)),
    lambda s, t: tfmtl.models.mmoe(s, t, num_experts=2, expert_units=(4,), cross_layers=2, cross_projection_dim=2),
])
def test_outputs_are_keyed_by_task_with_one_value_per_example(tiny_schema, build):
    model = build(tiny_schema, TASKS)
    assert isinstance(model, tfmtl.models.MultiTaskModel)
    out = model(BATCH)
    assert sorted(out) == ["ctr", "rating"]
    assert out["ctr"].shape == (2, 1) and out["rating"].shape == (2, 1)
    ctr = out["ctr"].numpy()
    assert np.all((ctr > 0) & (ctr < 1))
    assert model.task_names == ("ctr", "rating")


def test_single_task_is_a_valid_model(tiny_schema):
    model = tfmtl.models.mmoe(tiny_schema, [tfmtl.Task.binary("ctr")], num_experts=2, expert_units=(4,))
    assert list(model(BATCH)) == ["ctr"]


def test_uses_tfrs_blocks_and_cross_layers(tiny_schema):
    model = tfmtl.models.shared_bottom(tiny_schema, TASKS, bottom_units=(8,), cross_layers=1)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"MLP", "Cross", "FeatureEncoder"} <= kinds


def test_compile_fills_losses_weights_and_metrics_from_tasks(tiny_schema):
    model = tfmtl.models.mmoe(tiny_schema, TASKS, num_experts=2, expert_units=(4,))
    model.compile()
    labels = {"click": np.array([1.0, 0.0], np.float32), "rating": np.array([3.0, np.nan], np.float32)}
    metrics = model.evaluate(BATCH, labels, return_dict=True, verbose=0)
    assert {"ctr/auc", "ctr/logloss", "rating/rmse", "rating/mae", "ctr/loss", "rating/loss"} <= set(metrics)
    assert metrics["loss"] == pytest.approx(metrics["ctr/loss"] + 0.5 * metrics["rating/loss"], rel=1e-5)
    # The rating loss only counts the present label: (prediction - 3)^2.
    predicted = model.predict(BATCH, verbose=0)["rating"][0, 0]
    assert metrics["rating/loss"] == pytest.approx((predicted - 3.0) ** 2, rel=1e-4)


def test_rows_with_missing_labels_do_not_change_the_gradient(tiny_schema):
    model = tfmtl.models.shared_bottom(tiny_schema, TASKS, bottom_units=(4,))
    batch = {"item": np.array(["a", "b", "c"]), "hour": np.array([1, 2, 1]), "price": np.array([0.1, 1.0, 2.0], "f")}
    click = np.array([1.0, np.nan, 0.0], "f")
    labelled = [0, 2]
    loss_fn = TASKS[0].loss()

    def gradients(features, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(features)["ctr"])
        return [tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, model.trainable_variables)
                if g is not None], float(loss)

    masked, masked_loss = gradients(batch, click)
    subset, subset_loss = gradients({k: v[labelled] for k, v in batch.items()}, click[labelled])
    assert masked_loss == pytest.approx(subset_loss, rel=1e-6)
    assert len(masked) == len(subset)
    for a, b in zip(masked, subset):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, atol=1e-6)


class TestBadInput:
    @pytest.fixture(scope="class")
    def model(self, tiny_schema):
        model = tfmtl.models.mmoe(tiny_schema, TASKS, num_experts=2, expert_units=(4,))
        model.compile()
        return model

    @pytest.mark.parametrize("change, error, message", [
        ({"colour": np.array(["red", "red"])}, ValueError, r"unknown feature\(s\) \['colour'\]"),
        ({"item": np.array([1, 2])}, TypeError, "feature 'item' expects string ids, got int64"),
        ({"hour": np.array(["1", "2"])}, TypeError, "feature 'hour' expects int64 ids"),
        ({"price": np.ones([2, 2], "f")}, ValueError, "feature 'price' expects one value per example"),
    ])
    def test_call_and_predict_name_the_feature(self, model, change, error, message):
        with pytest.raises(error, match=message):
            model({**BATCH, **change})
        with pytest.raises(error, match=message):
            model.predict({**BATCH, **change}, verbose=0)

    def test_missing_feature(self, model):
        # Keras checks this before the schema does; either way the feature is named.
        with pytest.raises(ValueError, match=r"(?i)missing.*price"):
            model({"item": BATCH["item"], "hour": BATCH["hour"]})

    def test_nan_feature_value(self, model):
        with pytest.raises(tf.errors.InvalidArgumentError, match="numeric feature 'price' contains NaN"):
            model({**BATCH, "price": np.array([np.nan, 1.0], "f")})

    def test_missing_label_names_the_task(self, model):
        with pytest.raises(ValueError, match="task 'rating' has no label 'rating' in the data"):
            model.fit(BATCH, {"click": np.array([1.0, 0.0], "f")}, verbose=0)

    def test_no_labels(self, model):
        with pytest.raises(ValueError, match="no labels in the data"):
            model.evaluate(tf.data.Dataset.from_tensor_slices(BATCH).batch(2), verbose=0)

    def test_loss_weights_for_unknown_task(self, model):
        with pytest.raises(ValueError, match=r"unknown task\(s\) \['cvr'\]"):
            model.compile(loss_weights={"cvr": 1.0})


def test_single_task_metric_names_carry_the_task_name(tiny_schema):
    model = tfmtl.models.shared_bottom(tiny_schema, [tfmtl.Task.binary("ctr", label="click")], bottom_units=(4,))
    model.compile()
    metrics = model.evaluate(BATCH, {"click": np.array([1.0, 0.0], "f")}, return_dict=True, verbose=0)
    assert {"ctr/auc", "ctr/logloss"} <= set(metrics)


def test_a_batch_without_conversion_labels_still_trains_the_click_task(tiny_schema):
    keras.utils.set_random_seed(0)
    tasks = (tfmtl.Task.binary("ctr", label="click"), tfmtl.Task.binary("cvr", label="conversion"))
    model = tfmtl.models.mmoe(tiny_schema, tasks, num_experts=2, expert_units=(4,))
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    before = {task: model.get_layer(task).kernel.numpy().copy() for task in ("ctr", "cvr")}
    before_gate = model.get_layer("mixture_of_experts").gates["cvr"].kernel.numpy().copy()
    labels = {"click": np.array([1.0, 0.0], "f"), "conversion": np.array([np.nan, np.nan], "f")}
    history = model.fit(BATCH, labels, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(model.get_layer("ctr").kernel.numpy(), before["ctr"])  # click trained
    np.testing.assert_array_equal(model.get_layer("cvr").kernel.numpy(), before["cvr"])  # no cvr gradient
    np.testing.assert_array_equal(model.get_layer("mixture_of_experts").gates["cvr"].kernel.numpy(), before_gate)


@pytest.mark.parametrize("features, task, message", [
    ([Numeric("click", mean=0.0, variance=1.0)], "click", r"\['click'\] name\(s\) both a feature and a task"),
    ([Numeric("price", mean=0.0, variance=1.0)], "features", r"reserved for tfmtl's internal layers"),
    ([Numeric("ctr_tower", mean=0.0, variance=1.0)], "ctr", r"\['ctr_tower'\] are reserved"),
])
def test_names_that_would_clash_as_keras_layer_names(features, task, message):
    with pytest.raises(ValueError, match=message):
        tfmtl.models.mmoe(Schema(features), [tfmtl.Task.binary(task)], num_experts=2, expert_units=(2,))


def test_build_errors(tiny_schema):
    with pytest.raises(ValueError, match="duplicate task name 'ctr'"):
        tfmtl.models.mmoe(tiny_schema, [tfmtl.Task.binary("ctr"), tfmtl.Task.binary("ctr")])
    with pytest.raises(ValueError, match="at least one Task"):
        tfmtl.models.shared_bottom(tiny_schema, [])
    with pytest.raises(ValueError, match=r"\['item'\].*schema.adapt"):
        tfmtl.models.mmoe(Schema([Categorical("item")]), TASKS)
    with pytest.raises(ValueError, match="expert_units"):
        tfmtl.models.mmoe(tiny_schema, TASKS, expert_units=())


def test_experts_of_a_built_model_differ(tiny_schema):
    model = tfmtl.models.mmoe(tiny_schema, TASKS, num_experts=4, expert_units=(8,))
    kernel = model.get_layer("mixture_of_experts").experts.kernels[0].numpy()
    assert len({kernel[e].tobytes() for e in range(4)}) == 4
