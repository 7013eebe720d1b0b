"""Loss-balancing strategies compared on two synthetic task pairs built to conflict.

Scenarios (both from ``tfmtl.data.synthetic_recsys``, task relatedness 0.3):

* ``rare``: click (about 10% positive) and conversion (about 1.3%): one task's
  labels are far rarer;
* ``scale``: click and a regression target ``dwell`` (mean ``--dwell-mean``,
  default 5, e.g. minutes; noise sd 0.3 x the mean) driven by the same hidden
  click affinity, whose squared-error loss and gradients start ~100x the
  click's cross-entropy, so with equal static weights the regression dominates
  the shared experts.

Each strategy trains the same MMoE (4 experts [64], towers [32], Adam 1e-3) from
the same initialisation and data for a few epochs; the table prints held-out
per-task AUC (and the dwell's RMSE relative to the noise sd, 1.0 being the best
possible), seconds per epoch and the final weights.

    python benchmarks/task_balancing.py                  # 100k rows, 4 epochs, seeds 0 1
    python benchmarks/task_balancing.py --rows 50000 --epochs 2 --seeds 0
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tfmtl  # noqa: E402
from tfmtl._compat import keras  # noqa: E402
from tfmtl.balancing import STRATEGIES  # noqa: E402

NOISE_SHARE = 0.3  # dwell noise sd as a share of its mean


def scenario(
    name: str, rows: int, seed: int, dwell_mean: float = 5.0
) -> tuple[tfmtl.data.MultiTaskData, tfmtl.data.MultiTaskData]:
    data = tfmtl.data.synthetic_recsys(rows, task_relatedness=0.3, seed=seed)
    if name == "scale":
        rng = np.random.default_rng(seed + 100)
        truth = dwell_mean * data.oracle["click"] / data.oracle["click"].mean()
        dwell = (truth + rng.normal(scale=NOISE_SHARE * dwell_mean, size=rows)).astype(np.float32)
        tasks = (tfmtl.Task.binary("click", tower_units=(32,)), tfmtl.Task.regression("dwell", tower_units=(32,)))
        data = tfmtl.data.MultiTaskData(
            features=data.features, labels={"click": data.labels["click"], "dwell": dwell}, schema=data.schema,
            tasks=tasks, oracle={"click": data.oracle["click"], "dwell": truth},
        )
    else:
        tasks = tuple(tfmtl.Task.binary(task.name, tower_units=(32,)) for task in data.tasks)
        data = tfmtl.data.MultiTaskData(data.features, data.labels, data.schema, tasks, data.oracle)
    return data.split(0.8, seed=seed)


def run(name: str, strategy: type, rows: int, epochs: int, seed: int, dwell_mean: float) -> dict:
    train, test = scenario(name, rows, seed, dwell_mean)
    keras.utils.set_random_seed(seed)
    schema = train.schema.adapt(train.features)
    model = tfmtl.models.mmoe(schema, train.tasks, num_experts=4, expert_units=(64,))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), balancer=strategy())
    start = time.perf_counter()
    history = model.fit(train.to_dataset(1024, shuffle=True, seed=seed), epochs=epochs, verbose=0).history
    per_epoch = (time.perf_counter() - start) / epochs
    logs = model.evaluate(test.to_dataset(8192), return_dict=True, verbose=0)
    result = {"epoch_s": per_epoch, "weights": {t: history[f"{t}/weight"][-1] for t in model.task_names}}
    for task in train.tasks:
        if task.kind is tfmtl.TaskKind.BINARY:
            result[task.name] = logs[f"{task.name}/auc"]
        else:
            result[task.name] = logs[f"{task.name}/rmse"] / (NOISE_SHARE * dwell_mean)
        if not np.isfinite(logs[f"{task.name}/loss"]):
            raise RuntimeError(f"{strategy.__name__} on {name}: loss is not finite")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--scenarios", nargs="+", default=["rare", "scale"], choices=["rare", "scale"])
    parser.add_argument("--dwell-mean", type=float, default=5.0)
    args = parser.parse_args()
    columns = {"rare": ("click", "conversion"), "scale": ("click", "dwell")}
    for name in args.scenarios:
        first, second = columns[name]
        second_label = "dwell RMSE/noise" if name == "scale" else f"{second} AUC"
        extra = f", dwell mean {args.dwell_mean}" if name == "scale" else ""
        print(f"\nScenario {name!r}: {args.rows:,} rows (80% train), {args.epochs} epochs, seeds {args.seeds}{extra}; "
              "mean over seeds (min-max)")
        print(f"| strategy | {first} AUC | {second_label} | s/epoch | final weights |")
        print("|---|---|---|---|---|")
        for strategy in STRATEGIES:
            runs = [run(name, strategy, args.rows, args.epochs, seed, args.dwell_mean) for seed in args.seeds]

            def cell(key: str) -> str:
                values = np.array([r[key] for r in runs])
                return f"{values.mean():.4f} ({values.min():.4f}-{values.max():.4f})"

            weights = ", ".join(f"{k} {v:.2f}" for k, v in runs[-1]["weights"].items())
            seconds = np.mean([r["epoch_s"] for r in runs])
            print(f"| {strategy.__name__} | {cell(first)} | {cell(second)} | {seconds:.1f} | {weights} |", flush=True)


if __name__ == "__main__":
    main()
