"""ESMM: pCTR, pCVR and pCTCVR all out, losses only on the entire-space ones, exported per output."""

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras

FUNNEL = (tfmtl.Task.binary("click", tower_units=(16,)), tfmtl.Task.binary("conversion", tower_units=(16,)))


@pytest.fixture(scope="module")
def trained_esmm():
    keras.utils.set_random_seed(3)
    data = tfmtl.data.synthetic_recsys(30_000, seed=11)
    train, test = data.split(0.8, seed=0)
    model = tfmtl.models.esmm(train.schema.adapt(train.features), FUNNEL)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(train.to_dataset(256, shuffle=True, seed=0), epochs=1, verbose=0)
    return model, test


def test_outputs_and_the_product_identity(trained_esmm):
    model, test = trained_esmm
    assert [task.name for task in model.tasks] == ["click", "conversion"]  # the trained outputs
    out = model.predict(test.take(slice(0, 200)).features, verbose=0)
    assert sorted(out) == ["click", "conversion", "conversion_given_click"]
    np.testing.assert_allclose(out["conversion"], out["click"] * out["conversion_given_click"], atol=1e-6)
    assert np.all(out["conversion"] <= out["click"] + 1e-7)


def test_learns_ctr_ctcvr_and_cvr_on_clicked_rows(trained_esmm):
    model, test = trained_esmm
    metrics = model.evaluate(test.to_dataset(4096), return_dict=True, verbose=0)
    assert metrics["click/auc"] > 0.6 and metrics["conversion/auc"] > 0.6, metrics
    assert "conversion_given_click/loss" not in metrics  # pCVR has no loss of its own
    clicked = test.labels["click"] == 1
    p_cvr = model.predict(test.features, batch_size=4096, verbose=0)["conversion_given_click"][:, 0]
    assert tfmtl.data.roc_auc(test.labels["conversion"][clicked], p_cvr[clicked]) > 0.55  # chance 0.5


def test_export_serves_each_output_and_keeps_the_identity(trained_esmm, tmp_path, fresh_mode):
    model, test = trained_esmm
    path = tfmtl.serving.export(model, tmp_path)
    sample = test.take(slice(0, 64)).features
    served = tfmtl.serving.predict_in_fresh_process(
        path, sample, ["serving_default", "predict_conversion_given_click", "classify_conversion"], mode=fresh_mode
    )
    expected = model.predict(sample, verbose=0)
    np.testing.assert_allclose(
        served["predict_conversion_given_click"]["conversion_given_click"], expected["conversion_given_click"][:, 0],
        atol=1e-5,
    )
    everything = served["serving_default"]
    np.testing.assert_allclose(everything["conversion"], everything["click"] * everything["conversion_given_click"], atol=1e-6)
    np.testing.assert_allclose(served["classify_conversion"]["scores"][:, 1], expected["conversion"][:, 0], atol=1e-5)


def test_save_and_load(trained_esmm, tmp_path):
    model, test = trained_esmm
    model.save(tmp_path / "esmm.keras")
    loaded = keras.models.load_model(tmp_path / "esmm.keras")
    sample = test.take(slice(0, 20)).features
    for key, values in model.predict(sample, verbose=0).items():
        np.testing.assert_allclose(loaded.predict(sample, verbose=0)[key], values, atol=1e-6)
    assert loaded.tasks == model.tasks


def test_longer_funnels_and_degenerate_ones(small_schema):
    steps = [tfmtl.Task.binary(n, tower_units=(4,)) for n in ("click", "cart", "purchase")]
    model = tfmtl.models.esmm(small_schema, steps)
    out = model(tfmtl.data.synthetic_recsys(10, seed=1).features)
    assert sorted(out) == ["cart", "cart_given_click", "click", "purchase", "purchase_given_cart"]
    np.testing.assert_allclose(
        out["purchase"].numpy(), (out["click"] * out["cart_given_click"] * out["purchase_given_cart"]).numpy(), atol=1e-6
    )
    single = tfmtl.models.esmm(small_schema, steps[:1])
    assert list(single.output) == ["click"]
    with pytest.raises(ValueError, match="task 'dwell' is regression"):
        tfmtl.models.esmm(small_schema, [steps[0], tfmtl.Task.regression("dwell")])


# -- AITM -------------------------------------------------------------------------------------------
def _dense(layer, v):
    return v @ layer.kernel.numpy() + layer.bias.numpy()


def _ait_numpy(ait, previous, current):
    """AITM Eq. 3-5 by hand: candidates p = relu(transfer(previous)) and q = current, attention-weighted h1."""
    candidates = np.stack([np.maximum(_dense(ait.transfer, previous), 0), current], axis=1)  # [B, 2, H]
    scores = (_dense(ait.h2, candidates) * _dense(ait.h3, candidates)).sum(-1) / np.sqrt(ait.units)
    weights = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    return np.einsum("bu,buh->bh", weights, _dense(ait.h1, candidates))


def test_ait_attention_matches_numpy():
    from tfmtl.layers import AdaptiveInformationTransfer

    ait = AdaptiveInformationTransfer(3)
    rng = np.random.default_rng(4)
    previous, current = (rng.normal(size=(5, 3)).astype(np.float32) for _ in range(2))
    out = ait([previous, current]).numpy()
    np.testing.assert_allclose(out, _ait_numpy(ait, previous, current), rtol=1e-5, atol=1e-6)


def test_ait_with_equal_candidates_returns_h1_of_them():
    from tfmtl.layers import AdaptiveInformationTransfer

    ait = AdaptiveInformationTransfer(4)
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    ait([x, x])
    # Make the transfer layer the identity on x's range: then both candidates are equal and the
    # attention weights, whatever they are, sum to one: z = h1(x).
    ait.transfer.kernel.assign(np.eye(4, dtype=np.float32))
    positive = np.abs(x)
    np.testing.assert_allclose(ait([positive, positive]).numpy(), ait.h1(positive).numpy(), rtol=1e-5, atol=1e-6)


def test_funnel_head_calibration_matches_numpy():
    from tfmtl.tasks.funnel import FunnelHead

    head = FunnelHead(tfmtl.Task.binary("conversion"), calibration=0.6)
    hidden = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
    previous = np.random.default_rng(2).uniform(size=(8, 1)).astype(np.float32)
    probability = head([hidden, previous]).numpy()
    assert float(head.losses[0]) == pytest.approx(0.6 * np.maximum(probability - previous, 0).mean(), rel=1e-5)


# AITM as an option on funnel tasks of any architecture: transfer from the followed step + order penalty.
AITM_STEPS = (
    tfmtl.Task.binary("click", tower_units=(16,)),
    tfmtl.Task.binary("conversion", tower_units=(16,), follows="click", transfer=True, order_weight=0.6),
)
AITM_BUILDERS = {
    "aitm": lambda schema: tfmtl.models.aitm(schema, FUNNEL, tower_units=16, calibration_weight=0.6),
    "mmoe+transfer": lambda schema: tfmtl.models.mmoe(schema, AITM_STEPS, num_experts=3, expert_units=(32,)),
    "ple+transfer": lambda schema: tfmtl.models.ple(
        schema, AITM_STEPS, num_levels=1, num_shared_experts=2, num_task_experts=1, expert_units=(32,)
    ),
}


@pytest.mark.parametrize("build", ["shared_bottom", "mmoe", "ple", "esmm"])
def test_transfer_option_feeds_the_followed_towers_output_through_ait(build):
    schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0), tfmtl.Numeric("age", mean=0.0, variance=1.0)])
    builders = {
        "shared_bottom": lambda: tfmtl.models.shared_bottom(schema, AITM_STEPS, bottom_units=(8,)),
        "mmoe": lambda: tfmtl.models.mmoe(schema, AITM_STEPS, num_experts=2, expert_units=(8,)),
        "ple": lambda: tfmtl.models.ple(schema, AITM_STEPS, num_levels=2, num_shared_experts=1, num_task_experts=1, expert_units=(8,)),
        "esmm": lambda: tfmtl.models.esmm(schema, AITM_STEPS),
    }
    model = builders[build]()
    x = {"price": np.array([0.5, -1.0, 2.0], np.float32), "age": np.array([1.0, 0.0, -0.5], np.float32)}
    towers = keras.Model(model.inputs, [model.get_layer("click_tower").output, model.get_layer("conversion_tower").output])
    click_hidden, conversion_hidden = (t.numpy() for t in towers(x))
    z = _ait_numpy(model.get_layer("conversion_transfer"), click_hidden, conversion_hidden)  # [B, 16]
    out = model(x)
    head = model.get_layer("conversion_given_click" if build == "esmm" else "conversion")
    logit = _dense(head, z)
    expected = 1 / (1 + np.exp(-logit))
    if build == "esmm":  # ESMM's conversion output stays the funnel product; its conditional gets the transfer
        np.testing.assert_allclose(out["conversion_given_click"].numpy(), expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["conversion"].numpy(), out["click"].numpy() * expected, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(out["conversion"].numpy(), expected, rtol=1e-5, atol=1e-6)
    click_head = model.get_layer("click")
    np.testing.assert_allclose(out["click"].numpy(), 1 / (1 + np.exp(-_dense(click_head, click_hidden))), rtol=1e-5, atol=1e-6)


def test_transfer_option_errors_name_the_task():
    with pytest.raises(ValueError, match="'conversion': transfer=True needs follows="):
        tfmtl.Task.binary("conversion", transfer=True)
    with pytest.raises(ValueError, match="transfer must be True or False"):
        tfmtl.Task.binary("conversion", follows="click", transfer="yes")
    with pytest.raises(ValueError, match="cycle: a -> b -> a"):
        tfmtl.models.mmoe(
            tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)]),
            [tfmtl.Task.binary("a", follows="b", transfer=True), tfmtl.Task.binary("b", follows="a", transfer=True)],
        )
    with pytest.raises(ValueError, match="'click'.*must come earlier in the funnel"):
        tfmtl.models.esmm(
            tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)]),
            [tfmtl.Task.binary("conversion", follows="click", transfer=True), tfmtl.Task.binary("click")],
        )
    assert tfmtl.Task.from_config(AITM_STEPS[1].get_config()) == AITM_STEPS[1]


@pytest.mark.parametrize("build", sorted(AITM_BUILDERS))
def test_aitm_learns_the_funnel_keeps_order_and_round_trips(tmp_path, build, fresh_mode):
    keras.utils.set_random_seed(5)
    data = tfmtl.data.synthetic_recsys(30_000, seed=11)
    train, test = data.split(0.8, seed=0)
    model = AITM_BUILDERS[build](train.schema.adapt(train.features))
    # One path for all: the transfer layer, and the calibrator as the task's order_weight (applied by the objective)
    assert isinstance(model.get_layer("conversion_transfer"), tfmtl.layers.AdaptiveInformationTransfer)
    assert len(model.losses) == 0
    conversion = {task.name: task for task in model.tasks}["conversion"]
    assert (conversion.follows, conversion.transfer, conversion.order_weight) == ("click", True, 0.6)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(train.to_dataset(256, shuffle=True, seed=0), epochs=1, verbose=0)
    metrics = model.evaluate(test.to_dataset(4096), return_dict=True, verbose=0)
    assert metrics["click/auc"] > 0.6 and metrics["conversion/auc"] > 0.6, metrics
    out = model.predict(test.features, batch_size=4096, verbose=0)
    assert np.mean(out["conversion"] > out["click"] + 1e-3) < 0.01  # calibrated: later step rarely above
    model.save(tmp_path / "aitm.keras")
    loaded = keras.models.load_model(tmp_path / "aitm.keras")
    sample = test.take(slice(0, 32)).features
    for task, values in model.predict(sample, verbose=0).items():
        np.testing.assert_allclose(loaded.predict(sample, verbose=0)[task], values, atol=1e-6)
    path = tfmtl.serving.export(model, tmp_path / "export")
    served = tfmtl.serving.predict_in_fresh_process(path, sample, ["serving_default"], mode=fresh_mode)["serving_default"]
    expected = model.predict(sample, verbose=0)
    for task in ("click", "conversion"):
        np.testing.assert_allclose(served[task], expected[task][:, 0], atol=1e-5)
