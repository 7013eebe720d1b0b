"""Every architecture: same schema and tasks in, dict keyed by task out, saves, loads, exports, learns."""

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras

SMALL = {
    "shared_bottom": lambda s, t: tfmtl.models.shared_bottom(s, t, bottom_units=(16, 8)),
    "mmoe": lambda s, t: tfmtl.models.mmoe(s, t, num_experts=3, expert_units=(16, 8)),
    "omoe": lambda s, t: tfmtl.models.omoe(s, t, num_experts=3, expert_units=(16, 8)),
    "cgc": lambda s, t: tfmtl.models.cgc(s, t, num_shared_experts=2, num_task_experts=1, expert_units=(16, 8)),
    "ple": lambda s, t: tfmtl.models.ple(s, t, num_levels=2, num_shared_experts=2, num_task_experts=1,
                                         expert_units=(16, 8),
                                         gate=tfmtl.layers.GateOptions(temperature=1.5, expert_dropout=0.1,
                                                                       load_balance=0.01)),
    "mmoe_dselect_k": lambda s, t: tfmtl.models.mmoe(s, t, num_experts=4, expert_units=(16, 8),
                                                     gate=tfmtl.layers.GateOptions(kind="dselect_k", k=2)),
    "adatt": lambda s, t: tfmtl.models.adatt(s, t, num_levels=2, expert_units=(16, 8)),
    "home": lambda s, t: tfmtl.models.home(s, t, expert_units=(16, 8), feature_gate_rank=2),
    "stem": lambda s, t: tfmtl.models.stem(s, t, expert_units=(16, 8)),
    "pepnet": lambda s, t: tfmtl.models.pepnet(s, t, gate_features=["user_segment", "device"], tower_units=(16, 8)),
    "star": lambda s, t: tfmtl.models.star(s, t, scenario_feature="device", units=(16, 8), aux_units=(8,),
                                           regularization=tfmtl.layers.Regularization(dropout=0.1, embedding_l2=1e-4)),
}


@pytest.fixture(scope="module", params=sorted(SMALL))
def trained(request, small_data, small_schema):
    keras.utils.set_random_seed(4)
    model = SMALL[request.param](small_schema, small_data.tasks)
    model.compile()
    model.fit(small_data.to_dataset(256), epochs=1, verbose=0)
    return request.param, model


def test_single_task_is_valid(small_schema):
    for build in SMALL.values():
        model = build(small_schema, [tfmtl.Task.binary("click")])
        assert list(model.output) == ["click"] and model.tasks[0].name == "click"


def test_save_and_load_round_trip(trained, small_data, tmp_path):
    name, model = trained
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, tfmtl.models.MultiTaskModel)
    assert loaded.schema == model.schema and loaded.tasks == model.tasks
    sample = small_data.take(slice(0, 50)).features
    expected, got = model.predict(sample, verbose=0), loaded.predict(sample, verbose=0)
    for task in ("click", "conversion"):
        np.testing.assert_allclose(got[task], expected[task], atol=1e-6)
    metrics = loaded.evaluate(small_data.take(slice(0, 500)).to_dataset(250), return_dict=True, verbose=0)
    assert "click/auc" in metrics  # compiled again from the saved compile config


def test_export_answers_identically_in_a_fresh_process(trained, small_data, tmp_path, fresh_mode):
    name, model = trained
    path = tfmtl.serving.export(model, tmp_path / name)
    sample = small_data.take(slice(0, 32)).features
    expected = model.predict(sample, verbose=0)
    served = tfmtl.serving.predict_in_fresh_process(path, sample, ["serving_default", "predict_conversion"],
                                                    mode=fresh_mode)
    for task, values in served["serving_default"].items():
        np.testing.assert_allclose(values, expected[task][:, 0], atol=1e-5)
    np.testing.assert_allclose(served["predict_conversion"]["conversion"], expected["conversion"][:, 0], atol=1e-5)


def test_omoe_has_one_gate_and_ple_shares_only_at_inner_levels(small_schema, small_data):
    omoe = tfmtl.models.omoe(small_schema, small_data.tasks, num_experts=2, expert_units=(4,))
    assert list(omoe.get_layer("mixture_of_experts").gates) == ["all_tasks"]
    ple = tfmtl.models.ple(small_schema, small_data.tasks, num_levels=3, expert_units=(4,))
    assert [ple.get_layer(f"extraction_{i}").shared_gate for i in range(3)] == [True, True, False]


# That every architecture learns above chance on the synthetic funnel is asserted by notebook 03's test
# (tests/test_notebooks.py: all twelve, 30,000 rows); benchmarks/architectures.py measures by how much.
