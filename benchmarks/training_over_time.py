"""Training day after day on drifting items: daily warm start against a full retrain each day.

``synthetic_recsys(--rows, day=d, item_lifetime=7)`` draws each day's impressions from a
world whose items live 7 days: every day a seventh of the live items is new and as many
disappear. Day 0 trains a model from scratch. Then, for each day ``d = 1 .. --days``,
three ways of producing day ``d``'s model are compared on day ``d + 1``'s impressions (the
next day's traffic, which the model serves):

* ``warm start``: ``schema.update(day d)`` (ids unseen for 3 updates expire), then
  ``tfmtl.training.warm_start`` from day ``d - 1``'s model and ``--warm-epochs`` (2) on day ``d`` only;
* ``full retrain``: a new model adapted on and trained from scratch on the last
  ``--window`` days (``d - window + 1 .. d``, 7 by default) for ``--full-epochs`` (2);
* ``warm, frozen vocabulary`` (the out-of-vocabulary-only baseline): the same as
  ``warm start``, but the vocabularies stay day 0's, so every new item is answered from
  the OOV bucket.

Reported per day and way: click and conversion AUC on all of day ``d + 1``'s rows, click
AUC on the rows whose item first appeared on day ``d`` ("new ids": in the warm start's
vocabulary, out of the frozen one's), wall time (schema, build, training), and the item
table's rows. The summary averages the last 7 days. Same MMoE everywhere (4 x [64],
the default compile: LazyAdam 1e-3, batch 512).

    python benchmarks/training_over_time.py                     # defaults below
    python benchmarks/training_over_time.py --days 4 --rows 8000 --seeds 0
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tfmtl  # noqa: E402
from tfmtl._compat import keras, tf  # noqa: E402

tf.get_logger().setLevel("ERROR")  # one model per day and way: Keras warns of the retracing that implies

WAYS = ("warm start", "full retrain", "warm, frozen vocabulary")
LIFETIME = 7
EXPIRE_AFTER = 3


def day_data(rows: int, day: int, seed: int) -> Any:
    return tfmtl.data.synthetic_recsys(rows, num_items=1_400, num_users=3_000, day=day, item_lifetime=LIFETIME,
                                       seed=seed)


def concat(parts: list[Any]) -> Any:
    first = parts[0]
    return dataclasses.replace(
        first,
        features={name: np.concatenate([p.features[name] for p in parts]) for name in first.features},
        labels={name: np.concatenate([p.labels[name] for p in parts]) for name in first.labels},
        oracle={name: np.concatenate([p.oracle[name] for p in parts]) for name in first.oracle},
    )


def schema_for(data: Any) -> tfmtl.Schema:
    schema = data.schema
    return schema.replace(**{name: dataclasses.replace(schema[name], expire_after=EXPIRE_AFTER)
                             for name in ("user_id", "item_id")})


def build(schema: tfmtl.Schema, tasks: Any) -> Any:
    return tfmtl.models.mmoe(schema, tasks, num_experts=4, expert_units=(64,))


def train(model: Any, data: Any, epochs: int, seed: int) -> None:
    model.compile()
    model.fit(data.to_dataset(512, shuffle=True, seed=seed), epochs=epochs, verbose=0)


def scores(model: Any, test: Any, new_rows: np.ndarray) -> dict[str, float]:
    predictions = model.predict(test.features, batch_size=8192, verbose=0)
    out = {task: tfmtl.data.roc_auc(test.labels[task], predictions[task][:, 0]) for task in ("click", "conversion")}
    out["new click"] = tfmtl.data.roc_auc(test.labels["click"][new_rows], predictions["click"][new_rows, 0])
    out["new rows"] = int(new_rows.sum())
    return out


def run(rows: int, days: int, window: int, warm_epochs: int, full_epochs: int, seed: int,
        log: Any = print) -> list[dict[str, Any]]:
    data = {d: day_data(rows, d, seed) for d in range(days + 2)}
    seen_before = set(data[0].features["item_id"])  # items in any earlier day's data
    keras.utils.set_random_seed(seed)
    schema = schema_for(data[0]).adapt(data[0].features, verbose=0)
    day0 = build(schema, data[0].tasks)
    train(day0, data[0], full_epochs, seed)
    models = {"warm start": day0, "warm, frozen vocabulary": day0}
    results = []
    for d in range(1, days + 1):
        today, test = data[d], data[d + 1]
        first_seen = set(today.features["item_id"]) - seen_before
        seen_before |= set(today.features["item_id"])
        new_rows = np.isin(test.features["item_id"], list(first_seen))
        for way in WAYS:
            keras.utils.set_random_seed(seed * 1000 + d)
            started = time.perf_counter()
            if way == "full retrain":
                window_data = concat([data[k] for k in range(max(0, d - window + 1), d + 1)])
                model = build(schema_for(window_data).adapt(window_data.features, verbose=0), today.tasks)
                train(model, window_data, full_epochs, seed + d)
            else:
                previous = models[way]
                grown = previous.schema.update(today.features, verbose=0) if way == "warm start" else previous.schema
                model = tfmtl.training.warm_start(previous, grown)
                train(model, today, warm_epochs, seed + d)
                models[way] = model
            seconds = time.perf_counter() - started
            row = {"day": d, "way": way, "seconds": seconds, "table": model.schema["item_id"].table_size,
                   **scores(model, test, new_rows)}
            results.append(row)
            log(f"seed {seed} day {d:2d} {way:<24} click {row['click']:.4f} conv {row['conversion']:.4f} "
                f"new-id click {row['new click']:.4f} ({row['new rows']} rows) {seconds:5.1f} s "
                f"table {row['table']}")
    return results


def summary(results: list[dict[str, Any]], last: int) -> list[str]:
    days = sorted({r["day"] for r in results})[-last:]
    lines = [f"| way (days {days[0]}-{days[-1]}) | click AUC | conversion AUC | new-id click AUC | s / day | "
             "item table rows (last day) |", "|---|---|---|---|---|---|"]
    for way in WAYS:
        rows = [r for r in results if r["way"] == way and r["day"] in days]
        seeds = sorted({r["seed"] for r in rows})
        per_seed = {key: [np.mean([r[key] for r in rows if r["seed"] == s]) for s in seeds]
                    for key in ("click", "conversion", "new click", "seconds")}
        shown = {key: f"{np.mean(v):.4f}" + (f" ({min(v):.4f}–{max(v):.4f})" if len(v) > 1 else "")
                 for key, v in per_seed.items() if key != "seconds"}
        table = max(r["table"] for r in rows if r["day"] == days[-1])
        lines.append(f"| {way} | {shown['click']} | {shown['conversion']} | {shown['new click']} | "
                     f"{np.mean(per_seed['seconds']):.1f} | {table:,} |")
    return lines


def daily_table(results: list[dict[str, Any]], seed: int) -> list[str]:
    lines = ["| day | " + " | ".join(f"{way}: click / new-id click / s" for way in WAYS) + " |",
             "|---|" + "---|" * len(WAYS)]
    for d in sorted({r["day"] for r in results}):
        cells = []
        for way in WAYS:
            r = next(r for r in results if r["day"] == d and r["way"] == way and r["seed"] == seed)
            cells.append(f"{r['click']:.4f} / {r['new click']:.4f} / {r['seconds']:.1f}")
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000, help="impressions per day")
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--window", type=int, default=7, help="days a full retrain trains on")
    parser.add_argument("--warm-epochs", type=int, default=2)
    parser.add_argument("--full-epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    results = []
    for seed in args.seeds:
        for row in run(args.rows, args.days, args.window, args.warm_epochs, args.full_epochs, seed):
            results.append({**row, "seed": seed})
    print()
    print("\n".join(summary(results, min(7, args.days))))
    print()
    print("\n".join(daily_table(results, args.seeds[0])))
    warm = [r for r in results if r["way"] == "warm start"]
    full = [r for r in results if r["way"] == "full retrain"]
    last = sorted({r["day"] for r in results})[-min(7, args.days):]
    gap = np.mean([r["click"] for r in warm if r["day"] in last]) - np.mean([r["click"] for r in full if r["day"] in last])
    fraction = np.mean([r["seconds"] for r in warm if r["day"] in last]) / np.mean(
        [r["seconds"] for r in full if r["day"] in last])
    print(f"\nwarm start - full retrain, click AUC over the last {len(last)} days: {gap:+.4f}; "
          f"wall time per day: {fraction:.2f} of the full retrain's")


if __name__ == "__main__":
    main()
