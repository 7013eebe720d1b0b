"""TOML run configs, decoded once into calls of tfmtl's public constructors.

A config has one section per argument of the Python API (see ``examples/train.toml``):

* ``[data]``: ``format`` (csv, parquet, tfrecord), ``train``/``validation`` paths or globs
  (relative to the config file), ``batch_size``, ``shuffle_buffer``, ``seed`` ->
  :func:`tfmtl.data.read_files`;
* ``[[features]]``: one table per feature, ``kind`` (a :class:`~tfmtl.features.FeatureKind`
  value) and the spec's fields -> :meth:`tfmtl.Schema.from_config`; vocabularies and
  statistics not given are learned from the training files (:meth:`~tfmtl.Schema.adapt`);
* ``[[tasks]]``: :class:`tfmtl.Task`'s fields (``kind``: binary, regression, multiclass);
* ``[model]``: ``architecture`` (a :mod:`tfmtl.models` function) and its keyword
  arguments (``gate`` as a table of :class:`~tfmtl.layers.GateOptions`, ``regularization`` as a table of
  :class:`~tfmtl.layers.Regularization`, e.g. ``{dropout = 0.1, embedding_l2 = 1e-5}``);
* ``[optimizer]``: ``class`` (a ``keras.optimizers`` class, ``LazyAdam`` or
  ``RowWiseAdagrad``: :mod:`tfmtl.training.optimizers`) and its arguments;
  ``learning_rate`` may be a table with ``schedule`` (a ``keras.optimizers.schedules``
  class) and its arguments;
* ``[balancer]``: ``class`` (a :mod:`tfmtl.balancing` strategy) and its arguments, and
  ``gradients_at`` (``"parameters"`` or ``"representation"``: ``compile``'s);
* ``[fit]``: ``epochs``, ``checkpoint_every``, ``keep_checkpoints``, and
  ``early_stopping = {score = {"val_click/auc" = 0.7, ...}, patience = 2}``;
* ``[output]``: ``dir`` (``checkpoints/``, ``logs/`` and ``model.keras`` go there) and
  ``export_dir`` (TF Serving base path).

Unknown sections, keys, kinds, architectures, optimizers, schedules and balancers are
errors that name the key and list the allowed values.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import pathlib
import sys
import types
import typing
from typing import Any, Callable, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

from tfmtl import balancing, models
from tfmtl._compat import keras
from tfmtl.data.files import FORMATS, read_files
from tfmtl.features.categorical import Categorical
from tfmtl.features.kinds import FeatureKind
from tfmtl.features.schema import _SPECS, Schema
from tfmtl.layers.gate import GateOptions
from tfmtl.layers.regularization import Regularization
from tfmtl.serving.tables import TABLE_DTYPES
from tfmtl.tasks.task import Task
from tfmtl.training.optimizers import LazyAdam, RowWiseAdagrad

ARCHITECTURES: dict[str, Callable[..., Any]] = {
    name: getattr(models, name)
    for name in ("shared_bottom", "mmoe", "omoe", "cgc", "ple", "esmm", "aitm", "adatt", "pepnet", "home", "stem", "star")
}
#: The ``build_model`` options every architecture forwards (``interaction`` takes objects: not in a TOML file).
_BUILD_OPTIONS = ("cross_layers", "cross_projection_dim", "regularization")
BALANCERS: dict[str, type] = {cls.__name__: cls for cls in balancing.STRATEGIES}
#: The keys of the sections with fixed keys, and the type of each value.
_VALUE_TYPES: dict[str, dict[str, tuple[type, ...]]] = {
    "data": {"format": (str,), "train": (str, list), "validation": (str, list), "batch_size": (int,),
             "shuffle_buffer": (int,), "seed": (int,)},
    "fit": {"epochs": (int,), "checkpoint_every": (int,), "keep_checkpoints": (int,), "early_stopping": (dict,)},
    "output": {"dir": (str,), "export_dir": (str,), "table_dtype": (str,), "keep_ids": (dict,)},
}
#: Every section; None: its keys are checked against what it builds (a spec, an architecture, a class).
_SECTIONS = {
    "features": None, "tasks": None, "model": None, "optimizer": None, "balancer": None,
    **{section: set(types_by_key) for section, types_by_key in _VALUE_TYPES.items()},
}
_REQUIRED = ("data", "features", "tasks", "model", "output")


class ConfigError(ValueError):
    """An invalid run config; the message names the key and the allowed values.

    Example:

    >>> import tfmtl
    >>> try:
    ...     tfmtl.training.parse_config({"data": {}, "tasks": [], "model": {}, "output": {}, "extra": 1})
    ... except tfmtl.training.ConfigError as error:
    ...     print(str(error).split(";")[0])
    config: unknown key(s) ['extra']
    """


def _check_keys(where: str, given: Mapping[str, Any], allowed: Any) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(sorted(allowed))}")


def _check_types(where: str, given: Mapping[str, Any], types_by_key: Mapping[str, tuple[type, ...]]) -> None:
    """Each value of ``given`` is one of its key's types (a bool is not an int), else a ConfigError naming the key."""
    for key, value in given.items():
        allowed = types_by_key.get(key)
        if allowed is None:
            continue
        if isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed):
            continue
        names = " or ".join("none" if t is type(None) else "list" if t in (list, tuple) else t.__name__
                            for t in dict.fromkeys(t for t in allowed if t is not tuple))
        raise ConfigError(f"{where}.{key} = {value!r}: expected {names}, got {type(value).__name__}")


def _field_types(cls: type) -> dict[str, tuple[type, ...]]:
    """The TOML types a dataclass's fields accept, from their annotations (fields of other types: unchecked)."""
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # pragma: no cover - an annotation that does not resolve
        return {}
    out: dict[str, tuple[type, ...]] = {}
    for field in dataclasses.fields(cls):
        hint = hints.get(field.name)
        options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        allowed: list[type] = []
        for option in options:
            origin = typing.get_origin(option) or option
            if option is type(None) or option in (int, str, bool):
                allowed.append(option)
            elif option is float:
                allowed += [float, int]
            elif isinstance(option, type) and issubclass(option, enum.Enum):
                allowed += [str, option]
            elif origin in (tuple, list):
                allowed += [list, tuple] + ([int] if typing.get_args(option)[:1] == (int,) else [])  # units: 16 or [64, 32]
            else:
                break
        else:
            out[field.name] = tuple(allowed)
    return out


def _pick(where: str, value: Any, table: Mapping[str, Any], key: str) -> Any:
    if value not in table:
        raise ConfigError(f"{where}.{key} = {value!r} is unknown; allowed: {', '.join(sorted(table))}")
    return table[value]


def _call(where: str, factory: Callable[..., Any], kwargs: Mapping[str, Any], skip: tuple[str, ...] = ()) -> Any:
    """``factory(**kwargs)`` after checking the names against its signature; lists become tuples."""
    params = [p for name, p in inspect.signature(factory).parameters.items() if name not in skip]
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        _check_keys(where, kwargs, [p.name for p in params if p.kind is not p.VAR_POSITIONAL])
    kwargs = {key: tuple(value) if isinstance(value, list) else value for key, value in kwargs.items()}
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: {error}") from None


@dataclasses.dataclass
class RunConfig:
    """A parsed and checked run config (see the module docstring); :func:`load_config` makes one.

    Example:

    >>> import pathlib, tfmtl
    >>> config = tfmtl.training.load_config(pathlib.Path(tfmtl.__file__).parents[1] / "examples" / "train.toml")
    >>> config.model["architecture"], [task.name for task in config.tasks]
    ('mmoe', ['click', 'conversion'])
    """

    raw: dict[str, Any]
    root: pathlib.Path
    schema: Schema
    tasks: tuple[Task, ...]

    @property
    def data(self) -> dict[str, Any]:
        return self.raw["data"]

    @property
    def model(self) -> dict[str, Any]:
        return self.raw["model"]

    @property
    def fit(self) -> dict[str, Any]:
        return self.raw.get("fit", {})

    def path(self, value: str) -> pathlib.Path:
        """A path of the config, relative to the config file's folder."""
        return self.root / value

    @property
    def output_dir(self) -> pathlib.Path:
        return self.path(self.raw["output"]["dir"])

    def read(self, split: str, *, shuffle: bool = False, epoch: int = 0) -> Any:
        """The ``split`` (``"train"``, ``"validation"``) files as a dataset of batches."""
        data = self.data
        if split not in data:
            raise ConfigError(f"data.{split}: no files given")
        paths = data[split] if isinstance(data[split], list) else [data[split]]
        options = {"shuffle_buffer": int(data.get("shuffle_buffer", 0)), "seed": int(data.get("seed", 0)) + epoch} if shuffle else {}
        return read_files(
            data.get("format", "csv"), [str(self.path(p)) for p in paths], self.schema, self.tasks,
            int(data.get("batch_size", 512)), **options,
        )

    def model_schema(self, schema: Schema) -> Schema:
        """The schema a model of ``[model]``'s architecture carries when built from ``schema``.

        ``schema`` itself, unless the architecture says otherwise with a ``model_schema(schema, tasks)``
        attribute (STEM widens every embedding, :func:`tfmtl.models.stem.stem_schema`).
        """
        architecture, _ = _architecture(self.model)
        transform = getattr(architecture, "model_schema", None)
        return schema if transform is None else transform(schema, self.tasks)

    def build_model(self, schema: Schema) -> Any:
        """The architecture called with the schema, the tasks and ``[model]``'s keyword arguments."""
        architecture, kwargs = _architecture(self.model)
        if isinstance(kwargs.get("gate"), Mapping):
            kwargs["gate"] = _call("model.gate", GateOptions, kwargs["gate"])
        if isinstance(kwargs.get("regularization"), Mapping):
            kwargs["regularization"] = _call("model.regularization", Regularization, kwargs["regularization"])
        schema_arg, tasks_arg = list(inspect.signature(architecture).parameters)[:2]  # (schema, tasks) or (schema, steps)
        return _call(f"model ({self.model['architecture']})", architecture, {schema_arg: schema, tasks_arg: self.tasks, **kwargs})

    def build_optimizer(self) -> Any:
        """``keras.optimizers.<class>(**arguments)``; a ``learning_rate`` table is a schedule.

        None without an ``[optimizer]`` section: ``compile()``'s default (LazyAdam, 16 steps per execution).
        """
        if "optimizer" not in self.raw:
            return None
        options = dict(self.raw["optimizer"])
        names = {name for name in dir(keras.optimizers) if isinstance(getattr(keras.optimizers, name), type)
                 and issubclass(getattr(keras.optimizers, name), keras.optimizers.Optimizer)} - {"Optimizer"}
        classes = {n: getattr(keras.optimizers, n) for n in names} | {"LazyAdam": LazyAdam, "RowWiseAdagrad": RowWiseAdagrad}
        cls = _pick("optimizer", options.pop("class", "Adam"), classes, "class")
        rate = options.get("learning_rate")
        if isinstance(rate, Mapping):
            rate = dict(rate)
            schedules = {n: getattr(keras.optimizers.schedules, n) for n in dir(keras.optimizers.schedules)
                         if isinstance(getattr(keras.optimizers.schedules, n), type) and n != "LearningRateSchedule"}
            schedule = _pick("optimizer.learning_rate", rate.pop("schedule", None), schedules, "schedule")
            options["learning_rate"] = _call("optimizer.learning_rate", schedule, rate)
        return _call(f"optimizer ({cls.__name__})", cls, options)

    def build_balancer(self) -> Any:
        """A :mod:`tfmtl.balancing` strategy from ``[balancer]`` (default ``FixedWeights``)."""
        options = dict(self.raw.get("balancer", {"class": "FixedWeights"}))
        options.pop("gradients_at", None)  # compile's, not the strategy's (see gradients_at)
        cls = _pick("balancer", options.pop("class", "FixedWeights"), BALANCERS, "class")
        return _call(f"balancer ({cls.__name__})", cls, options)

    @property
    def gradients_at(self) -> str:
        """``[balancer]``'s ``gradients_at`` (``compile(gradients_at=...)``; default ``"parameters"``)."""
        return self.raw.get("balancer", {}).get("gradients_at", "parameters")


def _architecture(model: Mapping[str, Any]) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The ``[model]`` architecture function and its keyword arguments, names checked."""
    architecture = _pick("model", model.get("architecture"), ARCHITECTURES, "architecture")
    kwargs = {key: value for key, value in model.items() if key != "architecture"}
    params = list(inspect.signature(architecture).parameters.values())[2:]
    allowed = [p.name for p in params if p.kind is not p.VAR_KEYWORD]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        allowed += _BUILD_OPTIONS
    _check_keys(f"model ({model['architecture']})", kwargs, allowed)
    return architecture, kwargs


def load_config(path: str | pathlib.Path) -> RunConfig:
    """Read and check a TOML run config; builds the (unadapted) schema and the tasks.

    Example:

    >>> import tfmtl
    >>> config = tfmtl.training.load_config("examples/train.toml")  # doctest: +SKIP
    >>> [task.name for task in config.tasks]  # doctest: +SKIP
    ['click', 'conversion']
    """
    path = pathlib.Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return parse_config(raw, root=path.parent)


def parse_config(raw: Mapping[str, Any], root: str | pathlib.Path = ".") -> RunConfig:
    """Check a run config given as a dict (what :func:`load_config` reads from TOML).

    Example:

    >>> import tfmtl
    >>> tfmtl.training.parse_config({"data": {}, "features": [{"kind": "numerik", "name": "x"}], "tasks": [],
    ...                              "model": {}, "output": {"dir": "runs"}})
    Traceback (most recent call last):
    ...
    tfmtl.training.config.ConfigError: features[0].kind = 'numerik' is unknown; allowed: bucketized, categorical, dense_vector, multi_valued, numeric, pretrained_table, sequence
    """
    raw = dict(raw)
    _check_keys("config", raw, _SECTIONS)
    missing = [section for section in _REQUIRED if section not in raw]
    if missing:
        raise ConfigError(f"config: missing section(s) {missing}")
    for section, allowed in _SECTIONS.items():
        if allowed is not None and section in raw:
            _check_keys(f"[{section}]", raw[section], allowed)
            _check_types(section, raw[section], _VALUE_TYPES[section])
    _pick("data", raw["data"].get("format", "csv"), {name: name for name in FORMATS}, "format")
    if "dir" not in raw["output"]:
        raise ConfigError("[output]: missing key 'dir' (where checkpoints, logs and model.keras go)")
    _pick("output", raw["output"].get("table_dtype", "float32"), {d: d for d in TABLE_DTYPES}, "table_dtype")
    for table, keep in raw["output"].get("keep_ids", {}).items():
        if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
            raise ConfigError(f"output.keep_ids.{table} = {keep!r}: expected a positive int (how many of the "
                              "vocabulary's first ids to keep)")
    kinds = {kind.value: _SPECS[kind] for kind in FeatureKind}
    entries = []
    for index, entry in enumerate(raw["features"]):
        where = f"features[{index}]"
        spec = _pick(where, entry.get("kind"), kinds, "kind")
        _check_keys(f"{where} ({entry.get('name', '?')})", entry, {"kind", *(f.name for f in dataclasses.fields(spec))})
        _check_types(f"{where} ({entry.get('name', '?')})", entry, _field_types(spec))
        entries.append(entry)
    try:
        schema = Schema.from_config({"features": entries})
    except (TypeError, ValueError) as error:
        raise ConfigError(f"features: {error}") from None
    vocabularies = {spec.table_name for spec in schema if isinstance(spec, Categorical) and spec.num_hash_bins is None}
    for table in raw["output"].get("keep_ids", {}):
        if table not in vocabularies:
            raise ConfigError(f"output.keep_ids.{table}: not a vocabulary table; allowed: {', '.join(sorted(vocabularies))}")
    task_fields = {f.name for f in dataclasses.fields(Task)}
    tasks = []
    for index, entry in enumerate(raw["tasks"]):
        _check_keys(f"tasks[{index}] ({entry.get('name', '?')})", entry, task_fields)
        _check_types(f"tasks[{index}] ({entry.get('name', '?')})", entry, _field_types(Task))
        tasks.append(_call(f"tasks[{index}]", Task.from_config, {"config": entry}))
    if not tasks:
        raise ConfigError("tasks: give at least one [[tasks]] table")
    config = RunConfig(raw=raw, root=pathlib.Path(root), schema=schema, tasks=tuple(tasks))
    _architecture(raw["model"])
    config.build_balancer()  # fail early on a bad [balancer] or [optimizer]
    config.build_optimizer()
    return config
