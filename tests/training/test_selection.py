"""Early stopping and best-model selection on a weighted task-metric score; schedules; TensorBoard scalars."""

from __future__ import annotations

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras, tf


@pytest.fixture()
def model(small_data, small_schema):
    keras.utils.set_random_seed(4)
    model = tfmtl.models.shared_bottom(small_schema, small_data.tasks, bottom_units=(8,))
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=4, decay_rate=0.5)
    model.compile(optimizer=keras.optimizers.Adam(schedule))
    return model


def test_weighted_score_drives_early_stopping_and_keeps_the_best_weights(model, small_data, tmp_path):
    train, valid = small_data.take(slice(0, 800)), small_data.take(slice(800, 1400))
    weights = {"val_click/auc": 0.7, "val_conversion/auc": 0.3}
    seen = []
    remember = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(model.get_weights()))
    stop = keras.callbacks.EarlyStopping(monitor="val_score", mode="max", patience=1, restore_best_weights=True)
    history = tfmtl.training.fit(
        model, train.to_dataset(100), epochs=6, validation_data=valid.to_dataset(300),
        callbacks=[stop, remember, tfmtl.training.CombinedMetric(weights), tfmtl.training.TensorBoardLogs(tmp_path)],
        verbose=0,
    )
    scores = history.history["val_score"]
    expected = [0.7 * c + 0.3 * v for c, v in zip(history.history["val_click/auc"], history.history["val_conversion/auc"])]
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    best = int(np.argmax(scores))
    assert len(scores) == best + 2 or len(scores) == 6  # stopped one epoch after the best (patience 1)
    for mine, kept in zip(model.get_weights(), seen[best]):
        np.testing.assert_array_equal(mine, kept)
    # the schedule decays with the optimizer's steps
    assert float(model.optimizer.learning_rate) < 0.01 * 0.5 ** (int(model.optimizer.iterations) // 4 - 1)

    # TensorBoard wrote the per-task scalars, whose names contain "/"
    tags = set()
    for event_file in (tmp_path / "validation").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags |= {value.tag for value in event.summary.value}
    assert {"epoch_click/auc", "epoch_conversion/loss", "epoch_loss", "epoch_score"} <= tags
    train_tags = set()
    for event_file in (tmp_path / "train").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            train_tags |= {value.tag for value in event.summary.value}
    assert {"epoch_click/weight", "epoch_learning_rate"} <= train_tags


def test_missing_metric_names_the_key_and_the_logs():
    score = tfmtl.training.CombinedMetric({"val_ctr/auc": 1.0})
    with pytest.raises(KeyError, match=r"no \['val_ctr/auc'\].*logs: \['val_click/auc'\]"):
        score.on_epoch_end(0, {"val_click/auc": 0.5})
