"""Gate controls (dropout, load balancing) and expert-usage diagnostics."""

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras, tf
from tfmtl.layers import ExpertGate, GateOptions


def test_expert_dropout_only_while_training_and_weights_still_sum_to_one():
    gate = ExpertGate(4, expert_dropout=0.5)
    x = tf.random.normal([256, 3])
    inference = gate(x, training=False).numpy()
    dropped = gate(x, training=True).numpy()
    np.testing.assert_allclose(inference, gate(x).numpy())
    np.testing.assert_allclose(dropped.sum(axis=1), 1.0, rtol=1e-5)
    assert 0.3 < (dropped == 0).mean() < 0.6  # about half the experts dropped per example
    assert not np.any(inference == 0) and (dropped == 0).any()


def test_load_balance_loss_matches_numpy_and_is_zero_for_a_uniform_gate():
    x = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    gate = ExpertGate(3, load_balance=0.5)
    weights = gate(x).numpy()
    usage = weights.mean(axis=0)
    assert float(gate.losses[-1]) == pytest.approx(0.5 * (3 * np.sum(usage**2) - 1), rel=1e-5)
    uniform = ExpertGate(3, load_balance=0.5, kernel_initializer="zeros")
    uniform(x)
    assert float(uniform.losses[-1]) == pytest.approx(0.0, abs=1e-6)


def test_load_balance_loss_reaches_the_model_loss(small_schema, small_data):
    keras.utils.set_random_seed(0)
    model = tfmtl.models.mmoe(small_schema, small_data.tasks, num_experts=3, expert_units=(4,),
                              gate=GateOptions(load_balance=10.0))
    model.compile()
    with_balance = model.evaluate(small_data.take(slice(0, 256)).to_dataset(256), return_dict=True, verbose=0)
    task_losses = with_balance["click/loss"] + with_balance["conversion/loss"]
    usage = tfmtl.diagnostics.expert_usage(model, small_data.take(slice(0, 256)).features)
    balance = sum(10.0 * (3 * np.sum(mean**2) - 1) for mean in usage.mean.values())  # numpy, per gate
    assert with_balance["loss"] == pytest.approx(task_losses + balance, rel=1e-4)
    assert len(model.losses) == 2  # one per gate


def test_usage_of_a_uniform_gate_and_a_collapsed_one():
    import warnings

    schema = tfmtl.Schema([tfmtl.Numeric("x", mean=0.0, variance=1.0)])
    tasks = [tfmtl.Task.binary("click"), tfmtl.Task.binary("conversion")]
    model = tfmtl.models.mmoe(schema, tasks, num_experts=4, expert_units=(4,))
    features = {"x": np.random.default_rng(0).uniform(0.5, 1.5, size=300).astype(np.float32)}  # gate input > 0
    gates = model.get_layer("mixture_of_experts").gates
    gates["click"].kernel.assign(np.zeros([1, 4], np.float32))  # equal logits: uniform gate
    gates["conversion"].kernel.assign(np.array([[0.0, 0.0, 50.0, 0.0]], np.float32))  # expert 2 always wins
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        usage = tfmtl.diagnostics.expert_usage(model, features)
    np.testing.assert_allclose(usage.mean["mixture_of_experts/click_gate"], 0.25, atol=1e-6)
    assert usage.entropy["mixture_of_experts/click_gate"] == pytest.approx(np.log(4), rel=1e-5)
    assert usage.collapsed == ("mixture_of_experts/conversion_gate",)
    assert usage.mean["mixture_of_experts/conversion_gate"][2] > 0.99
    messages = [str(w.message) for w in caught]
    assert any("gate mixture_of_experts/conversion_gate has collapsed: expert 2" in m for m in messages)
    assert not any("click_gate" in m for m in messages)


def test_ple_gates_are_all_reported_and_plotted(small_schema, small_data):
    model = tfmtl.models.ple(small_schema, small_data.tasks, num_levels=2, expert_units=(4,))
    usage = tfmtl.diagnostics.expert_usage(model, small_data.take(slice(0, 100)).features)
    assert sorted(usage.mean) == [
        "extraction_0/click_gate", "extraction_0/conversion_gate", "extraction_0/shared_gate",
        "extraction_1/click_gate", "extraction_1/conversion_gate",
    ]
    assert usage.experts["extraction_0/shared_gate"] == [
        "extraction_0/click_0", "extraction_0/conversion_0", "extraction_0/shared_0", "extraction_0/shared_1"
    ]
    assert usage.experts["extraction_1/conversion_gate"] == [
        "extraction_1/conversion_0", "extraction_1/shared_0", "extraction_1/shared_1"
    ]
    gates, columns, table = usage.matrix()
    assert len(columns) == 8  # 4 experts per level, each its own column
    row = gates.index("extraction_1/conversion_gate")
    assert np.isnan(table[row, columns.index("extraction_1/click_0")])  # a task gate cannot use another task's expert
    assert np.nansum(table[row]) == pytest.approx(1.0, rel=1e-5)
    ax = tfmtl.diagnostics.plot_expert_usage(usage)
    assert len(ax.get_yticklabels()) == 5 and len(ax.get_xticklabels()) == 8
    with pytest.raises(ValueError, match="no expert gates"):
        tfmtl.diagnostics.expert_usage(tfmtl.models.shared_bottom(small_schema, small_data.tasks, bottom_units=(4,)),
                                       small_data.take(slice(0, 10)).features)


def test_callback_logs_usage_each_epoch(small_schema, small_data):
    model = tfmtl.models.omoe(small_schema, small_data.tasks, num_experts=2, expert_units=(4,))
    model.compile()
    callback = tfmtl.diagnostics.ExpertUsageCallback(small_data.take(slice(0, 200)).features)
    history = model.fit(small_data.take(slice(0, 512)).to_dataset(256), epochs=2, verbose=0, callbacks=[callback])
    first, second = (history.history[f"mixture_of_experts/all_tasks_gate/expert_{e}"] for e in range(2))
    assert len(first) == 2
    np.testing.assert_allclose(np.array(first) + np.array(second), 1.0, rtol=1e-5)
    # The logged figures are the usage of the trained model on the callback's data.
    usage = tfmtl.diagnostics.expert_usage(model, small_data.take(slice(0, 200)).features)
    np.testing.assert_allclose([first[-1], second[-1]], usage.mean["mixture_of_experts/all_tasks_gate"], rtol=1e-5)
    assert history.history["mixture_of_experts/all_tasks_gate/entropy"][-1] == pytest.approx(
        usage.entropy["mixture_of_experts/all_tasks_gate"], rel=1e-5)
