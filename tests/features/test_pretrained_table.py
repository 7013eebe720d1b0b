"""Frozen tables of pre-computed vectors: lookup, unknown ids as zeros, optional projection."""

import numpy as np

from tfmtl.features import IdType, PretrainedTable, Schema


VECTORS = {"i1": [1.0, 2.0, 3.0], "i2": [-1.0, 0.5, 0.0]}


def test_int64_ids_and_projection_train_only_the_projection(raw_encoder):
    spec = PretrainedTable("p", vectors={7: [1.0, 0.0], 9: [0.0, 2.0]}, id_type=IdType.INT64, projection_dim=1)
    encoder = raw_encoder(Schema([spec]))
    out = encoder({"p": np.array([9, 8, 7])}).numpy()[:, 0]
    kernel, bias = (w.numpy() for w in encoder.encoders["p"].projection.weights)
    vectors = np.array([[0.0, 2.0], [0.0, 0.0], [1.0, 0.0]], np.float32)
    np.testing.assert_allclose(out, (vectors @ kernel + bias)[:, 0], rtol=1e-6)
    assert [w.name.split("/")[-1] for w in encoder.trainable_weights] == ["kernel:0", "bias:0"]

def test_pretrained_table_is_frozen_and_unknown_ids_are_zeros(raw_encoder):
    schema = Schema([PretrainedTable("item_llm", vectors=VECTORS)])
    encoder = raw_encoder(schema)
    out = encoder({"item_llm": np.array(["i2", "nope", "i1"])}).numpy()
    np.testing.assert_array_equal(out, [VECTORS["i2"], [0.0, 0.0, 0.0], VECTORS["i1"]])
    assert encoder.trainable_weights == []
