"""Precision, recall, F1 at a task's threshold, the best-F1 threshold and macro-F1, against numpy."""

import numpy as np
import pytest

import tfmtl
from tfmtl import keras


def _counts(y, p, w, threshold):
    decided = p >= threshold
    return (np.sum(w * (y == 1) * decided), np.sum(w * (y == 0) * decided), np.sum(w * (y == 1) * ~decided))


def test_binary_metrics_match_numpy_with_weights_and_missing_labels():
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.3).astype(np.float32)
    p = np.clip(0.3 * y + 0.7 * rng.random(500), 0, 1).astype(np.float32)
    w = rng.uniform(0.5, 2.0, 500).astype(np.float32)
    y_missing = y.copy()
    y_missing[:50] = np.nan  # skipped
    for threshold in (0.5, 0.3):
        metrics = [tfmtl.tasks.Precision(threshold), tfmtl.tasks.Recall(threshold), tfmtl.tasks.F1(threshold)]
        for metric in metrics:
            metric.update_state(y_missing[:300], p[:300], w[:300])  # two batches: streamed
            metric.update_state(y_missing[300:], p[300:], w[300:])
        tp, fp, fn = _counts(y[50:], p[50:], w[50:], threshold)
        expected = (tp / (tp + fp), tp / (tp + fn), 2 * tp / (2 * tp + fp + fn))
        np.testing.assert_allclose([float(m.result()) for m in metrics], expected, rtol=1e-5)
    best, best_f1 = tfmtl.tasks.BestF1Threshold(200), tfmtl.tasks.BestF1Threshold(200, report="f1")
    for metric in (best, best_f1):
        metric.update_state(y_missing, p, w)
    # candidate j / 200 decides positive the rows whose bin floor(200 p) is at least j
    bins, f1 = np.floor(p[50:].astype(np.float64) * 200).astype(int), []
    for j in range(200):
        tp, fp, fn = _counts(y[50:], bins, w[50:], j)
        f1.append(2 * tp / (2 * tp + fp + fn))
    chosen = int(round(float(best.result()) * 200))
    assert f1[chosen] == pytest.approx(max(f1), rel=1e-6)  # a best threshold (F1 is flat between rows' bins)
    assert all(value < max(f1) - 1e-6 for value in f1[:chosen])  # the lowest one
    assert float(best_f1.result()) == pytest.approx(max(f1), rel=1e-5)
    none_positive = tfmtl.tasks.BestF1Threshold(200)
    none_positive.update_state(np.zeros(5), np.linspace(0.1, 0.9, 5))
    assert np.isnan(float(none_positive.result()))  # F1 is 0 everywhere: no threshold is best


def test_macro_f1_matches_numpy():
    rng = np.random.default_rng(1)
    y = rng.integers(4, size=300)
    probs = rng.dirichlet(np.ones(4), size=300).astype(np.float32)
    probs[np.arange(300), y] += rng.random(300) * 0.5  # better than chance
    y_missing = y.copy()
    y_missing[:20] = -1
    metric = tfmtl.tasks.MacroF1(4)
    metric.update_state(y_missing, probs)
    decided, truth = probs[20:].argmax(1), y[20:]
    scores = [2 * np.sum((truth == c) & (decided == c))
              / (np.sum(truth == c) + np.sum(decided == c)) for c in range(4)]
    assert float(metric.result()) == pytest.approx(np.mean(scores), rel=1e-5)


def test_thresholds_are_per_task_and_checked():
    assert tfmtl.Task.from_config(tfmtl.Task.binary("buy", threshold=0.1).get_config()).threshold == 0.1
    with pytest.raises(ValueError, match=r"task 'buy': threshold must be a number in \(0, 1\), got 1.5"):
        tfmtl.Task.binary("buy", threshold=1.5)
    with pytest.raises(ValueError, match="task 'dwell': threshold is for binary tasks, this one is regression"):
        tfmtl.Task.regression("dwell", threshold=0.3)


def test_held_out_ids_leave_the_training_histories_that_share_their_table():
    data = tfmtl.data.synthetic_recsys(3_000, num_items=200, history_length=6, seed=2)
    train, test = data.split(0.75, seed=5, hold_out={"item_id": 0.2})
    ids = np.unique(data.features["item_id"])  # the draw split makes with the seed
    held = np.random.default_rng(5).choice(ids, size=round(0.2 * len(ids)), replace=False)
    assert not np.isin(train.features["item_id"], held).any() and np.isin(test.features["item_id"], held).any()
    assert np.isin(data.features["history"], held).sum() > 500 and not np.isin(train.features["history"], held).any()
    assert np.isin(test.features["history"], held).any()  # the test part keeps its histories as they are
    # each training row keeps its other ids in their order, padded at the end (rows matched by user, item, hour)
    key = ("user_id", "item_id", "hour")
    candidates = {}
    for row, history in zip(zip(*(data.features[k] for k in key)), data.features["history"]):
        kept = [i for i in history if i and i not in set(held)]
        candidates.setdefault(row, []).append(kept + [""] * (6 - len(kept)))
    for row, cleaned in list(zip(zip(*(train.features[k] for k in key)), train.features["history"]))[:300]:
        assert list(cleaned) in candidates[row]
    where = np.flatnonzero(np.isin(test.features["item_id"], held)) / len(test)  # shuffled in, not appended
    assert abs(where.mean() - 0.5) < 0.1 and where.min() < 0.1


def test_evaluate_reports_them_and_cold_and_warm_rows_separately(tmp_path):
    data = tfmtl.data.synthetic_recsys(8_000, num_items=400, seed=4)
    train, test = data.split(0.7, seed=0, hold_out={"item_id": 0.2})
    assert not set(test.features["item_id"]) - set(data.features["item_id"])
    tasks = (tfmtl.Task.binary("click", threshold=0.12), data.tasks[1])
    keras.utils.set_random_seed(0)
    model = tfmtl.models.shared_bottom(train.schema.adapt(train.features), tasks, bottom_units=(16,))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), cold_start_by="item_id")
    history = model.fit(train.to_dataset(512), epochs=1, verbose=0).history
    assert "click/auc" in history and not any(key.endswith(("_cold", "_warm")) for key in history)
    assert not {"click/f1", "click/precision", "click/best_f1_threshold"} & set(history)  # evaluation only
    logs = model.evaluate(test.to_dataset(1024), return_dict=True, verbose=0)
    p = model.predict(test.features, verbose=0)["click"][:, 0]
    y = test.labels["click"]
    cold = ~np.isin(test.features["item_id"], list(set(train.features["item_id"])))
    assert 200 < cold.sum() < len(test) - 200
    for rows, suffix in ((slice(None), ""), (cold, "_cold"), (~cold, "_warm")):
        tp, fp, fn = _counts(y[rows], p[rows], np.ones_like(p[rows]), 0.12)
        assert tp > 5 and fp > 5, (suffix, tp, fp)
        assert logs[f"click/f1{suffix}"] == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-4)
        assert logs[f"click/copc{suffix}"] == pytest.approx(y[rows].sum() / p[rows].sum(), rel=1e-4)
        assert logs[f"click/precision{suffix}"] == pytest.approx(tp / (tp + fp), rel=1e-4)
    assert logs["conversion/auc_cold"] > 0 and "conversion/best_f1_threshold_warm" in logs
    best = int(round(logs["click/best_f1_threshold"] * 1000))
    f1 = [2 * c[0] / (2 * c[0] + c[1] + c[2]) for c in (_counts(y, np.floor(p.astype(np.float64) * 1000), 1.0, j)
                                                          for j in range(1000))]
    assert f1[best] == pytest.approx(max(f1), rel=1e-5)
    model.save(tmp_path / "m.keras")  # the compile settings (cold_start_by) come back with the model
    loaded = keras.models.load_model(tmp_path / "m.keras")
    again = loaded.evaluate(test.to_dataset(1024), return_dict=True, verbose=0)
    assert again["click/f1_cold"] == pytest.approx(logs["click/f1_cold"], rel=1e-5)
    with pytest.raises(ValueError, match="cold_start_by names 'user_age', which is not a Categorical feature"):
        model.compile(cold_start_by="user_age")


def test_cold_start_copies_only_metrics_that_say_their_configuration():
    class TopShare(keras.metrics.Mean):  # an argument its get_config does not return
        def __init__(self, share, name="top_share", **kwargs):
            super().__init__(name=name, **kwargs)
            self.share = share

    TopShare.get_config = keras.metrics.Metric.get_config
    schema = tfmtl.Schema([tfmtl.Categorical("item", embedding_dim=2, vocabulary=("a", "b"))])
    model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(2,))
    with pytest.raises(ValueError, match=r"cold_start_by copies each metric .* TopShare .* takes \['share'\]"):
        model.compile(metrics={"click": [TopShare(0.1)]}, cold_start_by="item")
    model.compile(metrics={"click": [tfmtl.tasks.Precision(0.3)]}, cold_start_by="item")
    assert [m.threshold for m in model.objective.cold_warm_metrics["click"][0]] == [0.3, 0.3]
