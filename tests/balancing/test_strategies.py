"""Balancing strategies against independent numpy computations on tiny two-task problems."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from balancing_checks import N, problem
from balancing_checks import model as tiny_model
import tfmtl
from tfmtl._compat import keras, tf
from tfmtl.balancing import (
    STRATEGIES,
    DynamicWeightAverage,
    FixedWeights,
    GradNorm,
    PCGrad,
    RandomLossWeighting,
    UncertaintyWeighting,
)

def _numpy_task_gradients(model, x, y):
    """Per-task gradients of the statically weighted losses, by a plain tape outside tfmtl's train step."""
    variables = model.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        out = model(x, training=True)
        p = tf.reshape(out["a"], [-1])
        la = -tf.reduce_mean(y["a"] * tf.math.log(p) + (1 - y["a"]) * tf.math.log(1 - p))
        lb = 0.5 * tf.reduce_mean((tf.reshape(out["b"], [-1]) - y["b"]) ** 2)
    grads = {}
    for name, loss in (("a", la), ("b", lb)):
        grads[name] = [None if g is None else g.numpy() for g in tape.gradient(loss, variables)]
    return variables, grads, float(la), float(lb)


def _step(model, balancer, x, y):
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), balancer=balancer)
    variables, grads, la, lb = _numpy_task_gradients(model, x, y)
    before = [v.numpy().copy() for v in variables]
    model.train_on_batch(x, y)
    deltas = [b - v.numpy() for b, v in zip(before, variables)]  # = applied gradient (SGD, lr 1)
    shared = [i for i, v in enumerate(variables) if v.name.startswith("bottom/")]
    return variables, grads, deltas, shared, (la, lb)


def _flat(arrays, index):
    return np.concatenate([arrays[i].ravel() for i in index])


def _pcgrad_numpy(ga, gb):
    out = []
    for g, other in ((ga, gb), (gb, ga)):
        dot = g @ other
        out.append(g - dot / (other @ other) * other if dot < 0 else g)
    return out[0] + out[1]


def _conflicting_seed(x, y):
    """The first initialisation whose two task gradients on the shared layer conflict (negative dot)."""
    for seed in range(50):
        model = tiny_model(seed)
        variables, grads, _, _ = _numpy_task_gradients(model, x, y)
        shared = [i for i, v in enumerate(variables) if v.name.startswith("bottom/")]
        if _flat(grads["a"], shared) @ _flat(grads["b"], shared) < 0:
            return seed
    raise AssertionError("no conflicting initialisation found")


def test_pcgrad_step_equals_numpy_projection_of_conflicting_gradients():
    x, y = problem()
    model = tiny_model(_conflicting_seed(x, y))
    variables, grads, deltas, shared, _ = _step(model, PCGrad(), x, y)
    ga, gb = _flat(grads["a"], shared), _flat(grads["b"], shared)
    assert ga @ gb < 0
    expected = _pcgrad_numpy(ga, gb)
    np.testing.assert_allclose(_flat(deltas, shared), expected, rtol=1e-4, atol=1e-6)
    assert not np.allclose(expected, ga + gb, atol=1e-4)  # the projection changed the update
    for i, v in enumerate(variables):  # heads: their own task's plain gradient
        if v.name.startswith("a/"):
            np.testing.assert_allclose(deltas[i], grads["a"][i], rtol=1e-4, atol=1e-6)
        if v.name.startswith("b/"):
            np.testing.assert_allclose(deltas[i], grads["b"][i], rtol=1e-4, atol=1e-6)


def test_gradnorm_weight_update_after_one_step_equals_numpy():
    x, y = problem(1)
    model = tiny_model(1)
    balancer = GradNorm(alpha=1.5, learning_rate=0.05)
    variables, grads, deltas, shared, losses = _step(model, balancer, x, y)
    norms = np.array([np.linalg.norm(_flat(grads[t], shared)) for t in "ab"])
    weights = np.ones(2)
    big_g = weights * norms
    target = big_g.mean() * 1.0 ** 1.5  # first step: L/L(0) = 1 for both tasks
    grad = np.sign(big_g - target) * norms
    m, v = 0.1 * grad, 0.001 * grad**2  # Adam's first step, bias-corrected: m / sqrt(v) = sign(grad)
    updated = np.maximum(weights - 0.05 * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8), 1e-3 * 2)
    updated = updated * 2 / updated.sum()
    np.testing.assert_allclose(balancer.task_weights().numpy(), updated, rtol=1e-4)
    assert abs(updated[0] - updated[1]) > 0.01
    # The model step itself used the starting weights (1, 1).
    np.testing.assert_allclose(
        _flat(deltas, shared), _flat(grads["a"], shared) + _flat(grads["b"], shared), rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(balancer.initial_losses.numpy(), [losses[0], losses[1]], rtol=1e-4)


def test_uncertainty_weighting_loss_formula():
    x, y = problem(2)
    model = tiny_model(2, b_weight=1.0)
    balancer = UncertaintyWeighting()
    model.compile(optimizer="sgd", balancer=balancer)
    balancer.log_variances.assign([0.3, -0.2])
    logs = model.evaluate(x, y, batch_size=N, return_dict=True, verbose=0)
    la, lb = logs["a/loss"], logs["b/loss"]
    # binary: exp(-s) L + s/2; regression: exp(-s) L / 2 + s/2.
    expected = np.exp(-0.3) * la + 0.15 + 0.5 * np.exp(0.2) * lb - 0.1
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    history = model.fit(x, y, batch_size=N, epochs=1, verbose=0).history
    s = balancer.log_variances.numpy()
    assert not np.allclose(s, [0.3, -0.2])  # the optimizer trains them
    assert history["a/weight"][-1] == pytest.approx(np.exp(-s[0]), rel=1e-5)
    assert history["b/weight"][-1] == pytest.approx(0.5 * np.exp(-s[1]), rel=1e-5)


def test_dynamic_weight_average_follows_the_epoch_losses():
    x, y = problem(3)
    model = tiny_model(3, b_weight=1.0)
    model.compile(optimizer=keras.optimizers.Adam(0.05), balancer=DynamicWeightAverage(temperature=2.0))
    history = model.fit(x, y, batch_size=16, epochs=4, verbose=0).history
    assert history["a/weight"][:2] == [1.0, 1.0] and history["b/weight"][:2] == [1.0, 1.0]
    for epoch in (2, 3):
        ratios = np.array([history[f"{t}/loss"][epoch - 1] / history[f"{t}/loss"][epoch - 2] for t in "ab"])
        expected = 2 * np.exp(ratios / 2.0) / np.exp(ratios / 2.0).sum()
        np.testing.assert_allclose([history["a/weight"][epoch], history["b/weight"][epoch]], expected, rtol=1e-4)


def test_random_loss_weighting_draws_seeded_weights_summing_to_k():
    x, y = problem(4)
    draws = []
    for _ in range(2):
        model = tiny_model(4)
        model.compile(optimizer="sgd", balancer=RandomLossWeighting(seed=7))
        history = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history
        draws.append(np.array([history["a/weight"], history["b/weight"]]))
    np.testing.assert_allclose(draws[0], draws[1])  # same seed, same weights
    static = np.array([[1.0], [0.5]])
    np.testing.assert_allclose((draws[0] / static).sum(axis=0), 2.0, rtol=1e-5)
    assert len({round(float(w), 6) for w in draws[0][0]}) == 3  # a new draw every step


def test_fixed_weights_is_the_default_and_strings_are_refused():
    x, y = problem(5)
    model = tiny_model(5)
    model.compile()
    assert isinstance(model.balancer, FixedWeights)
    logs = model.evaluate(x, y, batch_size=N, return_dict=True, verbose=0)
    assert logs["loss"] == pytest.approx(logs["a/loss"] + 0.5 * logs["b/loss"], rel=1e-5)
    with pytest.raises(TypeError, match="tfmtl.balancing strategy object .*PCGrad"):
        model.compile(balancer="pcgrad")
    with pytest.raises(ValueError, match="already in use by a model with other tasks"):
        used = PCGrad()
        used.build([tfmtl.Task.binary("other")])
        model.compile(balancer=used)


def test_gradient_balancers_name_shared_layers_and_refuse_unknown_ones():
    x, y = problem(6)
    model = tiny_model(6)
    with pytest.raises(ValueError, match="no layer 'nope'"):
        model.compile(optimizer="sgd", balancer=PCGrad(layers=["nope"]))
    model.compile(optimizer="sgd", balancer=PCGrad(layers=["a"]))  # a head: used by one task only
    with pytest.raises(ValueError, match="no variables are shared by two tasks"):
        model.train_on_batch(x, y)


@pytest.mark.parametrize("strategy", STRATEGIES, ids=[cls.__name__ for cls in STRATEGIES])
def test_every_strategy_trains_an_mmoe_without_nan_and_logs_weights(strategy, tmp_path):
    data = tfmtl.data.synthetic_recsys(6000, seed=11)
    train, test = data.split(0.8)
    model = tfmtl.models.mmoe(train.schema.adapt(train.features), train.tasks, num_experts=2, expert_units=(16,))
    arguments = {"warmup_epochs": 1} if strategy is tfmtl.balancing.SmoothTchebycheff else {}  # past its warm-up
    model.compile(optimizer=keras.optimizers.Adam(0.01), balancer=strategy(**arguments))
    history = model.fit(train.to_dataset(512), epochs=3, verbose=0).history
    for task in model.task_names:
        assert np.all(np.isfinite(history[f"{task}/weight"])) and np.all(np.isfinite(history[f"{task}/loss"]))
    logs = model.evaluate(test.to_dataset(2048), return_dict=True, verbose=0)
    assert np.isfinite(logs["loss"]) and logs["click/auc"] > 0.6, logs
    # The compiled strategy (and its state) survives model.save / load_model.
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.balancer) is strategy
    np.testing.assert_allclose(loaded.balancer.task_weights().numpy(), model.balancer.task_weights().numpy())


_DISTRIBUTED = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tfmtl
    from tfmtl._compat import keras, tf
    sys.path.insert(0, sys.argv[1])
    import balancing_checks as t

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    x, y = t.problem(8)
    results = {}
    # One MirroredStrategy for all models (separate ones in one process can mix up their collectives).
    strategies = (tf.distribute.get_strategy(), tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    kinds = [("PCGrad", "parameters", {}), ("GradNorm", "parameters", {}), ("UncertaintyWeighting", "parameters", {}),
             ("PCGrad", "representation", {}), ("GeometricLossStrategy", "parameters", {}),
             ("IMTLL", "parameters", {}), ("SmoothTchebycheff", "parameters", {"warmup_epochs": 0}),
             ("FAMO", "parameters", {}), ("NashMTL", "representation", {}), ("MGDA", "parameters", {}),
             ("DBMTL", "parameters", {}), ("GradDrop", "representation", {})]
    for kind, at, arguments in kinds:
        finals = []
        for strategy in strategies:
            with strategy.scope():
                model = t.model(8)
                balancer = getattr(tfmtl.balancing, kind)(**arguments)
                model.compile(optimizer=keras.optimizers.SGD(0.5), balancer=balancer,
                              **({"gradients_at": at} if balancer.uses_gradients else {}))
            model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
            finals.append(([v.numpy().tolist() for v in model.trainable_variables],
                           {v.name: v.numpy().astype(float).tolist() for v in balancer.variables},
                           strategy.num_replicas_in_sync))
        results[f"{kind}-{at}"] = finals
    print(json.dumps(results))
""")


@pytest.mark.slow
def test_gradient_strategies_agree_under_mirrored_strategy_with_two_replicas(tmp_path):
    """Strategies see replica-averaged losses and gradients (of the parameters, or batch sums at the
    representation): 2 replicas train exactly like 1, model and strategy state."""
    script = tmp_path / "distributed.py"
    script.write_text(_DISTRIBUTED)
    run = subprocess.run(
        [sys.executable, str(script), str(__import__("pathlib").Path(__file__).parent)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    for kind, ((single, s1, r1), (mirrored, s2, r2)) in results.items():
        assert (r1, r2) == (1, 2), kind
        for a, b in zip(single, mirrored):
            np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-4, atol=1e-5, err_msg=kind)
        assert s1.keys() == s2.keys(), kind
        for name in s1:  # the strategy's state (weights, moments, logits, nadir) too
            np.testing.assert_allclose(np.array(s1[name]), np.array(s2[name]), rtol=1e-4, atol=1e-5,
                                       err_msg=f"{kind}: {name}")
