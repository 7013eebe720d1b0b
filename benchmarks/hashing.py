"""When to hash ids instead of keeping a vocabulary: measured collision rates, and their AUC cost.

Part 1 (collisions): ``n`` distinct int64 ids hashed by the Keras ``Hashing`` layer that
``Categorical(num_hash_bins=m)`` uses, for several ``m / n``: the share of ids that share their
row with another id, against the ``1 - exp(-n/m)`` of uniform hashing, and the share of
impressions that land on a shared row when ids are Zipf-distributed.

Part 2 (AUC): ``synthetic_recsys`` with many users and items; the same MMoE trained with
``user_id``/``item_id`` as vocabularies, then hashed into ``m = ratio x (number of ids)`` rows.

    python benchmarks/hashing.py                       # 300k rows, ratios 4 1 0.5 0.25
    python benchmarks/hashing.py --rows 100000 --ratios 1 0.25
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

import tfmtl
from tfmtl._compat import keras


def collisions(n: int, ratio: float) -> tuple[float, float, float]:
    """(measured share of ids sharing a row, uniform-hashing expectation, share of Zipf impressions on shared rows)."""
    bins = max(1, int(n * ratio))
    ids = np.arange(n, dtype=np.int64) * 7919 + 12345  # n distinct ids
    rows = keras.layers.Hashing(num_bins=bins)(ids).numpy().ravel()
    counts = np.bincount(rows, minlength=bins)
    shared = counts[rows] > 1
    frequency = 1.0 / np.arange(1, n + 1) ** 1.05  # id k's share of impressions (Zipf)
    return float(shared.mean()), float(1 - np.exp(-n / bins)), float(frequency[shared].sum() / frequency.sum())


def train_auc(train, test, hashed: dict[str, int] | None) -> float:
    specs = []
    for spec in train.schema:
        if hashed and spec.name in hashed:
            spec = dataclasses.replace(spec, num_hash_bins=hashed[spec.name], vocabulary=None)
        specs.append(spec)
    schema = tfmtl.Schema(specs).adapt(train.features, verbose=0)
    keras.utils.set_random_seed(0)
    model = tfmtl.models.mmoe(schema, train.tasks, num_experts=4, expert_units=(64,))
    model.compile()
    model.fit(train.to_dataset(512, shuffle=True, seed=0), epochs=1, verbose=0)
    tables = sum(w.shape[0] for w in model.weights if "_embedding" in w.name)
    metrics = model.evaluate(test.to_dataset(4096), return_dict=True, verbose=0)
    return metrics["click/auc"], metrics["conversion/auc"], tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ids", type=int, default=1_000_000, help="distinct ids for part 1")
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--ratios", type=float, nargs="+", default=[4.0, 1.0, 0.5, 0.25])
    args = parser.parse_args()

    print(f"Part 1: {args.ids:,} distinct ids hashed into ratio x {args.ids:,} rows", flush=True)
    print()
    print("| rows / ids | ids sharing a row | uniform hashing 1 - exp(-n/m) | Zipf(1.05) impressions on shared rows |")
    print("|---:|---:|---:|---:|")
    for ratio in args.ratios:
        measured, expected, impressions = collisions(args.ids, ratio)
        print(f"| {ratio:g} | {measured:.1%} | {expected:.1%} | {impressions:.1%} |", flush=True)

    data = tfmtl.data.synthetic_recsys(args.rows + 100_000, num_users=args.users, num_items=args.items, seed=0)
    train, test = data.split(args.rows / (args.rows + 100_000), seed=0)
    print()
    print(f"Part 2: synthetic_recsys, {args.rows:,} training rows, {args.users:,} users and {args.items:,} items; "
          "MMoE, one epoch, batch 512", flush=True)
    print()
    print("| user_id / item_id | table rows (all features) | click AUC | conversion AUC | s |")
    print("|---|---:|---:|---:|---:|")
    ways = [("vocabulary", None)] + [
        (f"hashed, {ratio:g} x ids", {"user_id": int(args.users * ratio), "item_id": int(args.items * ratio)})
        for ratio in args.ratios
    ]
    for name, hashed in ways:
        started = time.perf_counter()
        click, conversion, tables = train_auc(train, test, hashed)
        print(f"| {name} | {tables:,} | {click:.4f} | {conversion:.4f} | {time.perf_counter() - started:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
