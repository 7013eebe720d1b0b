"""Warm start: the next version of a model, built from an updated schema, starting from the previous weights.

Daily (or hourly) training grows the vocabularies with :meth:`~tfmtl.features.Schema.update`
and trains the next version from the previous one's weights instead of from scratch.
:func:`warm_start` builds the same architecture from the updated schema and copies every
weight over; embedding tables are copied row by row, by id:

* a known id keeps its vector (after :meth:`~tfmtl.features.Schema.update` it also keeps
  its row);
* a new id starts from the vector of the out-of-vocabulary bucket the previous model
  answered it with, so before any training the new model answers every id it still
  knows exactly as the previous model did;
* an expired id is answered by its out-of-vocabulary bucket; a free row starts at zero.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.features.categorical import Categorical, vocabulary_lookup
from tfmtl.features.encoder import FeatureEncoder
from tfmtl.features.kinds import IdType
from tfmtl.features.schema import Schema
from tfmtl.serving.export import MODEL_CONFIG_PATH

#: Fields a warm start lets change: the vocabulary and the rules it grows by.
GROWTH_FIELDS = ("vocabulary", "last_seen", "updates", "min_count", "max_vocabulary_size", "expire_after")

MODEL_FILE = "model.keras"


def load_previous(previous: str | os.PathLike) -> Any:
    """The model a warm start starts from: a ``.keras`` file, a run folder holding ``model.keras``, or an export.

    An export (a version folder that :func:`tfmtl.serving.export` wrote) carries the model's
    Keras config beside the SavedModel; the model is rebuilt from it and takes the exported
    variables. An export whose tables were stored smaller (``table_dtype``, ``keep_ids``) does
    not hold the trained weights and is refused.
    """
    path = pathlib.Path(previous)
    if path.is_dir():
        if (path / MODEL_FILE).exists():
            path = path / MODEL_FILE
        elif (path / "saved_model.pb").exists():
            return _from_export(path)
        else:
            raise FileNotFoundError(f"no {MODEL_FILE} or saved_model.pb in {previous}: give the previous run's "
                                    f"output.dir, its {MODEL_FILE}, or an export's version folder")
    elif not path.exists():
        raise FileNotFoundError(f"no previous model at {previous}")
    return keras.models.load_model(path, compile=False)  # its weights only: the optimizer state is not used


def _from_export(path: pathlib.Path) -> Any:
    config_path = path / MODEL_CONFIG_PATH
    if not config_path.exists():
        raise ValueError(f"{path} is a SavedModel without the model's config ({MODEL_CONFIG_PATH}; exports of older "
                         f"tfmtl versions): warm-start from the previous run's {MODEL_FILE} instead")
    saved = json.loads(config_path.read_text())
    if not saved["variables_as_trained"]:
        raise ValueError(f"{path} does not hold the model's variables as trained (tables stored smaller with "
                         f"table_dtype or keep_ids, or a model saved whole): warm-start from an export with float32 "
                         f"tables and every id, or from the previous run's {MODEL_FILE}")
    config = saved["model"]
    cls = keras.saving.get_registered_object(config.get("registered_name") or f"tfmtl>{config['class_name']}")
    if cls is None:
        raise ValueError(f"{path}: the model class {config['class_name']!r} is not registered with Keras")
    model = cls.from_config(config["config"])
    variables = list(tf.saved_model.load(str(path)).model_variables)
    if len(variables) != len(model.variables):
        raise ValueError(f"{path} holds {len(variables)} variables, its model config {len(model.variables)}")
    for target, value in zip(model.variables, variables):
        if tuple(target.shape) != tuple(value.shape):
            raise ValueError(f"{path}: variable {target.name} is {tuple(value.shape)} in the export, "
                             f"{tuple(target.shape)} in its model config")
        target.assign(value)
    return model


def check_schema_change(previous: Schema, schema: Schema) -> None:
    """Raise a ValueError naming the feature unless ``schema`` differs from ``previous`` only in vocabulary growth.

    Example:

    >>> import tfmtl
    >>> old = tfmtl.Schema([tfmtl.Categorical("item", embedding_dim=4, vocabulary=("a",))])
    >>> check_schema_change(old, tfmtl.Schema([tfmtl.Categorical("item", embedding_dim=4, vocabulary=("a", "b"))]))
    >>> check_schema_change(old, tfmtl.Schema([tfmtl.Categorical("item", embedding_dim=8, vocabulary=("a",))]))
    Traceback (most recent call last):
    ValueError: feature 'item': warm start keeps everything but the vocabulary, and embedding_dim changed (4 before, 8 now)
    """
    if previous.names != schema.names:
        added = [name for name in schema.names if name not in previous.names]
        dropped = [name for name in previous.names if name not in schema.names]
        detail = "; ".join(part for part in (added and f"added {added}", dropped and f"dropped {dropped}") if part)
        raise ValueError(
            f"warm start needs the previous model's features, in the same order ({detail or 'reordered'}): "
            "train a new model when features change"
        )
    for old, new in zip(previous, schema):
        if type(old) is not type(new):
            raise ValueError(f"feature {new.name!r}: warm start keeps every feature's kind, and it changed "
                             f"({old.kind.value} before, {new.kind.value} now)")
        change = first_change(old, new, skip=GROWTH_FIELDS if isinstance(old, Categorical) else ())
        if change is not None:
            raise ValueError(f"feature {new.name!r}: warm start keeps everything but the vocabulary, and {change}")
        if isinstance(old, Categorical) and (old.vocabulary is None) != (new.vocabulary is None):
            raise ValueError(f"feature {new.name!r}: warm start keeps hashed features hashed and vocabularies as "
                             "vocabularies")


def first_change(old: Any, new: Any, skip: tuple[str, ...] = ()) -> str | None:
    """``"<field> changed (<before> before, <now> now)"`` for the first dataclass field that differs, else None."""
    for field in dataclasses.fields(old):
        before, now = getattr(old, field.name), getattr(new, field.name)
        if field.name not in skip and before != now:
            return f"{field.name} changed ({_shown(before)} before, {_shown(now)} now)"
    return None


def _shown(value: Any) -> str:
    text = repr(value.value if hasattr(value, "value") and not isinstance(value, (int, float)) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def warm_start(previous: Any, schema: Schema) -> Any:
    """The previous model's architecture built from ``schema``, with the previous weights; not compiled.

    Use it for the next version of a model trained every day (or hour): grow the
    vocabularies with :meth:`Schema.update` on the new data, warm-start, compile and
    train on the new data only. Every weight is copied; embedding tables are copied
    by id (see the module docstring), so before training the new model answers every
    id it still knows exactly as the previous one did, new ids included (from their
    out-of-vocabulary bucket). The optimizer and the balancer start afresh (compile).

    Call it inside ``strategy.scope()`` to train under ``MirroredStrategy``. Under
    ``ParameterServerStrategy`` (sharded tables) warm-start on one machine, ``save`` the
    result, and load that file in the cluster's scope.

    Args:
      previous: A :class:`~tfmtl.models.MultiTaskModel`, its ``.keras`` file, a
        ``tfmtl train`` output folder holding ``model.keras``, or an export's
        version folder (float32 tables, every id; see :func:`load_previous`).
      schema: ``previous.schema`` grown by :meth:`Schema.update` (or any schema
        that differs from it only in vocabularies and their growth rules).

    Returns:
      A new, uncompiled model of the same class and architecture.

    Raises:
      ValueError: naming the feature, when ``schema`` changes anything but
        vocabularies (an embedding dimension, a feature kind, a feature added).

    Example:

    >>> import numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Categorical("item", embedding_dim=2)]).adapt({"item": np.array(["a", "b"])})
    >>> day0 = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(4,))
    >>> day1 = tfmtl.training.warm_start(day0, day0.schema.update({"item": np.array(["b", "c"])}))
    >>> day1.schema["item"].vocabulary
    ('a', 'b', 'c')
    >>> x = {"item": np.array(["a", "b", "c"])}  # "c" was out of vocabulary for day0
    >>> bool(np.allclose(day0.predict(x, verbose=0)["click"], day1.predict(x, verbose=0)["click"]))
    True
    """
    if isinstance(previous, (str, os.PathLike)):
        previous = load_previous(previous)
    if not isinstance(schema, Schema):
        raise TypeError(f"warm_start takes the updated Schema, got {type(schema).__name__}")
    old_schema = getattr(previous, "schema", None)
    if not isinstance(old_schema, Schema):
        raise TypeError(f"warm_start takes a tfmtl model (with a schema), got {type(previous).__name__}")
    check_schema_change(old_schema, schema)
    _check_scenarios(previous, old_schema, schema)
    config = previous.get_config()
    for layer in config["layers"]:
        if isinstance(layer.get("config"), dict) and "schema" in layer["config"]:
            layer["config"]["schema"] = schema.get_config()
    model = type(previous).from_config(config)
    _copy_weights(previous, model)
    return model


def _check_scenarios(previous: Any, old: Schema, new: Schema) -> None:
    """Weights indexed by a feature's table rows (a layer's ``scenario_feature``: STAR's) need that vocabulary fixed."""
    for layer in previous.layers:
        feature = getattr(layer, "scenario_feature", None)
        if feature is not None and old[feature].vocabulary != new[feature].vocabulary:
            raise ValueError(
                f"warm start: the scenario feature {feature!r} of layer {layer.name!r} changed its vocabulary; "
                "its per-scenario weights and statistics are indexed by that vocabulary's rows, and copying them "
                "to a grown vocabulary is not supported: keep the scenario vocabulary fixed (give "
                f"Categorical({feature!r}, vocabulary=...) every scenario) or train afresh"
            )


def _encoder(model: Any) -> FeatureEncoder:
    return next(layer for layer in model.layers if isinstance(layer, FeatureEncoder))


def _copy_weights(previous: Any, model: Any) -> None:
    old_encoder, new_encoder = _encoder(previous), _encoder(model)
    tables = {id(layer.embeddings): name for name, layer in new_encoder.embeddings.items()
              if hasattr(layer, "embeddings")}
    old_weights, new_weights = previous.weights, model.weights
    if len(old_weights) != len(new_weights):
        raise ValueError(f"the rebuilt model has {len(new_weights)} weights, the previous one {len(old_weights)}: "
                         "warm start needs the same architecture")
    for old, new in zip(old_weights, new_weights):
        value = np.asarray(tf.convert_to_tensor(old))
        name = tables.get(id(new))
        if name is not None:
            value = _table_rows(_table_spec(old_encoder.schema, name), _table_spec(new_encoder.schema, name), value)
        if tuple(value.shape) != tuple(new.shape):
            raise ValueError(f"weight {new.name}: shape {tuple(new.shape)} in the rebuilt model, "
                             f"{tuple(value.shape)} in the previous one")
        new.assign(value)


def _table_spec(schema: Schema, table: str) -> Any:
    return next((spec for spec in schema if isinstance(spec, Categorical) and spec.table_name == table), None)


def _table_rows(old: Any, new: Any, matrix: np.ndarray) -> np.ndarray:
    """The previous table's rows rearranged for the new vocabulary (see the module docstring)."""
    if old is None or new is None or new.vocabulary is None or old.vocabulary == new.vocabulary:
        return matrix
    oov = new.num_oov_buckets
    ids = [value for value in new.vocabulary if value is not None]
    rows = [oov + index for index, value in enumerate(new.vocabulary) if value is not None]
    lookup = vocabulary_lookup(old.id_type, old.vocabulary, old.num_oov_buckets, f"{old.table_name}_warm_start")
    keys = np.asarray(ids, dtype=np.int64 if old.id_type is IdType.INT64 else object)
    previous_rows = np.asarray(lookup(tf.constant(keys)))
    table = np.zeros((new.table_size, matrix.shape[1]), matrix.dtype)
    table[:oov] = matrix[:oov]
    table[rows] = matrix[previous_rows]
    return table


__all__ = ["check_schema_change", "first_change", "load_previous", "warm_start"]
