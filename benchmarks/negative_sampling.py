"""Calibration after negative downsampling: click negatives kept at a rate, with and without the correction.

For each seed, ``synthetic_recsys(--rows, seed)`` is split 80/20; the training part's click
negatives are downsampled (``MultiTaskData.downsample_negatives``) and the same MMoE
(2 x [64], Adam 3e-3, batch 512, ``--epochs`` 2, heads started at their label rates) is trained three ways:

* ``all rows``: on the training part before sampling (the reference);
* ``sampled, uncorrected``: on the sampled rows, the click task declaring no rate;
* ``sampled, corrected``: on the same sampled rows, the click task declaring
  ``negative_sampling_rate`` (tfmtl corrects every prediction).

The metrics are taken on every test row (nothing sampled) from ``predict`` with tfmtl's
own metric classes: click AUC, COPC (clicks over predicted clicks; 1 = calibrated), ECE
(10 bins) and logloss. "evaluate COPC" is ``evaluate()``'s estimate from a sampled copy of
the test rows (negatives counted ``1 / rate`` times); it should match the COPC on all rows.

    python benchmarks/negative_sampling.py                       # defaults below
    python benchmarks/negative_sampling.py --rows 20000 --seeds 0
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tfmtl  # noqa: E402
from tfmtl._compat import keras  # noqa: E402

ROWS = ("all rows", "sampled, uncorrected", "sampled, corrected")


def metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    out = {}
    for name, metric in (("auc", tfmtl.tasks.MaskedAUC()), ("copc", tfmtl.tasks.COPC()),
                         ("ece", tfmtl.tasks.ExpectedCalibrationError()), ("logloss", tfmtl.tasks.MaskedLogLoss())):
        metric.update_state(labels, predictions)
        out[name] = float(metric.result())
    return out


def run(rows: int, seed: int, rate: float, epochs: int) -> dict[str, dict[str, Any]]:
    data = tfmtl.data.synthetic_recsys(rows, seed=seed)
    train, test = data.split(0.8, seed=seed)
    sampled = train.downsample_negatives({"click": rate}, seed=seed)
    sampled_test = test.downsample_negatives({"click": rate}, seed=seed + 1)
    schema = train.schema.adapt(train.features)
    out = {}
    for row in ROWS:
        data_for = train if row == "all rows" else sampled
        tasks = sampled.tasks if row == "sampled, corrected" else train.tasks
        keras.utils.set_random_seed(seed)
        model = tfmtl.models.mmoe(schema, tasks, num_experts=2, expert_units=(64,))
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        tfmtl.training.set_label_priors(model, data_for)  # each head starts at its (sampled) label rate
        start = time.perf_counter()
        model.fit(data_for.to_dataset(512, shuffle=True, seed=seed), epochs=epochs, verbose=0)
        seconds = (time.perf_counter() - start) / epochs
        q = model.predict(test.features, batch_size=8192, verbose=0)["click"][:, 0]
        result = metrics(test.labels["click"], q)
        evaluation = test if row == "all rows" else sampled_test
        if row != "sampled, uncorrected":  # the uncorrected model's evaluate() knows of no sampling
            result["evaluate_copc"] = model.evaluate(evaluation.to_dataset(8192), return_dict=True,
                                                     verbose=0)["click/copc"]
        result["train_rows"] = len(data_for)
        result["epoch_s"] = seconds
        out[row] = result
        print(f"  seed {seed}: {row} done", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=0.1, help="share of the click negatives kept")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    runs = [run(args.rows, seed, args.rate, args.epochs) for seed in args.seeds]
    print(f"\nClick negatives kept at {args.rate}; synthetic_recsys({args.rows}); seeds {args.seeds}; "
          f"{args.epochs} epochs; metrics on every test row: mean (min-max)")
    columns = ("auc", "copc", "ece", "logloss", "evaluate_copc")
    print("| training data | train rows | click AUC | COPC | ECE | logloss | evaluate COPC | s/epoch |")
    print("|---|---|---|---|---|---|---|---|")
    for row in ROWS:
        cells = []
        for column in columns:
            values = np.array([r[row].get(column, np.nan) for r in runs])
            cells.append("n/a" if np.isnan(values).all() else
                         f"{values.mean():.4f} ({values.min():.4f}-{values.max():.4f})")
        rows_mean = int(np.mean([r[row]["train_rows"] for r in runs]))
        seconds = np.mean([r[row]["epoch_s"] for r in runs])
        print(f"| {row} | {rows_mean:,} | {' | '.join(cells)} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
