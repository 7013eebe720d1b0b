"""CSV, TFRecord and Parquet readers: the same batches as the in-memory arrays, missing labels, sharding, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras, tf


@pytest.fixture(scope="module")
def data() -> tfmtl.data.MultiTaskData:
    data = tfmtl.data.synthetic_recsys(300, seed=5, history_length=3, item_text_dim=4)
    data.labels["conversion"][::7] = np.nan  # some rows without a conversion label
    return data


def _flat(data):
    """The same rows without the [batch, n] inputs (CSV holds one value per column)."""
    schema = tfmtl.Schema([spec for spec in data.schema if spec.name not in ("history", "item_text")])
    features = {name: data.features[name] for name in schema.input_specs()}
    return tfmtl.data.MultiTaskData(features, data.labels, schema, data.tasks)


def _assert_same_batches(expected: tf.data.Dataset, actual: tf.data.Dataset) -> None:
    pairs = list(zip(expected, actual, strict=True))
    assert len(pairs) > 1
    for (x_mem, y_mem), (x_file, y_file) in pairs:
        assert sorted(x_mem) == sorted(x_file) and sorted(y_mem) == sorted(y_file)
        for name in x_mem:
            assert x_file[name].dtype == x_mem[name].dtype, name
            np.testing.assert_array_equal(x_file[name].numpy(), x_mem[name].numpy(), err_msg=name)
        for key in y_mem:
            np.testing.assert_array_equal(y_file[key].numpy(), y_mem[key].numpy(), err_msg=key)  # NaN == NaN here


def test_tfrecord_batches_equal_the_arrays(data, tmp_path):
    paths = tfmtl.data.write_tfrecord(data, tmp_path / "train.tfrecord")
    _assert_same_batches(data.to_dataset(64), tfmtl.data.read_tfrecord(paths, data.schema, data.tasks, 64))


def test_csv_batches_equal_the_arrays(data, tmp_path):
    flat = _flat(data)
    path = tfmtl.data.write_csv(flat, tmp_path / "train.csv")
    assert ",," in open(path).read() or ",\n" in open(path).read()  # a missing label is an empty field
    _assert_same_batches(flat.to_dataset(64), tfmtl.data.read_csv(path, flat.schema, flat.tasks, 64))


def test_training_from_files_equals_training_from_arrays(data, tmp_path):
    flat = _flat(data)
    schema = flat.schema.adapt(flat.features)
    path = tfmtl.data.write_csv(flat, tmp_path / "train.csv")
    weights = []
    for dataset in (flat.to_dataset(50), tfmtl.data.read_csv(path, flat.schema, flat.tasks, 50)):
        keras.utils.set_random_seed(0)
        model = tfmtl.models.shared_bottom(schema, flat.tasks, bottom_units=(8,))
        model.compile(optimizer="adam")
        model.fit(dataset, epochs=1, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_shuffle_is_seeded_and_shards_cover_every_row_once(data, tmp_path):
    paths = tfmtl.data.write_tfrecord(data, tmp_path / "train.tfrecord", shards=3)
    read = lambda **kw: np.concatenate([  # noqa: E731
        x["user_activity"].numpy() for x, _ in tfmtl.data.read_tfrecord(paths, data.schema, data.tasks, 40, **kw)
    ])
    first, again, other = read(shuffle_buffer=100, seed=1), read(shuffle_buffer=100, seed=1), read(shuffle_buffer=100, seed=2)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    np.testing.assert_array_equal(np.sort(first), np.sort(data.features["user_activity"].astype(np.float32)))
    for pipelines in (2, 5):  # by file (3 files >= 2 pipelines), by record (3 files < 5)
        parts = [
            read(input_context=tf.distribute.InputContext(pipelines, index, num_replicas_in_sync=pipelines))
            for index in range(pipelines)
        ]
        np.testing.assert_array_equal(
            np.sort(np.concatenate(parts)), np.sort(data.features["user_activity"].astype(np.float32))
        )
    shard = tfmtl.data.read_tfrecord(paths, data.schema, data.tasks, 40, input_context=tf.distribute.InputContext(2, 0, 2))
    assert next(iter(shard))[1]["click"].shape[0] == 20  # per-replica batch


def test_errors_name_the_problem(data, tmp_path):
    with pytest.raises(ValueError, match=r"history.*use write_tfrecord"):
        tfmtl.data.write_csv(data, tmp_path / "x.csv")
    flat = _flat(data)
    path = tfmtl.data.write_csv(flat, tmp_path / "train.csv")
    with pytest.raises(ValueError, match=r"no column\(s\) \['dwell'\]"):
        tfmtl.data.read_csv(path, flat.schema, [tfmtl.Task.regression("dwell")], 8)
    with pytest.raises(FileNotFoundError, match="no files match"):
        tfmtl.data.read_csv(tmp_path / "none-*.csv", flat.schema, flat.tasks, 8)
    clashing = [tfmtl.Task.regression("hour")]  # a label named like a feature: CSV used to read it as the label
    for reader in (tfmtl.data.read_csv, tfmtl.data.read_tfrecord, tfmtl.data.read_parquet):
        with pytest.raises(ValueError, match=r"label\(s\) \['hour'\] are also features of the schema"):
            reader(path, flat.schema, clashing, 8)
    with pytest.raises(ValueError, match="unknown data format 'avro'; allowed formats: csv, parquet, tfrecord"):
        tfmtl.data.read_files("avro", path, flat.schema, flat.tasks, 8)


def test_parquet_batches_equal_the_arrays_sequences_and_vectors_included(data, tmp_path):
    pytest.importorskip("pyarrow")
    path = tfmtl.data.write_parquet(data, tmp_path / "train.parquet", row_group_rows=100)
    # read_rows smaller than a row group and not a divisor of the batch: batches still match the arrays
    _assert_same_batches(data.to_dataset(64), tfmtl.data.read_parquet(path, data.schema, data.tasks, 64, read_rows=45))


def test_parquet_shuffles_shards_and_reads_ragged_sequences(data, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    paths = [tfmtl.data.write_parquet(data.take(slice(i, None, 2)), tmp_path / f"part-{i}.parquet") for i in (0, 1)]
    shuffled = tfmtl.data.read_parquet(tmp_path / "part-*.parquet", data.schema, data.tasks, 300, shuffle_buffer=300, seed=1)
    features, labels = next(iter(shuffled))
    np.testing.assert_array_equal(np.sort(features["user_activity"].numpy()),
                                  np.sort(data.features["user_activity"].astype(np.float32)))
    assert np.isnan(labels["conversion"].numpy()).sum() == np.isnan(data.labels["conversion"]).sum()
    shard = tfmtl.data.read_parquet(paths, data.schema, data.tasks, 40, input_context=tf.distribute.InputContext(2, 1, 2))
    assert sum(int(x["user_id"].shape[0]) for x, _ in shard) == 150  # pipeline 1 reads part-1 only
    # Ragged history lists (longer and shorter than max_len) are truncated / padded like pad_sequences.
    table = pq.read_table(paths[0]).to_pydict()
    rows = [["a", "b", "c", "d", "e"], [], ["x"]]
    table = {name: values[:3] for name, values in table.items()}
    table["history"] = rows
    ragged = tmp_path / "ragged.parquet"
    pq.write_table(pa.table(table), ragged)
    features, _ = next(iter(tfmtl.data.read_parquet(ragged, data.schema, data.tasks, 3)))
    width = data.schema["history"].max_len
    expected = tfmtl.features.pad_sequences(rows, width)
    np.testing.assert_array_equal(features["history"].numpy().astype(str), expected.astype(str))


def test_parquet_errors_name_the_file_and_column(data, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tfmtl.data.write_parquet(data, tmp_path / "train.parquet")
    with pytest.raises(ValueError, match=r"train.parquet: no column\(s\) \['dwell'\]"):
        tfmtl.data.read_parquet(path, data.schema, [tfmtl.Task.regression("dwell")], 8)
    table = pq.read_table(path)
    wrong = table.set_column(table.schema.get_field_index("hour"), "hour", pa.array(["x"] * len(table)))
    pq.write_table(wrong, tmp_path / "wrong.parquet")
    with pytest.raises(TypeError, match=r"wrong.parquet: feature 'hour' expects int64 values, the file has string"):
        tfmtl.data.read_parquet(tmp_path / "wrong.parquet", data.schema, data.tasks, 8)
    values = table.column("user_activity").to_pylist()
    values[3] = None
    holes = table.set_column(table.schema.get_field_index("user_activity"), "user_activity", pa.array(values))
    pq.write_table(holes, tmp_path / "holes.parquet")
    with pytest.raises(Exception, match=r"feature 'user_activity' has 1 empty value"):
        list(tfmtl.data.read_parquet(tmp_path / "holes.parquet", data.schema, data.tasks, 8))


def test_parquet_without_pyarrow_says_how_to_get_it(data, tmp_path, monkeypatch):
    for module in ("pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(__import__("sys").modules, module, None)  # import pyarrow now fails
    with pytest.raises(ImportError, match=r'pip install "tfmtl\[parquet\]"'):
        tfmtl.data.read_parquet(tmp_path / "x.parquet", data.schema, data.tasks, 8)


_CSV_SCHEMA = tfmtl.Schema([
    tfmtl.Categorical("item", embedding_dim=4, vocabulary=("a", "b")),
    tfmtl.Categorical("shop", embedding_dim=4, id_type="int64", vocabulary=(3, 7)),
    tfmtl.Numeric("price", mean=0.0, variance=1.0),
])
_CSV_TASKS = [tfmtl.Task.binary("click")]


def _csv(path, *rows: str) -> str:
    path.write_text("item,shop,price,click\n" + "".join(f"{row}\n" for row in rows))
    return str(path)


def test_csv_reads_what_tensorflow_reads_as_numbers(tmp_path):
    path = _csv(tmp_path / "forms.csv", "a, 3 , 1e3,", "b,+7,.5, 1", "a,-0, -inf,0.0", "b,0,NaN,1e0")
    features, labels = next(iter(tfmtl.data.read_csv(path, _CSV_SCHEMA, _CSV_TASKS, 8, preprocess=False)))
    assert features["item"].numpy().tolist() == [b"a", b"b", b"a", b"b"]
    assert features["shop"].dtype == tf.int64 and features["shop"].numpy().tolist() == [3, 7, 0, 0]
    np.testing.assert_array_equal(features["price"].numpy(), np.float32([1000.0, 0.5, -np.inf, np.nan]))
    np.testing.assert_array_equal(labels["click"].numpy(), np.float32([np.nan, 1.0, 0.0, 1.0]))


@pytest.mark.parametrize("row, message", [
    (",3,1.0,1", "CSV column `item` has an empty value; every feature needs one"),
    ("a,,1.0,1", "CSV column `shop` has an empty value; every feature needs one"),
    ("a,7.5,1.0,1", "CSV column `shop` has `7.5`, which is not an integer (int64)"),
    ("a,99999999999999999999,1.0,1", "CSV column `shop` has `99999999999999999999`, which is not an integer"),
    ("a,3,,1", "CSV column `price` has an empty value; every feature needs one"),
    ("a,3,abc,1", "CSV column `price` has `abc`, which is not a float"),
    ("a,3,1.0,yes", "CSV label column `click` has `yes`, which is not a float"),
])
def test_csv_errors_name_the_file_row_column_and_value(tmp_path, row, message):
    good = _csv(tmp_path / "a.csv", *["a,3,1.0,1"] * 5)
    bad = _csv(tmp_path / "b.csv", "a,3,1.0,1", "b,7,2.0,", row, "b,7,2.0,0")
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"{re.escape(bad)}, row 3 after the header: "
                                                             rf"{re.escape(message)}"):
        list(tfmtl.data.read_csv([good, bad], _CSV_SCHEMA, _CSV_TASKS, 4, shuffle_buffer=8, seed=1))


def test_csv_row_with_more_fields_than_the_header(tmp_path):
    path = _csv(tmp_path / "extra.csv", "a,3,1.0,1", "a,3,1,000.0,1")
    with pytest.raises(ValueError, match=r"extra.csv: row 2 after the header has 5 fields, more than the 4 columns"):
        tfmtl.data.read_csv(path, _CSV_SCHEMA, _CSV_TASKS, 4)
    path = _csv(tmp_path / "quoted.csv", "a,3,1.0,1", 'a,3,"1,000.0",1')  # quoted: one field
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`1,000.0`, which is not a float"):
        list(tfmtl.data.read_csv(path, _CSV_SCHEMA, _CSV_TASKS, 4))


def test_parquet_null_inside_a_list_names_the_file_column_and_row(data, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pq.read_table(tfmtl.data.write_parquet(data, tmp_path / "train.parquet"))
    for name, expected in (("history", "nulls inside id lists are not allowed"), ("item_text", "every vector needs 4")):
        values = table.column(name).to_pylist()
        values[130] = [None, *values[130][1:]]
        holes = table.set_column(table.schema.get_field_index(name), name, pa.array(values))
        pq.write_table(holes, tmp_path / f"{name}.parquet")
        with pytest.raises(Exception, match=rf"{name}.parquet: feature '{name}' has 1 null\(s\) inside its lists "
                                            rf"\(the first in row 130, counting from 0\); {expected}"):
            list(tfmtl.data.read_parquet(tmp_path / f"{name}.parquet", data.schema, data.tasks, 64, read_rows=50))
