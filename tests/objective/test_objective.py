"""The objective: one owner per weight, and what the strategies see."""

import numpy as np

import tfmtl
from tfmtl._compat import keras, tf
from tfmtl.balancing import LossBalancer
from tfmtl.features import Numeric, Schema
from tfmtl.objective import MultiTaskObjective


class _Recorder(LossBalancer):
    """Keeps the losses it is shown (observe) and combines with weights (2, 1)."""

    def _build(self):
        self.seen = tf.Variable(tf.zeros([len(self.tasks)]), trainable=False)
        self.weights.assign([2.0, 1.0])

    def observe(self, losses):
        self.seen.assign(losses)


def _data(seed=0, n=32):
    rng = np.random.default_rng(seed)
    x = {"x": rng.normal(size=n).astype(np.float32)}
    y = {"a": (x["x"] > 0).astype(np.float32), "b": (2 * x["x"] + rng.normal(size=n)).astype(np.float32)}
    y["b"][::4] = np.nan  # missing labels
    return x, y


def _model():
    keras.utils.set_random_seed(0)
    schema = Schema([Numeric("x", mean=0.0, variance=1.0)])
    tasks = [tfmtl.Task.binary("a", tower_units=()), tfmtl.Task.regression("b", tower_units=(), loss_weight=0.5)]
    return tfmtl.models.shared_bottom(schema, tasks, bottom_units=(3,))


def test_a_loss_weights_override_is_the_one_static_weight_strategies_see_and_logs_multiply():
    x, y = _data()
    model = _model()
    recorder = _Recorder()
    model.compile(optimizer=keras.optimizers.SGD(0.0), balancer=recorder, loss_weights={"b": 3.0})
    assert isinstance(model.objective, MultiTaskObjective) and model.balancer is recorder
    predictions = {k: v.numpy().ravel() for k, v in model(x).items()}
    present = ~np.isnan(y["b"])
    loss_a = -np.mean(y["a"] * np.log(predictions["a"]) + (1 - y["a"]) * np.log(1 - predictions["a"]))
    loss_b = np.mean((predictions["b"][present] - y["b"][present]) ** 2)
    logs = model.train_on_batch(x, y, return_dict=True)
    # observe() sees the statically weighted losses: the override 3.0, not Task.loss_weight 0.5.
    np.testing.assert_allclose(recorder.seen.numpy(), [loss_a, 3.0 * loss_b], rtol=1e-4)
    np.testing.assert_allclose(logs["loss"], 2.0 * loss_a + 1.0 * 3.0 * loss_b, rtol=1e-4)
    np.testing.assert_allclose([logs["a/weight"], logs["b/weight"]], [2.0, 3.0])  # static x dynamic
    np.testing.assert_allclose([logs["a/loss"], logs["b/loss"]], [loss_a, loss_b], rtol=1e-4)  # unweighted
    # evaluate's total uses the same weights, and changes no strategy state.
    before = recorder.seen.numpy().copy()
    evaluated = model.evaluate(x, y, return_dict=True, verbose=0, batch_size=32)
    np.testing.assert_allclose(evaluated["loss"], logs["loss"], rtol=1e-4)
    np.testing.assert_array_equal(recorder.seen.numpy(), before)


def test_the_compiled_objective_round_trips_through_keras_saving(tmp_path):
    x, y = _data(1)
    model = _model()
    model.compile(balancer=tfmtl.balancing.PCGrad(), gradients_at="representation", loss_weights={"b": 2.0})
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.objective.gradients_at == "representation"
    assert loaded.objective.static_weights == (1.0, 2.0)
    assert type(loaded.balancer) is tfmtl.balancing.PCGrad
