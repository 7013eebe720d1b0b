"""warm_start: the next day's model from the updated schema and the previous weights."""

import dataclasses

import numpy as np
import pytest

import tfmtl
from tfmtl import keras


def _days(rows=6_000, days=(0, 1)):
    return [tfmtl.data.synthetic_recsys(rows, num_items=300, num_users=500, day=d, seed=3)
            for d in days]


def _schema():
    schema = tfmtl.data.synthetic_schema(4)
    return schema.replace(item_id=dataclasses.replace(schema["item_id"], expire_after=1))


@pytest.fixture(scope="module")
def day0_model():
    day0, _ = _days()
    keras.utils.set_random_seed(0)
    model = tfmtl.models.mmoe(_schema().adapt(day0.features), day0.tasks, num_experts=2, expert_units=(8,))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(day0.to_dataset(512, shuffle=True, seed=0), epochs=1, verbose=0)
    return model


def test_before_training_the_next_day_answers_every_id_it_still_knows_as_the_previous_day(day0_model):
    day0, day1 = _days()
    schema = day0_model.schema.update(day1.features)
    old, new = day0_model.schema["item_id"].vocabulary, schema["item_id"].vocabulary
    assert all(new[row] == v for row, v in enumerate(old) if v in set(new))  # every kept id keeps its row
    model = tfmtl.training.warm_start(day0_model, schema)
    assert type(model) is type(day0_model) and model.schema == schema
    x = day1.features
    kept = set(v for v in new if v is not None)
    expired = set(v for v in old if v is not None) - kept
    assert len(expired) > 10 and np.isin(x["item_id"], list(kept - set(old))).sum() > 50  # new items among them
    before, after = day0_model.predict(x, verbose=0), model.predict(x, verbose=0)  # no expired id in day 1's rows
    for task in ("click", "conversion"):
        np.testing.assert_allclose(after[task], before[task], rtol=1e-5, atol=1e-7)
    # an expired id is answered from the out-of-vocabulary bucket, as any unknown id
    gone = sorted(expired)[0]
    probe = {k: v[:1] for k, v in x.items()}
    probe_unknown = {**probe, "item_id": np.array(["never-seen"])}
    probe_expired = {**probe, "item_id": np.array([gone])}
    np.testing.assert_allclose(model.predict(probe_expired, verbose=0)["click"],
                               model.predict(probe_unknown, verbose=0)["click"], rtol=1e-6)


def test_the_next_version_trains_saves_and_exports(day0_model, tmp_path):
    _, day1 = _days()
    model = tfmtl.training.warm_start(day0_model, day0_model.schema.update(day1.features))
    table = model.get_layer("features").embeddings["item_id"].embeddings
    new_rows = [i + 1 for i, v in enumerate(model.schema["item_id"].vocabulary)
                if v is not None and v not in set(day0_model.schema["item_id"].vocabulary)]
    start = table.numpy()[new_rows].copy()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(day1.to_dataset(512, shuffle=True, seed=0), epochs=1, verbose=0)
    assert np.abs(table.numpy()[new_rows] - start).max() > 1e-3  # the new ids' rows learn
    model.save(tmp_path / "day1.keras")
    again = tfmtl.training.warm_start(tmp_path / "day1.keras", model.schema)  # a file works as the previous model
    sample = day1.take(slice(0, 16)).features
    np.testing.assert_allclose(again.predict(sample, verbose=0)["click"], model.predict(sample, verbose=0)["click"],
                               rtol=1e-6)
    path = tfmtl.serving.export(model, tmp_path / "export")
    served = tfmtl.serving.predict_in_fresh_process(path, sample, ["serving_default"])
    np.testing.assert_allclose(served["serving_default"]["click"], model.predict(sample, verbose=0)["click"][:, 0],
                               rtol=1e-5, atol=1e-7)


def test_a_schema_changed_other_than_by_vocabulary_growth_is_refused_naming_the_feature(day0_model, tmp_path):
    schema = day0_model.schema
    wider = schema.replace(device=dataclasses.replace(schema["device"], embedding_dim=8))
    with pytest.raises(ValueError, match=r"feature 'device': warm start keeps everything but the vocabulary, and "
                                         r"embedding_dim changed \(4 before, 8 now\)"):
        tfmtl.training.warm_start(day0_model, wider)
    kind = tfmtl.Schema([tfmtl.Numeric("hour", mean=0.0, variance=1.0) if spec.name == "hour" else spec
                         for spec in schema])
    with pytest.raises(ValueError, match=r"feature 'hour': warm start keeps every feature's kind, and it changed "
                                         r"\(categorical before, numeric now\)"):
        tfmtl.training.warm_start(day0_model, kind)
    more = tfmtl.Schema([*schema, tfmtl.Numeric("extra", mean=0.0, variance=1.0)])
    with pytest.raises(ValueError, match=r"added \['extra'\]"):
        tfmtl.training.warm_start(day0_model, more)
    (tmp_path / "old" / "1").mkdir(parents=True)
    (tmp_path / "old" / "1" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ValueError, match="is a SavedModel without the model's config"):
        tfmtl.training.warm_start(tmp_path / "old" / "1", schema)
    smaller = tfmtl.serving.export(day0_model, tmp_path / "export", table_dtype="int8", examples=False)
    with pytest.raises(ValueError, match="does not hold the model.s variables as trained"):
        tfmtl.training.warm_start(smaller, schema)


def test_an_export_is_a_previous_version_too(day0_model, tmp_path):
    _, day1 = _days()
    schema = day0_model.schema.update(day1.features)
    path = tfmtl.serving.export(day0_model, tmp_path / "export", examples=False)
    from_export = tfmtl.training.warm_start(path, schema)
    from_memory = tfmtl.training.warm_start(day0_model, schema)
    x = day1.take(slice(0, 64)).features
    for name, value in from_memory.predict(x, verbose=0).items():
        np.testing.assert_allclose(from_export.predict(x, verbose=0)[name], value, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("architecture", ["shared_bottom", "omoe", "ple", "esmm", "aitm"])
def test_every_architecture_warm_starts_to_the_same_answers(architecture):
    day0, day1 = _days(1_500)
    keras.utils.set_random_seed(1)
    schema = _schema().adapt(day0.features)
    model = getattr(tfmtl.models, architecture)(schema, day0.tasks)
    weights = [np.random.default_rng(i).normal(scale=0.3, size=w.shape) for i, w in enumerate(model.get_weights())]
    model.set_weights(weights)  # not the initial values: every weight must be carried over
    warm = tfmtl.training.warm_start(model, schema.update(day1.features))
    x = day1.take(slice(0, 200)).features
    before, after = model.predict(x, verbose=0), warm.predict(x, verbose=0)
    assert sorted(after) == sorted(before)
    for name in before:
        np.testing.assert_allclose(after[name], before[name], rtol=1e-5, atol=1e-6)


def test_the_cli_takes_the_configs_growth_rules_and_the_previous_state():
    from tfmtl.training.run import _as_learned
    from tfmtl.training.warm_start import check_schema_change

    previous = tfmtl.Schema([
        tfmtl.Categorical("device", embedding_dim=4, vocabulary=("ios", "android", "web"), expire_after=3,
                          last_seen=(1, 1, 1), updates=1),
        tfmtl.Numeric("price", mean=2.0, variance=4.0),
    ])
    configured = tfmtl.Schema([tfmtl.Categorical("device", embedding_dim=4, vocabulary=("ios", "android")),
                               tfmtl.Numeric("price")])
    base = _as_learned(configured, previous)
    assert base["device"].vocabulary == ("ios", "android", "web") and base["device"].updates == 1  # grown state
    assert base["device"].expire_after is None  # the config turned expiry off
    assert (base["price"].mean, base["price"].variance) == (2.0, 4.0)  # statistics are learned state
    clipped = tfmtl.Schema([configured["device"], tfmtl.Numeric("price", clip=(0.0, 10.0))])
    with pytest.raises(ValueError, match=r"feature 'price': .* clip changed \(None before, \(0.0, 10.0\) now\)"):
        check_schema_change(previous, _as_learned(clipped, previous))


def test_the_cli_keeps_the_previous_tasks():
    from tfmtl.training.run import _check_same_tasks

    previous = (tfmtl.Task.binary("click"), tfmtl.Task.binary("conversion"))
    _check_same_tasks(previous, previous)
    with pytest.raises(ValueError, match=r"task 'click': .* threshold changed \(0.5 before, 0.3 now\)"):
        _check_same_tasks((tfmtl.Task.binary("click", threshold=0.3), previous[1]), previous)
    with pytest.raises(ValueError, match=r"keeps the previous model's tasks \['click', 'conversion'\]"):
        _check_same_tasks(previous[:1], previous)
