"""Training throughput of tfmtl's MMoE against a plain tf_keras MMoE, side by side.

Workload (fixed, as in the foundation issue): 26 categorical features with
vocabularies from 10 to 100,000 ids (log-spaced), 13 numeric features, 2 binary
tasks from a hidden logistic model, embedding 16, 4 experts [256, 128], towers
[64], one epoch per (variant, batch size). Prints a table of training
examples/second, the speed-up over the plain tf_keras MMoE at the same batch size,
and held-out per-task AUC (with the oracle AUC of the hidden model).

Variants (``--variants``):

* ``keras``: a plain tf_keras functional MMoE (ids already 0..n-1, so no lookup;
  one Embedding per feature, Dense experts, softmax gates, Adam, Keras's compiled
  losses and AUC metrics): the baseline.
* ``adam``: tfmtl's MMoE (raw ids looked up in the model, schema checks, the
  multi-task step and metrics) with Keras Adam.
* ``lazy``: the same with :class:`tfmtl.training.LazyAdam` (only touched embedding rows updated).
* ``adam-spe``, ``lazy-spe``: the same with ``compile(steps_per_execution=N)``.
* ``default``: README's own call, ``model.compile()`` (LazyAdam, 16 steps per execution),
  fed by ``to_dataset``, which preprocesses in ``tf.data`` (applied after the cache, so
  the timed epoch pays for it).
* ``default-inmodel``: the same with raw batches (``preprocess=False``): the lookups run
  in the model's step.
* ``default-xla``: ``model.compile(jit_compile=True)``, preprocessing in ``tf.data``.
* ``default-bf16``: ``default`` under the ``mixed_bfloat16`` Keras policy (bfloat16
  matmuls, float32 weights, heads, losses and metrics): the CPU's AVX512_BF16 lever.
* ``deepctr`` (only when asked for; ``pip install --no-deps deepctr==0.9.4``):
  DeepCTR's ``MMOE`` with its defaults, in this process (it runs on tf_keras).
* ``--torch-python PATH``: torch-rechub's ``MMOE`` run by ``peer_torch_rechub.py`` in
  that interpreter (torch and torch-rechub cannot live in tfmtl's environment).

    python benchmarks/train_throughput.py                 # keras, adam, default, default-inmodel; batch 512 and 4096; 500k rows
    python benchmarks/train_throughput.py --rows 100000 --batch-sizes 512 --variants keras lazy-spe
    python benchmarks/train_throughput.py --variants keras lazy-spe deepctr --torch-python peers/bin/python

Throughput is measured after the first steps (tracing excluded) to the end of
the epoch; "epoch s" is the whole epoch including tracing.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tfmtl  # noqa: E402
from tfmtl._compat import keras, tf  # noqa: E402

from workload import NUM_NUMERIC, TASKS, VOCAB_SIZES, generate, standardized_numerics  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent


def make_workload(rows: int, seed: int = 0) -> tfmtl.data.MultiTaskData:
    """The workload as tfmtl data: declared vocabularies (ids 0..n-1), numerics normalized in the model."""
    features, labels, oracle = generate(rows, seed)
    schema = tfmtl.Schema(
        [
            tfmtl.Categorical(f"c{i}", embedding_dim=16, id_type="int64", vocabulary=tuple(range(size)))
            for i, size in enumerate(VOCAB_SIZES)
        ]
        + [tfmtl.Numeric(f"n{i}") for i in range(NUM_NUMERIC)]
    )
    tasks = tuple(tfmtl.Task.binary(task, tower_units=(64,)) for task in TASKS)
    return tfmtl.data.MultiTaskData(features, labels, schema, tasks, oracle=oracle)


VARIANTS = ("keras", "adam", "lazy", "adam-spe", "lazy-spe", "default", "default-inmodel", "default-xla", "default-bf16", "deepctr")
DEFAULT_VARIANTS = ("keras", "adam", "default", "default-inmodel")  # deepctr runs when asked for (it must be installed)


class StepTimer(keras.callbacks.Callback):
    """Wall time from the end of the ``skip``-th batch callback to the last one."""

    def __init__(self, skip: int) -> None:
        super().__init__()
        self.skip, self.calls, self.start, self.end = skip, 0, None, None

    def on_train_batch_end(self, batch, logs=None):
        self.calls += 1
        if self.calls == self.skip:
            self.start = time.perf_counter()
        self.end = time.perf_counter()


def plain_keras_mmoe(train: tfmtl.data.MultiTaskData) -> keras.Model:
    """The baseline: what a user writes by hand in tf_keras, ids already indexed."""
    inputs, parts = {}, []
    for index, size in enumerate(VOCAB_SIZES):
        inputs[f"c{index}"] = keras.Input((), dtype="int64", name=f"c{index}")
        parts.append(keras.layers.Embedding(int(size), 16)(inputs[f"c{index}"]))
    numeric = np.stack([train.features[f"n{i}"] for i in range(NUM_NUMERIC)], axis=1)
    for index in range(NUM_NUMERIC):
        inputs[f"n{index}"] = keras.Input((), dtype="float32", name=f"n{index}")
    dense = keras.layers.Normalization(mean=numeric.mean(0), variance=numeric.var(0))(
        tf.stack([inputs[f"n{i}"] for i in range(NUM_NUMERIC)], axis=1)
    )
    x = keras.layers.Concatenate()([*parts, dense])
    experts = [
        keras.Sequential([keras.layers.Dense(256, "relu"), keras.layers.Dense(128, "relu")])(x) for _ in range(4)
    ]
    stacked = tf.stack(experts, axis=1)  # [B, 4, 128]
    outputs = {}
    for task in ("ctr", "cvr"):
        gate = keras.layers.Dense(4, "softmax")(x)
        mixed = tf.reduce_sum(stacked * gate[:, :, None], axis=1)
        tower = keras.layers.Dense(64, "relu")(mixed)
        outputs[task] = keras.layers.Dense(1, "sigmoid", name=task)(tower)
    model = keras.Model(inputs, outputs)
    model.compile(
        keras.optimizers.Adam(1e-3),
        loss={task: "binary_crossentropy" for task in outputs},
        metrics={task: [keras.metrics.AUC(name="auc")] for task in outputs},
    )
    return model


def deepctr_mmoe(train: tfmtl.data.MultiTaskData) -> keras.Model:
    """DeepCTR 0.9.4's MMOE with DeepCTR's defaults (it runs on tf_keras through TF_USE_LEGACY_KERAS=1)."""
    try:
        from deepctr.feature_column import DenseFeat, SparseFeat
        from deepctr.models import MMOE
    except ImportError:
        sys.exit("the deepctr variant needs DeepCTR: pip install --no-deps deepctr==0.9.4 (TensorFlow is already here)")
    columns = [SparseFeat(f"c{i}", int(size), embedding_dim=16) for i, size in enumerate(VOCAB_SIZES)]
    columns += [DenseFeat(f"n{i}", 1) for i in range(NUM_NUMERIC)]
    model = MMOE(columns, num_experts=4, expert_dnn_hidden_units=(256, 128), tower_dnn_hidden_units=(64,),
                 task_types=("binary", "binary"), task_names=TASKS)
    model.compile(keras.optimizers.Adam(1e-3), loss=["binary_crossentropy"] * 2,
                  metrics={task: [keras.metrics.AUC(name="auc")] for task in TASKS})
    return model


def _deepctr_dataset(data: tfmtl.data.MultiTaskData, train: tfmtl.data.MultiTaskData, batch_size: int):
    numerics = standardized_numerics(train.features, data.features)  # DeepCTR takes dense features as given
    x = {f"c{i}": data.features[f"c{i}"] for i in range(len(VOCAB_SIZES))}
    x.update({f"n{i}": numerics[:, i] for i in range(NUM_NUMERIC)})
    return tf.data.Dataset.from_tensor_slices((x, tuple(data.labels[t][:, None] for t in TASKS))).batch(batch_size)


def _plain_dataset(data: tfmtl.data.MultiTaskData, batch_size: int) -> tf.data.Dataset:
    labels = {task: value[:, None] for task, value in data.labels.items()}
    return tf.data.Dataset.from_tensor_slices((dict(data.features), labels)).batch(batch_size)


def _tfmtl_data(data: tfmtl.data.MultiTaskData, schema: tfmtl.Schema) -> tfmtl.data.MultiTaskData:
    return tfmtl.data.MultiTaskData(data.features, data.labels, schema, data.tasks)


def run(variant: str, train, test, schema, batch_size: int, steps_per_execution: int) -> dict:
    keras.utils.set_random_seed(0)
    spe = steps_per_execution if variant.endswith("-spe") else 1
    if variant == "keras":
        model = plain_keras_mmoe(train)
        dataset, test_dataset = _plain_dataset(train, batch_size), _plain_dataset(test, 8192)
        auc_key = "{}_auc"
    elif variant == "deepctr":
        model = deepctr_mmoe(train)
        dataset, test_dataset = _deepctr_dataset(train, train, batch_size), _deepctr_dataset(test, train, 8192)
        auc_key = "{}_auc"
    elif variant.startswith("default"):
        keras.mixed_precision.set_global_policy("mixed_bfloat16" if variant == "default-bf16" else "float32")
        model = tfmtl.models.mmoe(schema, train.tasks, num_experts=4, expert_units=(256, 128))
        keras.mixed_precision.set_global_policy("float32")  # the layers keep the policy they were built with
        model.compile(jit_compile=variant == "default-xla")  # README's call
        spe = model._steps_per_execution.numpy()
        raw = _tfmtl_data(train, schema).to_dataset(batch_size, shuffle=False, preprocess=False).cache()
        dataset = tfmtl.data.preprocessed(raw, schema, variant != "default-inmodel")
        test_dataset = _tfmtl_data(test, schema).to_dataset(8192)
        auc_key = "{}/auc"
    else:
        model = tfmtl.models.mmoe(schema, train.tasks, num_experts=4, expert_units=(256, 128))
        optimizer = tfmtl.training.LazyAdam(1e-3) if variant.startswith("lazy") else keras.optimizers.Adam(1e-3)
        model.compile(optimizer=optimizer, steps_per_execution=spe)
        dataset = _tfmtl_data(train, schema).to_dataset(batch_size, shuffle=False, preprocess=False)
        test_dataset = _tfmtl_data(test, schema).to_dataset(8192, preprocess=False)
        auc_key = "{}/auc"
    if not variant.startswith("default"):
        dataset = dataset.cache()
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    for _ in dataset:  # materialise the cache so the timed epoch measures the model, not the input copy
        pass
    # Batch callbacks come once per execution: skip the first 5 steps' worth (tracing).
    timer = StepTimer(skip=max(1, -(-5 // spe)))
    started = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0, callbacks=[timer])
    epoch_seconds = time.perf_counter() - started
    timed_examples = len(train) - timer.skip * spe * batch_size  # steps after the skipped ones, last one partial
    metrics = model.evaluate(test_dataset, return_dict=True, verbose=0)
    return {
        "variant": variant if spe == 1 or variant.startswith("default") else f"{variant} ({spe})",
        "batch": batch_size,
        "examples_per_s": timed_examples / (timer.end - timer.start),
        "epoch_s": epoch_seconds,
        "ctr/auc": metrics[auc_key.format("ctr")],
        "cvr/auc": metrics[auc_key.format("cvr")],
    }


def run_torch_rechub(python: str, rows: int, batch_size: int) -> dict:
    """``peer_torch_rechub.py`` in another interpreter (one with torch-rechub), on the same workload."""
    command = [python, str(HERE / "peer_torch_rechub.py"), "--rows", str(rows), "--batch-size", str(batch_size)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=HERE)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return {"variant": "torch-rechub", "batch": batch_size, **json.loads(result.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=500_000, help="training rows (plus 20%% held out)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 4096])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(DEFAULT_VARIANTS))
    parser.add_argument("--torch-python", help="an interpreter with torch-rechub: adds its MMoE (peer_torch_rechub.py)")
    parser.add_argument("--steps-per-execution", type=int, default=16, help="for the -spe variants")
    args = parser.parse_args()
    data = make_workload(int(args.rows * 1.25))
    train, test = data.take(slice(0, args.rows)), data.take(slice(args.rows, None))
    started = time.perf_counter()
    schema = train.schema.adapt(train.features)
    adapt_seconds = time.perf_counter() - started
    oracle = {t: tfmtl.data.roc_auc(test.labels[t], test.oracle[t]) for t in ("ctr", "cvr")}
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, "
          f"GPU: {bool(tf.config.list_physical_devices('GPU'))}")
    print(f"workload: {len(train):,} train / {len(test):,} test rows, 26 categorical (vocab 10..100k) + 13 numeric, "
          f"adapt (one pass) {adapt_seconds:.2f}s")
    print(f"label rates: ctr {train.labels['ctr'].mean():.3f}, cvr {train.labels['cvr'].mean():.3f}; "
          f"oracle AUC ctr {oracle['ctr']:.4f}, cvr {oracle['cvr']:.4f}")
    print()
    print("| variant | batch | train examples/s | vs keras | epoch s | ctr AUC | cvr AUC |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for batch_size in args.batch_sizes:
        baseline = None
        for variant in [*args.variants, *(["torch-rechub"] if args.torch_python else [])]:
            if variant == "torch-rechub":
                r = run_torch_rechub(args.torch_python, args.rows, batch_size)
            else:
                r = run(variant, train, test, schema, batch_size, args.steps_per_execution)
            if variant == "keras":
                baseline = r["examples_per_s"]
            ratio = f"{r['examples_per_s'] / baseline:.2f}x" if baseline else "-"
            print(f"| {r['variant']} | {r['batch']} | {r['examples_per_s']:,.0f} | {ratio} | {r['epoch_s']:.1f} | "
                  f"{r['ctr/auc']:.4f} | {r['cvr/auc']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
