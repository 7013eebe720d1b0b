"""Distilling a large multi-task teacher into a small serving student, and what item text vectors do for cold items.

Data: ``synthetic_recsys(2 * --rows, history_length=20, item_text_dim=32)``, split by
``split(0.9, hold_out={"item_id": 0.1})``: 10% of the items are held out of the first part
(and of its histories), so the test part (the second) has cold rows: items the vocabularies
were not adapted on. The first part is cut in two halves: the labelled training rows, and a
transfer set whose labels are dropped (impressions whose outcome is not logged), which only
distillation can use. Every model is compiled with
``cold_start_by="item_id"`` and scored on the test part: click and conversion AUC on all,
cold and warm rows.

Models (LazyAdam 1e-3, batch 512, ``--epochs`` epochs each):

* ``teacher``: MMoE, 8 experts [256, 128], towers [64], embeddings 16, every feature: the
  behaviour sequence ``history`` (pooled by target attention on ``item_id``) and the LLM-style
  ``item_text`` vectors included;
* ``teacher without item_text``: the same without ``item_text`` (the cold-start lift);
* ``teacher without history``: the same without ``history``: in ``synthetic_recsys`` the
  sequence carries a session intent drawn afresh for every row, which no model without the
  sequence can learn, so this row shows how much of the teacher's lead a student without
  ``history`` could reach at all;
* ``student alone``: shared-bottom [64], towers [16], embeddings 8, over the student's
  features (``STUDENT_FEATURES``: no ``history``, no ``item_text``), trained on the labels;
* ``student distilled``: the same student trained with ``tfmtl.training.distill`` from the
  teacher (``--alpha``, ``--temperature``) on the same labelled rows;
* ``student distilled + unlabelled``: the same, on the labelled rows and the transfer set
  (``unlabelled_rows=True``: rows without labels learn from the teacher alone).

Also per model: parameter count, export size (``tfmtl.serving.export``, every signature)
and batch-1 latency of ``predict_click`` (p50 of ``--calls`` calls after 200 untimed): through
the Python Session path (TF1 Session over the SignatureDef) and TF's C++ Session
(``tfmtl.serving.cpp``) where a C++ compiler is found. Latency is measured on seed 0 only.

    python benchmarks/distill.py                          # 3 seeds, 200,000 rows
    python benchmarks/distill.py --rows 30000 --seeds 0 --calls 300   # a quick look
"""

from __future__ import annotations

import argparse
import os
import pathlib
import tempfile
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tfmtl  # noqa: E402
from tfmtl._compat import keras, tf  # noqa: E402

from serving_latency import _percentiles, _python_session  # noqa: E402

tf.get_logger().setLevel("ERROR")

STUDENT_FEATURES = ("user_id", "item_id", "user_segment", "item_category", "device", "hour", "item_price")
MODELS = ("teacher", "teacher without item_text", "teacher without history", "student alone", "student distilled",
          "student distilled + unlabelled")
TASKS = ("click", "conversion")


def data(rows: int, seed: int) -> tuple[Any, Any, Any]:
    """``(train, test, transfer)``: labelled training rows, test rows, unlabelled transfer rows.

    10% of the items are held out of both training parts (and of their histories).
    """
    full = tfmtl.data.synthetic_recsys(2 * rows, history_length=20, item_text_dim=32, seed=seed)
    seen, test = full.split(0.9, seed=seed, hold_out={"item_id": 0.1})
    half = len(seen) // 2
    train, extra = seen.take(slice(0, half)), seen.take(slice(half, None))
    return train, test, (extra.features, {key: np.full_like(value, np.nan) for key, value in extra.labels.items()})


def together(train: Any, transfer: tuple[dict, dict]) -> tuple[dict, dict]:
    return ({k: np.concatenate([train.features[k], transfer[0][k]]) for k in train.features},
            {k: np.concatenate([train.labels[k], transfer[1][k]]) for k in train.labels})


def build(name: str, train: Any) -> Any:
    if name.startswith("teacher"):
        schema = tfmtl.data.synthetic_schema(16, history_length=20, item_text_dim=32)
        dropped = name.removeprefix("teacher without ")
        schema = tfmtl.Schema([spec for spec in schema if spec.name != dropped])
        schema = schema.adapt(train.features, verbose=0)
        return tfmtl.models.mmoe(schema, _tasks(64), num_experts=8, expert_units=(256, 128))
    schema = tfmtl.data.synthetic_schema(8)
    schema = tfmtl.Schema([spec for spec in schema if spec.name in STUDENT_FEATURES]).adapt(train.features, verbose=0)
    return tfmtl.models.shared_bottom(schema, _tasks(16), bottom_units=(64,))


def _tasks(tower: int) -> list[Any]:
    return [tfmtl.Task.binary(name, tower_units=(tower,)) for name in TASKS]


def own(model: Any, features: dict) -> dict:
    return {name: features[name] for name in model.schema.input_specs()}


def export_size(path: pathlib.Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def latency(path: pathlib.Path, features: dict, calls: int) -> tuple[float, float | None]:
    """Batch-1 p50 ms of predict_click: Python Session, C++ Session (None without a compiler)."""
    one = {name: value[:1] for name, value in features.items()}
    (python_ms, _), _ = _python_session(path, {1: one}, calls, False)[1]
    cpp_ms = None
    if tfmtl.serving.cpp.compiler() is not None:
        _, times = tfmtl.serving.cpp.run(path, one, ["predict_click"], repeat=calls + 200)
        cpp_ms = _percentiles(times["predict_click"][200:])[0]
    return python_ms, cpp_ms


def run(rows: int, seed: int, epochs: int, alpha: float, temperature: float, calls: int, log: Any = print) -> dict:
    train, test, transfer = data(rows, seed)
    results: dict[str, dict[str, Any]] = {}
    models = {}
    for name in MODELS:
        keras.utils.set_random_seed(seed)
        model = build(name, train)
        model.compile(cold_start_by="item_id")
        start = time.perf_counter()
        if name.startswith("student distilled"):
            rows_used = together(train, transfer) if name.endswith("unlabelled") else train
            tfmtl.training.distill(models["teacher"], model, rows_used, alpha=alpha, temperature=temperature,
                                   epochs=epochs, batch_size=512, verbose=0)
        else:
            model.fit(own(model, train.features), train.labels, batch_size=512, epochs=epochs, shuffle=True,
                      verbose=0)
        seconds = time.perf_counter() - start
        logs = model.evaluate(own(model, test.features), test.labels, batch_size=4096, verbose=0, return_dict=True)
        results[name] = {"seconds": seconds, "params": model.count_params(),
                         **{f"{task}/{part}": logs[f"{task}/auc{suffix}"] for task in TASKS
                            for part, suffix in (("all", ""), ("cold", "_cold"), ("warm", "_warm"))}}
        models[name] = model
        log(f"seed {seed} {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in results[name].items()
                                                  if "/" in k) + f" ({seconds:.0f} s)")
    results["transfer rows"] = {"value": len(transfer[0]["item_id"])}
    results["train rows"] = {"value": len(train)}
    cold_share = float(np.mean(~np.isin(test.features["item_id"], models["teacher"].schema["item_id"].vocabulary)))
    results["cold row share"] = {"value": cold_share}
    if calls:
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("teacher", "student distilled"):
                path = tfmtl.serving.export(models[name], pathlib.Path(tmp) / name.replace(" ", "_"))
                results[name]["export MiB"] = export_size(path) / 2 ** 20
                results[name]["python ms"], results[name]["cpp ms"] = latency(path, own(models[name], test.features),
                                                                              calls)
    return results


def gap_closed(runs: list[dict], task: str, name: str, reference: str = "teacher") -> str:
    """Share of the student-alone-to-``reference`` AUC gap that ``name`` closes: of the mean AUCs, and per seed."""
    auc = {key: np.array([r[key][f"{task}/all"] for r in runs]) for key in (reference, "student alone", name)}
    gap = auc[reference] - auc["student alone"]
    closed = (auc[name] - auc["student alone"]) / np.where(np.abs(gap) > 1e-9, gap, np.nan)
    mean_gap = float(np.mean(gap))
    per_seed = ", ".join(f"{c:.0%}" for c in closed)
    return f"{task} {np.mean(auc[name] - auc['student alone']) / mean_gap:.0%} of {mean_gap:+.4f} (per seed {per_seed})"


def len_train(runs: list[dict]) -> int:
    return int(runs[0]["train rows"]["value"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="about the labelled rows; as many more are drawn")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--alpha", type=float, default=0.2, help="hard labels' share of the distilled loss")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--calls", type=int, default=2_000, help="timed batch-1 calls (0: no export, no latency)")
    args = parser.parse_args()
    runs = [run(args.rows, seed, args.epochs, args.alpha, args.temperature, args.calls if seed == args.seeds[0] else 0)
            for seed in args.seeds]

    def cell(name: str, key: str) -> str:
        values = [r[name][key] for r in runs]
        mean = np.mean(values)
        return f"{mean:.4f}" if len(values) == 1 else f"{mean:.4f} ± {np.std(values):.4f}"

    print(f"\n{len_train(runs):,} labelled training rows (10% of items held out), {args.epochs} epochs, seeds {args.seeds}; "
          f"cold rows {np.mean([r['cold row share']['value'] for r in runs]):.1%} of the test part; "
          f"transfer set {runs[0]['transfer rows']['value']:,} unlabelled rows; "
          f"distilled with alpha {args.alpha}, temperature {args.temperature}; AUC mean ± std over seeds")
    print("| model | features | click AUC | click cold | click warm | conversion AUC | conversion cold | "
          "conversion warm | parameters | train s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in MODELS:
        features = ("all 11" if name == "teacher" else "all but " + name.removeprefix("teacher without ")
                    if name.startswith("teacher")
                    else "the 7 student features" if name != "student alone" else ", ".join(STUDENT_FEATURES))
        print(f"| {name} | {features} | " + " | ".join(cell(name, f"{t}/{p}") for t in TASKS
                                                      for p in ("all", "cold", "warm"))
              + f" | {runs[0][name]['params']:,} | {np.mean([r[name]['seconds'] for r in runs]):.0f} |")
    for reference in ("teacher", "teacher without history"):
        for name in ("student distilled", "student distilled + unlabelled"):
            print(f"{name}: share of the student-alone-to-{reference} AUC gap closed: "
                  + ", ".join(gap_closed(runs, task, name, reference) for task in TASKS))
    lift = {task: [r["teacher"][f"{task}/cold"] - r["teacher without item_text"][f"{task}/cold"] for r in runs]
            for task in TASKS}
    print("Item text on cold items (teacher minus teacher without item_text, cold-row AUC): "
          + ", ".join(f"{task} {np.mean(v):+.4f} (per seed {', '.join(f'{x:+.4f}' for x in v)})"
                      for task, v in lift.items()))
    if args.calls:
        first = runs[0]
        print(f"\nServing (seed {args.seeds[0]}, predict_click, batch 1, p50 of {args.calls:,} calls)")
        print("| model | parameters | export MiB | Python Session ms | C++ Session ms |")
        print("|---|---:|---:|---:|---:|")
        for name in ("teacher", "student distilled"):
            r = first[name]
            cpp = "n/a" if r["cpp ms"] is None else f"{r['cpp ms']:.3f}"
            print(f"| {name} | {r['params']:,} | {r['export MiB']:.1f} | {r['python ms']:.3f} | {cpp} |")
        t, s = first["teacher"], first["student distilled"]
        ratio = "" if s["cpp ms"] is None else f", C++ latency {t['cpp ms'] / s['cpp ms']:.1f}x"
        print(f"Student vs teacher: {t['params'] / s['params']:.1f}x fewer parameters, "
              f"Python latency {t['python ms'] / s['python ms']:.1f}x lower{ratio}")


if __name__ == "__main__":
    main()
