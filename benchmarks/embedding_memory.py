"""Peak memory of training with one 1M-id embedding table, per optimizer, each in a fresh process.

Workload: one int64 ``Categorical`` with 1,000,000 declared ids (16 dims: a 64 MB table),
two small categoricals and a numeric; Zipf-distributed ids; a binary task whose true
logit is a random effect per id plus the numeric (so the oracle AUC is known); an MMoE
with 2 experts [32]; batch 1024; one epoch. Each optimizer runs in its own interpreter
and reports the process's peak resident memory (``ru_maxrss``), the optimizer's slot
bytes (its variables' sizes) and the held-out AUC.

    python benchmarks/embedding_memory.py                     # all four optimizers; 300k rows
    python benchmarks/embedding_memory.py --rows 100000 --optimizers default rowwise_adagrad

Optimizers: ``default`` (``compile()``: LazyAdam, two slots the size of every table),
``adam`` (Keras Adam, the same two slots), ``adagrad`` (Keras Adagrad: one slot the size
of every table), ``rowwise_adagrad`` (:class:`tfmtl.training.RowWiseAdagrad` with its
defaults: one accumulator per table row, Adam on the dense layers).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

VOCAB = 1_000_000


def _child(optimizer: str, rows: int) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np

    import tfmtl
    from tfmtl._compat import keras

    rng = np.random.default_rng(0)
    total = int(rows * 1.25)
    ids = np.minimum(rng.zipf(1.2, total), VOCAB) - 1
    effect = rng.normal(0.0, 1.0, VOCAB).astype(np.float32)
    x = rng.normal(size=total).astype(np.float32)
    logit = effect[ids] + x - 1.0
    probability = 1 / (1 + np.exp(-logit))
    click = (rng.random(total) < probability).astype(np.float32)
    features = {
        "big": ids.astype(np.int64),
        "a": rng.integers(0, 10, total).astype(np.int64),
        "b": rng.integers(0, 100, total).astype(np.int64),
        "x": x,
    }
    schema = tfmtl.Schema([
        tfmtl.Categorical("big", embedding_dim=16, id_type="int64", vocabulary=tuple(range(VOCAB))),
        tfmtl.Categorical("a", embedding_dim=4, id_type="int64", vocabulary=tuple(range(10))),
        tfmtl.Categorical("b", embedding_dim=4, id_type="int64", vocabulary=tuple(range(100))),
        tfmtl.Numeric("x", mean=0.0, variance=1.0),
    ])
    tasks = (tfmtl.Task.binary("click", tower_units=(16,)),)
    data = tfmtl.data.MultiTaskData(features, {"click": click}, schema, tasks)
    train, test = data.take(slice(0, rows)), data.take(slice(rows, None))
    keras.utils.set_random_seed(0)
    model = tfmtl.models.mmoe(schema, tasks, num_experts=2, expert_units=(32,))
    chosen = {
        "default": lambda: None,
        "adam": lambda: keras.optimizers.Adam(1e-3),
        "adagrad": lambda: keras.optimizers.Adagrad(0.05),
        "rowwise_adagrad": lambda: tfmtl.training.RowWiseAdagrad(),  # tables at 0.05, dense layers at 1e-3
    }
    model.compile(optimizer=chosen[optimizer]())
    model.fit(train.to_dataset(1024, shuffle=True, seed=0), epochs=1, verbose=0)
    auc = model.evaluate(test.to_dataset(8192), return_dict=True, verbose=0)["click/auc"]
    own = {id(v) for v in model.variables}
    slots = sum(v.shape.num_elements() * v.dtype.size for v in model.optimizer.variables() if id(v) not in own)
    return {
        "optimizer": optimizer,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "slot_mb": slots / 2**20,
        "auc": float(auc),
        "oracle_auc": float(tfmtl.data.roc_auc(test.labels["click"], probability[rows:])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=300_000)
    names = ["default", "adam", "adagrad", "rowwise_adagrad"]
    parser.add_argument("--optimizers", nargs="+", default=names, choices=names)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.rows)))
        return
    print(f"one {VOCAB:,}-id table x 16 dims (61 MiB), {args.rows:,} training rows, batch 1024, one epoch")
    print()
    print("| optimizer | peak RSS (MiB) | optimizer slots (MiB) | click AUC | oracle AUC |")
    print("|---|---:|---:|---:|---:|")
    for optimizer in args.optimizers:
        out = subprocess.run([sys.executable, __file__, "--child", optimizer, "--rows", str(args.rows)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {r['optimizer']} | {r['peak_rss_mb']:,.0f} | {r['slot_mb']:,.0f} | {r['auc']:.4f} | "
              f"{r['oracle_auc']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
