"""Every task-balancing strategy, at the parameters and at the representation, against tuned fixed weights.

Quality (``--quality``), on two datasets, the same MMoE (4 experts [64], towers [32],
Adam 1e-3, batch 1024) from the same initialisation for every strategy:

* ``scale``: ``synthetic_recsys(task_relatedness=0.3)``'s click and a regression target
  ``dwell`` (mean 5, noise sd 1.5) driven by the same hidden click affinity, whose
  squared-error loss starts ~100x the click's cross-entropy: conflicting tasks on
  different scales;
* ``census2``: census-income task group 2 (education, marital; Ma et al. 2018), from
  ``../shared/data`` (skipped when absent).

Each row is a strategy (gradient strategies at each level they work at:
``@parameters`` and ``@representation``); cells are the held-out metric's mean over the seeds and its
min-max. "mean rank" ranks the rows per task by their mean metric (1 = best; AUC higher,
RMSE lower) and averages over the tasks. "FixedWeights (tuned)" picks, per seed, the
second task's static weight from a small grid by the validation data's mean rank, then
reports test: the honest baseline.

Step time (``--speed``): the training-throughput workload (``workload.py``: 26 id
features up to 100k ids, 13 numeric, 2 tasks) at batch 4096, the same MMoE; the median
time of a training step over ``--speed-steps`` steps after warm-up, relative to
FixedWeights in the same run.

    python benchmarks/task_balancing.py                         # both tables, defaults below
    python benchmarks/task_balancing.py --quality --rows 20000 --seeds 0 --datasets scale
    python benchmarks/task_balancing.py --only DBMTL GradDrop   # those rows beside the baselines
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tfmtl  # noqa: E402
from tfmtl._compat import keras  # noqa: E402
from tfmtl.balancing import STRATEGIES, FixedWeights, SmoothTchebycheff  # noqa: E402

NOISE_SHARE = 0.3  # dwell noise sd as a share of its mean
GRID = (0.1, 0.3, 1.0, 3.0)  # the second task's static weight, for tuned fixed weights
#: Constructor arguments the benchmark changes from a strategy's defaults (the table says so).
OVERRIDES: dict[type, dict[str, Any]] = {SmoothTchebycheff: {"warmup_epochs": 1}}


def rows_to_run(only: list[str] | None = None) -> list[tuple[str, Callable[[], Any], str]]:
    """(row name, strategy factory, gradients_at) for every strategy and the levels it works at.

    ``only``: those strategies' rows, beside FixedWeights (the baseline, always first).
    """
    out = []
    for cls in STRATEGIES:
        if only and cls is not FixedWeights and cls.__name__ not in only:
            continue
        make = (lambda cls=cls: cls(**OVERRIDES.get(cls, {})))
        if cls.uses_gradients:
            out += [(f"{cls.__name__} @{level}", make, level) for level in cls.levels]
        else:
            out.append((cls.__name__, make, "parameters"))
    return out


def datasets(name: str, rows: int, seed: int) -> tuple[Any, Any, Any]:
    """``(train, validation, test)`` with tasks that have towers of 32."""
    if name == "census2":
        train, validation, test = tfmtl.data.census_income(group=2, max_rows=rows or None)
        tasks = tuple(tfmtl.Task.binary(task.name, label=task.label_key, tower_units=(32,)) for task in train.tasks)
        return tuple(tfmtl.data.MultiTaskData(d.features, d.labels, d.schema, tasks, d.oracle)
                     for d in (train, validation, test))
    data = tfmtl.data.synthetic_recsys(rows, task_relatedness=0.3, seed=seed)
    rng = np.random.default_rng(seed + 100)
    truth = 5.0 * data.oracle["click"] / data.oracle["click"].mean()
    dwell = (truth + rng.normal(scale=NOISE_SHARE * 5.0, size=rows)).astype(np.float32)
    tasks = (tfmtl.Task.binary("click", tower_units=(32,)), tfmtl.Task.regression("dwell", tower_units=(32,)))
    data = tfmtl.data.MultiTaskData(
        features=data.features, labels={"click": data.labels["click"], "dwell": dwell}, schema=data.schema,
        tasks=tasks, oracle={"click": data.oracle["click"], "dwell": truth},
    )
    train, test = data.split(0.8, seed=seed)
    train, validation = train.split(0.875, seed=seed)
    return train, validation, test


def metric(task: Any, logs: dict[str, float]) -> float:
    if task.kind is tfmtl.TaskKind.BINARY:
        return logs[f"{task.name}/auc"]
    return logs[f"{task.name}/rmse"] / (NOISE_SHARE * 5.0)


def train_one(data: tuple, seed: int, epochs: int, balancer: Any, gradients_at: str,
              loss_weights: dict[str, float] | None = None) -> dict[str, Any]:
    train, validation, test = data
    keras.utils.set_random_seed(seed)
    schema = train.schema.adapt(train.features)
    model = tfmtl.models.mmoe(schema, train.tasks, num_experts=4, expert_units=(64,))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), balancer=balancer, gradients_at=gradients_at,
                  loss_weights=loss_weights)
    start = time.perf_counter()
    model.fit(train.to_dataset(1024, shuffle=True, seed=seed), epochs=epochs, verbose=0)
    seconds = (time.perf_counter() - start) / epochs
    out = {"epoch_s": seconds}
    for split, part in (("validation", validation), ("test", test)):
        logs = model.evaluate(part.to_dataset(8192), return_dict=True, verbose=0)
        for task in train.tasks:
            if not np.isfinite(logs[f"{task.name}/loss"]):
                raise RuntimeError(f"{balancer!r} at the {gradients_at}: {task.name}'s loss is not finite")
        out[split] = {task.name: metric(task, logs) for task in train.tasks}
    return out


def ranks(table: dict[str, dict[str, float]], tasks: list[Any]) -> dict[str, float]:
    """Mean over tasks of each row's rank by that task's metric (1 = best)."""
    names = list(table)
    total = np.zeros(len(names))
    for task in tasks:
        values = np.array([table[name][task.name] for name in names])
        order = np.argsort(-values if task.kind is tfmtl.TaskKind.BINARY else values, kind="stable")
        rank = np.empty(len(names))
        rank[order] = np.arange(1, len(names) + 1)
        total += rank
    return dict(zip(names, total / len(tasks)))


def quality(name: str, rows: int, epochs: int, seeds: list[int], only: list[str] | None = None) -> None:
    runs: dict[str, list[dict[str, Any]]] = {}
    tasks = None
    for seed in seeds:
        data = datasets(name, rows, seed)
        tasks = list(data[0].tasks)
        grid = {}
        for weight in GRID:  # tuned fixed weights: pick on validation
            grid[weight] = train_one(data, seed, epochs, FixedWeights(), "parameters",
                                     loss_weights={tasks[0].name: 1.0, tasks[1].name: weight})
        chosen = ranks({str(w): r["validation"] for w, r in grid.items()}, tasks)
        best = min(GRID, key=lambda w: chosen[str(w)])
        runs.setdefault("FixedWeights (tuned)", []).append({**grid[best], "choice": best})
        for row, make, level in rows_to_run(only):
            runs.setdefault(row, []).append(train_one(data, seed, epochs, make(), level))
            print(f"  {name} seed {seed}: {row} done", flush=True)
    means = {row: {t.name: float(np.mean([r["test"][t.name] for r in rs])) for t in tasks} for row, rs in runs.items()}
    mean_ranks = ranks(means, tasks)
    label = {t.name: (f"{t.name} AUC" if t.kind is tfmtl.TaskKind.BINARY else f"{t.name} RMSE/noise") for t in tasks}
    print(f"\nDataset {name!r}: {rows or 'all'} rows, {epochs} epochs, seeds {seeds}; test metric, mean (min-max)")
    print(f"| strategy | {' | '.join(label[t.name] for t in tasks)} | mean rank | s/epoch |")
    print("|---|" + "---|" * (len(tasks) + 2))
    for row, rs in sorted(runs.items(), key=lambda item: mean_ranks[item[0]]):
        cells = []
        for t in tasks:
            values = np.array([r["test"][t.name] for r in rs])
            cells.append(f"{values.mean():.4f} ({values.min():.4f}-{values.max():.4f})")
        extra = f" (weights {[r['choice'] for r in rs]})" if row == "FixedWeights (tuned)" else ""
        seconds = np.mean([r["epoch_s"] for r in rs])
        print(f"| {row}{extra} | {' | '.join(cells)} | {mean_ranks[row]:.1f} | {seconds:.1f} |", flush=True)


def speed(rows: int, steps: int, only: list[str] | None = None) -> None:
    import workload  # benchmarks/workload.py

    features, labels, _ = workload.generate(rows, seed=0)
    schema = tfmtl.Schema(
        [tfmtl.Categorical(f"c{i}", embedding_dim=16, id_type="int64", vocabulary=tuple(range(size)))
         for i, size in enumerate(workload.VOCAB_SIZES)]
        + [tfmtl.Numeric(f"n{i}") for i in range(workload.NUM_NUMERIC)]
    ).adapt(features)
    tasks = [tfmtl.Task.binary(name, tower_units=(64,)) for name in workload.TASKS]
    data = tfmtl.data.MultiTaskData(features, labels, schema, tuple(tasks))
    batch = 4096
    results = {}
    for row, make, level in rows_to_run(only):  # FixedWeights first: the baseline
        keras.utils.set_random_seed(0)
        model = tfmtl.models.mmoe(schema, tasks, num_experts=4, expert_units=(64,))
        model.compile(optimizer=keras.optimizers.Adam(1e-3), balancer=make(), gradients_at=level, steps_per_execution=1)
        dataset = data.to_dataset(batch, shuffle=False).repeat()
        timer = _StepTimer()
        model.fit(dataset, steps_per_epoch=steps + 5, epochs=1, verbose=0, callbacks=[timer])
        results.setdefault(row, float(np.median(timer.times[5:])))
        print(f"  speed: {row} {results[row] * 1000:.1f} ms", flush=True)
    base = results["FixedWeights"]
    print(f"\nStep time at batch {batch} (training-throughput workload, MMoE 4x[64]; median of {steps} steps)")
    print("| strategy | ms/step | x FixedWeights |")
    print("|---|---|---|")
    for row, seconds in results.items():
        print(f"| {row} | {seconds * 1000:.1f} | {seconds / base:.2f} |")


class _StepTimer(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.times.append(time.perf_counter() - self._start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quality", action="store_true", help="only the quality tables")
    parser.add_argument("--speed", action="store_true", help="only the step-time table")
    parser.add_argument("--rows", type=int, default=60_000, help="synthetic rows (census: rows read per file)")
    parser.add_argument("--census-rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", default=["scale", "census2"], choices=["scale", "census2"])
    parser.add_argument("--speed-rows", type=int, default=100_000)
    parser.add_argument("--speed-steps", type=int, default=20)
    parser.add_argument("--only", nargs="+", metavar="STRATEGY", choices=[cls.__name__ for cls in STRATEGIES],
                        help="only these strategies' rows, beside FixedWeights and the tuned fixed weights")
    args = parser.parse_args()
    both = not (args.quality or args.speed)
    if args.quality or both:
        for name in args.datasets:
            if name == "census2":
                try:
                    tfmtl.data.census_income(group=2, max_rows=10)
                except FileNotFoundError as error:
                    print(f"census2 skipped: {error}")
                    continue
            quality(name, args.census_rows if name == "census2" else args.rows, args.epochs, args.seeds, args.only)
    if args.speed or both:
        speed(args.speed_rows, args.speed_steps, args.only)


if __name__ == "__main__":
    main()
