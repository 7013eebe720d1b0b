"""Exports that store smaller tables: float16 or int8 rows, and vocabularies cut to their most frequent ids."""

from __future__ import annotations

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras, tf
from tfmtl.serving.tables import quantize_int8


@pytest.fixture(scope="module")
def trained():
    """An MMoE over users, items and a history sharing the item table, trained for one epoch."""
    data = tfmtl.data.synthetic_recsys(3000, history_length=4, seed=5)
    schema = data.schema.adapt(data.features)
    keras.utils.set_random_seed(4)
    model = tfmtl.models.mmoe(schema, data.tasks, num_experts=2, expert_units=(8,))
    model.compile()
    model.fit(data.to_dataset(256), epochs=1, verbose=0)
    sample = data.take(slice(0, 64)).features
    return model, schema, sample


def _tables(model) -> dict[str, keras.layers.Layer]:
    encoder = next(layer for layer in model.submodules if isinstance(layer, tfmtl.features.FeatureEncoder))
    return encoder.embeddings


def _predict_with_tables(model, sample, transform) -> dict[str, np.ndarray]:
    """The in-memory model's answers with every table's rows replaced by ``transform(rows)``, then restored."""
    tables = _tables(model)
    saved = {name: layer.get_weights() for name, layer in tables.items()}
    try:
        for name, layer in tables.items():
            layer.set_weights([transform(saved[name][0])])
        return {task: out.reshape(len(out), -1)[:, 0] for task, out in model.predict(sample, verbose=0).items()}
    finally:
        for name, layer in tables.items():
            layer.set_weights(saved[name])


def _served(path, sample) -> dict[str, np.ndarray]:
    out = tfmtl.serving.predict_in_fresh_process(path, sample, ["serving_default"], mode="session")
    return out["serving_default"]


def _saved_variables(path) -> dict[str, tuple[str, list[int]]]:
    reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    return {name: (dtypes[name].name, list(shape)) for name, shape in shapes.items() if "OBJECT_GRAPH" not in name}


def _dequantized(rows: np.ndarray) -> np.ndarray:
    codes, scales = quantize_int8(rows)
    return codes.astype(np.float32) * scales[:, None]


def test_int8_codes_reconstruct_each_row_within_half_its_scale():
    rows = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32)
    rows[3] = 0.0
    codes, scales = quantize_int8(rows)
    assert codes.dtype == np.int8 and scales.dtype == np.float32
    np.testing.assert_allclose(scales, np.where(np.abs(rows).max(1) > 0, np.abs(rows).max(1) / 127, 1.0), rtol=1e-6)
    assert np.all(np.abs(codes.astype(np.float32) * scales[:, None] - rows) <= scales[:, None] / 2 + 1e-7)
    assert np.abs(codes).max() == 127 and not codes[3].any()


def test_float16_bit_patterns_widen_exactly_as_numpy_does():
    bits = np.arange(-2**15, 2**15, dtype=np.int32).astype(np.int16)
    halves = bits.view(np.float16)
    finite = np.isfinite(halves)
    widened = tfmtl.serving.tables.float32_from_float16_bits(tf.constant(bits[finite])).numpy()
    np.testing.assert_array_equal(widened.view(np.int32), halves[finite].astype(np.float32).view(np.int32))  # -0.0 too


def test_tables_that_cannot_be_stored_smaller_are_refused_naming_the_table(tmp_path):
    schema = tfmtl.Schema([tfmtl.Categorical("item", embedding_dim=2, vocabulary=("a", "b"))])
    model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(4,))
    table = _tables(model)["item"]
    table.set_weights([np.array([[0.0, 1.0], [7e4, 0.0], [0.5, 0.5]], np.float32)])
    with pytest.raises(ValueError, match=r"table 'item' holds values beyond float16's range"):
        tfmtl.serving.export(model, tmp_path / "a", table_dtype="float16")
    assert tfmtl.serving.export(model, tmp_path / "b", table_dtype="int8").name == "1"
    table.set_weights([np.array([[0.0, np.nan], [1.0, 0.0], [0.5, 0.5]], np.float32)])
    with pytest.raises(ValueError, match=r"table 'item' holds NaN or infinite values \(the model diverged\)"):
        tfmtl.serving.export(model, tmp_path / "c", table_dtype="int8")


@pytest.mark.parametrize(
    "dtype,transform",
    [("float16", lambda rows: rows.astype(np.float16).astype(np.float32)), ("int8", _dequantized)],
)
def test_smaller_tables_answer_as_the_model_with_its_tables_rounded_alike(trained, tmp_path, dtype, transform):
    model, _, sample = trained
    before = model.predict(sample, verbose=0)
    path = tfmtl.serving.export(model, tmp_path / "m", table_dtype=dtype)
    served = _served(path, sample)
    expected = _predict_with_tables(model, sample, transform)
    exact = _predict_with_tables(model, sample, lambda rows: rows)
    for task in expected:
        np.testing.assert_allclose(served[task], expected[task], atol=1e-5)
        assert np.abs(served[task] - exact[task]).max() > 0  # the rounding is real, and small
        np.testing.assert_allclose(served[task], exact[task], atol=0.02)
    saved = _saved_variables(path)
    stored_as = {"float16": "int16", "int8": "int8"}[dtype]  # float16: its bit patterns
    for name, layer in _tables(model).items():  # every table stored in the dtype, none as float32
        shape = list(layer.embeddings.shape)
        assert any(kind == stored_as and dims == shape for kind, dims in saved.values()), name
        assert not any(kind == "float32" and dims == shape for kind, dims in saved.values()), name
    after = model.predict(sample, verbose=0)
    for task in before:  # the model itself is untouched
        np.testing.assert_array_equal(after[task], before[task])


def test_tables_convert_in_chunks_as_one_piece_would(trained, monkeypatch):
    model, schema, _ = trained
    monkeypatch.setattr(tfmtl.serving.tables, "_CHUNK_ROWS", 7)  # many chunks, the last one short
    keep = len(_vocabulary(schema, "user_id")) // 2
    stored = tfmtl.serving.tables.StoredTables(model, "int8", keep_ids={"user_id": keep})
    trained_rows = _tables(model)["user_id"].get_weights()[0][: 1 + keep]
    codes, scales = quantize_int8(trained_rows)
    copy = stored._tables["user_id"]
    np.testing.assert_array_equal(copy.rows.numpy(), codes)
    np.testing.assert_array_equal(copy.scales.numpy(), scales)
    half = tfmtl.serving.tables.StoredTables(model, "float16")._tables["item_id"].rows.numpy()
    np.testing.assert_array_equal(half, tfmtl.serving.tables.float16_bits(_tables(model)["item_id"].get_weights()[0]))


def test_rows_of_a_table_sharded_row_wise_are_read_in_order_up_to_the_rows_asked(monkeypatch):
    from tensorflow.python.distribute.sharded_variable import ShardedVariable

    monkeypatch.setattr(tfmtl.serving.tables, "_CHUNK_ROWS", 7)
    full = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)
    table = ShardedVariable([tf.Variable(full[:14]), tf.Variable(full[14:27]), tf.Variable(full[27:])])
    read = np.concatenate(list(tfmtl.serving.tables._row_chunks(table, 20)))  # ends inside the second shard
    np.testing.assert_array_equal(read, full[:20])
    with pytest.raises(ValueError, match="the table has 40 rows, fewer than the 41 to store"):
        list(tfmtl.serving.tables._row_chunks(table, 41))


def test_a_failed_export_leaves_the_model_reading_its_own_tables(trained, tmp_path, monkeypatch):
    model, _, sample = trained
    before = model.predict(sample, verbose=0)

    def fail(self):
        raise RuntimeError("tracing failed")

    monkeypatch.setattr(tfmtl.serving.signatures.ServingModule, "signatures", fail)
    with pytest.raises(RuntimeError, match="tracing failed"):
        tfmtl.serving.export(model, tmp_path / "m", table_dtype="int8", keep_ids={"item_id": 5})
    assert all(table.stored_rows is None for table in _tables(model).values())
    preprocessor = next(layer for layer in model.submodules if isinstance(layer, tfmtl.features.FeaturePreprocessor))
    assert preprocessor.stored_lookups is None
    after = model.predict(sample, verbose=0)
    for task in before:
        np.testing.assert_array_equal(after[task], before[task])


def test_int8_export_holds_about_a_quarter_of_the_table_bytes(trained, tmp_path):
    model, _, _ = trained
    full = tfmtl.serving.export(model, tmp_path / "full", examples=False)
    small = tfmtl.serving.export(model, tmp_path / "small", examples=False, table_dtype="int8")
    table_bytes = {p: 0 for p in (full, small)}
    for path in table_bytes:
        for kind, shape in _saved_variables(path).values():
            if len(shape) == 2 and kind in ("float32", "int8") and shape[0] > 100:  # the id tables
                table_bytes[path] += int(np.prod(shape)) * (4 if kind == "float32" else 1) + 4 * shape[0] * (kind == "int8")
    ratio = table_bytes[small] / table_bytes[full]
    dim = _tables(model)["user_id"].output_dim
    assert ratio == pytest.approx((dim + 4) / (4 * dim), rel=1e-6)


def _vocabulary(schema, table):
    return next(spec for spec in schema if spec.name == table).vocabulary


def test_keep_ids_answers_the_dropped_ids_as_unseen_ids_and_shrinks_the_vocabulary(trained, tmp_path):
    model, schema, sample = trained
    items = _vocabulary(schema, "item_id")
    keep = len(items) // 3
    path = tfmtl.serving.export(model, tmp_path / "m", keep_ids={"item_id": keep})
    served = _served(path, sample)
    kept = set(items[:keep])
    unseen = dict(sample)
    unseen["item_id"] = np.array([i if i in kept else "never-seen" for i in sample["item_id"]], dtype=object)
    unseen["history"] = np.array(
        [[i if i in kept or i == "" else "never-seen" for i in row] for row in sample["history"]], dtype=object
    )
    assert (unseen["item_id"] == "never-seen").sum() > 5 and (unseen["item_id"] != "never-seen").sum() > 5
    expected = model.predict(unseen, verbose=0)
    original = model.predict(sample, verbose=0)
    for task in expected:
        np.testing.assert_allclose(served[task], expected[task][:, 0], atol=1e-5)
        assert np.abs(served[task] - original[task][:, 0]).max() > 1e-4  # the dropped ids did answer differently
    loaded = tf.saved_model.load(str(path))
    sizes = sorted(int(tf.raw_ops.LookupTableSizeV2(table_handle=table.resource_handle)) for table in loaded.resources)
    users = _vocabulary(schema, "user_id")
    assert keep in sizes and len(items) not in sizes and len(users) in sizes  # the item vocabulary alone shrank
    item_rows = [shape for kind, shape in _saved_variables(path).values() if shape == [1 + keep, 8]]
    assert item_rows and not any(shape == [1 + len(items), 8] for _, shape in _saved_variables(path).values())


def test_keep_ids_and_int8_together(trained, tmp_path):
    model, schema, sample = trained
    keep = len(_vocabulary(schema, "user_id")) // 2
    path = tfmtl.serving.export(model, tmp_path / "m", table_dtype="int8", keep_ids={"user_id": keep})
    saved = _saved_variables(path)
    assert ("int8", [1 + keep, 8]) in saved.values() and ("float32", [1 + keep]) in saved.values()
    served = _served(path, sample)
    original = model.predict(sample, verbose=0)
    assert np.abs(served["click"] - original["click"][:, 0]).max() < 0.2  # close, not equal: a sanity bound only


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"table_dtype": "bfloat8"}, "table_dtype must be one of"),
        ({"keep_ids": {"item": 5}}, "not embedding tables; the tables are"),
        ({"keep_ids": {"item_id": 0}}, "keep_ids['item_id'] must be a positive int"),
        ({"keep_ids": {"item_id": 2.5}}, "keep_ids['item_id'] must be a positive int"),
    ],
)
def test_bad_table_options_are_refused_naming_the_table(trained, tmp_path, kwargs, message):
    model, _, _ = trained
    with pytest.raises(ValueError) as error:
        tfmtl.serving.export(model, tmp_path / "m", **kwargs)
    assert message in str(error.value)
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def test_keep_ids_refuses_hashed_and_non_id_tables(tmp_path):
    schema = tfmtl.Schema([
        tfmtl.Categorical("user", embedding_dim=2, num_hash_bins=50),
        tfmtl.features.Bucketized("price", embedding_dim=2, boundaries=(1.0, 2.0)),
    ])
    model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(4,))
    with pytest.raises(ValueError, match=r"keep_ids\['user'\]: the table hashes its ids"):
        tfmtl.serving.export(model, tmp_path / "a", keep_ids={"user": 10})
    with pytest.raises(ValueError, match=r"keep_ids\['price'\]: the table is not an id vocabulary"):
        tfmtl.serving.export(model, tmp_path / "b", keep_ids={"price": 1})


def test_a_plain_keras_model_exports_as_trained_and_refuses_smaller_tables(tmp_path):
    inputs = {"x": keras.Input([], dtype="int64", name="x")}
    outputs = {"click": keras.layers.Dense(1, activation="sigmoid")(
        keras.layers.Flatten()(keras.layers.Embedding(10, 2)(inputs["x"])))}
    model = keras.Model(inputs, outputs)
    assert tfmtl.serving.export(model, tmp_path / "a", examples=False).name == "1"
    with pytest.raises(ValueError, match="need a model whose features a tfmtl FeatureEncoder encodes"):
        tfmtl.serving.export(model, tmp_path / "b", examples=False, table_dtype="int8")
