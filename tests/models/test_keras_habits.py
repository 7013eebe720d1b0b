"""Keras habits users bring: losses and weights as lists, a failed fit, .h5 files."""

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras, tf


@pytest.fixture(scope="module")
def data():
    return tfmtl.data.synthetic_recsys(600, seed=5)


@pytest.fixture()
def model(data):
    schema = data.schema.adapt(data.features)
    keras.utils.set_random_seed(0)
    return tfmtl.models.shared_bottom(schema, data.tasks, bottom_units=(8,))


def test_loss_and_loss_weights_lists_map_to_tasks_in_order(model, data):
    names = model.task_names
    model.compile(loss=["mse", None], loss_weights=[0.0, 2.0])
    logs = model.evaluate(data.features, data.labels, return_dict=True, verbose=0)
    first = model.predict(data.features, verbose=0)[names[0]][:, 0]
    expected = np.mean(np.square(data.labels[names[0]] - first))  # mse replaced the first task's loss
    assert logs[f"{names[0]}/loss"] == pytest.approx(expected, rel=1e-4)
    assert logs["loss"] == pytest.approx(2.0 * logs[f"{names[1]}/loss"], rel=1e-4)  # weights 0 and 2


def test_a_list_of_the_wrong_length_names_the_tasks(model):
    with pytest.raises(ValueError, match=r"loss_weights has 3 entries, but the model has 2 tasks \(click, conversion"):
        model.compile(loss_weights=[1.0, 1.0, 1.0])


def test_one_metric_list_applies_to_every_task_with_its_own_objects(model, data):
    model.compile(metrics=[keras.metrics.MeanSquaredError(name="mse")])
    logs = model.evaluate(data.features, data.labels, return_dict=True, verbose=0)
    predictions = model.predict(data.features, verbose=0)
    for name in model.task_names:
        expected = np.mean(np.square(data.labels[name] - predictions[name][:, 0]))
        assert logs[f"{name}/mse"] == pytest.approx(expected, rel=1e-4)


def test_a_failed_first_fit_leaves_the_model_usable(model, data):
    model.compile()
    bad = {name: np.array(["yes"] * len(values)) for name, values in data.labels.items()}
    with pytest.raises(TypeError, match="label 'click' must hold numbers"):
        model.fit(data.features, bad, epochs=1, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices((dict(data.features), bad)).batch(100)
    with pytest.raises(TypeError, match="label 'click' must hold numbers"):
        model.fit(dataset, epochs=1, verbose=0)
    # A label missing from a dataset fails inside Keras's first trace of the step.
    missing = tf.data.Dataset.from_tensor_slices((dict(data.features), {"click": data.labels["click"]})).batch(100)
    with pytest.raises(ValueError):
        model.fit(missing, epochs=1, verbose=0)
    history = model.fit(data.features, data.labels, epochs=1, verbose=0)  # no compile() in between
    assert np.isfinite(history.history["loss"][0])


def test_on_batch_calls_and_unsized_data_first_leave_fit_and_predict_every_batch(model, data):
    # Keras makes a one-step function when it first makes one while the step count reads 1, and keeps it.
    model.compile()  # 16 steps per execution
    rows = {k: v[:32] for k, v in data.features.items()}
    model.train_on_batch(rows, {k: v[:32] for k, v in data.labels.items()})
    model.predict_on_batch(rows)
    model.fit(data.features, data.labels, batch_size=20, verbose=0)  # 30 batches
    assert int(model.optimizer.iterations) == 1 + 30
    assert len(model.predict(data.features, batch_size=20, verbose=0)["click"]) == 600
    fresh = model.__class__.from_config(model.get_config())
    fresh.compile()
    unsized = tf.data.Dataset.from_tensor_slices((dict(data.features), data.labels)).batch(20).filter(lambda *_: True)
    fresh.fit(unsized, verbose=0)  # one step per execution: its size is unknown
    before = int(fresh.optimizer.iterations)
    fresh.fit(data.features, data.labels, batch_size=20, verbose=0)
    assert int(fresh.optimizer.iterations) - before == 30
    # the same for evaluate(negatives_sampled=False), whose step function is its own
    sampled = (tfmtl.Task.binary("click", negative_sampling_rate=0.5), data.tasks[1])
    keras.utils.set_random_seed(0)
    downsampled = tfmtl.models.shared_bottom(model.schema, sampled, bottom_units=(8,))
    downsampled.compile()
    first = downsampled.evaluate(unsized, negatives_sampled=False, return_dict=True, verbose=0)
    second = downsampled.evaluate(data.features, data.labels, batch_size=20, negatives_sampled=False,
                                  return_dict=True, verbose=0)
    assert second["click/logloss"] == pytest.approx(first["click/logloss"], rel=1e-5)


def test_h5_saving_is_refused_pointing_to_keras(model, tmp_path):
    with pytest.raises(ValueError, match=r"Save to a '\.keras' file"):
        model.save(tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists()


def test_a_single_metric_object_is_refused_with_the_forms_that_work(model):
    with pytest.raises(TypeError, match=r"metrics must be a dict by task name or a list in task order"):
        model.compile(metrics=keras.metrics.AUC())


def test_validation_split_and_validation_data_keep_raw_rows_for_group_auc(model, data):
    model.compile(gauc_by="user_id")
    split = model.fit(data.features, data.labels, validation_split=0.25, epochs=1, verbose=0)
    given = model.fit(data.features, data.labels, validation_data=(data.features, data.labels), epochs=1, verbose=0)
    for history in (split, given):
        assert 0.0 <= history.history["val_click/gauc"][0] <= 1.0
    assert history.history["val_click/loss"][0] == pytest.approx(
        model.evaluate(data.features, data.labels, return_dict=True, verbose=0)["click/loss"], rel=1e-5
    )
