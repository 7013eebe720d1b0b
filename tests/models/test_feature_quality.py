"""The synthetic history and item-text signals are only reachable through their features: AUC shows they are used."""

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras


def _click_auc(data, drop):
    """Train a small shared-bottom click model without the features in ``drop``; test AUC and evaluate's AUC."""
    keras.utils.set_random_seed(0)
    train, test = data.split(0.75, seed=0)
    schema = tfmtl.Schema([spec for spec in data.schema if spec.name not in drop]).adapt(train.features)
    keep = lambda part: {k: v for k, v in part.features.items() if k in schema.input_specs()}  # noqa: E731
    model = tfmtl.models.shared_bottom(schema, [data.tasks[0]], bottom_units=(32,))
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    model.fit(keep(train), {"click": train.labels["click"]}, batch_size=256, epochs=3, verbose=0)
    scores = model.predict(keep(test), batch_size=4096, verbose=0)["click"][:, 0]
    evaluated = model.evaluate(keep(test), {"click": test.labels["click"]}, batch_size=4096, return_dict=True, verbose=0)
    exact = tfmtl.data.roc_auc(test.labels["click"], scores)
    assert evaluated["click/auc"] == pytest.approx(exact, abs=0.01)  # evaluate sees the same features
    return exact


@pytest.mark.slow
def test_behaviour_history_with_target_attention_raises_click_auc():
    data = tfmtl.data.synthetic_recsys(20_000, history_length=10, num_items=200, num_categories=8, seed=0)
    assert (data.features["history"] == "").all(axis=1).any()  # empty histories are part of the data
    with_history, without = _click_auc(data, ()), _click_auc(data, ("history",))
    print(f"click AUC with history {with_history:.3f}, without {without:.3f}")
    assert with_history > without + 0.015


@pytest.mark.slow
def test_item_text_embedding_raises_click_auc_for_a_long_tail_of_items():
    data = tfmtl.data.synthetic_recsys(20_000, item_text_dim=16, num_items=5_000, seed=0)
    with_text, without = _click_auc(data, ()), _click_auc(data, ("item_text",))
    print(f"click AUC with item text {with_text:.3f}, without {without:.3f}")
    assert with_text > without + 0.025


def test_opt_in_signals_leave_the_default_data_unchanged():
    plain = tfmtl.data.synthetic_recsys(500, seed=4)
    again = tfmtl.data.synthetic_recsys(500, seed=4, history_length=0, item_text_dim=0)
    for name, values in plain.features.items():
        np.testing.assert_array_equal(again.features[name], values)
    np.testing.assert_array_equal(again.labels["click"], plain.labels["click"])
