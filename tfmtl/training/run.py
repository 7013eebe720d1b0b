"""What ``tfmtl train|evaluate|export config.toml`` do, as functions."""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any, Callable

from tfmtl._compat import keras
from tfmtl.features.categorical import Categorical
from tfmtl.features.preprocessing import schema_fingerprint
from tfmtl.features.schema import Schema
from tfmtl.serving.export import export
from tfmtl.training.config import RunConfig, load_config
from tfmtl.training.fit import fit
from tfmtl.training.selection import CombinedMetric
from tfmtl.training.tensorboard import TensorBoardLogs
from tfmtl.training.warm_start import MODEL_FILE, check_schema_change, first_change, load_previous
from tfmtl.training.warm_start import warm_start as load_warm_start



def train_from_config(path: str | pathlib.Path, *, verbose: Any = "auto", log: Callable[[str], None] = print,
                      warm_start: str | pathlib.Path | None = None) -> Any:
    """Adapt the schema on the training files, build, compile and fit (resuming from ``<dir>/checkpoints``), save.

    Returns the trained model; it is saved as ``<output.dir>/model.keras`` and its
    TensorBoard scalars are in ``<output.dir>/logs``.

    With ``warm_start`` (the previous run's ``output.dir``, its ``model.keras``, or an exported
    version folder), the next version instead: the previous model's vocabularies grow on the training files
    (:meth:`~tfmtl.Schema.update`: known ids keep their rows), the model starts from its
    weights (:func:`~tfmtl.training.warm_start`), trains on the new files, is saved, and,
    when the config has ``output.export_dir``, is exported as the next version there.
    The config's features must match the previous model's but for vocabularies, and its
    tasks must match the previous model's (an error names the feature or task otherwise);
    the architecture is the previous model's (the config's ``[model]`` is not read).

    The config format is shown in ``examples/train.toml`` and the README ("Training at scale").

    Example:

    >>> import tfmtl
    >>> model = tfmtl.training.train_from_config("examples/train.toml")  # doctest: +SKIP
    >>> sorted(model.task_names)  # doctest: +SKIP
    ['click', 'conversion']
    """
    config = load_config(path)
    out = config.output_dir
    if verbose == "auto":  # as fit: a bar on a terminal, one line per pass in logs
        verbose = 1 if os.isatty(1) else 2
    checkpoint_dir = out / "checkpoints"
    if warm_start is None:
        log(f"learning vocabularies and statistics from {config.data['train']}")
        schema = config.schema.adapt(config.read("train"), verbose=verbose)
        model = config.build_model(schema)
    else:
        if _same_file(warm_start, out / MODEL_FILE):
            raise ValueError(
                f"--warm-start {warm_start} is this run's own output ({out / MODEL_FILE}), which the run overwrites "
                "(a rerun would start from its own result): give each day's config its own output.dir and "
                "warm-start from the previous day's"
            )
        previous = load_previous(warm_start)
        base = _as_learned(config.model_schema(config.schema), previous.schema)  # the config's growth rules, the previous state
        check_schema_change(previous.schema, base)
        _check_same_tasks(config.tasks, previous.tasks)
        log(f"growing the vocabularies of {warm_start} with {config.data['train']}")
        schema = base.update(config.read("train"), verbose=verbose)
        for spec in schema:
            if getattr(spec, "vocabulary", None) is not None:
                before = previous.schema[spec.name].vocabulary
                log(f"  {spec.name}: {_live(before):,} -> {_live(spec.vocabulary):,} ids ({spec.table_size:,} rows)")
        model = load_warm_start(previous, schema)
        # This version's checkpoints: a rerun of the same update resumes, another day's starts afresh.
        checkpoint_dir = checkpoint_dir / f"warm-{schema_fingerprint(schema):016x}"
    model.compile(optimizer=config.build_optimizer(), balancer=config.build_balancer(),
                  gradients_at=config.gradients_at)
    options = config.fit
    callbacks: list[Any] = [TensorBoardLogs(out / "logs")]
    stopping = options.get("early_stopping")
    validation = config.read("validation") if "validation" in config.data else None
    if stopping:
        if validation is None:
            raise ValueError("fit.early_stopping needs data.validation")
        callbacks += [
            CombinedMetric(stopping["score"]),
            keras.callbacks.EarlyStopping(monitor="val_score", mode="max", patience=int(stopping.get("patience", 1)),
                                          restore_best_weights=True),
        ]
    log(f"training {model.name} ({model.count_params():,} parameters) for {options.get('epochs', 1)} epoch(s)")
    fit(
        model, lambda epoch: config.read("train", shuffle=True, epoch=epoch), epochs=int(options.get("epochs", 1)),
        validation_data=validation, callbacks=callbacks, checkpoint_dir=checkpoint_dir,
        checkpoint_every=options.get("checkpoint_every"), keep_checkpoints=int(options.get("keep_checkpoints", 2)),
        verbose=verbose,
    )
    model.save(out / MODEL_FILE)
    log(f"saved {out / MODEL_FILE}")
    if warm_start is not None and "export_dir" in config.raw["output"]:
        _export(config, model, log)
    return model


def _check_same_tasks(configured: Any, previous: Any) -> None:
    """The warm-started model keeps the previous model's tasks (and architecture): a config that differs is refused."""
    by_name = {task.name: task for task in previous}
    if sorted(by_name) != sorted(task.name for task in configured):
        raise ValueError(f"warm start keeps the previous model's tasks {sorted(by_name)}; the config has "
                         f"{sorted(task.name for task in configured)}: train a new model when tasks change")
    for task in configured:
        change = first_change(by_name[task.name], task)
        if change is not None:
            raise ValueError(f"task {task.name!r}: warm start keeps the previous model's tasks and architecture, "
                             f"and {change}")


def _same_file(previous: str | pathlib.Path, model_file: pathlib.Path) -> bool:
    path = pathlib.Path(previous)
    path = path / MODEL_FILE if path.is_dir() else path
    return path.exists() and model_file.exists() and path.resolve() == model_file.resolve()


def _live(vocabulary: Any) -> int:
    return sum(value is not None for value in vocabulary)


#: What adapting learns, per field: left out of a config, these come from the previous model.
_LEARNED = ("mean", "variance", "boundaries")


def _as_learned(configured: Schema, previous: Schema) -> Schema:
    """The config's specs with the previous model's learned state: its statistics and its vocabularies.

    Everything else is the config's, growth rules (``expire_after``, ``max_vocabulary_size``,
    ``min_count``) included, so a config can change them; any other change is refused by
    :func:`~tfmtl.training.warm_start.check_schema_change`. A vocabulary is always the
    previous model's (grown since the config's, if the config wrote one).
    """
    specs = []
    for spec in configured:
        old = previous[spec.name] if spec.name in previous else None
        if old is None or type(old) is not type(spec):
            specs.append(spec)
            continue
        learned = {field: getattr(old, field) for field in _LEARNED
                   if hasattr(spec, field) and getattr(spec, field) is None}
        if isinstance(spec, Categorical) and old.vocabulary is not None and spec.num_hash_bins is None:
            learned.update(vocabulary=old.vocabulary, last_seen=old.last_seen, updates=old.updates)
        specs.append(dataclasses.replace(spec, **learned))
    return Schema(specs)


def _load(config: RunConfig) -> Any:
    path = config.output_dir / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"no trained model at {path}: run `tfmtl train` with this config first")
    return keras.models.load_model(path)


def evaluate_from_config(path: str | pathlib.Path, *, log: Callable[[str], None] = print) -> dict[str, float]:
    """Evaluate the saved model on ``data.validation``; logs and returns the flat metrics dict.

    Example:

    >>> import tfmtl
    >>> metrics = tfmtl.training.evaluate_from_config("examples/train.toml")  # doctest: +SKIP
    >>> metrics["click/auc"] > 0.5  # doctest: +SKIP
    True
    """
    config = load_config(path)
    metrics = _load(config).evaluate(config.read("validation"), return_dict=True, verbose=0)
    for key, value in metrics.items():
        log(f"{key:<28} {value:.5f}")
    return metrics


def export_from_config(path: str | pathlib.Path, *, log: Callable[[str], None] = print) -> pathlib.Path:
    """Export the saved model for TF Serving under ``output.export_dir``; returns the version folder.

    Example:

    >>> import tfmtl
    >>> tfmtl.training.export_from_config("examples/train.toml").name  # doctest: +SKIP
    '1'
    """
    config = load_config(path)
    if "export_dir" not in config.raw["output"]:
        raise ValueError("output.export_dir: not given (the TF Serving base path to export to)")
    return _export(config, _load(config), log)


def _export(config: RunConfig, model: Any, log: Callable[[str], None]) -> pathlib.Path:
    output = config.raw["output"]
    log(f"exporting {model.name} to {config.path(output['export_dir'])} (SavedModel, signatures, warmup)")
    version = export(model, config.path(output["export_dir"]), log=log, table_dtype=output.get("table_dtype", "float32"),
                     keep_ids=output.get("keep_ids"))
    log(f"exported {version}")
    return version
