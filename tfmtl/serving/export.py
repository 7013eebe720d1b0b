"""Export a multi-task Keras model as a TF Serving SavedModel with per-task signatures."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import re
import shutil
import time
import uuid
from typing import Any, Callable, Iterator, Mapping

from tfmtl._compat import tf
from tfmtl.serving.signatures import ModelState, ServingModule
from tfmtl.serving.tables import StoredTables
from tfmtl.serving.warmup import sample_features, warmup_logs, write_warmup

#: The model's Keras config beside the export, for a warm start from it (TF Serving ignores the file).
MODEL_CONFIG_PATH = os.path.join("assets.extra", "tfmtl_model.json")


def write_model_config(version_dir: str | os.PathLike, model: Any, *, variables_as_trained: bool) -> None:
    """Write the model's Keras config (``model.to_json()``) next to the SavedModel, if it has one.

    With ``variables_as_trained``, the SavedModel's root ``model_variables`` are the model's
    variables in order, as trained, so :func:`tfmtl.training.warm_start` can rebuild the model
    from this export alone.
    """
    if getattr(model, "schema", None) is None:
        return  # not a tfmtl model: nothing rebuilds it
    try:
        config = model.to_json()  # (written as is: a large vocabulary is not parsed again)
    except (NotImplementedError, TypeError, ValueError):
        return
    path = pathlib.Path(version_dir) / MODEL_CONFIG_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{{"variables_as_trained": {json.dumps(bool(variables_as_trained))}, "model": {config}}}')


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


def export(
    model: Any,
    base_dir: str | os.PathLike = "export/model",
    version: int | None = None,
    *,
    examples: bool = True,
    warmup_features: Mapping[str, Any] | None = None,
    model_name: str | None = None,
    log: Callable[[str], None] | None = None,
    table_dtype: str = "float32",
    keep_ids: Mapping[str, int] | None = None,
) -> pathlib.Path:
    """Write ``model`` as ``base_dir/<version>/``, a SavedModel that TF Serving loads as is.

    Signatures (all with method name ``tensorflow/serving/predict``, which is
    what ``tf.saved_model.save`` writes):

    * ``serving_default``: every task;
    * ``predict_<task>``: one task;
    * with ``examples=True`` (default), taking serialized ``tf.Example``s under
      the key ``inputs``: ``predict_examples`` (every task), ``classify_<task>``
      per binary task and ``regress_<task>`` per regression task, shaped as TF
      Serving's Classify and Regress APIs require. A real server accepts those
      with its default ``--enable_signature_method_name_check=false``.

    Inputs are keyed by feature name, one ``[batch]`` tensor each, holding raw
    values (string/int64 ids, float32 numbers): lookups and normalization are in
    the graph. Outputs are keyed by task name, ``[batch]`` float32 each.

    A warmup file with one request per signature lets TF Serving run every
    signature once before it reports the version as available.

    The export is written to a hidden temporary directory beside the version
    directory and renamed when complete, so TF Serving (which ignores
    non-integer names) never sees a half-written version.

    Args:
      model: A model from :mod:`tfmtl.models` (any Keras model with dict inputs
        and dict outputs works).
      base_dir: The model's base path (the directory TF Serving's ``base_path``
        points at).
      version: Integer version; default: one more than the largest present.
      examples: Also write the tf.Example signatures.
      warmup_features: A small batch of raw features (e.g. 8 real rows) for the
        warmup file ``assets.extra/tf_serving_warmup_requests``, one request per
        signature; default: 2 placeholder rows (empty ids, zeros).
      model_name: Model name written into the warmup requests; default: the
        base directory's name.
      log: Called with one line per step (tracing, saving, warmup, replay) and
        its duration, e.g. ``print``; default: silent.
      table_dtype: How the export stores the embedding tables: ``"float32"``
        (as trained), ``"float16"`` (half the bytes) or ``"int8"`` (a quarter,
        plus one float32 scale per row). The model itself is unchanged. See
        :mod:`tfmtl.serving.tables`.
      keep_ids: Table name to the number of its vocabulary's first ids to keep
        (``{"user_id": 1_000_000}``; an adapted vocabulary's most frequent; after
        ``Schema.update``, the ids holding the first rows); the
        others are answered as out-of-vocabulary ids. The table and the
        vocabulary shrink. While it traces, the export points the model's
        lookups at these copies: don't call or train the model from another
        thread meanwhile.

    A model trained under ``ParameterServerStrategy`` exports from the coordinator
    as is: each sharded table is saved whole, as a single-machine model's.

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
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 0):
        raise ValueError(f"version must be a non-negative int, got {version!r}")
    base.mkdir(parents=True, exist_ok=True)
    staging = base / f".tmp-{uuid.uuid4().hex[:12]}"
    stored = StoredTables(model, table_dtype, keep_ids)
    module = ServingModule(model, examples=examples)
    step = _Steps(log)
    try:
        step("tracing the signatures (preprocessing and model, per task)")
        with stored.in_place():
            signatures = module.signatures()
        step(f"saving the SavedModel ({len(signatures)} signatures)")
        whole_state = True  # the root object is ModelState: the model's variables, in order
        try:
            tf.saved_model.save(ModelState(model, stored), str(staging), signatures=signatures)
        except (AssertionError, ValueError) as error:
            if "untracked" not in str(error).lower():
                raise
            if stored.changed:
                raise ValueError(
                    "a layer of this model holds state the export cannot list, so it saves the whole "
                    "model, tables as trained: export it without table_dtype and keep_ids"
                ) from error
            # A layer holds state ModelState does not know: save the whole model (slower).
            shutil.rmtree(staging, ignore_errors=True)
            tf.saved_model.save(module, str(staging), signatures=signatures)
            whole_state = False
        write_model_config(staging, model, variables_as_trained=whole_state and not stored.changed)
        step("writing the warmup requests")
        features = warmup_features if warmup_features is not None else sample_features(module.specs)
        logs = warmup_logs(module.signature_kinds(), module.specs, features, model_name or base.resolve().name)
        write_warmup(staging, logs)
        step("replaying them on the saved graph in a fresh process")
        _replay_before_publishing(staging)
        with _exclusive(base):  # choosing the number and renaming is atomic among exporters
            if version is None:
                version = next_version(base)
            target = base / str(version)
            if target.exists():
                raise FileExistsError(
                    f"version {version} already exists at {target}; pick another version or remove it"
                )
            os.rename(staging, target)
        step(None)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


class _Steps:
    """Logs ``[i/4] <step>`` as each step starts and the total time at the end (``None``)."""

    COUNT = 4

    def __init__(self, log: Callable[[str], None] | None) -> None:
        self._log, self._done, self._started = log, 0, time.perf_counter()

    def __call__(self, name: str | None) -> None:
        if self._log is None:
            return
        if name is None:
            self._log(f"  exported in {time.perf_counter() - self._started:.1f} s")
            return
        self._done += 1
        self._log(f"  [{self._done}/{self.COUNT}] {name}")


def _replay_before_publishing(staging: pathlib.Path) -> None:
    """Load the staged version as TF Serving does and replay its warmup: a failure never gets a version."""
    from tfmtl.serving.session import Servable, replay_warmup

    servable = Servable("staging", 0, staging)
    try:
        replay_warmup(servable)
    finally:
        servable.close()


@contextlib.contextmanager
def _exclusive(base: pathlib.Path) -> Iterator[None]:
    with open(base / ".tfmtl-export.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
