"""Training throughput of tfmtl's MMoE on a fixed synthetic CTR workload.

Workload (fixed, as in the foundation issue): 26 categorical features with
vocabularies from 10 to 100,000 ids (log-spaced), 13 numeric features, 2 binary
tasks from a hidden logistic model, embedding 16, 4 experts [256, 128], towers
[64], one epoch per batch size. Prints a table of training examples/second and
held-out per-task AUC (with the oracle AUC of the hidden model).

    python benchmarks/train_throughput.py                 # batch 512 and 4096, 500k rows
    python benchmarks/train_throughput.py --rows 100000 --batch-sizes 512

Throughput is measured after the first 5 steps (tracing excluded) to the end
of the epoch; "epoch s" is the whole epoch including tracing.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tfmtl  # noqa: E402
from tfmtl._compat import keras, tf  # noqa: E402

NUM_CATEGORICAL, NUM_NUMERIC = 26, 13


VOCAB_SIZES = np.round(np.logspace(1, 5, NUM_CATEGORICAL)).astype(int)  # 10 .. 100,000


def make_workload(rows: int, seed: int = 0) -> tfmtl.data.MultiTaskData:
    rng = np.random.default_rng(seed)
    vocab_sizes = VOCAB_SIZES
    features, logit_a, logit_b = {}, np.zeros(rows), np.zeros(rows)
    for index, size in enumerate(vocab_sizes):
        ids = np.minimum(rng.zipf(1.3, size=rows) - 1, size - 1).astype(np.int64)  # heavy-tailed id frequency
        features[f"c{index}"] = ids
        if index % 3 == 0:  # a third of the features carry signal, shared or task-specific
            effect = rng.normal(scale=0.5, size=size)
            logit_a += effect[ids]
            logit_b += (0.6 * effect + 0.8 * rng.normal(scale=0.5, size=size))[ids]
    for index in range(NUM_NUMERIC):
        values = rng.lognormal(sigma=1.0, size=rows).astype(np.float32)
        features[f"n{index}"] = values
        weight = rng.normal(scale=0.3)
        logit_a += weight * np.log(values)
        logit_b += rng.normal(scale=0.3) * np.log(values)
    p_a = 1 / (1 + np.exp(-(logit_a - 1.5)))
    p_b = 1 / (1 + np.exp(-(logit_b - 2.5)))
    labels = {"ctr": (rng.random(rows) < p_a).astype(np.float32), "cvr": (rng.random(rows) < p_b).astype(np.float32)}
    schema = tfmtl.Schema(
        [
            tfmtl.Categorical(f"c{i}", embedding_dim=16, id_type="int64", vocabulary=tuple(range(size)))
            for i, size in enumerate(VOCAB_SIZES)
        ]
        + [tfmtl.Numeric(f"n{i}") for i in range(NUM_NUMERIC)]
    )
    tasks = (tfmtl.Task.binary("ctr", tower_units=(64,)), tfmtl.Task.binary("cvr", tower_units=(64,)))
    return tfmtl.data.MultiTaskData(features, labels, schema, tasks, oracle={"ctr": p_a, "cvr": p_b})


class StepTimer(keras.callbacks.Callback):
    def __init__(self, skip: int = 5) -> None:
        super().__init__()
        self.skip, self.step, self.start, self.end = skip, 0, None, None

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step == self.skip:
            self.start = time.perf_counter()
        self.end = time.perf_counter()


def run(train, test, schema, batch_size: int) -> dict:
    keras.utils.set_random_seed(0)
    model = tfmtl.models.mmoe(schema, train.tasks, num_experts=4, expert_units=(256, 128))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    dataset = train.to_dataset(batch_size, shuffle=False).cache()
    for _ in dataset:  # materialise the cache so the timed epoch measures the model, not the input copy
        pass
    timer = StepTimer()
    started = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0, callbacks=[timer])
    epoch_seconds = time.perf_counter() - started
    timed_examples = len(train) - timer.skip * batch_size  # steps after the skipped ones, last one partial
    metrics = model.evaluate(test.to_dataset(8192), return_dict=True, verbose=0)
    return {
        "batch": batch_size,
        "examples_per_s": timed_examples / (timer.end - timer.start),
        "epoch_s": epoch_seconds,
        "ctr/auc": metrics["ctr/auc"],
        "cvr/auc": metrics["cvr/auc"],
        "params": model.count_params(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=500_000, help="training rows (plus 20%% held out)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 4096])
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
    print("| batch | train examples/s | epoch s | ctr AUC | cvr AUC | parameters |")
    print("|---:|---:|---:|---:|---:|---:|")
    for batch_size in args.batch_sizes:
        r = run(train, test, schema, batch_size)
        print(f"| {r['batch']} | {r['examples_per_s']:,.0f} | {r['epoch_s']:.1f} | {r['ctr/auc']:.4f} | "
              f"{r['cvr/auc']:.4f} | {r['params']:,} |", flush=True)


if __name__ == "__main__":
    main()
