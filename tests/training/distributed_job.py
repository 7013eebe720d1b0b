"""Jobs the distribution and mixed-precision tests run in fresh processes (TF config must precede TF's start).

``python distributed_job.py mirrored OUT.npz``: 2 logical CPUs; the same data, initial weights and
global batch trained on one device and under MirroredStrategy (2 replicas), with Adam and LazyAdam.
``python distributed_job.py worker OUT.npz`` (with TF_CONFIG): one MultiWorkerMirroredStrategy worker.
``python distributed_job.py mixed OUT.npz``: an MMoE under the mixed_float16 policy.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

import tfmtl
from tfmtl._compat import keras, tf

ROWS, BATCH = 1024, 64


def data() -> tuple[tfmtl.data.MultiTaskData, tfmtl.data.MultiTaskData, tfmtl.Schema]:
    train, test = tfmtl.data.synthetic_recsys(ROWS + 2000, seed=7).split(ROWS / (ROWS + 2000), seed=0)
    return train, test, train.schema.adapt(train.features)


def build(schema: tfmtl.Schema, tasks, initial=None, optimizer=keras.optimizers.Adam) -> tfmtl.models.MultiTaskModel:
    keras.utils.set_random_seed(0)
    model = tfmtl.models.mmoe(schema, tasks, num_experts=2, expert_units=(16,))
    if initial is not None:
        model.set_weights(initial)
    model.compile(optimizer=optimizer(0.01))
    return model


def mirrored(out: str) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    train, _, schema = data()
    strategy = tf.distribute.MirroredStrategy([device.name for device in tf.config.list_logical_devices("CPU")])
    weights = {}
    for name, optimizer in (("adam", keras.optimizers.Adam), ("lazy", tfmtl.training.LazyAdam)):
        single = build(schema, train.tasks, optimizer=optimizer)
        initial = single.get_weights()
        single.fit(train.to_dataset(BATCH), epochs=2, verbose=0)
        with strategy.scope():
            model = build(schema, train.tasks, initial, optimizer=optimizer)
        model.fit(train.to_dataset(BATCH), epochs=2, verbose=0)  # each replica gets BATCH / 2 rows a step
        weights.update({f"single_{name}_{i}": w for i, w in enumerate(single.get_weights())})
        weights.update({f"mirrored_{name}_{i}": w for i, w in enumerate(model.get_weights())})
    np.savez(out, replicas=strategy.num_replicas_in_sync, **weights)


def worker(out: str) -> None:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    train, test, schema = data()
    with strategy.scope():
        model = build(schema, train.tasks)
    history = model.fit(train.to_dataset(BATCH), epochs=2, verbose=0)  # auto-sharded: each worker reads half of each batch
    metrics = model.evaluate(test.to_dataset(1000), return_dict=True, verbose=0)
    logs = {f"log_{key.replace('/', '_')}": np.array(values) for key, values in history.history.items()}
    np.savez(out, workers=strategy.num_replicas_in_sync, click_auc=metrics["click/auc"], **logs,
             **{f"eval_{key.replace('/', '_')}": value for key, value in metrics.items()},
             **{f"w_{i}": w for i, w in enumerate(model.get_weights())})


def mixed(out: str) -> None:
    keras.mixed_precision.set_global_policy("mixed_float16")
    train = tfmtl.data.synthetic_recsys(512, seed=1, history_length=4, item_text_dim=4)
    # Numeric features as periodic embeddings: their sines and cosines stay float32, their Dense runs in float16.
    schema = tfmtl.Schema([
        dataclasses.replace(spec, embedding_dim=4) if isinstance(spec, tfmtl.Numeric) else spec for spec in train.schema
    ]).adapt(train.features)
    model = tfmtl.models.mmoe(schema, train.tasks, num_experts=2, expert_units=(8,))
    optimizer = keras.mixed_precision.LossScaleOptimizer(keras.optimizers.Adam(0.01))
    model.compile(optimizer=optimizer)
    history = model.fit(train.to_dataset(128), epochs=1, verbose=0)
    outputs = model(train.take(slice(0, 8)).features)
    dense = [layer for layer in model.layers if layer.name == "mixture_of_experts"][0]
    encoder = [layer for layer in model.layers if isinstance(layer, tfmtl.features.FeatureEncoder)][0]
    periodic = [e.periodic for e in encoder.encoders.values() if getattr(e, "periodic", None) is not None]
    np.savez(
        out,
        output_dtypes=np.array([outputs[task.name].dtype.name for task in train.tasks]),
        compute_dtype=np.array(dense.compute_dtype),
        periodic_dtypes=np.array([[p.coefficients.dtype.name, p.dense.compute_dtype] for p in periodic]),
        variable_dtypes=np.array(sorted({w.dtype.name for w in model.weights if w.trainable})),
        losses=np.array([history.history["loss"][-1], *[history.history[f"{t.name}/loss"][-1] for t in train.tasks]]),
        weights_finite=np.array(all(np.all(np.isfinite(w)) for w in model.get_weights())),
        loss_scale=float(optimizer.loss_scale),
        balanced_losses=_balanced_at_the_representation(schema, train),
    )


def _balanced_at_the_representation(schema, train) -> np.ndarray:
    """A gradient strategy at the (float16) experts' outputs under loss scaling: its losses after one epoch."""
    model = tfmtl.models.mmoe(schema, train.tasks, num_experts=2, expert_units=(8,))
    model.compile(optimizer=keras.mixed_precision.LossScaleOptimizer(keras.optimizers.Adam(0.01)),
                  balancer=tfmtl.balancing.MGDA(), gradients_at="representation")
    history = model.fit(train.to_dataset(128), epochs=1, verbose=0).history
    finite = all(np.all(np.isfinite(w)) for w in model.get_weights())
    return np.array([history["loss"][-1], *[history[f"{t.name}/weight"][-1] for t in train.tasks], float(finite)])


if __name__ == "__main__":
    {"mirrored": mirrored, "worker": worker, "mixed": mixed}[sys.argv[1]](sys.argv[2])
