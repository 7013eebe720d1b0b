import numpy as np
import pytest

import tfmtl
from tfmtl._compat import tf
from tfmtl.tasks.task import check_tasks
from tfmtl.tasks import MaskedAUC, MaskedLogLoss, MaskedLoss, MaskedMAE, MaskedRMSE, Task, TaskKind


def _bce(y, p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def test_binary_loss_is_the_mean_over_present_labels():
    y = np.array([1.0, np.nan, 0.0, 1.0, np.nan], np.float32)
    p = np.array([0.9, 0.5, 0.2, 0.3, 0.99], np.float32)
    loss = float(MaskedLoss(TaskKind.BINARY)(y, p.reshape(-1, 1)))
    present = ~np.isnan(y)
    assert loss == pytest.approx(_bce(y[present], p[present]).mean(), rel=1e-5)


def test_regression_loss_is_masked_mse():
    y = np.array([[2.0], [np.nan], [-1.0]], np.float32)
    p = np.array([[1.0], [50.0], [1.0]], np.float32)
    assert float(MaskedLoss("regression")(y, p)) == pytest.approx((1.0 + 4.0) / 2)


def test_missing_labels_give_no_gradient_and_an_all_missing_batch_gives_zero():
    logits = tf.Variable([[0.3], [-2.0], [1.0]])
    y = tf.constant([[1.0], [np.nan], [0.0]])
    with tf.GradientTape() as tape:
        loss = MaskedLoss(TaskKind.BINARY)(y, tf.sigmoid(logits))
    grad = tape.gradient(loss, logits).numpy()
    assert grad[1, 0] == 0.0 and grad[0, 0] != 0.0 and np.all(np.isfinite(grad))
    all_missing = MaskedLoss(TaskKind.BINARY)(tf.constant([[np.nan], [np.nan]]), tf.constant([[0.2], [0.7]]))
    assert float(all_missing) == 0.0


def test_masked_metrics_equal_numpy_on_present_rows():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.3).astype(np.float32)
    p = np.clip(0.3 * y + 0.7 * rng.random(400), 0.01, 0.99).astype(np.float32)
    y_missing = y.copy()
    y_missing[::3] = np.nan
    present = ~np.isnan(y_missing)
    auc, logloss = MaskedAUC(num_thresholds=10_000), MaskedLogLoss()
    auc.update_state(y_missing, p)
    logloss.update_state(y_missing, p)
    assert float(auc.result()) == pytest.approx(tfmtl.data.roc_auc(y[present], p[present]), abs=2e-3)
    assert float(logloss.result()) == pytest.approx(_bce(y[present], p[present]).mean(), rel=1e-4)
    target = rng.normal(size=50).astype(np.float32)
    pred = target + rng.normal(size=50).astype(np.float32)
    target_missing = target.copy()
    target_missing[:10] = np.nan
    rmse, mae = MaskedRMSE(), MaskedMAE()
    rmse.update_state(target_missing, pred)
    mae.update_state(target_missing, pred)
    assert float(rmse.result()) == pytest.approx(np.sqrt(np.mean((target[10:] - pred[10:]) ** 2)), rel=1e-5)
    assert float(mae.result()) == pytest.approx(np.mean(np.abs(target[10:] - pred[10:])), rel=1e-5)


def test_task_defaults_and_validation():
    task = Task.regression("watch_time", label="seconds", loss_weight=0.5)
    assert task.label_key == "seconds"
    assert [m.name for m in task.metrics()] == ["watch_time/rmse", "watch_time/mae"]
    assert Task("x", "binary").kind is TaskKind.BINARY
    with pytest.raises(ValueError, match="task 'x': unknown kind 'ranking'"):
        Task("x", "ranking")
    with pytest.raises(ValueError, match="task 'x': loss_weight"):
        Task.binary("x", loss_weight=-1.0)
    with pytest.raises(ValueError, match="duplicate task name 'ctr'"):
        check_tasks([Task.binary("ctr"), Task.regression("ctr")])


def test_loss_round_trips_its_config():
    loss = MaskedLoss(TaskKind.REGRESSION, name="r")
    assert MaskedLoss.from_config(loss.get_config()).kind is TaskKind.REGRESSION
