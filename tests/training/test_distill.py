"""distill: soft-target losses against numpy, their mix with the hard labels, teachers in memory and exported."""

import numpy as np
import pytest

import tfmtl
from tfmtl import keras
from tfmtl._compat import tf
from tfmtl.training.distill import _Teacher, soft_target_loss


def _np_logit(p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def _np_sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _np_binary_soft(t, s, temperature):
    q_t, q_s = _np_sigmoid(_np_logit(t) / temperature), _np_sigmoid(_np_logit(s) / temperature)
    return temperature ** 2 * -(q_t * np.log(q_s) + (1 - q_t) * np.log(1 - q_s))


def _np_softmax_log(p, temperature):
    z = np.log(np.clip(p, 1e-7, 1)) / temperature
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _np_multiclass_soft(t, s, temperature):
    log_t, log_s = _np_softmax_log(t, temperature), _np_softmax_log(s, temperature)
    return temperature ** 2 * np.sum(np.exp(log_t) * (log_t - log_s), axis=1)


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_each_soft_target_loss_matches_numpy(temperature):
    rng = np.random.default_rng(0)
    t, s = rng.uniform(0.01, 0.99, 20), rng.uniform(0.01, 0.99, 20)
    np.testing.assert_allclose(soft_target_loss("binary", t, s, temperature), _np_binary_soft(t, s, temperature),
                               rtol=1e-5)
    np.testing.assert_allclose(soft_target_loss("regression", 3 * t, 3 * s), (3 * t - 3 * s) ** 2, rtol=1e-5)
    pt, ps = rng.dirichlet(np.ones(4), 20), rng.dirichlet(np.ones(4), 20)
    np.testing.assert_allclose(soft_target_loss("multiclass", pt, ps, temperature),
                               _np_multiclass_soft(pt, ps, temperature), rtol=1e-4, atol=2e-5)
    # the teacher's own distribution is the minimum of the KL (0) and of the binary cross-entropy
    np.testing.assert_allclose(soft_target_loss("multiclass", pt, pt, temperature), 0.0, atol=1e-5)
    assert np.all(soft_target_loss("binary", t, t, temperature).numpy() <= _np_binary_soft(t, s, temperature) + 1e-6)


def _three_kinds(rows=64, seed=0):
    """Hand-made data with a binary, a regression and a 3-class task (some labels missing)."""
    rng = np.random.default_rng(seed)
    features = {"x": rng.normal(size=rows).astype(np.float32),
                "item": rng.choice(["a", "b", "c", "d"], rows)}
    click = (rng.random(rows) < 0.4).astype(np.float32)
    click[::5] = np.nan
    watch = rng.normal(size=rows).astype(np.float32)
    watch[1::4] = np.nan
    genre = rng.integers(3, size=rows).astype(np.float32)
    genre[2::3] = -1
    tasks = [tfmtl.Task.binary("click"), tfmtl.Task.regression("watch"), tfmtl.Task.multiclass("genre", num_classes=3)]
    schema = tfmtl.Schema([tfmtl.Numeric("x"), tfmtl.Categorical("item", embedding_dim=3)]).adapt(features, verbose=0)
    return features, {"click": click, "watch": watch, "genre": genre}, schema, tasks


def _model(schema, tasks, seed):
    keras.utils.set_random_seed(seed)
    return tfmtl.models.shared_bottom(schema, tasks, bottom_units=(8,))


@pytest.mark.parametrize("unlabelled_rows", [True, False])
def test_each_task_loss_is_alpha_hard_plus_one_minus_alpha_soft_over_the_rows_it_covers(unlabelled_rows):
    features, labels, schema, tasks = _three_kinds()
    teacher, student = _model(schema, tasks, 0), _model(schema, tasks, 1)
    t, s = teacher.predict(features, verbose=0), student.predict(features, verbose=0)
    # nothing moves: the logs are the losses of s; XLA step, distilled twice (the second alpha is the one used)
    student.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=True)
    alpha, temperature = {"click": 0.25, "watch": 0.6, "genre": 0.1}, {"click": 2.0, "genre": 3.0}
    for first in (True, False):
        history = tfmtl.training.distill(teacher, student, (features, labels), alpha=0.9 if first else alpha,
                                         temperature=temperature, unlabelled_rows=unlabelled_rows,
                                         batch_size=len(features["x"]), validation_data=(features, labels), verbose=0)
    logs = {key: values[-1] for key, values in history.history.items()}

    present = {"click": ~np.isnan(labels["click"]), "watch": ~np.isnan(labels["watch"]), "genre": labels["genre"] >= 0}
    sc, tc = s["click"][:, 0], t["click"][:, 0]
    y = np.nan_to_num(labels["click"])
    hard = {"click": -(y * np.log(sc) + (1 - y) * np.log(1 - sc)),
            "watch": (np.nan_to_num(labels["watch"]) - s["watch"][:, 0]) ** 2,
            "genre": -np.log(s["genre"][np.arange(64), np.maximum(labels["genre"], 0).astype(int)])}
    soft = {"click": _np_binary_soft(tc, sc, 2.0), "watch": (t["watch"][:, 0] - s["watch"][:, 0]) ** 2,
            "genre": _np_multiclass_soft(t["genre"], s["genre"], 3.0)}
    total = 0.0
    for task in ("click", "watch", "genre"):
        rows = slice(None) if unlabelled_rows else present[task]
        expected_hard = hard[task][present[task]].mean()
        expected = alpha[task] * expected_hard + (1 - alpha[task]) * soft[task][rows].mean()
        np.testing.assert_allclose(logs[f"{task}/loss"], expected, rtol=2e-4)
        np.testing.assert_allclose(logs[f"val_{task}/loss"], expected_hard, rtol=2e-4)  # validation: hard labels
        total += expected
    np.testing.assert_allclose(logs["loss"], total, rtol=2e-4)
    # after distill the student trains on its labels again
    plain = student.fit(features, labels, batch_size=64, verbose=0).history
    np.testing.assert_allclose(plain["click/loss"][-1], hard["click"][present["click"]].mean(), rtol=2e-4)


@pytest.fixture(scope="module")
def teacher(small_data, small_schema):
    keras.utils.set_random_seed(1)
    model = tfmtl.models.mmoe(small_schema, small_data.tasks, num_experts=3, expert_units=(16,))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(small_data.to_dataset(256, shuffle=True, seed=0), epochs=4, verbose=0)
    return model


def test_a_student_with_fewer_features_learns_from_the_teacher_on_rows_without_labels(teacher, small_data):
    trained_mmoe = teacher
    unlabelled = {key: np.full_like(value, np.nan) for key, value in small_data.labels.items()}
    small = tfmtl.Schema([trained_mmoe.schema["user_id"], trained_mmoe.schema["item_id"],
                          trained_mmoe.schema["item_category"]])
    keep = {name: small_data.features[name] for name in small.input_specs()}
    keep_all = dict(small_data.features)

    def student():
        keras.utils.set_random_seed(5)
        model = tfmtl.models.shared_bottom(small, small_data.tasks, bottom_units=(16,))
        model.compile(optimizer=keras.optimizers.Adam(1e-2), balancer=tfmtl.balancing.PCGrad(), jit_compile=True)
        return model

    frozen = student()
    before = [w.copy() for w in frozen.get_weights()]
    tfmtl.training.distill(trained_mmoe, frozen, (keep_all, unlabelled), alpha=0.5, unlabelled_rows=False, verbose=0)
    for old, new in zip(before, frozen.get_weights()):
        np.testing.assert_array_equal(old, new)  # no label and no soft target on any row: nothing to learn

    taught = student()
    history = tfmtl.training.distill(trained_mmoe, taught, (keep_all, unlabelled), alpha=0.5, epochs=3,
                                     batch_size=256, validation_data=small_data, verbose=0)
    assert history.history["val_click/auc"][-1] > 0.6  # validation data with every feature: the student's taken
    assert "click/weight" in history.history and np.isfinite(history.history["loss"]).all()
    mine = taught.predict(keep, verbose=0)
    theirs = trained_mmoe.predict(small_data.features, verbose=0)
    for task in ("click", "conversion"):
        assert np.corrcoef(mine[task][:, 0], theirs[task][:, 0])[0, 1] > 0.8, task
    aucs = []
    for predictions in (mine, theirs):
        auc = keras.metrics.AUC()
        auc.update_state(small_data.labels["click"], predictions["click"][:, 0])
        aucs.append(float(auc.result()))
    assert aucs[1] > 0.65, aucs
    assert aucs[0] > 0.5 + 0.7 * (aucs[1] - 0.5)  # learned from the teacher alone: no label was seen


def test_an_exported_teacher_answers_as_the_in_memory_one_and_the_student_exports(trained_mmoe, exported_mmoe,
                                                                                  small_data, tmp_path):
    features = small_data.take(slice(0, 700)).features
    from_memory = _Teacher.of(trained_mmoe).predict(features, 256)
    from_export = _Teacher.of(exported_mmoe).predict(features, 256)
    for task in ("click", "conversion"):
        np.testing.assert_allclose(from_export[task].reshape(-1), from_memory[task].reshape(-1), rtol=1e-5, atol=1e-6)
    small = tfmtl.Schema([trained_mmoe.schema["user_id"], trained_mmoe.schema["item_id"]])
    keras.utils.set_random_seed(2)
    student = tfmtl.models.esmm(small, small_data.tasks)
    history = tfmtl.training.distill(str(exported_mmoe), student, small_data, temperature=2.0, tasks=["click"],
                                     verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    path = tfmtl.serving.export(student, tmp_path / "student")
    served = tf.saved_model.load(str(path)).signatures["predict_click"](
        user_id=tf.constant(features["user_id"][:50]), item_id=tf.constant(features["item_id"][:50]))
    expected = student.predict({k: features[k][:50] for k in ("user_id", "item_id")}, verbose=0)["click"]
    np.testing.assert_allclose(next(iter(served.values())).numpy().reshape(-1), expected.reshape(-1), rtol=1e-5,
                               atol=1e-6)


def test_bad_input_names_the_task_or_feature(trained_mmoe, small_data):
    small = tfmtl.Schema([trained_mmoe.schema["user_id"]])
    student = tfmtl.models.shared_bottom(small, small_data.tasks, bottom_units=(4,))
    data = small_data.take(slice(0, 100))

    def refused(match, **kwargs):
        with pytest.raises((ValueError, TypeError), match=match):
            tfmtl.training.distill(kwargs.pop("teacher", trained_mmoe), student, kwargs.pop("data", data),
                                   verbose=0, **kwargs)

    refused(r"task 'click': temperature must be a finite number > 0, got 0", temperature=0)
    refused(r"task 'conversion': temperature .* got -1", temperature={"conversion": -1.0})
    refused(r"task 'click': alpha .* \[0, 1\], got 1.5", alpha=1.5)
    refused(r"alpha: 'ctr' is not a distilled task", alpha={"ctr": 0.5})
    refused(r"the student has no task 'ctr'", tasks=["ctr"])
    refused(r"task 'click': the teacher has no output 'ctr'", tasks={"click": "ctr"})
    refused(r"the teacher takes feature 'item_price', which the data lack",
            data=({k: v for k, v in data.features.items() if k != "item_price"}, data.labels))
    refused(r"feature 'price_usd' is taken by neither the teacher",
            data=({**data.features, "price_usd": data.features["item_price"]}, data.labels))
    refused(r"label 'click/teacher'", data=(data.features, {**data.labels, "click/teacher": data.labels["click"]}))
    reg = tfmtl.models.shared_bottom(small, [tfmtl.Task.regression("click")], bottom_units=(4,))
    reg_teacher = tfmtl.models.shared_bottom(small, [tfmtl.Task.regression("click")], bottom_units=(4,))
    with pytest.raises(ValueError, match=r"task 'click': a temperature softens .* regression"):
        tfmtl.training.distill(reg_teacher, reg, data, temperature={"click": 2.0}, verbose=0)
    multi = tfmtl.models.shared_bottom(small, [tfmtl.Task.multiclass("click", num_classes=3)], bottom_units=(4,))
    with pytest.raises(ValueError, match=r"task 'click' is multiclass on every row, the teacher's 'click' is binary"):
        tfmtl.training.distill(trained_mmoe, multi, data, verbose=0)
    from tfmtl.training.distill import _checked_prediction  # an export's outputs are checked by their shapes
    with pytest.raises(ValueError, match=r"task 'click' has 3 classes; the teacher's 'click' answers shape \(1,\)"):
        _checked_prediction(multi.tasks[0], "click", np.full((4, 1), 0.5))
    refused(r"teacher must be a tfmtl model or an export", teacher=object())


@pytest.mark.parametrize("architecture", ["ple", "aitm"])
def test_any_architecture_can_be_the_student(teacher, small_data, architecture):
    small = tfmtl.Schema([teacher.schema[name] for name in ("user_id", "item_id", "item_category")])
    build = {"ple": lambda: tfmtl.models.ple(small, small_data.tasks, expert_units=(8,)),
             "aitm": lambda: tfmtl.models.aitm(small, small_data.tasks, tower_units=8)}
    keras.utils.set_random_seed(3)
    student = build[architecture]()
    rows = small_data.take(slice(0, 1024))
    before = student.predict({k: rows.features[k] for k in small.input_specs()}, verbose=0)
    history = tfmtl.training.distill(teacher, student, rows, alpha=0.5, temperature=2.0, batch_size=256,
                                     verbose=0).history
    after = student.predict({k: rows.features[k] for k in small.input_specs()}, verbose=0)
    assert np.isfinite(history["loss"]).all() and not np.allclose(before["click"], after["click"])


@pytest.mark.parametrize("unlabelled_rows", [True, False])
def test_rows_outside_a_space_and_sample_weights_in_the_soft_target(unlabelled_rows):
    rng = np.random.default_rng(1)
    rows = 80
    features = {"x": rng.normal(size=rows).astype(np.float32), "item": rng.choice(["a", "b", "c"], rows)}
    click = (rng.random(rows) < 0.5).astype(np.float32)
    labels = {"click": click, "buy": click * (rng.random(rows) < 0.5), "w": rng.uniform(0.5, 2.0, rows)}
    tasks = [tfmtl.Task.binary("click"), tfmtl.Task.binary("buy", space="click", sample_weight="w")]
    schema = tfmtl.Schema([tfmtl.Numeric("x"), tfmtl.Categorical("item", embedding_dim=2)]).adapt(features, verbose=0)
    teacher, student = _model(schema, tasks, 0), _model(schema, tasks, 1)
    t, s = teacher.predict(features, verbose=0)["buy"][:, 0], student.predict(features, verbose=0)["buy"][:, 0]
    student.compile(optimizer=keras.optimizers.SGD(0.0))
    sample_weight = {"click": np.ones(rows), "buy": rng.uniform(0.5, 1.5, rows)}  # Keras's, per task
    history = tfmtl.training.distill(teacher, student, (features, labels), alpha=np.float32(0.3), temperature=2.0,
                                     unlabelled_rows=unlabelled_rows, batch_size=rows, sample_weight=sample_weight,
                                     verbose=0).history
    weight = labels["w"] * sample_weight["buy"]
    inside = click == 1
    y = labels["buy"]
    hard = -(y * np.log(s) + (1 - y) * np.log(1 - s))
    soft = _np_binary_soft(t, s, 2.0)
    rows_soft = np.ones(rows, bool) if unlabelled_rows else inside  # outside the space: the teacher only
    expected = (0.3 * np.sum((hard * weight)[inside]) / np.sum(weight[inside])
                + 0.7 * np.sum((soft * weight)[rows_soft]) / np.sum(weight[rows_soft]))
    np.testing.assert_allclose(history["buy/loss"][-1], expected, rtol=2e-4)


def test_teachers_that_answer_something_else_are_refused(teacher, small_data):
    small = tfmtl.Schema([teacher.schema["user_id"]])
    data = small_data.take(slice(0, 100))
    cvr = tfmtl.models.shared_bottom(small, [small_data.tasks[0], tfmtl.Task.binary("conversion", space="click")],
                                     bottom_units=(4,))
    with pytest.raises(ValueError, match=r"task 'conversion' is binary on the rows where 'click' is 1, the "
                                         r"teacher's 'conversion' is binary on every row"):
        tfmtl.training.distill(teacher, cvr, data, verbose=0)
    watch = tfmtl.models.shared_bottom(small, [tfmtl.Task.regression("click")], bottom_units=(4,))
    with pytest.raises(ValueError, match=r"task 'click' is regression on every row, the teacher's 'click' is binary"):
        tfmtl.training.distill(teacher, watch, data, verbose=0)
    # an export answering scores, not probabilities, for a multi-class task
    scores = _Teacher(["user_id"], {"genre": tf.TensorShape([None, 3])},
                      lambda batch: {"genre": np.full((len(batch["user_id"]), 3), 2.0)})
    from tfmtl.training.distill import _checked_prediction
    genre = tfmtl.Task.multiclass("genre", num_classes=3)
    with pytest.raises(ValueError, match=r"task 'genre': the teacher's 'genre' must answer class probabilities"):
        _checked_prediction(genre, "genre", scores.predict({"user_id": np.array(["u1", "u2"])}, 8)["genre"])
    student = tfmtl.models.shared_bottom(small, small_data.tasks, bottom_units=(4,))
    with pytest.raises(ValueError, match="give validation_data instead of validation_split"):
        tfmtl.training.distill(teacher, student, data, validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match="teacher_batch_size must be an int >= 1, got 0"):
        tfmtl.training.distill(teacher, student, data, teacher_batch_size=0, verbose=0)
    mixed = tfmtl.models.shared_bottom(small, [small_data.tasks[0], tfmtl.Task.regression("conversion")],
                                       bottom_units=(4,))
    with pytest.raises(ValueError, match="task 'conversion' is regression"):  # not refused for its temperature
        tfmtl.training.distill(teacher, mixed, data, temperature=2.0, verbose=0)
    history = tfmtl.training.distill(teacher, mixed, data, temperature=2.0, tasks=["click"], verbose=0)
    assert np.isfinite(history.history["loss"]).all()
