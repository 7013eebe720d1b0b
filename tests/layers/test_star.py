import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras, tf
from tfmtl.layers import PartitionedNormalization, Regularization, StarFCN, StarNetwork

EPS = 1e-3
RNG = np.random.default_rng(0)
X = RNG.normal(size=(7, 3)).astype(np.float32)  # B=7, D=3
ROWS = np.array([1, 2, 1, 0, 2, 1, 2])  # S=3 scenarios; 0 plays the out-of-vocabulary row


def _relu(x):
    return np.maximum(x, 0.0)


def _randomise(layer, seed, skip=("moving", "scenario_rows")):
    """Every trainable weight random (no ones and zeros a wrong equation would hide behind)."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        if not any(word in weight.name for word in skip):
            sign = rng.choice([-1.0, 1.0], size=weight.shape)
            weight.assign((rng.uniform(0.5, 1.5, size=weight.shape) * sign).astype(np.float32))


def _norm_numpy(norm, x, rows, mean, var):
    scale = norm.gamma.numpy() * norm.scenario_gamma.numpy()[rows]
    shift = norm.beta.numpy() + norm.scenario_beta.numpy()[rows]
    return scale * (x - mean) / np.sqrt(var + norm.epsilon) + shift


def _trained_norm():
    """A normalisation whose scenarios 1 and 2 were seen in training and 0 was not."""
    norm = PartitionedNormalization(3, epsilon=EPS)
    norm([X, ROWS])
    _randomise(norm, 1)
    norm.moving_mean.assign(RNG.normal(size=(3, 3)).astype(np.float32))
    norm.moving_variance.assign(RNG.uniform(0.5, 2.0, size=(3, 3)).astype(np.float32))
    norm.global_moving_mean.assign(RNG.normal(size=3).astype(np.float32))
    norm.global_moving_variance.assign(RNG.uniform(0.5, 2.0, size=3).astype(np.float32))
    norm.scenario_rows.assign([0.0, 5.0, 9.0])
    return norm


def _inference_norm_numpy(norm, x, rows):
    seen = norm.scenario_rows.numpy()[rows][:, None] > 0
    mean = np.where(seen, norm.moving_mean.numpy()[rows], norm.global_moving_mean.numpy())
    var = np.where(seen, norm.moving_variance.numpy()[rows], norm.global_moving_variance.numpy())
    return _norm_numpy(norm, x, rows, mean, var)


def test_partitioned_normalization_at_inference_uses_each_scenarios_moving_statistics():
    norm = _trained_norm()
    out = norm([X, ROWS], training=False).numpy()
    np.testing.assert_allclose(out, _inference_norm_numpy(norm, X, ROWS), rtol=1e-5, atol=1e-5)
    # The unseen scenario 0 gets the global statistics, scaled and shifted by the shared gamma * gamma_0, beta + beta_0.
    unseen = (X[3] - norm.global_moving_mean.numpy()) / np.sqrt(norm.global_moving_variance.numpy() + EPS)
    scale = norm.gamma.numpy() * norm.scenario_gamma.numpy()[0]
    expected = scale * unseen + norm.beta.numpy() + norm.scenario_beta.numpy()[0]
    np.testing.assert_allclose(out[3], expected, rtol=1e-5, atol=1e-5)


def test_partitioned_normalization_in_training_uses_each_scenarios_rows_of_the_batch():
    norm = _trained_norm()
    before = {name: getattr(norm, name).numpy().copy()
              for name in ("moving_mean", "moving_variance", "global_moving_mean", "global_moving_variance")}
    out = norm([X, ROWS], training=True).numpy()
    mean, var = np.zeros_like(X), np.zeros_like(X)
    stats = {}
    for p in (1, 2, 0):
        own = X[ROWS == p]
        stats[p] = own.mean(0), own.var(0)  # biased variance
        mean[ROWS == p], var[ROWS == p] = stats[p]
    np.testing.assert_allclose(out, _norm_numpy(norm, X, ROWS, mean, var), rtol=1e-5, atol=1e-5)
    lone = norm.beta.numpy() + norm.scenario_beta.numpy()[0]  # scenario 0's only row: beta + beta_p
    np.testing.assert_allclose(out[3], lone, rtol=1e-5)
    # Moving averages: each scenario present moves towards its own batch statistics.
    m = norm.momentum
    moved = {name: m * value for name, value in before.items()}
    moved["moving_mean"] += (1 - m) * np.stack([stats[p][0] for p in range(3)])
    moved["moving_variance"] += (1 - m) * np.stack([stats[p][1] for p in range(3)])
    moved["global_moving_mean"] += (1 - m) * X.mean(0)
    moved["global_moving_variance"] += (1 - m) * X.var(0)
    for name, value in moved.items():
        np.testing.assert_allclose(getattr(norm, name).numpy(), value, rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(norm.scenario_rows.numpy(), [1.0, 8.0, 12.0])
    # A scenario absent from the batch keeps its moving statistics.
    norm([X[ROWS == 1], ROWS[ROWS == 1]], training=True)
    np.testing.assert_array_equal(norm.moving_mean.numpy()[[0, 2]], moved["moving_mean"][[0, 2]])
    np.testing.assert_array_equal(norm.moving_variance.numpy()[[0, 2]], moved["moving_variance"][[0, 2]])
    assert not np.allclose(norm.moving_mean.numpy()[1], moved["moving_mean"][1])


def _fcn_numpy(fcn, x, rows):
    out = []
    for b in range(len(x)):
        hidden, p = x[b], rows[b]
        for w, bias, w_p, b_p in zip(fcn.kernels, fcn.biases, fcn.scenario_kernels, fcn.scenario_biases):
            hidden = _relu(hidden @ (w.numpy() * w_p.numpy()[p]) + bias.numpy() + b_p.numpy()[p])
        out.append(hidden)
    return np.stack(out)


def test_star_fcn_multiplies_the_shared_weights_by_each_rows_scenario_weights():
    fcn = StarFCN(3, units=(4, 2))
    fcn([X, ROWS])
    assert [tuple(w.shape) for w in fcn.scenario_kernels] == [(3, 3, 4), (3, 4, 2)]
    assert all((w.numpy() == 1).all() for w in fcn.scenario_kernels)  # W_p starts at ones
    assert all((b.numpy() == 0).all() for b in fcn.scenario_biases)  # b_p at zeros
    _randomise(fcn, 2)
    np.testing.assert_allclose(fcn([X, ROWS]).numpy(), _fcn_numpy(fcn, X, ROWS), rtol=1e-5, atol=1e-5)


def _mlp_numpy(mlp, x):
    for index, dense in enumerate(mlp._sublayers):
        x = x @ dense.kernel.numpy() + dense.bias.numpy()
        x = _relu(x) if index < len(mlp._sublayers) - 1 else x  # linear last layer
    return x


SCENARIO_EMBEDDING = RNG.normal(size=(7, 2)).astype(np.float32)


def _network():
    network = StarNetwork(3, units=(4, 2), aux_units=(3,), epsilon=EPS)
    network([X, SCENARIO_EMBEDDING, ROWS])
    _randomise(network, 3)
    return network


def test_star_network_is_the_star_fcn_over_the_normalisation_plus_the_auxiliary_mlp():
    network = _network()
    network.norm.scenario_rows.assign([0.0, 5.0, 9.0])
    network.norm.moving_variance.assign(RNG.uniform(0.5, 2.0, size=(3, 3)).astype(np.float32))
    out = network([X, SCENARIO_EMBEDDING, ROWS], training=False).numpy()
    main = _fcn_numpy(network.fcn, _inference_norm_numpy(network.norm, X, ROWS), ROWS)
    aux = _mlp_numpy(network.aux, np.concatenate([SCENARIO_EMBEDDING, X], axis=-1))
    assert [d.units for d in network.aux._sublayers] == [3, 2]  # aux_units, then H = units[-1]
    np.testing.assert_allclose(out, main + aux, rtol=1e-5, atol=1e-5)


def test_scenario_parameters_get_gradient_from_their_own_rows_only():
    network = _network()
    x = tf.constant(X)
    scenario_weights = [network.norm.scenario_gamma, network.norm.scenario_beta, *network.fcn.scenario_kernels,
                        *network.fcn.scenario_biases]
    for p in range(3):
        own = tf.constant((ROWS == p).astype(np.float32)[:, None])
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            out = network([x, SCENARIO_EMBEDDING, ROWS], training=True)
            loss_own, loss_others = tf.reduce_sum(own * out), tf.reduce_sum((1 - own) * out)
        for weight in scenario_weights:
            from_others = tf.convert_to_tensor(tape.gradient(loss_others, weight)).numpy()
            from_own = tf.convert_to_tensor(tape.gradient(loss_own, weight)).numpy()
            assert np.abs(from_others[p]).max() == 0.0, weight.name
            assert np.abs(from_own[np.arange(3) != p]).max() == 0.0, weight.name
        if (ROWS == p).sum() > 1:  # (a lone row is normalised to a constant, which ReLU may zero)
            gradient = tf.convert_to_tensor(tape.gradient(loss_own, network.norm.scenario_gamma)).numpy()
            assert np.abs(gradient[p]).max() > 0
        # In training a row's output depends on its own scenario's rows only (per-scenario batch statistics).
        assert np.abs(tape.gradient(loss_own, x).numpy()[ROWS != p]).max() == 0.0


def test_layers_round_trip_their_config():
    reg = Regularization(kernel_regularizer="l2", dropout=0.2)
    for layer, inputs in [
        (PartitionedNormalization(3, epsilon=1e-4, momentum=0.9), [X, ROWS]),
        (StarFCN(3, units=(4, 2), regularization=reg), [X, ROWS]),
        (StarNetwork(3, units=(4,), aux_units=(), momentum=0.5, regularization=reg), [X, SCENARIO_EMBEDDING, ROWS]),
    ]:
        clone = layer.__class__.from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
        layer(inputs)
        _randomise(layer, 4, skip=("scenario_rows",))
        clone(inputs)
        clone.set_weights(layer.get_weights())
        np.testing.assert_allclose(clone(inputs).numpy(), layer(inputs).numpy(), rtol=1e-6)


def test_bad_arguments(small_schema, small_data):
    with pytest.raises(ValueError, match="num_scenarios must be an int >= 1"):
        PartitionedNormalization(0)
    with pytest.raises(ValueError, match="momentum must be in"):
        PartitionedNormalization(2, momentum=1.0)
    with pytest.raises(ValueError, match="StarFCN units"):
        StarFCN(2, units=())
    with pytest.raises(ValueError, match="star: scenario_feature 'scene' is not a feature"):
        tfmtl.models.star(small_schema, small_data.tasks, scenario_feature="scene")
    with pytest.raises(ValueError, match="star: scenario_feature 'item_price' must be a Categorical feature"):
        tfmtl.models.star(small_schema, small_data.tasks, scenario_feature="item_price")
    with pytest.raises(ValueError, match="has no vocabulary yet"):
        tfmtl.models.star(small_data.schema, small_data.tasks, scenario_feature="device")


def test_an_unseen_scenario_is_served_by_the_shared_network_and_the_model_saves(small_schema, small_data, tmp_path):
    keras.utils.set_random_seed(0)
    assert small_schema["device"].num_oov_buckets == 1  # table row 0 is the out-of-vocabulary row
    tasks = [tfmtl.Task.binary("click", tower_units=(4,)), tfmtl.Task.binary("conversion", tower_units=())]
    model = tfmtl.models.star(small_schema, tasks, scenario_feature="device", units=(8, 4), aux_units=(4,))
    model.compile(optimizer=keras.optimizers.Adam(0.01), metrics={task.name: [] for task in tasks})
    model.fit(small_data.take(slice(0, 512)).to_dataset(128), epochs=1, verbose=0)  # graph mode: updates in tf.function
    network = model.get_layer("star_network")
    norm, fcn = network.norm, network.fcn
    assert norm.scenario_rows.numpy()[0] == 0 and norm.scenario_rows.numpy()[1:].sum() == 512
    assert (norm.scenario_gamma.numpy()[0] == 1).all() and (norm.scenario_beta.numpy()[0] == 0).all()
    assert all((w.numpy()[0] == 1).all() for w in fcn.scenario_kernels)
    assert all((b.numpy()[0] == 0).all() for b in fcn.scenario_biases)
    assert not np.allclose(fcn.scenario_kernels[0].numpy()[1], 1.0)  # the seen scenarios did learn their own

    sample = small_data.take(slice(0, 8)).features
    sample["device"] = np.where(np.arange(8) < 4, "smart_tv", sample["device"])  # rows 0-3: a scenario never seen
    predicted = model.predict(sample, verbose=0)
    probe = keras.Model(model.inputs, [model.get_layer("features").output, model.get_layer("star_scenario").output])
    shared, scenario_embedding = (t.numpy() for t in probe(model.schema.conform(sample)))
    # The shared network: gamma, beta and the global moving statistics; W and b (W_p = 1, b_p = 0); plus the aux MLP.
    normed = norm.gamma.numpy() * (shared - norm.global_moving_mean.numpy()) / np.sqrt(
        norm.global_moving_variance.numpy() + norm.epsilon) + norm.beta.numpy()
    hidden = normed
    for w, b in zip(fcn.kernels, fcn.biases):
        hidden = _relu(hidden @ w.numpy() + b.numpy())
    hidden = hidden + _mlp_numpy(network.aux, np.concatenate([scenario_embedding, shared], axis=-1))
    expected = {
        "click": model.get_layer("click")(model.get_layer("click_tower")(hidden)).numpy(),
        "conversion": model.get_layer("conversion")(hidden).numpy(),
    }
    for task in ("click", "conversion"):
        np.testing.assert_allclose(predicted[task][:4], expected[task][:4], rtol=1e-5, atol=1e-6)
        assert np.abs(predicted[task][4:] - expected[task][4:]).max() > 1e-4  # known scenarios: their own parameters

    path = tmp_path / "star.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    loaded_norm = loaded.get_layer("star_network").norm
    np.testing.assert_array_equal(loaded_norm.scenario_rows.numpy(), norm.scenario_rows.numpy())
    for task, values in loaded.predict(sample, verbose=0).items():
        np.testing.assert_allclose(values, predicted[task], atol=1e-6)
    # A warm start may grow any vocabulary but the scenario feature's (its rows index the scenario weights).
    grown = model.schema.update({**small_data.features, "device": np.array(["smart_tv"] * len(small_data))})
    with pytest.raises(ValueError, match="scenario feature 'device' of layer 'star_network' changed its vocabulary"):
        tfmtl.training.warm_start(model, grown)
