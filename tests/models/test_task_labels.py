"""Task spaces, sample weights, multi-class tasks, the order constraint and the recommender metrics."""

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras, tf
from tfmtl.features import Categorical, Numeric, Schema

N = 400


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = {f"x{i}": rng.normal(size=N).astype(np.float32) for i in range(3)}
    x["user"] = rng.choice([f"u{i}" for i in range(25)], size=N)
    click = (rng.random(N) < 1 / (1 + np.exp(-2 * x["x0"]))).astype(np.float32)
    buy = np.where(click == 1, (rng.random(N) < 1 / (1 + np.exp(-2 * x["x1"]))), 0).astype(np.float32)
    return x, {"click": click, "buy": buy}


def _schema():
    return Schema([Categorical("user", embedding_dim=2, vocabulary=tuple(f"u{i}" for i in range(25)))]
                  + [Numeric(f"x{i}", mean=0.0, variance=1.0) for i in range(3)])


def _model(tasks, seed=0):
    keras.utils.set_random_seed(seed)
    return tfmtl.models.shared_bottom(_schema(), tasks, bottom_units=(8,))


def _bce(y, p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def test_task_space_rows_change_neither_loss_nor_metrics_of_that_task():
    x, y = _data()
    tasks = [tfmtl.Task.binary("click"), tfmtl.Task.binary("buy", space="click")]
    model = _model(tasks)
    model.compile()
    model.fit(x, y, batch_size=64, epochs=2, verbose=0)
    everything = model.evaluate(x, y, batch_size=N, return_dict=True, verbose=0)
    clicked = y["click"] == 1
    only = model.evaluate({k: v[clicked] for k, v in x.items()}, {k: v[clicked] for k, v in y.items()},
                          batch_size=N, return_dict=True, verbose=0)
    for metric in ("loss", "auc", "logloss", "copc", "ece"):
        assert everything[f"buy/{metric}"] == pytest.approx(only[f"buy/{metric}"], rel=1e-5), metric
    assert everything["click/auc"] != pytest.approx(only["click/auc"], abs=1e-4)  # click still sees every row
    # The same as marking the unclicked rows' buy label missing (NaN).
    y_nan = {"click": y["click"], "buy": np.where(clicked, y["buy"], np.nan)}
    plain = _model([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    plain.set_weights(model.get_weights())
    plain.compile()
    missing = plain.evaluate(x, y_nan, batch_size=N, return_dict=True, verbose=0)
    assert missing["buy/loss"] == pytest.approx(everything["buy/loss"], rel=1e-5)
    # Gradients too: one SGD step from the same weights gives the same heads with either encoding.
    for m in (model, plain):
        m.compile(optimizer=keras.optimizers.SGD(0.1))
    model.train_on_batch(x, y)
    plain.train_on_batch(x, y_nan)
    for a, b in zip(model.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_sample_weight_column_weights_loss_and_metrics():
    x, y = _data(1)
    rng = np.random.default_rng(1)
    y = {**y, "impressions": rng.integers(0, 4, size=N).astype(np.float32)}
    model = _model([tfmtl.Task.binary("click", sample_weight="impressions")])
    model.compile()
    logs = model.evaluate(x, y, batch_size=N, return_dict=True, verbose=0)
    p = model.predict(x, batch_size=N, verbose=0)["click"][:, 0]
    w = y["impressions"]
    assert logs["click/loss"] == pytest.approx(np.sum(w * _bce(y["click"], p)) / w.sum(), rel=1e-4)
    assert logs["click/logloss"] == pytest.approx(np.sum(w * _bce(y["click"], p)) / w.sum(), rel=1e-4)
    assert logs["click/copc"] == pytest.approx(np.sum(w * y["click"]) / np.sum(w * p), rel=1e-4)
    bad = {**y, "impressions": np.where(np.arange(N) == 3, -1.0, 1.0).astype(np.float32)}
    with pytest.raises(Exception, match=r"task .+click.+: sample weight .+impressions.+ must be >= 0"):
        model.evaluate(x, bad, batch_size=N, verbose=0)
    with pytest.raises(ValueError, match="task 'click' has no sample weight 'impressions'"):
        model.evaluate(x, {"click": y["click"]}, batch_size=N, verbose=0)


def _numpy_gauc(groups, labels, scores):
    total, weight = 0.0, 0.0
    for g in np.unique(groups):
        rows = groups == g
        pos, neg = scores[rows][labels[rows] == 1], scores[rows][labels[rows] == 0]
        if len(pos) and len(neg):
            auc = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
            total += rows.sum() * auc
            weight += rows.sum()
    return total / weight


def _numpy_ece(labels, scores, bins=10):
    edges = np.linspace(0, 1, bins + 1)[1:-1]
    which = np.searchsorted(edges, scores, side="right")
    return sum(abs(scores[which == b].sum() - labels[which == b].sum()) for b in range(bins)) / len(scores)


def test_gauc_copc_and_ece_match_numpy_on_the_models_predictions():
    x, y = _data(2)
    y = {**y, "click": np.where(np.arange(N) % 7 == 0, np.nan, y["click"]).astype(np.float32)}
    model = _model([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    model.compile(gauc_by="user")
    model.fit(x, y, batch_size=64, epochs=2, verbose=0)
    logs = model.evaluate(x, y, batch_size=50, return_dict=True, verbose=0)  # 8 batches: streamed
    p = model.predict(x, batch_size=N, verbose=0)["click"][:, 0].astype(np.float64)
    present = ~np.isnan(y["click"])
    labels, scores, users = y["click"][present], p[present], x["user"][present]
    assert logs["click/gauc"] == pytest.approx(_numpy_gauc(users, labels, scores), abs=1e-5)
    assert logs["click/copc"] == pytest.approx(labels.sum() / scores.sum(), rel=1e-4)
    assert logs["click/ece"] == pytest.approx(_numpy_ece(labels, scores), abs=1e-5)
    assert logs["click/auc"] == pytest.approx(tfmtl.data.roc_auc(labels, scores), abs=2e-3)
    assert 0.5 < logs["click/gauc"] < 1.0
    assert "click/gauc" not in model.fit(x, y, batch_size=64, epochs=1, verbose=0).history  # evaluation only
    with pytest.raises(ValueError, match="gauc_by='nobody' is not a feature"):
        model.compile(gauc_by="nobody")


def test_ece_with_custom_boundaries_and_ties_in_gauc():
    gauc = tfmtl.tasks.GroupAUC("user")
    gauc.update_state(np.array([1.0, 0.0, 1.0, 0.0]), np.array([0.5, 0.5, 0.7, 0.2]), groups=np.array([1, 1, 2, 2]))
    assert float(gauc.result()) == pytest.approx(0.75)  # (2 * 0.5 + 2 * 1.0) / 4
    ece = tfmtl.tasks.ExpectedCalibrationError(boundaries=[0.01, 0.1])
    labels, scores = np.array([0.0, 0.0, 1.0, 1.0]), np.array([0.005, 0.05, 0.08, 0.5])
    _ = ece.update_state(labels, scores)
    expected = (abs(0.005 - 0) + abs(0.13 - 1.0) + abs(0.5 - 1.0)) / 4
    assert float(ece.result()) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="boundaries must increase strictly inside"):
        tfmtl.tasks.ExpectedCalibrationError(boundaries=[0.5, 0.2])


def test_order_constraint_penalises_a_later_step_above_an_earlier_one():
    x, y = _data(3)
    tasks = [tfmtl.Task.binary("click"), tfmtl.Task.binary("buy", follows="click", order_weight=2.0)]
    model = _model(tasks)
    model.compile()
    logs = model.evaluate(x, y, batch_size=N, return_dict=True, verbose=0)
    out = model.predict(x, batch_size=N, verbose=0)
    violation = np.mean(np.maximum(out["buy"][:, 0] - out["click"][:, 0], 0.0))
    assert violation > 0  # an untrained model violates the order on some rows
    assert logs["buy/order_violation"] == pytest.approx(violation, rel=1e-4)
    assert logs["loss"] == pytest.approx(logs["click/loss"] + logs["buy/loss"] + 2.0 * violation, rel=1e-5)
    # Training with the penalty leaves fewer violations than training without it.
    free = _model([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")])
    for m in (model, free):
        m.compile(optimizer=keras.optimizers.Adam(0.02))
        m.fit(x, y, batch_size=64, epochs=5, verbose=0)
    def violations(m):
        out = m.predict(x, batch_size=N, verbose=0)
        return np.mean(np.maximum(out["buy"][:, 0] - out["click"][:, 0], 0.0))
    assert violations(model) < violations(free)
    with pytest.raises(ValueError, match="follows unknown task 'view'"):
        _model([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy", follows="view")])
    with pytest.raises(ValueError, match="order_weight needs follows="):
        tfmtl.Task.binary("buy", order_weight=1.0)


def _genre_data(seed=4, n=3000, classes=4):
    rng = np.random.default_rng(seed)
    x = {f"x{i}": rng.normal(size=n).astype(np.float32) for i in range(3)}
    x["user"] = rng.choice([f"u{i}" for i in range(25)], size=n)
    logits = np.stack([x["x0"] * 2, x["x1"] * 2, -x["x0"] * 2, -x["x1"] * 2], axis=1)[:, :classes]
    genre = np.array([rng.choice(classes, p=np.exp(l) / np.exp(l).sum()) for l in logits], np.float32)
    genre[::10] = -1  # missing
    click = (rng.random(n) < 1 / (1 + np.exp(-x["x2"]))).astype(np.float32)
    return x, {"genre": genre, "click": click}


def test_multiclass_task_learns_above_chance_and_exports_class_probabilities(tmp_path):
    x, y = _genre_data()
    task = tfmtl.Task.multiclass("genre", num_classes=4, class_names=("rock", "jazz", "pop", "folk"))
    model = _model([task, tfmtl.Task.binary("click")])
    model.compile(optimizer=keras.optimizers.Adam(0.02))
    model.fit(x, y, batch_size=128, epochs=4, verbose=0)
    logs = model.evaluate(x, y, batch_size=1000, return_dict=True, verbose=0)
    probabilities = model.predict(x, batch_size=1000, verbose=0)["genre"]
    present = y["genre"] >= 0
    labels = y["genre"][present].astype(int)
    accuracy = np.mean(probabilities[present].argmax(axis=1) == labels)
    assert logs["genre/accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert accuracy > 0.45  # chance is 0.25
    top3 = np.mean([label in np.argsort(-row)[:3] for row, label in zip(probabilities[present], labels)])
    assert logs["genre/top3_accuracy"] == pytest.approx(top3, abs=1e-6)
    cross_entropy = -np.mean(np.log(np.clip(probabilities[present][np.arange(len(labels)), labels], 1e-7, 1)))
    assert logs["genre/logloss"] == pytest.approx(cross_entropy, rel=1e-4)
    assert logs["genre/loss"] == pytest.approx(cross_entropy, rel=1e-4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(Exception, match=r"task .+genre.+: class ids must be integers in \[0, 4\)"):
        model.evaluate(x, {**y, "genre": np.full_like(y["genre"], 4.0)}, batch_size=1000, verbose=0)

    path = tfmtl.serving.export(model, tmp_path / "genre")
    rows = {name: values[:5] for name, values in x.items()}
    served = tfmtl.serving.predict_in_fresh_process(path, rows, ["predict_genre", "serving_default"])
    np.testing.assert_allclose(served["predict_genre"]["genre"], probabilities[:5], rtol=1e-5, atol=1e-6)
    assert served["serving_default"]["genre"].shape == (5, 4) and served["serving_default"]["click"].shape == (5,)
    signatures = tf.saved_model.load(str(path)).signatures
    assert "classify_genre" in signatures and "regress_genre" not in signatures
    if tfmtl.serving.cpp.compiler():  # TF's C++ Session answers the same (tests/serving/test_cpp.py builds it)
        in_cpp = tfmtl.serving.predict_in_fresh_process(path, rows, ["classify_genre", "predict_genre"], mode="cpp")
        np.testing.assert_allclose(in_cpp["classify_genre"]["scores"], probabilities[:5], rtol=1e-5, atol=1e-6)
        assert in_cpp["classify_genre"]["classes"][0].tolist() == [b"rock", b"jazz", b"pop", b"folk"]
        np.testing.assert_allclose(in_cpp["predict_genre"]["genre"], probabilities[:5], rtol=1e-5, atol=1e-6)
    examples = [e.SerializeToString() for e in tfmtl.serving.examples.to_examples(rows)]
    classified = signatures["classify_genre"](inputs=tf.constant(examples))
    assert classified["classes"].numpy()[0].tolist() == [b"rock", b"jazz", b"pop", b"folk"]
    np.testing.assert_allclose(classified["scores"].numpy(), probabilities[:5], rtol=1e-5, atol=1e-6)


def test_multiclass_validation():
    with pytest.raises(ValueError, match="needs num_classes >= 2"):
        tfmtl.Task.multiclass("genre", num_classes=1)
    with pytest.raises(ValueError, match="class_names must be 3 distinct names"):
        tfmtl.Task.multiclass("genre", num_classes=3, class_names=("a", "b"))
    with pytest.raises(ValueError, match="num_classes/class_names are for multi-class tasks only"):
        tfmtl.Task.binary("click", num_classes=3)
    task = tfmtl.Task.multiclass("genre", num_classes=3, class_names=("a", "b", "c"), space="click")
    assert tfmtl.Task.from_config(task.get_config()) == task
