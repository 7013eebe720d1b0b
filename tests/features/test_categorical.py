"""Categorical ids: vocabulary rows with OOV buckets, hashing, shared tables."""

import numpy as np
import pytest

from tfmtl._compat import keras, tf
from tfmtl.features import Categorical, IdType, Schema


def test_preprocess_maps_known_ids_after_the_oov_buckets_and_hashes_unknown_ones_into_them():
    spec = Categorical("item", vocabulary=("a", "b", "c"), num_oov_buckets=2)
    lookup = spec.lookup()[1]()
    rows = spec.preprocess({"item": tf.constant(["c", "a", "zz", "zz"])}, {"item": lookup})["item"].numpy()
    assert rows[:2].tolist() == [4, 2] and 0 <= rows[2] < 2 and rows[2] == rows[3]
    assert spec.table_size == 5


def test_members_of_a_table_share_one_lookup_and_one_embedding(raw_encoder):
    schema = Schema([Categorical("a", embedding_dim=2, vocabulary=("x", "y"), table="t"),
                     Categorical("b", embedding_dim=2, vocabulary=("x", "y"), table="t")])
    encoder = raw_encoder(schema)
    out = encoder.embed({"a": np.array(["x", "y"]), "b": np.array(["x", "y"])})
    assert list(encoder.embeddings) == ["t"] and list(encoder.preprocess.lookups) == ["t"]
    np.testing.assert_array_equal(out["a"].numpy(), out["b"].numpy())

def test_hashed_categorical_uses_the_keras_hashing_bins(raw_encoder):
    encoder = raw_encoder(Schema([Categorical("query", embedding_dim=2, num_hash_bins=7, salt=3)]))
    ids = np.array(["a", "b", "never-seen", "zz", "a"])
    out = encoder({"query": ids}).numpy()
    bins = keras.layers.Hashing(7, salt=3)(ids).numpy().ravel()
    np.testing.assert_array_equal(out, tf.gather(encoder.embeddings["query"].embeddings, bins).numpy())
    assert len(set(bins)) > 1


@pytest.mark.parametrize(
    "spec, ids",
    [
        (Categorical("shop", embedding_dim=1, vocabulary=(-1, 5), id_type=IdType.INT64), np.array([-1, 5, 7])),
        (Categorical("tag", embedding_dim=1, vocabulary=("[UNK]", "x")), np.array(["[UNK]", "x", "y"])),
    ],
)
def test_an_id_equal_to_keras_default_oov_token_keeps_its_own_row(spec, ids, raw_encoder):
    encoder = raw_encoder(Schema([spec]))
    encoder({spec.name: ids[:1]})
    encoder.embeddings[spec.name].set_weights([np.array([[0.0], [1.0], [2.0]], np.float32)])  # OOV, then vocab
    np.testing.assert_array_equal(encoder({spec.name: ids}).numpy()[:, 0], [1.0, 2.0, 0.0])


_TABLE_NAME = """
import tfmtl
from tfmtl.features.categorical import vocabulary_lookup
lookups = [vocabulary_lookup(tfmtl.features.IdType.STRING, vocabulary, 1, "item_lookup") for vocabulary in VOCABULARIES]
print(*[lookup.lookup_table._shared_name for lookup in lookups], lookups[0](["b", "zz"]).numpy().tolist())
"""


def test_vocabulary_tables_are_named_by_their_content_in_any_process():
    # A coordinator restarted against parameter-server workers builds its tables again; the workers
    # still hold the old ones by name, so a name reused for another vocabulary would fail ("Table was
    # already initialized with different data"). TensorFlow names tables by a per-process counter.
    import subprocess
    import sys

    runs = [subprocess.run([sys.executable, "-c", _TABLE_NAME.replace("VOCABULARIES", order)],
                           capture_output=True, text=True, timeout=120)
            for order in ('[["a", "b"], ["b", "a"]]', '[["b", "a"], ["a", "b"], ["a", "b"]]')]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr[-2000:]
    ab, ba, answer = runs[0].stdout.split(" ", 2)
    ba_2, ab_2, ab_3, _ = runs[1].stdout.split(" ", 3)
    assert ab.startswith("tfmtl_vocabulary_") and ab != ba  # another vocabulary, another name
    assert (ab, ba) == (ab_2, ba_2) and ab_3 == ab  # the same vocabulary, the same name, in any process and order
    assert answer.strip() == "[2, 0]"
