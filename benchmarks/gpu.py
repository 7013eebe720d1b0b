"""GPU training throughput of the benchmark MMoE, and which ops of its train step run on the host.

One call, sized for about 8 minutes on one GPU (``--budget-s`` stops it early):

* **Throughput.** The ``train_throughput.py`` workload (26 categorical features with
  vocabularies of 10 to 100,000 ids, 13 numeric, 2 binary tasks; MMoE with 4 experts
  [256, 128], towers [64], embedding 16), trained with the default ``compile()``
  (LazyAdam, 16 steps per execution; under ``mixed_float16`` Keras wraps it in a
  ``LossScaleOptimizer``) at every batch size, for ``float32`` and ``mixed_float16``, each
  with ``compile(jit_compile=...)`` off and on. Batches are preprocessed in ``tf.data``
  (``to_dataset``), cached in memory and prefetched. One model per (precision, XLA);
  each batch size gets a warm-up fit of one execution (tracing, XLA compilation), then
  ``--epochs`` timed epochs over the same rows (every batch full, so nothing retraces).
  Epochs are timed from their first step to their synchronised end (iterator set-up
  excluded); examples/s and ms/step come from the timed epochs' total. A configuration
  that fails (e.g. out of memory) records its error and the run goes on.
* **Placement** (GPU only; without one the section says "no GPU" and only checks the
  parser on the CPU graph). The placed, partitioned graph of the float32 + XLA train
  function, as TensorFlow's function runtime instantiates it (eager graph collection,
  during that configuration's first warm-up, at the first batch size), is read back; every node placed on a
  CPU device is listed with the static size of its tensors (unknown batch dimensions
  taken as the batch size). Iterator, shape, loop-control and argument/constant nodes are
  expected there and are counted apart; any other host node on a tensor of more than
  ``--flag-elements`` elements, or a host ``_Recv`` of such a tensor from the GPU, is flagged.

    python benchmarks/gpu.py                              # 12 configurations, JSON + markdown
    python benchmarks/gpu.py --out-md benchmarks/gpu_results.md
    python benchmarks/gpu.py --cpu-smoke --out-json /tmp/gpu.json   # CPU, under a minute
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import gc
import json
import os
import pathlib
import platform
import re
import subprocess
import sys
import time
from typing import Any


if "--cpu-smoke" in sys.argv[1:]:
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # before TensorFlow loads: the smoke run is a CPU run

import tfmtl  # noqa: E402  (first: it selects tf_keras and keeps TensorFlow's start-up noise off the console)
from tfmtl._compat import keras, tf  # noqa: E402

from train_throughput import make_workload  # noqa: E402
from workload import NUM_NUMERIC, VOCAB_SIZES  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
PRECISIONS = ("float32", "mixed_float16")
MARKDOWN_UNFLAGGED_ROWS = 60

# Host ops that are expected in a GPU train step: they move no batch-sized data, or must live on the host.
EXPECTED = {
    "iterator": {
        "IteratorGetNext", "IteratorGetNextSync", "IteratorGetNextAsOptional", "OptionalGetValue",
        "OptionalHasValue", "OptionalNone", "OptionalFromValue", "MakeIterator", "IteratorV2", "AnonymousIteratorV2",
        "AnonymousIteratorV3", "DeleteIterator", "IteratorToStringHandle", "IteratorFromStringHandleV2",
    },
    "shape": {"Shape", "ShapeN", "Size", "Rank", "BroadcastArgs", "BroadcastGradientArgs", "TensorListLength"},
    "loop and control": {
        "Enter", "Exit", "Merge", "Switch", "NextIteration", "LoopCond", "ControlTrigger", "NoOp", "RefEnter",
        "RefExit", "RefMerge", "RefSwitch", "RefNextIteration", "_SwitchN", "If", "StatelessIf", "While",
        "StatelessWhile", "Case", "StatelessCase",
    },
    "argument, constant, transfer": {
        "_Arg", "_Retval", "_DeviceArg", "_DeviceRetval", "Const", "HostConst", "_Send", "_Recv", "_HostSend",
        "_HostRecv", "VarHandleOp", "Placeholder",
    },
}
EXPECTED_CATEGORY = {op: category for category, ops in EXPECTED.items() for op in ops}


@dataclasses.dataclass
class Settings:
    mode: str
    rows: int
    batches: list[int]
    epochs: int
    budget_s: float
    flag_elements: int
    full_placement: bool = False  # the GPU report even on a CPU-only machine (every op is then a host op)


# -- environment ---------------------------------------------------------------------------------------------


def device_info() -> dict[str, Any]:
    gpus = tf.config.get_visible_devices("GPU")
    info: dict[str, Any] = {
        "gpu": bool(gpus), "gpu_count": len(gpus), "gpu_name": None, "compute_capability": None,
        "cpu": _cpu_name(), "cpu_cores": os.cpu_count(), "machine": platform.machine(),
    }
    if gpus:
        try:
            details = tf.config.experimental.get_device_details(gpus[0])
            info["gpu_name"] = details.get("device_name")
            capability = details.get("compute_capability")
            info["compute_capability"] = ".".join(map(str, capability)) if capability else None
        except Exception:  # noqa: BLE001 - fall back to nvidia-smi
            pass
        if not info["gpu_name"]:
            info["gpu_name"] = _nvidia_smi_name()
    return info


def _cpu_name() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_smi_name() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


# -- workload ------------------------------------------------------------------------------------------------


def make_data(rows: int) -> tfmtl.data.MultiTaskData:
    """``train_throughput.py``'s workload with an adapted schema, so ``to_dataset`` preprocesses in tf.data."""
    data = make_workload(rows)
    return dataclasses.replace(data, schema=data.schema.adapt(data.features), oracle=None)


def cached_dataset(data: tfmtl.data.MultiTaskData, batch: int) -> tuple[tf.data.Dataset, int]:
    """Full batches only (no partial last batch, no retrace), preprocessed, cached in memory and materialised."""
    steps = len(data) // batch
    if steps < 1:
        raise ValueError(f"{len(data)} rows are fewer than one batch of {batch}")
    dataset = data.take(slice(0, steps * batch)).to_dataset(batch).cache().prefetch(tf.data.AUTOTUNE)
    for _ in dataset:
        pass
    return dataset, steps


class EpochTimer(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def build_model(schema: tfmtl.Schema, tasks, xla: bool) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = tfmtl.models.mmoe(schema, tasks, num_experts=4, expert_units=(256, 128))
    model.compile(jit_compile=xla)  # the default: LazyAdam(1e-3), 16 steps per execution
    # Slots made now, not in the first trace: a first trace that creates variables is traced again.
    model.optimizer.build(model.trainable_variables)
    return model


def _error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    text = re.sub(r"\s+", " ", text)
    return text[:600]


# -- placement -----------------------------------------------------------------------------------------------


def _graph_tensors(graph: Any, table: dict[str, list[tuple[str, list, list]]], seen: set[str]) -> None:
    """Op name -> [(op type, input shapes, output shapes)] over ``graph`` and every function it calls."""
    def shapes(tensors: Any) -> list:
        return [t.shape.as_list() if t.shape.rank is not None else None for t in tensors]

    for op in graph.get_operations():
        table[op.name].append((op.type, shapes(op.inputs), shapes(op.outputs)))
    for name, function in list(getattr(graph, "_functions", {}).items()):
        if name in seen:
            continue
        seen.add(name)
        inner = getattr(function, "graph", None)
        if inner is not None:
            _graph_tensors(inner, table, seen)


def _elements(shapes: list, batch: int) -> int | None:
    """The largest element count among ``shapes``; unknown dimensions taken as ``batch``."""
    best = None
    for shape in shapes:
        if shape is None:
            continue
        count = 1
        for dim in shape:
            count *= batch if dim is None else dim
        best = count if best is None else max(best, count)
    return best


def _lookup(table: dict, node_name: str, op_type: str | None) -> tuple | None:
    """The traced op behind a partitioned node: the longest suffix of its name that the traced graphs have."""
    parts = node_name.split("/")
    for start in range(len(parts)):
        candidates = table.get("/".join(parts[start:]))
        if not candidates:
            continue
        same_type = [c for c in candidates if c[0] == op_type] if op_type else candidates
        if same_type:
            return max(same_type, key=lambda c: _elements(c[1] + c[2], 1) or 0)
        if op_type is None:
            return candidates[0]
    return None


def host_placement(function_graphs: list, concrete_graph: Any, batch: int, flag_elements: int) -> dict[str, Any]:
    """Nodes of the largest collected function (the train function) placed on a CPU device, with sizes."""
    if not function_graphs:
        raise RuntimeError("no function graph was collected (graph collection saw no function instantiation)")
    sizes = lambda fg: sum(len(p.node) for p in fg.partition_graphs)  # noqa: E731
    train = max(function_graphs, key=sizes)
    table: dict[str, list] = collections.defaultdict(list)
    _graph_tensors(concrete_graph, table, set())
    by_device: collections.Counter = collections.Counter()
    expected: dict[str, collections.Counter] = {category: collections.Counter() for category in EXPECTED}
    host, sized = [], 0
    for partition in train.partition_graphs:
        for node in partition.node:
            device = node.device or "(unplaced)"
            by_device[_short_device(device)] += 1
            is_host = "CPU" in device.upper() or not device
            traced = _lookup(table, node.name, node.op)
            in_elements = _elements(traced[1], batch) if traced else None
            out_elements = _elements(traced[2], batch) if traced else None
            if node.op in ("_Recv", "_HostRecv") and "tensor_name" in node.attr:
                source = node.attr["tensor_name"].s.decode()
                source = re.sub(r"^edge_\d+_", "", source)
                sender = node.attr["send_device"].s.decode() if "send_device" in node.attr else ""
                traced_source = _lookup(table, source, None)
                out_elements = _elements(traced_source[2], batch) if traced_source else out_elements
                if is_host and "GPU" in sender.upper():
                    entry = _host_entry(node, device, in_elements, out_elements, flag_elements)
                    entry["from"] = f"{_short_device(sender)}: {source}"
                    host.append(entry)
                    sized += out_elements is not None
                    continue
            if not is_host:
                continue
            category = EXPECTED_CATEGORY.get(node.op)
            if category is not None:
                expected[category][node.op] += 1
                continue
            host.append(_host_entry(node, device, in_elements, out_elements, flag_elements))
            sized += traced is not None
    host.sort(key=lambda e: (-(max(e["in_elements"] or 0, e["out_elements"] or 0)), e["op"], e["name"]))
    return {
        "function_graphs": len(function_graphs),
        "train_function_nodes": sizes(train),
        "nodes_by_device": dict(by_device),
        "batch_for_sizes": batch,
        "flag_elements": flag_elements,
        "host_ops": host,
        "host_ops_with_size": sized,
        "flagged": [e for e in host if e["flagged"]],
        "expected_host_ops": {category: dict(counter) for category, counter in expected.items()},
    }


def _host_entry(node: Any, device: str, in_elements: int | None, out_elements: int | None, flag: int) -> dict:
    largest = max(in_elements or 0, out_elements or 0)
    return {"name": node.name, "op": node.op, "device": _short_device(device), "in_elements": in_elements,
            "out_elements": out_elements, "flagged": largest > flag}


def _short_device(device: str) -> str:
    match = re.search(r"device:([A-Za-z_]+:\d+)", device)
    return match.group(1) if match else device


class GraphCollection:
    """Collects the placed, partitioned graphs of the functions instantiated inside the block."""

    def __init__(self) -> None:
        from tensorflow.python.eager import context

        self.context = context.context()
        self.function_graphs: list = []

    def __enter__(self) -> "GraphCollection":
        self.context.enable_graph_collection()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.function_graphs = list(self.context.export_run_metadata().function_graphs)
        finally:
            self.context.disable_graph_collection()


# -- the run -------------------------------------------------------------------------------------------------


def run(settings: Settings, log=print) -> dict[str, Any]:
    started = time.perf_counter()
    device = device_info()
    data = make_data(settings.rows)
    log(f"TensorFlow {tf.__version__}, tf_keras {keras.__version__}, "
        f"{'GPU: ' + str(device['gpu_name']) if device['gpu'] else 'no GPU'}; {len(data):,} rows "
        f"({time.perf_counter() - started:.1f}s to generate and adapt)")
    datasets: dict[int, tuple[tf.data.Dataset, int] | str] = {}
    for batch in settings.batches:
        try:
            datasets[batch] = cached_dataset(data, batch)
        except Exception as exc:  # noqa: BLE001 - recorded per configuration
            datasets[batch] = _error(exc)
    combos = [(precision, xla) for precision in PRECISIONS for xla in (False, True)]
    total = len(combos) * len(settings.batches)
    results: list[dict[str, Any]] = []
    placement: dict[str, Any] = {"status": "not run"}
    for precision, xla in combos:
        model, model_error = None, None
        placement_here = precision == "float32" and xla
        keras.mixed_precision.set_global_policy(precision)
        try:
            try:
                model = build_model(data.schema, data.tasks, xla)
            except Exception as exc:  # noqa: BLE001
                model_error = _error(exc)
            for batch in settings.batches:
                row = {"batch": batch, "precision": precision, "xla": xla, "examples_per_s": None,
                       "ms_per_step": None, "steps_per_epoch": None, "timed_epochs": settings.epochs,
                       "epoch_s": [], "warmup_s": None, "optimizer": None, "error": None}
                elapsed = time.perf_counter() - started
                prepared = datasets[batch]
                if elapsed > settings.budget_s:
                    row["error"] = f"skipped: {elapsed:.0f}s spent, over --budget-s {settings.budget_s:.0f}"
                elif model_error or isinstance(prepared, str):
                    row["error"] = model_error or prepared
                else:
                    dataset, steps = prepared
                    collect = placement_here and placement.get("status") == "not run"
                    try:
                        row.update(time_configuration(model, dataset, steps, settings.epochs, collect, placement,
                                                      batch, settings.flag_elements,
                                                      device["gpu"] or settings.full_placement))
                    except Exception as exc:  # noqa: BLE001 - e.g. ResourceExhaustedError
                        row["error"] = _error(exc)
                results.append(row)
                log(_progress(len(results), total, row))
        finally:
            keras.mixed_precision.set_global_policy("float32")
            del model
            keras.backend.clear_session()
            gc.collect()
    return {
        "script": "benchmarks/gpu.py",
        "mode": settings.mode,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "tensorflow": tf.__version__,
        "tf_keras": keras.__version__,
        "tfmtl": getattr(tfmtl, "__version__", None),
        "python": platform.python_version(),
        "device": device,
        "workload": {
            "rows": len(data), "categorical": len(VOCAB_SIZES), "numeric": NUM_NUMERIC,
            "embedding_rows": int(VOCAB_SIZES.sum()), "embedding_dim": 16, "experts": 4,
            "expert_units": [256, 128], "tower_units": [64], "tasks": [task.name for task in data.tasks],
            "compile": "default (LazyAdam 1e-3, steps_per_execution 16)", "timed_epochs": settings.epochs,
        },
        "configurations": results,
        "placement": placement,
        "total_s": round(time.perf_counter() - started, 1),
    }


def time_configuration(model, dataset, steps: int, epochs: int, collect: bool, placement: dict, batch: int,
                       flag_elements: int, has_gpu: bool) -> dict[str, Any]:
    spe = int(model._steps_per_execution.numpy()) if getattr(model, "_steps_per_execution", None) is not None else 1
    warm_started = time.perf_counter()
    if collect:
        with GraphCollection() as collection:
            model.fit(dataset, epochs=1, steps_per_epoch=min(steps, spe), verbose=0)
    else:
        model.fit(dataset, epochs=1, steps_per_epoch=min(steps, spe), verbose=0)
    warmup = time.perf_counter() - warm_started
    if collect:
        analysis_started = time.perf_counter()
        placement.clear()
        placement.update(analyse_placement(model, dataset, collection.function_graphs, batch, flag_elements, has_gpu))
        placement["analysis_s"] = round(time.perf_counter() - analysis_started, 2)
    timer = EpochTimer()
    fit_started = time.perf_counter()
    model.fit(dataset, epochs=epochs, verbose=0, callbacks=[timer])
    timed = time.perf_counter() - fit_started
    stepping = sum(timer.seconds)  # first step to the synchronised end of each epoch, iterator set-up excluded
    return {
        "examples_per_s": epochs * steps * batch / stepping,
        "ms_per_step": 1000 * stepping / (epochs * steps),
        "steps_per_epoch": steps,
        "timed_s": round(timed, 3),
        "epoch_s": [round(s, 4) for s in timer.seconds],
        "warmup_s": round(warmup, 2),
        "optimizer": type(model.optimizer).__name__,
    }


def analyse_placement(model, dataset, function_graphs, batch: int, flag_elements: int, has_gpu: bool) -> dict:
    """The placement section: on a GPU the host ops; on a CPU-only machine "no GPU" and a parser check."""
    base: dict[str, Any] = {"configuration": {"batch": batch, "precision": "float32", "xla": True}}
    try:
        concrete = model.train_function.get_concrete_function(iter(dataset))
        report = host_placement(function_graphs, concrete.graph, batch, flag_elements)
    except Exception as exc:  # noqa: BLE001 - the throughput numbers still count
        return {**base, "status": "no GPU" if not has_gpu else "error", "error": _error(exc)}
    if not has_gpu:
        return {**base, "status": "no GPU", "parser_check": {
            "train_function_nodes": report["train_function_nodes"], "nodes_by_device": report["nodes_by_device"],
            "host_ops_outside_expected": len(report["host_ops"]), "with_size": report["host_ops_with_size"]}}
    return {**base, "status": "ok", **report}


def _progress(index: int, total: int, row: dict) -> str:
    head = f"[{index}/{total}] batch {row['batch']:>6} {row['precision']:<13} xla {'on ' if row['xla'] else 'off'}"
    if row["error"]:
        return f"{head}: ERROR {row['error'][:160]}"
    return (f"{head}: {row['examples_per_s']:>12,.0f} examples/s, {row['ms_per_step']:8.2f} ms/step "
            f"({row['steps_per_epoch']} steps x {row['timed_epochs']} epochs in {row['timed_s']:.1f}s; "
            f"warm-up {row['warmup_s']:.1f}s)")


# -- output --------------------------------------------------------------------------------------------------


def markdown(result: dict[str, Any]) -> str:
    device = result["device"]
    gpu = device["gpu_name"] if device["gpu"] else "none"
    if device["gpu"] and device.get("compute_capability"):
        gpu += f" (compute capability {device['compute_capability']})"
    lines = [
        f"# tfmtl GPU benchmark ({result['mode']})",
        "",
        f"GPU: {gpu}; CPU: {device['cpu']}, {device['cpu_cores']} cores; TensorFlow {result['tensorflow']}, "
        f"tf_keras {result['tf_keras']}; {result['date']}; {result['workload']['rows']:,} rows, "
        f"{result['workload']['timed_epochs']} timed epochs per configuration; total {result['total_s']:.0f}s.",
        "",
        "| batch | precision | XLA | train examples/s | ms/step | error |",
        "|---:|---|---|---:|---:|---|",
    ]
    for row in result["configurations"]:
        speed = f"{row['examples_per_s']:,.0f}" if row["examples_per_s"] else "-"
        step = f"{row['ms_per_step']:.2f}" if row["ms_per_step"] else "-"
        error = (row["error"] or "").replace("|", "\\|")[:200]
        lines.append(f"| {row['batch']} | {row['precision']} | {'on' if row['xla'] else 'off'} | {speed} | {step} | "
                     f"{error} |")
    lines += ["", *placement_markdown(result["placement"])]
    return "\n".join(lines) + "\n"


def placement_markdown(placement: dict[str, Any]) -> list[str]:
    config = placement.get("configuration", {})
    title = (f"## Host (CPU) ops of the train step (batch {config.get('batch')}, float32, XLA on)"
             if config else "## Host (CPU) ops of the train step")
    status = placement.get("status")
    if status != "ok":
        line = f"{title}: {status}"
        check = placement.get("parser_check")
        if check:
            line += (f" (parser checked on the CPU graph: {check['train_function_nodes']} nodes, "
                     f"{check['with_size']} of {check['host_ops_outside_expected']} non-plumbing ops sized)")
        if placement.get("error"):
            line += f"; error: {placement['error']}"
        return [line + "."]
    lines = [title, "",
             f"Train function: {placement['train_function_nodes']} nodes by device "
             f"{placement['nodes_by_device']}; sizes are static element counts with the batch dimension "
             f"taken as {placement['batch_for_sizes']}; flagged above {placement['flag_elements']} elements.", ""]
    flagged = placement["flagged"]
    lines.append(f"**Flagged** ({len(flagged)}): " + ("none" if not flagged else ""))
    rows = placement["host_ops"]  # flagged first (largest tensors first); all of them are in the JSON
    unflagged = [e for e in rows if not e["flagged"]]
    shown = [e for e in rows if e["flagged"]] + unflagged[:MARKDOWN_UNFLAGGED_ROWS]
    if shown:
        lines += ["", "| flagged | op | node | device | input elements | output elements | from |",
                  "|---|---|---|---|---:|---:|---|"]
        for e in shown:
            lines.append(f"| {'**yes**' if e['flagged'] else ''} | {e['op']} | `{e['name']}` | {e['device']} | "
                         f"{_count(e['in_elements'])} | {_count(e['out_elements'])} | {e.get('from', '')} |")
    if len(shown) < len(rows):
        rest = collections.Counter(e["op"] for e in unflagged[MARKDOWN_UNFLAGGED_ROWS:])
        lines += ["", f"{len(rows) - len(shown)} more unflagged host ops (in the JSON): "
                  + ", ".join(f"{op} {n}" for op, n in rest.most_common())]
    lines += ["", "Expected host ops (counts): " + "; ".join(
        f"{category}: " + (", ".join(f"{op} {n}" for op, n in sorted(ops.items())) or "none")
        for category, ops in placement["expected_host_ops"].items())]
    return lines


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="tiny CPU run (8,192 rows, batches 256 and 512, one timed epoch): checks the script")
    parser.add_argument("--rows", type=int, help="training rows (default 16 x the largest batch; smoke 8,192)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="default 4096 16384 65536 (smoke 256 512)")
    parser.add_argument("--epochs", type=int, help="timed epochs per configuration (default 3; smoke 1)")
    parser.add_argument("--budget-s", type=float, default=400.0,
                        help="configurations not started after this many seconds are recorded as skipped")
    parser.add_argument("--flag-elements", type=int, default=2048,
                        help="flag host ops on tensors with more elements than this")
    parser.add_argument("--full-placement", action="store_true", help=argparse.SUPPRESS)  # check the report on CPU
    parser.add_argument("--out-json", default=str(HERE / "gpu_results.json"))
    parser.add_argument("--out-md", help="markdown table to this file (default: stdout)")
    args = parser.parse_args(argv)
    tf.get_logger().setLevel("ERROR")  # e.g. the mixed-precision "no GPU" warning in the smoke run
    if args.cpu_smoke:
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:  # already initialised; CUDA_VISIBLE_DEVICES=-1 was set before the import
            pass
    batches = args.batch_sizes or ([256, 512] if args.cpu_smoke else [4096, 16384, 65536])
    rows = args.rows or (8192 if args.cpu_smoke else 16 * max(batches))
    settings = Settings(mode="cpu-smoke" if args.cpu_smoke else "gpu", rows=rows, batches=batches,
                        epochs=args.epochs or (1 if args.cpu_smoke else 3), budget_s=args.budget_s,
                        flag_elements=args.flag_elements, full_placement=args.full_placement)
    result = run(settings, log=lambda line: print(line, flush=True))
    out_json = pathlib.Path(args.out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    if args.out_md:
        pathlib.Path(args.out_md).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out_md).write_text(table)
        print(f"wrote {out_json} and {args.out_md} ({result['total_s']:.0f}s)")
    else:
        print()
        print(table, end="")
        print(f"wrote {out_json} ({result['total_s']:.0f}s)")


if __name__ == "__main__":
    sys.exit(main())
