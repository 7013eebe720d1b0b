"""Export a multi-task Keras model as a TF Serving SavedModel with per-task signatures."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import uuid
from typing import Any, Mapping

from tfmtl._compat import tf

#: Signature that returns every task (what TF Serving uses when none is named).
DEFAULT_SIGNATURE = "serving_default"


def task_signature_name(task: str) -> str:
    """Name of the signature that returns only ``task``: ``predict_<task>``.

    Example:

    >>> import tfmtl
    >>> tfmtl.serving.task_signature_name("ctr")
    'predict_ctr'
    """
    return f"predict_{task}"


def _input_specs(model: Any) -> dict[str, tf.TensorSpec]:
    inputs = model.input
    if not isinstance(inputs, Mapping):
        raise TypeError("export needs a model whose inputs are a dict keyed by feature name")
    return {
        name: tf.TensorSpec([None, *tensor.shape[1:]], tensor.dtype, name=name) for name, tensor in inputs.items()
    }


def _output_names(model: Any) -> list[str]:
    outputs = model.output
    if not isinstance(outputs, Mapping):
        raise TypeError("export needs a model whose outputs are a dict keyed by task name")
    return list(outputs)


def _squeeze_scalar(tensor: tf.Tensor) -> tf.Tensor:
    # [B, 1] -> [B]: one value per example, the shape TF Serving's Regress and REST
    # row format expect. Wider outputs ([B, C]) keep their shape.
    if tensor.shape.rank == 2 and tensor.shape[1] == 1:
        return tf.reshape(tensor, [-1])
    return tensor


class _ServingModule(tf.Module):
    """What gets saved: the model's variables and tables, and one function per signature."""

    def __init__(self, model: Any) -> None:
        super().__init__(name="tfmtl_serving")
        self.model = model
        self._specs = _input_specs(model)
        self.task_names = _output_names(model)

    def _predict(self, features: Mapping[str, tf.Tensor], tasks: list[str]) -> dict[str, tf.Tensor]:
        outputs = self.model(dict(features), training=False)
        return {task: _squeeze_scalar(tf.cast(outputs[task], tf.float32)) for task in tasks}

    def signatures(self) -> dict[str, Any]:
        def make(tasks: list[str]) -> Any:
            @tf.function(input_signature=[self._specs])
            def serve(features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
                return self._predict(features, tasks)

            return serve.get_concrete_function()

        signatures = {DEFAULT_SIGNATURE: make(self.task_names)}
        for task in self.task_names:
            signatures[task_signature_name(task)] = make([task])
        return signatures


def next_version(base_dir: str | os.PathLike) -> int:
    """1 + the largest integer-named version under ``base_dir`` (1 if none).

    Names that are not integers (such as an export still being written) are
    ignored, as TF Serving ignores them.

    Example:

    >>> import pathlib, tempfile, tfmtl
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> (base / "3").mkdir(); (base / ".tmp-4-abc").mkdir()
    >>> tfmtl.serving.next_version(base)
    4
    """
    base = pathlib.Path(base_dir)
    versions = [int(p.name) for p in base.iterdir() if p.is_dir() and re.fullmatch(r"\d+", p.name)] if base.exists() else []
    return max(versions, default=0) + 1


def export(model: Any, base_dir: str | os.PathLike = "export/model", version: int | None = None) -> pathlib.Path:
    """Write ``model`` as ``base_dir/<version>/``, a SavedModel that TF Serving loads as is.

    Signatures (all ``tensorflow/serving/predict``):

    * ``serving_default``: every task;
    * ``predict_<task>``: one task.

    Inputs are keyed by feature name, one ``[batch]`` tensor each, holding raw
    values (string/int64 ids, float32 numbers): lookups and normalization are in
    the graph. Outputs are keyed by task name, ``[batch]`` float32 each.

    The export is written to a hidden temporary directory beside the version
    directory and renamed when complete, so TF Serving (which ignores
    non-integer names) never sees a half-written version.

    Args:
      model: A model from :mod:`tfmtl.models` (any Keras model with dict inputs
        and dict outputs works).
      base_dir: The model's base path (the directory TF Serving's ``base_path``
        points at).
      version: Integer version; default: one more than the largest present.

    Returns:
      The path of the written version directory.

    Example:

    >>> import tempfile, numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(4,))
    >>> path = tfmtl.serving.export(model, tempfile.mkdtemp())
    >>> path.name
    '1'
    """
    base = pathlib.Path(base_dir)
    if version is None:
        version = next_version(base)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ValueError(f"version must be a non-negative int, got {version!r}")
    target = base / str(version)
    if target.exists():
        raise FileExistsError(f"version {version} already exists at {target}; pick another version or remove it")
    base.mkdir(parents=True, exist_ok=True)
    staging = base / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    module = _ServingModule(model)
    try:
        tf.saved_model.save(module, str(staging), signatures=module.signatures())
        os.rename(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
