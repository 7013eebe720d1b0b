"""Representation-level balancing against a direct computation on a shared-bottom model."""

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras, tf
from tfmtl.balancing import GradDrop, GradNorm, PCGrad
from tfmtl.features import Numeric, Schema

N = 64


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    x = {f"x{i}": rng.normal(size=N).astype(np.float32) for i in range(4)}
    signal = x["x0"] + 0.5 * x["x1"]
    y = {"a": (signal > 0).astype(np.float32), "b": (-3.0 * signal + rng.normal(size=N)).astype(np.float32)}
    return x, y


def _model(build=tfmtl.models.shared_bottom, **kwargs):
    keras.utils.set_random_seed(3)
    schema = Schema([Numeric(f"x{i}", mean=0.0, variance=1.0) for i in range(4)])
    tasks = [tfmtl.Task.binary("a", tower_units=()), tfmtl.Task.regression("b", tower_units=(), loss_weight=0.5)]
    return build(schema, tasks, **kwargs)


def _representation_and_grads(model, x, y):
    """z (the bottom's output), each task's dL_k/dz and the Jacobian-vector products, by a plain tape."""
    bottom = model.get_layer("bottom")
    variables = model.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        pre = model.preprocess(x)
        z = bottom(model.get_layer("features")(pre), training=True)
        tape.watch(z)
        pa = tf.reshape(model.get_layer("a")(z), [-1])
        pb = tf.reshape(model.get_layer("b")(z), [-1])
        la = -tf.reduce_mean(y["a"] * tf.math.log(pa) + (1 - y["a"]) * tf.math.log(1 - pa))
        lb = 0.5 * tf.reduce_mean((pb - y["b"]) ** 2)
    ra, rb = tape.gradient(la, z).numpy(), tape.gradient(lb, z).numpy()
    return tape, z, variables, (la, lb), (ra, rb)


def test_pcgrad_at_the_representation_projects_batch_summed_gradients_and_backpropagates_the_combination():
    x, y = _problem(5)  # a batch whose tasks conflict at the representation (asserted below)
    model = _model(bottom_units=(4,))
    model.compile(optimizer=keras.optimizers.SGD(1.0), balancer=PCGrad(), gradients_at="representation")
    tape, z, variables, (la, lb), (ra, rb) = _representation_and_grads(model, x, y)
    # numpy PCGrad on the batch sums: with two tasks each coefficient is 1 - dot / ||own||^2 on conflict.
    ga, gb = ra.sum(0), rb.sum(0)
    dot = float(ga @ gb)
    assert dot < 0, "the problem must conflict at the representation"
    c = np.array([1 - dot / float(ga @ ga), 1 - dot / float(gb @ gb)])
    combined = c[0] * ra + c[1] * rb  # [B, H]
    bottom_vars = model.get_layer("bottom").trainable_variables
    expected_bottom = tape.gradient(z, bottom_vars, output_gradients=tf.constant(combined, tf.float32))
    expected = {id(v): g for v, g in zip(bottom_vars, expected_bottom)}
    for head, loss in (("a", la), ("b", lb)):  # heads: their own task's plain gradient
        layer_vars = model.get_layer(head).trainable_variables
        expected.update({id(v): g for v, g in zip(layer_vars, tape.gradient(loss, layer_vars))})
    before = [v.numpy().copy() for v in variables]
    model.train_on_batch(x, y)
    for variable, old in zip(variables, before):
        if id(variable) in expected:
            np.testing.assert_allclose(old - variable.numpy(), expected[id(variable)].numpy(), rtol=2e-4, atol=1e-6,
                                       err_msg=variable.name)


def test_graddrop_at_the_representation_masks_each_unit_by_its_sign_purity():
    """The elementwise path: a_k = sum_b r_k sign(z), U drawn per unit, dz = sum_k M_k r_k per row."""
    x, y = _problem(5)
    model = _model(bottom_units=(8,))
    model.compile(optimizer=keras.optimizers.SGD(1.0), balancer=GradDrop(seed=4), gradients_at="representation")
    tape, z, variables, (la, lb), (ra, rb) = _representation_and_grads(model, x, y)
    sign = np.sign(z.numpy())
    a = np.stack([(ra * sign).sum(0), (rb * sign).sum(0)]).astype(np.float64)  # [2, 8]
    u = tfmtl.balancing.counter_uniform(4, tf.constant(0, tf.int64), 8).numpy()
    purity = 0.5 * (1 + a.sum(0) / (np.abs(a).sum(0) + 1e-7))
    masks = (purity > u) * (a > 0) + (purity < u) * (a < 0)  # [2, 8]
    assert 0 < masks.mean() < 1, "some units must drop a task's gradient for the test to mean anything"
    combined = masks[0] * ra + masks[1] * rb
    bottom_vars = model.get_layer("bottom").trainable_variables
    expected_bottom = tape.gradient(z, bottom_vars, output_gradients=tf.constant(combined, tf.float32))
    expected = {id(v): g for v, g in zip(bottom_vars, expected_bottom)}
    for head, loss in (("a", la), ("b", lb)):
        layer_vars = model.get_layer(head).trainable_variables
        expected.update({id(v): g for v, g in zip(layer_vars, tape.gradient(loss, layer_vars))})
    before = [v.numpy().copy() for v in variables]
    logs = model.train_on_batch(x, y, return_dict=True)
    for variable, old in zip(variables, before):
        np.testing.assert_allclose(old - variable.numpy(), expected[id(variable)].numpy(), rtol=2e-4, atol=1e-6,
                                   err_msg=variable.name)
    np.testing.assert_allclose([logs["a/weight"], logs["b/weight"] / 0.5], masks.mean(1), rtol=1e-6)


def test_a_combination_equal_to_the_plain_sum_leaves_the_plain_gradient():
    """GradNorm's update uses the step's starting weights (1, 1): the same gradient as no balancing."""
    x, y = _problem(1)
    plain, balanced = _model(bottom_units=(4,)), _model(bottom_units=(4,))
    plain.compile(optimizer=keras.optimizers.SGD(1.0))
    balanced.compile(optimizer=keras.optimizers.SGD(1.0), balancer=GradNorm(), gradients_at="representation")
    plain.train_on_batch(x, y)
    balanced.train_on_batch(x, y)
    for a, b in zip(plain.trainable_variables, balanced.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.name)


@pytest.mark.parametrize("build, kwargs, layer, balancer", [
    (tfmtl.models.shared_bottom, {"bottom_units": (4,)}, "bottom", PCGrad),
    (tfmtl.models.mmoe, {"num_experts": 2, "expert_units": (4,)}, "experts", PCGrad),
    (tfmtl.models.mmoe, {"num_experts": 2, "expert_units": (4,)}, "experts", GradDrop),  # [B, E, U] units
    (tfmtl.models.ple, {"num_levels": 2, "expert_units": (4,)}, "shared_experts", PCGrad),
    (tfmtl.models.esmm, {}, "features", PCGrad),
], ids=["shared_bottom", "mmoe", "mmoe-graddrop", "ple", "esmm"])
def test_every_architecture_has_a_representation_and_trains_there_under_xla(build, kwargs, layer, balancer):
    x, y = _problem(2)
    if build is tfmtl.models.esmm:
        y = {"a": y["a"], "b": y["a"] * (x["x2"] > 0)}

    def make():
        if build is not tfmtl.models.esmm:
            return _model(build, **kwargs)
        keras.utils.set_random_seed(3)
        schema = Schema([Numeric(f"x{i}", mean=0.0, variance=1.0) for i in range(4)])
        return tfmtl.models.esmm(schema, [tfmtl.Task.binary("a", tower_units=(4,)),
                                          tfmtl.Task.binary("b", tower_units=(4,))])

    results = []
    for jit in (False, True):
        model = make()
        assert [found.name for found in model.representation_layers()] == [layer]
        model.compile(optimizer=keras.optimizers.SGD(0.1), balancer=balancer(), gradients_at="representation",
                      jit_compile=jit)
        results.append(model.train_on_batch(x, y, return_dict=True))
    for key in results[0]:
        np.testing.assert_allclose(results[0][key], results[1][key], rtol=1e-4, atol=1e-6, err_msg=key)
    assert all(np.isfinite(value) for value in results[0].values())


def test_representation_level_needs_a_gradient_strategy_and_a_known_level():
    model = _model(bottom_units=(4,))
    with pytest.raises(ValueError, match="gradients_at='representation' is for gradient strategies; FixedWeights"):
        model.compile(gradients_at="representation")
    with pytest.raises(ValueError, match="gradients_at must be one of"):
        model.compile(balancer=PCGrad(), gradients_at="shared")
