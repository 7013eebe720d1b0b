"""Negative downsampling per task: the correction, the sampled-space loss, population metrics, ESMM and exports."""

import dataclasses

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras
from tfmtl.features import Numeric, Schema
from tfmtl.tasks.sampling import corrected, population_weights, to_sampled


def test_correction_and_its_inverse_against_numpy():
    p = np.array([1e-6, 0.01, 0.3, 0.5, 0.99], np.float32)
    for rate in (0.05, 0.5, 1.0):
        q = corrected(p, rate).numpy()
        np.testing.assert_allclose(q, p / (p + (1 - p) / rate), rtol=1e-6)
        np.testing.assert_allclose(to_sampled(q, rate).numpy(), p, rtol=1e-5)
    np.testing.assert_array_equal(population_weights(np.array([0.0, 1.0]), 0.2).numpy(), [5.0, 1.0])


@pytest.mark.parametrize("rate, message", [
    (0.0, r"task 'click': negative_sampling_rate must be a number in \(0, 1\], got 0.0"),
    (1.5, "got 1.5"), (float("nan"), "got nan"), ("0.1", "got '0.1'"), (True, "got True"),
])
def test_bad_rates_are_refused_naming_the_task(rate, message):
    with pytest.raises(ValueError, match=message):
        tfmtl.Task.binary("click", negative_sampling_rate=rate)


def test_only_binary_tasks_and_only_esmm_first_steps_take_a_rate():
    with pytest.raises(ValueError, match="task 'dwell': negative_sampling_rate is for binary tasks, this one is regression"):
        tfmtl.Task.regression("dwell", negative_sampling_rate=0.5)
    schema = Schema([Numeric("x", mean=0.0, variance=1.0)])
    with pytest.raises(ValueError, match="ESMM: task 'buy' is a product .* goes on the first step \\('click'\\)"):
        tfmtl.models.esmm(schema, [tfmtl.Task.binary("click"), tfmtl.Task.binary("buy", negative_sampling_rate=0.5)])
    task = tfmtl.Task.binary("click", negative_sampling_rate=0.25)
    assert tfmtl.Task.from_config(task.get_config()) == task


def _tiny(rate):
    keras.utils.set_random_seed(1)
    schema = Schema([Numeric("x", mean=0.0, variance=1.0)])
    return tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click", negative_sampling_rate=rate)],
                                      bottom_units=(3,))


def test_the_head_answers_the_corrected_probability_and_the_loss_is_the_sampled_ones():
    x = {"x": np.linspace(-2, 2, 8).astype(np.float32)}
    y = np.array([1, 0, 0, 1, 0, 1, 0, 0], np.float32)
    plain, sampled = _tiny(1.0), _tiny(0.2)
    sampled.set_weights(plain.get_weights())
    p = plain.predict(x, verbose=0)["click"][:, 0]
    q = sampled.predict(x, verbose=0)["click"][:, 0]
    np.testing.assert_allclose(q, p / (p + (1 - p) / 0.2), rtol=1e-5)
    sampled.compile()
    logs = sampled.evaluate(x, {"click": y}, return_dict=True, verbose=0)
    bce = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))  # the loss: on p, unweighted
    np.testing.assert_allclose(logs["click/loss"], bce, rtol=1e-4)
    w = np.where(y == 1, 1.0, 5.0)  # the metrics: on q, each negative counted 1 / 0.2 times
    np.testing.assert_allclose(logs["click/copc"], np.sum(w * y) / np.sum(w * q), rtol=1e-4)
    logloss = -np.sum(w * (y * np.log(q) + (1 - y) * np.log(1 - q))) / np.sum(w)
    np.testing.assert_allclose(logs["click/logloss"], logloss, rtol=1e-4)
    loss = sampled.tasks[0].loss()  # the plain-Keras loss too
    np.testing.assert_allclose(float(loss(y[:, None], q[:, None])), bce, rtol=1e-4)
    sampled.compile(loss={"click": loss})  # given to compile, it is the objective's loss (not corrected twice)
    np.testing.assert_allclose(sampled.evaluate(x, {"click": y}, return_dict=True, verbose=0)["click/loss"], bce,
                               rtol=1e-4)


def test_evaluate_on_data_holding_every_negative_counts_each_row_once():
    x = {"x": np.linspace(-2, 2, 8).astype(np.float32)}
    y = np.array([1, 0, 0, 1, 0, 1, 0, 0], np.float32)
    model = _tiny(0.2)
    model.compile()
    q = model.predict(x, verbose=0)["click"][:, 0]
    sampled = model.evaluate(x, {"click": y}, return_dict=True, verbose=0)
    full = model.evaluate(x, {"click": y}, return_dict=True, verbose=0, negatives_sampled=False)
    np.testing.assert_allclose(full["click/copc"], y.sum() / q.sum(), rtol=1e-4)  # every row once, on q
    np.testing.assert_allclose(full["click/loss"], -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)), rtol=1e-4)
    w = np.where(y == 1, 1.0, 5.0)
    np.testing.assert_allclose(sampled["click/copc"], np.sum(w * y) / np.sum(w * q), rtol=1e-4)
    # the switch holds for that call only: evaluate and fit afterwards take sampled data again
    again = model.evaluate(x, {"click": y}, return_dict=True, verbose=0)
    np.testing.assert_allclose(again["click/copc"], sampled["click/copc"], rtol=1e-6)
    assert model.objective.negatives_sampled
    full_again = model.evaluate(x, {"click": y}, return_dict=True, verbose=0, negatives_sampled=False)
    np.testing.assert_allclose(full_again["click/copc"], full["click/copc"], rtol=1e-6)
    model.compile()  # a new objective: its own functions
    np.testing.assert_allclose(model.evaluate(x, {"click": y}, return_dict=True, verbose=0, negatives_sampled=False)
                               ["click/copc"], full["click/copc"], rtol=1e-6)
    with pytest.raises(TypeError, match="negatives_sampled must be True or False"):
        model.evaluate(x, {"click": y}, verbose=0, negatives_sampled="no")


def test_downsample_negatives_keeps_the_share_and_names_unknown_tasks():
    data = tfmtl.data.synthetic_recsys(20_000, seed=0)
    sampled = data.downsample_negatives({"click": 0.1}, seed=1)
    click, kept = data.labels["click"], sampled.labels["click"]
    assert np.sum(kept == 1) == np.sum(click == 1)
    assert abs(np.sum(kept == 0) / np.sum(click == 0) - 0.1) < 0.01
    assert sampled.tasks[0].negative_sampling_rate == 0.1 and sampled.tasks[1] == data.tasks[1]
    assert len(sampled) == len(data)  # every row keeps its (impression-level) conversion label
    only_click = tfmtl.data.MultiTaskData(data.features, {"click": click}, data.schema, data.tasks[:1])
    assert len(only_click.downsample_negatives({"click": 0.1}, seed=1)) == np.sum(~np.isnan(kept))  # rows dropped
    with pytest.raises(ValueError, match="downsample_negatives: no task 'ctr'"):
        data.downsample_negatives({"ctr": 0.1})
    with pytest.raises(ValueError, match="downsample_negatives: task 'click': negative_sampling_rate must be"):
        data.downsample_negatives({"click": 0.0})
    twice = sampled.downsample_negatives({"click": 0.5}, seed=2)  # half of the tenth: a twentieth, declared so
    assert twice.tasks[0].negative_sampling_rate == pytest.approx(0.05)
    assert abs(np.sum(twice.labels["click"] == 0) / np.sum(click == 0) - 0.05) < 0.01


@pytest.mark.slow
def test_a_model_trained_on_downsampled_clicks_is_calibrated_on_all_rows_and_its_export_agrees(tmp_path):
    data = tfmtl.data.synthetic_recsys(60_000, seed=2)
    train, test = data.split(0.8, seed=0)
    sampled_train = train.downsample_negatives({"click": 0.1}, seed=0)
    sampled_test = test.downsample_negatives({"click": 0.1}, seed=1)
    schema = train.schema.adapt(train.features)
    copc, predictions = {}, {}
    for name, tasks in (("declared", sampled_train.tasks), ("undeclared", train.tasks)):
        keras.utils.set_random_seed(0)
        model = tfmtl.models.mmoe(schema, tasks, num_experts=2, expert_units=(32,))
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        model.fit(sampled_train.to_dataset(512, shuffle=True, seed=0), epochs=2, verbose=0)
        q = model.predict(test.features, batch_size=4096, verbose=0)["click"][:, 0]  # every row, nothing sampled
        copc[name] = float(test.labels["click"].sum() / q.sum())
        predictions[name] = q
        if name == "declared":
            declared = model
    assert abs(copc["declared"] - 1) < 0.1 and copc["undeclared"] < 0.5, copc
    assert tfmtl.data.roc_auc(test.labels["click"], predictions["declared"]) > 0.6
    # evaluate() on the sampled test rows estimates the same calibration from the sampled labels
    logs = declared.evaluate(sampled_test.to_dataset(4096), return_dict=True, verbose=0)
    assert abs(logs["click/copc"] - copc["declared"]) < 0.1, (logs["click/copc"], copc)
    path = tfmtl.serving.export(declared, tmp_path / "export")
    sample = test.take(slice(0, 16)).features
    served = tfmtl.serving.predict_in_fresh_process(path, sample, ["serving_default"])
    np.testing.assert_allclose(served["serving_default"]["click"], predictions["declared"][:16], rtol=1e-5, atol=1e-7)


def test_esmm_products_use_the_corrected_first_step():
    keras.utils.set_random_seed(0)
    schema = Schema([Numeric("x", mean=0.0, variance=1.0)])
    steps = [tfmtl.Task.binary("click", negative_sampling_rate=0.1), tfmtl.Task.binary("buy")]
    model = tfmtl.models.esmm(schema, steps)
    plain = tfmtl.models.esmm(schema, [dataclasses.replace(steps[0], negative_sampling_rate=1.0), steps[1]])
    plain.set_weights(model.get_weights())
    x = {"x": np.linspace(-1, 1, 5).astype(np.float32)}
    out, raw = model.predict(x, verbose=0), plain.predict(x, verbose=0)
    p = raw["click"]
    np.testing.assert_allclose(out["click"], p / (p + (1 - p) / 0.1), rtol=1e-5)
    np.testing.assert_allclose(out["buy"], out["click"] * out["buy_given_click"], rtol=1e-6)
