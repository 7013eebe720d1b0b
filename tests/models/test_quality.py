"""Learned quality: the MMoE must beat chance by a wide margin on the synthetic funnel."""

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras


@pytest.mark.slow
def test_mmoe_learns_both_tasks_well_above_chance_even_with_missing_labels():
    keras.utils.set_random_seed(0)
    data = tfmtl.data.synthetic_recsys(40_000, seed=11)
    # Hide a third of the conversion labels: those rows still train the click task.
    labels = dict(data.labels)
    conversion = labels["conversion"].copy()
    conversion[np.random.default_rng(0).random(len(conversion)) < 1 / 3] = np.nan
    labels["conversion"] = conversion
    data = tfmtl.data.MultiTaskData(data.features, labels, data.schema, data.tasks, data.oracle)
    train, test = data.split(0.8, seed=0)
    schema = train.schema.adapt(train.features)
    model = tfmtl.models.mmoe(schema, train.tasks, num_experts=4, expert_units=(64, 32))
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(train.to_dataset(256, shuffle=True, seed=0), epochs=1, verbose=0)
    metrics = model.evaluate(test.to_dataset(4096), return_dict=True, verbose=0)
    oracle = {name: tfmtl.data.roc_auc(test.labels[name], test.oracle[name]) for name in ("click", "conversion")}
    print(f"model AUC click {metrics['click/auc']:.3f} (oracle {oracle['click']:.3f}), "
          f"conversion {metrics['conversion/auc']:.3f} (oracle {oracle['conversion']:.3f})")
    # Chance is 0.5; the oracle (true probabilities) bounds what any model can reach.
    assert metrics["click/auc"] > 0.63
    assert metrics["conversion/auc"] > 0.70
    for name in ("click", "conversion"):
        assert metrics[f"{name}/auc"] < oracle[name] + 0.01
    # Keras's streaming AUC agrees with an exact AUC on the same predictions (NaN labels skipped).
    predictions = model.predict(test.features, batch_size=4096, verbose=0)
    exact = tfmtl.data.roc_auc(test.labels["conversion"], predictions["conversion"][:, 0])
    assert metrics["conversion/auc"] == pytest.approx(exact, abs=0.01)
