"""Held-out AUC per epoch with and without ``tfmtl.training.set_label_priors``, side by side.

Workload: ``synthetic_recsys(rows, seed=3)`` split 80/20, an MMoE with 2 experts [64], the
default ``compile()``, batch 512, one row per (variant, epoch).

    python benchmarks/label_priors.py                 # 20,000 rows, 3 epochs
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfmtl  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=3, help="data seed")
    args = parser.parse_args()
    train, test = tfmtl.data.synthetic_recsys(args.rows, seed=args.seed).split(0.8, seed=0)
    schema = train.schema.adapt(train.features)
    print(f"{len(train):,} training rows; label rates", {k: round(float(v.mean()), 3) for k, v in train.labels.items()})
    print("| heads start at | epoch | train click AUC | test click AUC | test conversion AUC |")
    print("|---|---:|---:|---:|---:|")
    for priors in (False, True):
        tfmtl.keras.utils.set_random_seed(0)
        model = tfmtl.models.mmoe(schema, train.tasks, num_experts=2, expert_units=(64,))
        model.compile()
        if priors:
            tfmtl.training.set_label_priors(model, train)
        for epoch in range(args.epochs):
            history = model.fit(train.to_dataset(512, shuffle=True, seed=epoch), epochs=1, verbose=0)
            metrics = model.evaluate(test.to_dataset(4096), return_dict=True, verbose=0)
            print(f"| {'label priors' if priors else 'bias 0 (p = 0.5)'} | {epoch + 1} | "
                  f"{history.history['click/auc'][0]:.3f} | {metrics['click/auc']:.3f} | "
                  f"{metrics['conversion/auc']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
