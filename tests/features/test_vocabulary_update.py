"""Schema.update: append-only vocabularies, id expiry, new ids by count, shared tables, saved with the model."""

import numpy as np
import pytest

import tfmtl
from tfmtl import keras


def _schema(**item):
    return tfmtl.Schema([
        tfmtl.Categorical("item", embedding_dim=4, **item),
        tfmtl.features.Sequence("history", max_len=3, embedding_dim=4, table="item", **item),
        tfmtl.Categorical("query", num_hash_bins=16),
        tfmtl.Numeric("price"),
    ])


def _day(items, histories=None):
    n = len(items)
    return {
        "item": np.array(items),
        "history": np.array(histories if histories is not None else [["", "", ""]] * n),
        "query": np.array(["q"] * n),
        "price": np.arange(n, dtype=np.float32),
    }


def test_known_ids_keep_their_rows_and_new_ids_are_appended_most_frequent_first():
    day0 = _schema().adapt(_day(["b", "a", "a", "c", "c", "c"]))
    assert day0["item"].vocabulary == ("c", "a", "b")  # adapt: most frequent first
    # history ids count too (padding excluded); the sequence shares the item's table
    day1 = day0.update(_day(["e", "a", "d", "e"], histories=[["d", "", ""], ["f", "e", ""], ["", "", ""], ["", "", ""]]))
    assert day1["item"].vocabulary == ("c", "a", "b", "e", "d", "f")  # e: 3, d: 2, f: 1
    assert day1["history"].vocabulary == day1["item"].vocabulary
    assert day1["item"].updates == 1 and day1["item"].last_seen == (0, 1, 0, 1, 1, 1)
    # what is not a vocabulary stays as it was: statistics, hashing
    assert day1["price"] == day0["price"] and day1["query"] == day0["query"]
    # lookups agree: every known id keeps its row
    before = tfmtl.features.FeaturePreprocessor(day0)(_day(["a", "b", "c", "e"]))["item"].numpy()
    after = tfmtl.features.FeaturePreprocessor(day1)(_day(["a", "b", "c", "e"]))["item"].numpy()
    np.testing.assert_array_equal(before[:3], after[:3])
    assert before[3] == 0 and after[3] == 4  # e was out of vocabulary (bucket 0), now row 1 + 3


def test_min_count_and_the_size_limit_hold_new_ids_back():
    day0 = _schema(min_count=2, max_vocabulary_size=4).adapt(_day(["a", "a", "b", "b", "z"]))
    assert day0["item"].vocabulary == ("a", "b")
    day1 = day0.update(_day(["c", "c", "c", "d", "d", "e", "e", "z"]))
    # z (1) is under min_count; c, d fill the table to 4 rows; e (2) waits
    assert day1["item"].vocabulary == ("a", "b", "c", "d")
    assert day1["item"].table_size == 5


def test_expired_ids_free_their_rows_for_new_ids_and_map_to_oov():
    day0 = _schema(expire_after=2).adapt(_day(["a", "b", "c"]))
    day1 = day0.update(_day(["a", "b"]))
    assert day1["item"].vocabulary == ("a", "b", "c")  # c unseen once: kept
    day2 = day1.update(_day(["a"]))  # c unseen twice: expired; b once: kept
    assert day2["item"].vocabulary == ("a", "b", None)
    lookup = tfmtl.features.FeaturePreprocessor(day2)(_day(["a", "b", "c"]))["item"].numpy()
    np.testing.assert_array_equal(lookup, [1, 2, 0])  # c: the OOV bucket; row 3 is free
    day3 = day2.update(_day(["x", "y", "x"]))  # b expires too; x, the most frequent, takes the lowest free row
    assert day3["item"].vocabulary == ("a", "x", "y")
    assert day3["item"].table_size == day0["item"].table_size
    lookup = tfmtl.features.FeaturePreprocessor(day3)(_day(["a", "b", "x", "y"]))["item"].numpy()
    np.testing.assert_array_equal(lookup, [1, 0, 2, 3])


def test_a_free_row_between_ids_keeps_the_rows_after_it_through_save_and_load():
    day1 = _schema(expire_after=1).adapt(_day(["a", "b", "c"])).update(_day(["a", "c"]))
    assert day1["item"].vocabulary == ("a", None, "c")
    again = tfmtl.Schema.from_config(day1.get_config())
    for schema in (day1, again):
        lookup = tfmtl.features.FeaturePreprocessor(schema)(_day(["a", "b", "c"]))["item"].numpy()
        np.testing.assert_array_equal(lookup, [1, 0, 3])  # b: out of vocabulary; c keeps row 3
        history = tfmtl.features.FeaturePreprocessor(schema)(_day(["a"], histories=[["c", "b", ""]]))["history"]
        np.testing.assert_array_equal(history.numpy(), [[3, 0, -1]])


def test_the_table_size_stays_stable_over_30_simulated_days_with_expiry():
    """Items live 5 days, 40 new ones a day: with expiry the table stops growing; without, it grows every day."""
    rng = np.random.default_rng(0)

    def day(d):
        live = np.arange(max(0, d - 4) * 40, (d + 1) * 40)  # items born on the last 5 days
        return _day([f"i{k}" for k in rng.choice(live, size=2000)])

    sizes = {}
    for expire_after in (None, 3):
        schema = _schema(expire_after=expire_after).adapt(day(0))
        sizes[expire_after] = []
        for d in range(1, 31):
            schema = schema.update(day(d))
            sizes[expire_after].append(schema["item"].table_size)
            if expire_after:  # the ids of the last 3 days' live items at most
                assert len([v for v in schema["item"].vocabulary if v is not None]) <= 200 + 3 * 40
    assert sizes[None][-1] > 31 * 40 - 50 and sizes[None][-1] > sizes[None][14] + 500
    assert max(sizes[3][9:]) == min(sizes[3][9:]) <= 320, sizes[3]  # stable from day 10 on, bounded


def test_the_updated_schema_is_saved_with_the_model(tmp_path):
    day1 = _schema(expire_after=1).adapt(_day(["a", "b"])).update(_day(["c"]))
    assert day1["item"].vocabulary == ("c", None)  # a and b expired, c took the first free row
    assert tfmtl.Schema.from_config(day1.get_config()) == day1
    model = tfmtl.models.shared_bottom(day1, [tfmtl.Task.binary("click")], bottom_units=(4,))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.schema == day1
    x = _day(["a", "c", "zz"])
    np.testing.assert_allclose(loaded.predict(x, verbose=0)["click"], model.predict(x, verbose=0)["click"])


def test_bad_updates_name_the_feature():
    day0 = _schema().adapt(_day(["a"]))
    data = _day(["a"])
    del data["price"]
    with pytest.raises(ValueError, match=r"cannot update the vocabularies: feature\(s\) \['price'\] are missing"):
        day0.update(data)
    with pytest.raises(ValueError, match="cannot update feature 'item': it was never adapted"):
        _schema().update(_day(["a"]))
    with pytest.raises(ValueError, match="every id expired"):
        _schema(expire_after=1, min_count=2).adapt(_day(["a", "a"])).update(_day(["b"]))
    with pytest.raises(ValueError, match="feature 'item': expire_after must be"):
        tfmtl.Categorical("item", expire_after=0)
    with pytest.raises(ValueError, match="feature 'item': last_seen needs one entry per vocabulary row"):
        tfmtl.Categorical("item", vocabulary=("a", "b"), last_seen=(0,))
    with pytest.raises(TypeError, match="feature 'item' expects string ids"):
        day0.update(_day([1, 2]))
