"""Feature kinds: hand-checked values, schema-time errors, round trips and export of each kind."""

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras
from tfmtl.features import (
    Bucketized,
    Categorical,
    DenseVector,
    FeatureEncoder,
    MultiValued,
    Numeric,
    PeriodicEmbedding,
    PretrainedTable,
    Schema,
    Sequence,
    SequencePooling,
    TargetAttention,
    pad_sequences,
)

VECTORS = {"i1": [1.0, 2.0, 3.0], "i2": [-1.0, 0.5, 0.0]}


def _schema():
    return Schema([
        Categorical("item_id", embedding_dim=4),
        Categorical("query", embedding_dim=2, num_hash_bins=7, salt=3),
        Sequence("history", max_len=4, embedding_dim=4, table="item_id", pooling="attention", query="item_id",
                 attention_units=(3,)),
        MultiValued("tags", max_len=3, embedding_dim=2, pooling="sum", weighted=True),
        Numeric("price", log=True, clip=(0.0, 1e4)),
        Numeric("dividends", log=True, embedding_dim=3, frequencies=4, frequency_scale=2.0),
        Bucketized("age", num_buckets=3),
        DenseVector("text", dim=5, projection_dim=2),
        PretrainedTable("item_llm", vectors=VECTORS),
    ])


def _data(rows=40, seed=0):
    rng = np.random.default_rng(seed)
    items = np.array([f"i{k}" for k in range(6)])
    histories = [list(rng.choice(items, size=rng.integers(0, 6))) for _ in range(rows)]  # some empty, some > max_len
    return {
        "item_id": rng.choice(items, size=rows),
        "query": rng.choice(["a", "b", "c", "d"], size=rows),
        "history": pad_sequences(histories, 4),
        "tags": pad_sequences([list(rng.choice(["x", "y", "z"], size=rng.integers(0, 4))) for _ in range(rows)], 3),
        "tags_weights": rng.uniform(0.5, 2.0, size=(rows, 3)).astype(np.float32),
        "price": rng.lognormal(3.0, 2.0, size=rows).astype(np.float32),
        "dividends": np.where(rng.random(rows) < 0.7, 0.0, rng.lognormal(6.0, 1.0, size=rows)).astype(np.float32),
        "age": rng.uniform(18, 70, size=rows).astype(np.float32),
        "text": rng.normal(size=(rows, 5)).astype(np.float32),
        "item_llm": rng.choice(["i1", "i2", "unknown"], size=rows),
    }


@pytest.fixture(scope="module")
def adapted():
    return _schema().adapt(_data())


# -- schema: adapt, tables, errors ------------------------------------------------
def test_shared_table_learns_one_vocabulary_from_all_members_without_padding(adapted):
    data = _data()
    ids = list(data["item_id"]) + [v for v in data["history"].ravel() if v != ""]
    assert adapted["item_id"].vocabulary == adapted["history"].vocabulary
    assert set(adapted["item_id"].vocabulary) == set(ids) and "" not in adapted["item_id"].vocabulary
    encoder = FeatureEncoder(adapted)
    assert "history_embedding" not in [layer.name for layer in encoder.embeddings.values()]  # built once


@pytest.mark.parametrize(
    "features, message",
    [
        ([Categorical("item_id", embedding_dim=4), Sequence("h", embedding_dim=8, table="item_id")],
         "'item_id' and 'h' share the embedding table 'item_id' but differ in embedding_dim: 4 vs 8"),
        ([Categorical("a", vocabulary=("x",), table="t"), Categorical("b", vocabulary=("y",), table="t")],
         "share the embedding table 't' but differ in vocabulary"),
        ([Numeric("t"), Categorical("a", table="t")], "names the table 't', which is the name of a numeric feature"),
        ([Sequence("h", pooling="attention", query="nope")], "attention query 'nope' must be a Categorical"),
        ([Categorical("item", embedding_dim=3), Sequence("h", pooling="attention", query="item")],
         "query 'item' has embedding_dim 3, expected 16"),
        ([MultiValued("tags", weighted=True), Numeric("tags_weights")], "duplicate feature name 'tags_weights'"),
    ],
)
def test_schema_time_errors_name_the_features(features, message):
    with pytest.raises(ValueError, match=message):
        Schema(features)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Sequence("h", pooling="attention"), "'h': a query feature is needed"),
        (lambda: Sequence("h", pooling="max", weighted=True), "'h': weights apply to 'mean' or 'sum'"),
        (lambda: MultiValued("t", pooling="max"), "'t': multi-valued features pool by 'mean' or 'sum'"),
        (lambda: Categorical("c", num_hash_bins=4, vocabulary=("a",)), "'c': give a vocabulary or num_hash_bins"),
        (lambda: Bucketized("b", boundaries=(2.0, 1.0)), "'b': boundaries must be finite and strictly increasing"),
        (lambda: Numeric("n", embedding_dim=0), "'n': embedding_dim must be an int >= 1, got 0"),
        (lambda: Numeric("n", embedding_dim=4, frequencies=0), "'n': frequencies must be an int >= 1, got 0"),
        (lambda: Numeric("n", embedding_dim=4, frequency_scale=0.0), "'n': frequency_scale must be > 0, got 0.0"),
        (lambda: Numeric("n", frequencies=8), "'n': frequencies and frequency_scale apply with embedding_dim"),
        (lambda: Sequence("h", vocabulary=("a", "")), "'h': the padding id '' cannot be in the vocabulary"),
        (lambda: PretrainedTable("p", vectors={"a": [1.0], "b": [1.0, 2.0]}), "'p': pretrained vectors must be"),
    ],
)
def test_invalid_new_specs_name_the_feature(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "change, error, message",
    [
        ({"history": np.array(["i1", "i2"])}, ValueError, r"'history' expects shape \[batch, 4\]"),
        ({"history": np.zeros([2, 4], np.int64)}, TypeError, "'history' expects string ids"),
        ({"text": np.zeros([2, 3], np.float32)}, ValueError, r"'text' expects shape \[batch, 5\]; got shape \[2, 3\]"),
        ({"item_llm": np.array([1, 2])}, TypeError, "'item_llm' expects string ids"),
    ],
)
def test_conform_errors_name_the_feature(adapted, change, error, message):
    batch = _probe(2)
    with pytest.raises(error, match=message):
        adapted.conform({**batch, **change})


def test_conform_pads_short_rows_and_keeps_the_most_recent_of_long_rows(adapted):
    batch = _probe(2)
    batch["history"] = np.array([["i5", "i4", "i3", "i2", "i1", "i0"], ["i1", "", "", "", "", ""]], dtype=object)
    batch["tags"] = [["x"], []]  # per-example lists
    out = adapted.conform(batch)
    assert out["history"].numpy().astype(str).tolist() == [["i5", "i4", "i3", "i2"], ["i1", "", "", ""]]
    assert out["tags"].numpy().astype(str).tolist() == [["x", "", ""], ["", "", ""]]


# -- encoder values against hand computations ----------------------------------------
def _probe(rows):
    return {name: value[:rows] for name, value in _data().items()}


def test_empty_history_and_empty_tags_give_finite_outputs(adapted, raw_encoder):
    batch = _probe(3)
    batch["history"] = np.full([3, 4], "", dtype=object)
    batch["tags"] = np.full([3, 3], "", dtype=object)
    embedded = raw_encoder(adapted).embed(batch)
    np.testing.assert_array_equal(embedded["history"].numpy(), 0.0)
    np.testing.assert_array_equal(embedded["tags"].numpy(), 0.0)


def test_every_kind_keeps_the_kind_contract(adapted):
    """Each kind's preprocess returns its inputs' keys; its encoder returns [B, output_dim]; no string reaches it."""
    preprocess = tfmtl.features.FeaturePreprocessor(adapted)
    encoder = FeatureEncoder(adapted)
    raw = _probe(5)
    features = preprocess(raw)
    embedded = encoder.embed(features)
    for spec in adapted:
        assert sorted(spec.preprocess(adapted.conform(raw), preprocess.lookups)) == sorted(spec.input_specs())
        assert embedded[spec.name].shape == (5, spec.output_dim), spec.name
    assert all(value.dtype != "string" for value in features.values())
    assert sorted(encoder.encoders) == sorted(adapted.names)
    assert sum(width for _, width in encoder.output_widths()) == encoder(features).shape[1]


# -- round trips and export --------------------------------------------------------
@pytest.fixture(scope="module")
def trained(adapted):
    keras.utils.set_random_seed(0)
    model = tfmtl.models.shared_bottom(adapted, [tfmtl.Task.binary("click")], bottom_units=(8,))
    model.compile()
    data = _data()
    model.fit(data, {"click": np.arange(len(data["price"])) % 2 * 1.0}, epochs=1, verbose=0)
    return model


def test_schema_and_layer_configs_round_trip(adapted):
    assert Schema.from_config(adapted.get_config()) == adapted
    for layer in (SequencePooling("max"), TargetAttention((5, 2)), PeriodicEmbedding(3, 2, 0.5)):
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()


def test_keras_save_and_load_predict_the_same(trained, tmp_path):
    data = _data(seed=1)
    before = trained.predict(data, verbose=0)["click"]
    trained.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict(data, verbose=0)["click"], before, rtol=1e-6)
    assert loaded.schema == trained.schema


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    return tfmtl.serving.export(trained, tmp_path_factory.mktemp("kinds") / "export")


@pytest.mark.parametrize("mode", ["session", "cpp"])
def test_export_answers_like_the_model_in_a_fresh_process(trained, exported, mode, request):
    if mode == "cpp":
        request.getfixturevalue("cxx")
    data = _data(rows=6, seed=2)
    data["history"][0] = ""  # an empty history
    expected = trained.predict(data, verbose=0)["click"][:, 0]
    signatures = ["serving_default", "predict_examples"]
    specs = tfmtl.serving.reference.predict_in_fresh_process(exported, data, signatures, mode=mode)
    np.testing.assert_allclose(specs["serving_default"]["click"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(specs["predict_examples"]["click"], expected, rtol=1e-5, atol=1e-6)
    assert not np.isnan(expected).any()


@pytest.mark.parametrize("change", [
    lambda d: {**d, "history": pad_sequences([["i1"] * 5] * 6, 5)},  # wider than max_len 4
    lambda d: {**d, "text": d["text"][:, :4]},  # a narrower dense vector
    lambda d: {**d, "price": d["price"][:, None].repeat(2, axis=1)},  # rank 2 for a scalar
], ids=["wide-sequence", "narrow-vector", "rank"])
def test_export_refuses_wrong_shapes_in_the_cpp_session(exported, change, cxx):
    """TF's C++ Session feeds placeholders unchecked: the graph itself must refuse other shapes."""
    import grpc

    data = change(_data(rows=6, seed=2))
    with pytest.raises(tfmtl.serving.ServingError, match=r"Shape of tensor \w*(history|text|price)\w* \[6,") as caught:
        tfmtl.serving.predict_in_fresh_process(exported, data, ["serving_default"], mode="cpp")
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_export_refuses_a_wide_sequence_through_tf_saved_model_load(exported):
    data = {**_data(rows=6, seed=2), "history": pad_sequences([["i1"] * 5] * 6, 5)}
    with pytest.raises(RuntimeError, match=r"(?s)InvalidArgumentError.*Shape of tensor \w*history\w* \[6,5\]"):
        tfmtl.serving.predict_in_fresh_process(exported, data, ["serving_default"], mode="function")
