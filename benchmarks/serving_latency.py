"""Latency of one signature call on the demo model: TF's C++ Session against the Python Session path.

The demo's model (``tfmtl.demo``: MMoE, 4 experts [128, 64], the synthetic data's nine features,
vocabularies adapted on ``--rows`` rows), trained one epoch and exported with
``tfmtl.serving.export``. ``predict_click`` is called at batch 1 and batch 256 on held-out rows:

* **C++**: ``tfmtl.serving.cpp`` (TensorFlow's C SavedModel loader and ``TF_SessionRun``, no
  Python in the process); the time is in-session, around ``TF_SessionRun`` only;
* **Python Session**: a TF1 ``Session`` over the SignatureDef's tensor names, called through
  ``Session.make_callable`` (TF Serving's path, driven from Python); the time is the callable's
  wall time.

Both use TF's default session threads (TF Serving's defaults: intra- and inter-op parallelism 0).
Each cell: ``--calls`` timed calls after 200 untimed ones. With ``--trace``, the batch-1 graph's
executed ops are counted and the op types that take the most time are listed (step stats from
one traced Python Session run).

    python benchmarks/serving_latency.py                 # 2,000 calls per cell
    python benchmarks/serving_latency.py --calls 500 --rows 20000 --trace
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import tempfile
import time

import numpy as np

import tfmtl
from tfmtl._compat import keras, tf

SIGNATURE = "predict_click"


def _export(rows: int, directory: pathlib.Path) -> tuple[pathlib.Path, dict[str, np.ndarray], np.ndarray]:
    """The demo model, trained one epoch and exported; held-out features and their in-memory clicks."""
    keras.utils.set_random_seed(0)
    data = tfmtl.data.synthetic_recsys(rows, seed=0)
    train, test = data.split(0.8, seed=0)
    schema = train.schema.adapt(train.features, verbose=0)
    model = tfmtl.models.mmoe(schema, data.tasks, num_experts=4, expert_units=(128, 64))
    model.compile()
    model.fit(train.to_dataset(512, shuffle=True, seed=0), epochs=1, verbose=0)
    sample = test.take(slice(0, 256)).features
    expected = model.predict(sample, verbose=0)["click"][:, 0]
    return tfmtl.serving.export(model, directory / "demo"), sample, expected


def _percentiles(microseconds: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(microseconds, 50)) / 1e3, float(np.percentile(microseconds, 99)) / 1e3


def _feed_values(features: dict, keys: list[str]) -> list[np.ndarray]:
    """Feature columns in ``keys`` order, strings as object arrays (what a TF1 Session is fed)."""
    arrays = [np.asarray(features[key]) for key in keys]
    return [array.astype(object) if array.dtype.kind in "US" else array for array in arrays]


def _python_session(path: pathlib.Path, batches: dict[int, dict], calls: int, trace: bool) -> dict:
    results = {}
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        signature = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path)).signature_def[SIGNATURE]
        keys = sorted(signature.inputs)
        feeds = [graph.get_tensor_by_name(signature.inputs[key].name) for key in keys]
        fetch = graph.get_tensor_by_name(signature.outputs["click"].name)
        call = session.make_callable(fetch, feeds)
        for batch, features in batches.items():
            values = _feed_values(features, keys)
            for _ in range(200):
                call(*values)
            times = np.empty(calls)
            for i in range(calls):
                start = time.perf_counter()
                output = call(*values)
                times[i] = (time.perf_counter() - start) * 1e6
            results[batch] = (_percentiles(times), output)
        if trace:
            values = _feed_values(batches[1], keys)
            metadata = tf.compat.v1.RunMetadata()
            options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
            session.run(fetch, dict(zip(feeds, values)), options=options, run_metadata=metadata)
            per_type: dict[str, list[float]] = collections.defaultdict(list)
            for device in metadata.step_stats.dev_stats:
                for node in device.node_stats:
                    op = node.timeline_label.split("(")[0].split(" = ")[-1].strip() or node.node_name
                    per_type[op].append(node.op_end_rel_micros - node.op_start_rel_micros)
            results["trace"] = per_type
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path, sample, expected = _export(args.rows, pathlib.Path(tmp))
        batches = {size: {k: v[:size] for k, v in sample.items()} for size in (1, 256)}
        rows = []
        python = _python_session(path, batches, args.calls, args.trace)
        for size, features in batches.items():
            served, latencies = tfmtl.serving.cpp.run(path, features, [SIGNATURE], repeat=args.calls + 200)
            cpp = _percentiles(latencies[SIGNATURE][200:])
            (py, py_output) = python[size]
            diff = max(np.max(np.abs(served[SIGNATURE]["click"] - expected[:size])),
                       np.max(np.abs(py_output - expected[:size])))
            rows.append((size, *cpp, *py, diff))
    print(f"\n{SIGNATURE} on the demo model, {args.calls:,} calls per cell (ms)")
    print("| batch | C++ p50 | C++ p99 | Python Session p50 | Python Session p99 | max abs diff to the model |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size, c50, c99, p50, p99, diff in rows:
        print(f"| {size} | {c50:.3f} | {c99:.3f} | {p50:.3f} | {p99:.3f} | {diff:.1e} |")
    if args.trace:
        per_type = python["trace"]
        total = sum(sum(v) for v in per_type.values())
        print(f"\nbatch 1, one traced run: {sum(len(v) for v in per_type.values())} ops executed, "
              f"{total:.0f} us summed over ops")
        print("| op | count | us (sum) |")
        print("|---|---:|---:|")
        for op, times in sorted(per_type.items(), key=lambda item: -sum(item[1]))[:15]:
            print(f"| {op} | {len(times)} | {sum(times):.0f} |")


if __name__ == "__main__":
    main()
