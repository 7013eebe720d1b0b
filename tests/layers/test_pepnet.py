import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras, tf
from tfmtl.layers import EPNet, GateNU, PPNet, Regularization


def _relu(x):
    return np.maximum(x, 0.0)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _gate(gate, x):
    """GateNU in numpy, with the layer's weights."""
    w1, b1 = gate.hidden.kernel.numpy(), gate.hidden.bias.numpy()
    w2, b2 = gate.gate.kernel.numpy(), gate.gate.bias.numpy()
    return gate.gamma * _sigmoid(_relu(x @ w1 + b1) @ w2 + b2)


def _random_biases(layer, seed):
    """Non-zero biases, so a forward that forgot one would fail."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        if "bias" in weight.name:
            weight.assign(rng.normal(size=weight.shape).astype(np.float32))


RNG = np.random.default_rng(0)
GENERAL = RNG.normal(size=(4, 5)).astype(np.float32)  # E: B=4, D_e=5
DOMAIN = RNG.normal(size=(4, 2)).astype(np.float32)  # e_dom: D_d=2


def test_gate_nu_is_gamma_times_a_sigmoid_over_a_relu_layer():
    gate = GateNU(3, hidden_units=6, gamma=2.0)
    gate(GENERAL)
    _random_biases(gate, 1)
    out = gate(GENERAL).numpy()
    w1, b1 = gate.hidden.kernel.numpy(), gate.hidden.bias.numpy()
    w2, b2 = gate.gate.kernel.numpy(), gate.gate.bias.numpy()
    assert w1.shape == (5, 6) and w2.shape == (6, 3)
    np.testing.assert_allclose(out, 2.0 * _sigmoid(_relu(GENERAL @ w1 + b1) @ w2 + b2), rtol=1e-5, atol=1e-6)
    assert (out > 0).all() and (out < 2).all()


def test_epnet_scales_the_general_embeddings_by_a_gate_over_domain_and_embeddings():
    epnet = EPNet(gamma=2.0)
    epnet([GENERAL, DOMAIN])
    _random_biases(epnet, 2)
    out = epnet([GENERAL, DOMAIN]).numpy()
    assert epnet.gate.units == 5 and epnet.gate.hidden_units == 5  # element-wise over D_e, hidden D_e
    delta = _gate(epnet.gate, np.concatenate([DOMAIN, GENERAL], axis=-1))  # [e_dom ; E], in that order
    np.testing.assert_allclose(out, delta * GENERAL, rtol=1e-5, atol=1e-6)


def _ppnet_numpy(ppnet, task, tower_input, prior):
    gate_input = np.concatenate([prior, tower_input], axis=-1)
    hidden = tower_input
    for dense, gate in zip(ppnet.towers[task].dense, ppnet.towers[task].gates):
        hidden = _gate(gate, gate_input) * _relu(hidden @ dense.kernel.numpy() + dense.bias.numpy())
    return hidden


@pytest.mark.parametrize("units", [(3,), (3, 2)])
def test_ppnet_towers_gate_each_relu_layer_by_their_own_gate_nu(units):
    ppnet = PPNet(("a", "b"), units=units)
    ppnet([GENERAL, DOMAIN])
    _random_biases(ppnet, 3)
    out = ppnet([GENERAL, DOMAIN])
    for task in ("a", "b"):
        assert [g.hidden_units for g in ppnet.towers[task].gates] == list(units)  # hidden width = layer width
        np.testing.assert_allclose(out[task].numpy(), _ppnet_numpy(ppnet, task, GENERAL, DOMAIN), rtol=1e-5, atol=1e-6)
    assert not np.allclose(out["a"].numpy(), out["b"].numpy())  # each task its own tower and gates


def test_epnet_gate_copy_of_the_embeddings_gets_no_gradient():
    epnet = EPNet()
    upstream = RNG.normal(size=GENERAL.shape).astype(np.float32)
    general, domain = tf.constant(GENERAL), tf.constant(DOMAIN)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([general, domain])
        loss = tf.reduce_sum(upstream * epnet([general, domain]))
    delta = _gate(epnet.gate, np.concatenate([DOMAIN, GENERAL], axis=-1))
    # d loss / d E = delta * upstream only: no term through the gate's input copy of E.
    np.testing.assert_allclose(tape.gradient(loss, general).numpy(), delta * upstream, rtol=1e-5, atol=1e-6)
    assert np.abs(tape.gradient(loss, domain).numpy()).max() > 1e-4  # the gate itself learns


def test_ppnet_gate_copy_of_its_input_gets_no_gradient():
    ppnet = PPNet(("a",), units=(3,))
    ppnet([GENERAL, DOMAIN])
    _random_biases(ppnet, 4)
    upstream = RNG.normal(size=(4, 3)).astype(np.float32)
    tower_input, prior = tf.constant(GENERAL), tf.constant(DOMAIN)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([tower_input, prior])
        loss = tf.reduce_sum(upstream * ppnet([tower_input, prior])["a"])
    dense, gate = ppnet.towers["a"].dense[0], ppnet.towers["a"].gates[0]
    pre = GENERAL @ dense.kernel.numpy() + dense.bias.numpy()
    delta = _gate(gate, np.concatenate([DOMAIN, GENERAL], axis=-1))
    expected = (upstream * delta * (pre > 0)) @ dense.kernel.numpy().T  # the tower path only
    np.testing.assert_allclose(tape.gradient(loss, tower_input).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert np.abs(tape.gradient(loss, prior).numpy()).max() > 1e-4


def test_layers_round_trip_their_config():
    reg = Regularization(kernel_initializer=keras.initializers.HeUniform(seed=1), kernel_regularizer="l2", dropout=0.1)
    for layer, inputs in [
        (GateNU(3, hidden_units=4, gamma=1.5, kernel_regularizer="l2"), GENERAL),
        (EPNet(gamma=1.5, hidden_units=7, regularization=reg), [GENERAL, DOMAIN]),
        (PPNet(("a", "b"), units=(4, 2), gamma=1.5, regularization=reg), [GENERAL, DOMAIN]),
    ]:
        clone = layer.__class__.from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
        expected = layer(inputs)
        clone(inputs)
        clone.set_weights(layer.get_weights())
        for got, want in zip(tf.nest.flatten(clone(inputs)), tf.nest.flatten(expected)):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
        assert layer.losses  # the L2 regularizers reach every kernel's layer


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="gamma must be a number > 0"):
        GateNU(3, gamma=0.0)
    with pytest.raises(ValueError, match="PPNet units"):
        PPNet(("a",), units=())
    with pytest.raises(ValueError, match="task_names"):
        PPNet("a", units=(2,))
    with pytest.raises(TypeError, match="GateNU units"):
        GateNU("3")


def test_pepnet_argument_errors_name_the_argument(small_schema, small_data):
    with pytest.raises(ValueError, match=r"pepnet: gate_features \['scene'\] are not features"):
        tfmtl.models.pepnet(small_schema, small_data.tasks, gate_features=["device", "scene"])
    with pytest.raises(ValueError, match=r"pepnet: prior_features \['uid'\] are not features"):
        tfmtl.models.pepnet(small_schema, small_data.tasks, gate_features=["device"], prior_features=["uid"])
    with pytest.raises(ValueError, match="gate_features must be a sequence of feature names"):
        tfmtl.models.pepnet(small_schema, small_data.tasks, gate_features="device")
    with pytest.raises(ValueError, match="gate_features must name at least one feature"):
        tfmtl.models.pepnet(small_schema, small_data.tasks, gate_features=[])


def test_pepnet_fits_and_saves(small_schema, small_data, tmp_path):
    keras.utils.set_random_seed(0)
    tasks = [tfmtl.Task.binary("click", tower_units=()), tfmtl.Task.binary("conversion")]
    model = tfmtl.models.pepnet(small_schema, tasks, gate_features=["device", "hour"],
                                prior_features=["user_id", "item_id"], tower_units=(8, 4),
                                regularization=Regularization(dropout=0.1))
    ppnet = model.get_layer("ppnet")
    assert model.get_layer("epnet").gate.units == model.get_layer("features").output_dim
    width = model.get_layer("features").output_dim
    assert ppnet.towers["click"].gates[0].hidden.kernel.shape[0] == 2 * 8 + width  # [o_prior ; O_ep]
    model.compile(metrics={task.name: [] for task in tasks}, run_eagerly=True)  # one step: eager is faster than tracing
    before = ppnet.towers["click"].gates[0].gate.kernel.numpy().copy()
    model.fit(small_data.take(slice(0, 128)).to_dataset(128), epochs=1, verbose=0)
    assert not np.allclose(ppnet.towers["click"].gates[0].gate.kernel.numpy(), before)
    path = tmp_path / "pepnet.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    sample = small_data.take(slice(0, 20)).features
    expected, got = model.predict(sample, verbose=0), loaded.predict(sample, verbose=0)
    for task in ("click", "conversion"):
        np.testing.assert_allclose(got[task], expected[task], atol=1e-6)
