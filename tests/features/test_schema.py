import re

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import tf
from tfmtl.features import Categorical, IdType, Numeric, Schema


def test_adapt_learns_vocabulary_by_frequency_then_id_and_moments():
    schema = Schema([Categorical("color"), Categorical("shop", id_type=IdType.INT64), Numeric("price")])
    data = {
        "color": np.array(["red", "blue", "red", "green", "blue", "red"]),
        "shop": np.array([7, 3, 3, 9, 7, 3]),
        "price": np.array([1.0, 2.0, 3.0, 4.0, 5.0, 9.0]),
    }
    adapted = schema.adapt(data)
    assert adapted["color"].vocabulary == ("red", "blue", "green")
    assert adapted["shop"].vocabulary == (3, 7, 9)
    assert adapted["price"].mean == pytest.approx(np.mean(data["price"]))
    assert adapted["price"].variance == pytest.approx(np.var(data["price"]))
    assert adapted.is_adapted and not schema.is_adapted


def test_adapt_min_count_and_max_size_and_keeps_given_specs():
    schema = Schema([
        Categorical("a", min_count=2),
        Categorical("b", max_vocabulary_size=1),
        Numeric("given", mean=5.0, variance=2.0),
    ])
    data = {"a": np.array(["x", "x", "y"]), "b": np.array(["p", "q", "q"]), "given": np.array([0.0, 0.0, 0.0])}
    adapted = schema.adapt(data)
    assert adapted["a"].vocabulary == ("x",)
    assert adapted["b"].vocabulary == ("q",)
    assert (adapted["given"].mean, adapted["given"].variance) == (5.0, 2.0)


def test_adapt_from_dataset_equals_adapt_from_arrays(small_data):
    from_arrays = small_data.schema.adapt(small_data.features)
    from_dataset = small_data.schema.adapt(small_data.to_dataset(333))
    assert from_arrays.names == from_dataset.names
    for a, b in zip(from_arrays, from_dataset):
        if isinstance(a, Categorical):
            assert a.vocabulary == b.vocabulary
        else:
            assert a.mean == pytest.approx(b.mean, rel=1e-6)
            assert a.variance == pytest.approx(b.variance, rel=1e-5)


def test_adapt_rejects_nan_and_missing_columns():
    with pytest.raises(ValueError, match="'price' contains NaN"):
        Schema([Numeric("price")]).adapt({"price": np.array([1.0, np.nan])})
    with pytest.raises(ValueError, match="'shop'"):
        Schema([Categorical("shop")]).adapt({"other": np.array(["a"])})


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: Schema([Numeric("x"), Numeric("x")]), ValueError, "duplicate feature name 'x'"),
        (lambda: Numeric("bad name"), ValueError, "invalid feature name 'bad name'"),
        (lambda: Categorical("c", embedding_dim=0), ValueError, "'c': embedding_dim"),
        (lambda: Categorical("c", vocabulary=("a", "a")), ValueError, "'c': the vocabulary has duplicate"),
        (lambda: Categorical("c", vocabulary=(1, 2)), TypeError, "'c': string vocabulary holds a non-string"),
        (lambda: Numeric("n", mean=1.0), ValueError, "'n': give both mean and variance"),
        (lambda: Schema([]), ValueError, "at least one feature"),
    ],
)
def test_invalid_specs_name_the_feature(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_unknown_feature_lookup_lists_known_names(small_schema):
    with pytest.raises(KeyError, match="unknown feature 'nope'.*user_id"):
        small_schema["nope"]


def test_input_specs_are_one_value_per_example(small_schema):
    specs = small_schema.input_specs()
    assert specs["user_id"] == tf.TensorSpec([None], tf.string, name="user_id")
    assert specs["hour"].dtype == tf.int64
    assert specs["item_price"].dtype == tf.float32


class TestConform:
    schema = Schema([
        Categorical("item", vocabulary=("a",)),
        Categorical("shop", vocabulary=(1,), id_type=IdType.INT64),
        Numeric("price", mean=0.0, variance=1.0),
    ])
    good = {"item": np.array(["a"]), "shop": np.array([1]), "price": np.array([1.5])}

    def test_casts_compatible_types_and_flattens_column_vectors(self):
        out = self.schema.conform({
            "item": np.array([["a"], ["b"]]),
            "shop": np.array([1, 2], np.int32),
            "price": np.array([1, 2]),
        })
        assert out["item"].shape == (2,)
        assert out["shop"].dtype == tf.int64
        assert out["price"].dtype == tf.float32

    @pytest.mark.parametrize(
        "change, error, message",
        [
            ({"extra": np.array([1.0])}, ValueError, r"unknown feature\(s\) \['extra'\]"),
            ({"item": np.array([3])}, TypeError, "'item' expects string ids, got int64"),
            ({"shop": np.array(["1"])}, TypeError, "'shop' expects int64 ids, got string"),
            ({"price": np.array(["cheap"])}, TypeError, "'price' is numeric"),
            ({"price": np.ones([1, 3])}, ValueError, r"'price' expects one value per example.*\[1, 3\]"),
        ],
    )
    def test_bad_batches_name_the_feature(self, change, error, message):
        with pytest.raises(error, match=message):
            self.schema.conform({**self.good, **change})

    def test_missing_feature(self):
        with pytest.raises(ValueError, match=r"missing feature\(s\) \['shop'\]"):
            self.schema.conform({"item": np.array(["a"]), "price": np.array([1.0])})


def test_public_namespace():
    assert tfmtl.Schema is Schema and tfmtl.Categorical is Categorical and tfmtl.Numeric is Numeric


def test_adapt_rejects_ints_for_string_ids():
    with pytest.raises(TypeError, match="feature 'item' expects string ids, got int64"):
        Schema([Categorical("item")]).adapt({"item": np.array([1, 2, 3])})


def test_constant_numeric_gets_unit_variance_with_a_warning():
    with pytest.warns(UserWarning, match="'flag' is constant"):
        adapted = Schema([Numeric("flag")]).adapt({"flag": np.full(10, 3.0)})
    assert (adapted["flag"].mean, adapted["flag"].variance) == (3.0, 1.0)


def test_adapt_shows_rows_read_when_asked(capsys):
    data = {"color": np.array(["red", "blue"] * 50), "price": np.arange(100.0)}
    schema = Schema([Categorical("color"), Numeric("price")])
    schema.adapt(data, batch_size=30, verbose=0)
    assert capsys.readouterr().out == ""
    schema.adapt(data, batch_size=30, verbose=2)  # one line at the end, as Keras's verbose=2
    assert re.fullmatch(r"adapted on 100 rows in [0-9.]+ s\n", capsys.readouterr().out)
    schema.adapt(tf.data.Dataset.from_tensor_slices(data).batch(40), verbose=1)  # size unknown
    assert "100/Unknown" in capsys.readouterr().out
    with pytest.raises(ValueError, match="verbose must be 0, 1, 2 or 'auto', got 3"):
        schema.adapt(data, verbose=3)
