"""The main job, end to end: synthetic data -> MMoE -> weighted training -> export -> serve check."""

from __future__ import annotations

import dataclasses
import pathlib
import sys
import time
from typing import Callable

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.data.stats import roc_auc
from tfmtl.data.synthetic import synthetic_recsys
from tfmtl.models.mmoe import mmoe
from tfmtl.serving import cpp
from tfmtl.serving.audit import audit_export
from tfmtl.serving.online.client import Client
from tfmtl.serving.config import write_configs
from tfmtl.serving.export import export
from tfmtl.serving.online.server import DevServer
from tfmtl.serving.signatures import DEFAULT_SIGNATURE, task_signature_name
from tfmtl.serving.reference import predict_in_fresh_process
from tfmtl.tasks.task import Task

#: Largest |in-memory - served| difference accepted as "the same prediction".
TOLERANCE = 1e-5


@dataclasses.dataclass
class DemoResult:
    """What :func:`run_demo` measured."""

    metrics: dict[str, float]
    oracle_auc: dict[str, float]
    export_path: pathlib.Path
    max_abs_diff: dict[str, float]
    audit_ok: bool = True

    @property
    def serving_matches(self) -> bool:
        return self.audit_ok and all(diff <= TOLERANCE for diff in self.max_abs_diff.values())


def run_demo(
    *,
    rows: int = 100_000,
    epochs: int = 2,
    batch_size: int = 512,
    export_dir: str = "export/demo",
    task_relatedness: float = 0.7,
    seed: int = 0,
    verbose: int | str | None = None,
    log: Callable[[str], None] = print,
) -> DemoResult:
    """Train an MMoE on the built-in synthetic data, evaluate, export and serve it.

    The export is audited for ops a stock TF Serving lacks, TF Serving's
    ``models.config`` and ``batching.config`` are written beside it, and it is
    called (``serving_default`` and every ``predict_<task>``) in a separate
    process that imports only TensorFlow, through TF Serving's own path (a TF1
    Session over the SignatureDefs), in TensorFlow's C++ SavedModel loader and
    Session when a C++ compiler is present, and over TF Serving's gRPC and REST APIs
    (tfmtl's development server); every answer is compared with the in-memory
    model.

    Example:

    >>> import tempfile, tfmtl
    >>> result = tfmtl.demo.run_demo(rows=3000, epochs=1, export_dir=tempfile.mkdtemp(),
    ...                              verbose=0, log=lambda line: None)  # doctest: +SKIP
    >>> result.serving_matches  # doctest: +SKIP
    True
    """
    if verbose is None:  # progress bar on a terminal, one line per epoch in logs
        verbose = 1 if sys.stdout.isatty() else 2
    keras.utils.set_random_seed(seed)
    log(f"[1/6] generating {rows:,} synthetic impressions (task relatedness {task_relatedness})")
    data = synthetic_recsys(rows, task_relatedness=task_relatedness, seed=seed)
    train, test = data.split(0.8, seed=seed)
    tasks = (Task.binary("click", loss_weight=1.0), Task.binary("conversion", loss_weight=2.0))
    train.tasks = test.tasks = tasks
    rates = ", ".join(f"{task.name} rate {train.labels[task.label_key].mean():.3f}" for task in tasks)
    log(f"      {len(train):,} train / {len(test):,} test rows; {rates}")

    log("[2/6] learning vocabularies and statistics (one pass), building the MMoE")
    schema = train.schema.adapt(train.features, verbose=verbose)
    model = mmoe(schema, tasks, num_experts=4, expert_units=(128, 64))
    model.compile()  # the default: LazyAdam, 16 steps per execution
    weights = ", ".join(f"{task.name}={task.loss_weight}" for task in tasks)
    log(f"      loss weights: {weights}; {model.count_params():,} parameters")

    log(f"[3/6] training {epochs} epoch(s) at batch {batch_size}")
    started = time.perf_counter()
    model.fit(train.to_dataset(batch_size, shuffle=True, seed=seed), epochs=epochs, verbose=verbose)
    log(f"      {epochs * len(train) / (time.perf_counter() - started):,.0f} examples/s")
    metrics = model.evaluate(test.to_dataset(4096), return_dict=True, verbose=0)
    oracle = {task.name: roc_auc(test.labels[task.label_key], test.oracle[task.name]) for task in tasks}
    log("      task          AUC     logloss   oracle AUC (ground truth)")
    for task in tasks:
        log(
            f"      {task.name:<12} {metrics[f'{task.name}/auc']:.4f}   {metrics[f'{task.name}/logloss']:.4f}"
            f"    {oracle[task.name]:.4f}"
        )

    log(f"[4/6] exporting a SavedModel for TF Serving under {export_dir}/")
    sample = test.take(slice(0, 512))
    path = export(model, export_dir, warmup_features=sample.take(slice(0, 8)).features, log=log)
    audit = audit_export(path)
    config_dir = pathlib.Path(export_dir).resolve().parent
    model_name = pathlib.Path(export_dir).name
    configs = write_configs(config_dir, {model_name: pathlib.Path(export_dir).resolve()})
    log(f"      {path}: signatures {', '.join(tf.saved_model.load(str(path)).signatures)}")
    log(f"      op audit: {len(audit.ops)} ops, all in stock TensorFlow Serving" if audit.ok else f"      op audit: {audit.problems()}")
    log(f"      TF Serving configs: {configs[0]}, {configs[1]}")

    log("[5/6] serving the export in a fresh process (TensorFlow only, TF Serving's Session path)"
        + ("; and in TensorFlow's C++ SavedModel loader and Session" if cpp.compiler() else ""))
    signatures = [DEFAULT_SIGNATURE] + [task_signature_name(task.name) for task in tasks]
    expected = {task: values[:, 0] for task, values in model.predict(sample.features, batch_size=512, verbose=0).items()}
    diffs = {}
    for mode, label in (("session", "fresh process"), ("cpp", "C++ session")):
        if mode == "cpp" and not cpp.compiler():  # no C++ compiler on this machine: the Python paths only
            continue
        for signature, outputs in predict_in_fresh_process(path, sample.features, signatures, mode=mode).items():
            for task, values in outputs.items():
                diffs[f"{label} {signature}/{task}"] = float(np.max(np.abs(values - expected[task])))

    log("[6/6] calling it through TF Serving's gRPC and REST APIs (tfmtl's development server on loopback)")
    with DevServer.for_model(model_name, export_dir, port=0, rest_port=0) as server:
        client = Client(model_name, grpc_target=server.grpc_target, rest_url=server.rest_url)
        for protocol in ("grpc", "rest"):
            for task, values in client.predict(sample.features, protocol=protocol).items():
                diffs[f"{protocol} serving_default/{task}"] = float(np.max(np.abs(values - expected[task])))
            for task in tasks:
                values = client.predict_task(task.name, sample.features, protocol=protocol)
                diffs[f"{protocol} {task_signature_name(task.name)}/{task.name}"] = float(
                    np.max(np.abs(values - expected[task.name]))
                )
        client.close()
    for key, diff in diffs.items():
        verdict = "same" if diff <= TOLERANCE else "DIFFERENT"
        log(f"      {key:<44} max |served - in-memory| = {diff:.2e}  {verdict}")
    result = DemoResult(metrics=metrics, oracle_auc=oracle, export_path=path, max_abs_diff=diffs, audit_ok=audit.ok)
    log("done: the export answers exactly as the in-memory model" if result.serving_matches else "FAILED: see above")
    return result
