"""A small in-memory container for multi-task data, with checks and tf.data conversion."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Mapping

import numpy as np

from tfmtl._compat import tf
from tfmtl.features.kinds import PAD_INT64, PAD_STRING
from tfmtl.features.preprocessing import dataset_preprocessor
from tfmtl.features.schema import Schema, conform_input
from tfmtl.tasks.sampling import check_rate
from tfmtl.tasks.task import Task, check_tasks


@dataclasses.dataclass
class MultiTaskData:
    """Feature and label arrays with the schema and tasks that describe them.

    Args:
      features: Input name to array: 1-D (one value per row), or 2-D ``[rows, n]`` for
        padded sequences, their weights and dense vectors (see ``schema.input_specs()``).
      labels: Label key to 1-D float array; NaN means "no label".
      schema: The (possibly not yet adapted) feature schema.
      tasks: The tasks whose ``label_key`` index ``labels``.
      oracle: Optional ground truth keyed by task name (synthetic data): the true probability
        of a binary task, the noise-free target of a regression task.

    Example:

    >>> import numpy as np, tfmtl
    >>> data = tfmtl.data.MultiTaskData(
    ...     features={"price": np.array([1.0, 2.0, 3.0])}, labels={"click": np.array([0.0, 1.0, np.nan])},
    ...     schema=tfmtl.Schema([tfmtl.Numeric("price")]), tasks=(tfmtl.Task.binary("click"),))
    >>> train, test = data.split(0.67, seed=0)
    >>> len(train), len(test)
    (2, 1)
    """

    features: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    schema: Schema
    tasks: tuple[Task, ...]
    oracle: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        self.tasks = check_tasks(self.tasks)
        if not isinstance(self.features, Mapping):
            raise TypeError(f"features must be a dict of arrays keyed by input name, got {type(self.features).__name__}")
        if not isinstance(self.labels, Mapping):
            keys = ", ".join(sorted({key for task in self.tasks for key in (task.label_key, task.space, task.sample_weight) if key}))
            raise TypeError(f"labels must be a dict of arrays keyed by label name ({keys}), got {type(self.labels).__name__}")
        self.features = conform_arrays(self.schema, self.features)
        self.labels = {name: _label_array(name, value) for name, value in self.labels.items()}
        check_arrays(self.schema, self.tasks, self.features, self.labels)

    def __len__(self) -> int:
        return len(next(iter(self.features.values())))

    def take(self, rows: Any) -> "MultiTaskData":
        """The rows at ``rows`` (indices, a slice or a boolean mask); checked once, when this data was made."""
        pick = lambda arrays: {name: array[rows] for name, array in arrays.items()}  # noqa: E731
        taken = copy.copy(self)  # not the constructor: the rows of checked arrays need no second conversion
        taken.features, taken.labels = pick(self.features), pick(self.labels)
        taken.oracle = pick(self.oracle) if self.oracle else None
        return taken

    def split(self, fraction: float, *, seed: int = 0,
              hold_out: Mapping[str, float] | None = None) -> tuple["MultiTaskData", "MultiTaskData"]:
        """Shuffle rows with ``seed`` and cut them into (first ``fraction``, rest).

        ``hold_out={"item_id": 0.1}`` first draws that share of the feature's distinct
        ids (with ``seed``) and sends every row holding one of them to the second part,
        so the first part (training) never sees them: cold-start ids for evaluation
        (``compile(cold_start_by="item_id")``). Behaviour sequences that share the
        feature's table (``Sequence(table="item_id")``) lose those ids in the first part
        (the later ids move up, the row is padded at the end), since a new item is in
        nobody's history either. The other rows are split as without it, so the first
        part holds ``fraction`` of them.

        Example:

        >>> import numpy as np, tfmtl
        >>> data = tfmtl.data.synthetic_recsys(5_000, history_length=5, seed=1)
        >>> train, test = data.split(0.8, hold_out={"item_id": 0.1})
        >>> unseen = set(test.features["item_id"]) - set(train.features["item_id"])
        >>> bool(set(data.features["item_id"]) - set(train.features["item_id"]) == unseen and len(unseen) > 50)
        True
        >>> len(unseen - set(train.features["history"].ravel())) > 50  # most are in no training history either
        True
        """
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        rng = np.random.default_rng(seed)
        held = np.zeros(len(self), bool)
        held_ids = {}
        for name, share in (hold_out or {}).items():
            if name not in self.features or self.features[name].ndim != 1:
                raise ValueError(f"hold_out names {name!r}, which is not a one-id-per-row feature of this data")
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 < share < 1.0:
                raise ValueError(f"hold_out[{name!r}] must be a share in (0, 1), got {share!r}")
            ids = np.unique(self.features[name])
            held_ids[name] = rng.choice(ids, size=max(1, int(round(share * len(ids)))), replace=False)
            held |= np.isin(self.features[name], held_ids[name])
        rest = np.flatnonzero(~held)
        order = rest[rng.permutation(len(rest))]
        cut = int(round(fraction * len(rest)))
        second = np.concatenate([order[cut:], np.flatnonzero(held)])
        first = self.take(order[:cut])
        for name, ids in held_ids.items():
            first.features.update(_without_ids(self.schema, name, ids, first.features))
        return first, self.take(second[rng.permutation(len(second))])

    def downsample_negatives(self, rates: Mapping[str, float], *, seed: int = 0) -> "MultiTaskData":
        """Keep a share of each named binary task's negatives, as production training sets do.

        Per task, every negative label (0) is kept with probability ``rate`` and made
        missing otherwise (the row still trains the other tasks); rows left with no label
        for any task (inside its ``space``) are dropped. The returned data's tasks declare the rates
        (``Task.negative_sampling_rate``), so a model built from them answers corrected
        probabilities (:mod:`tfmtl.tasks.sampling`). Sampling data whose task already
        declares a rate ``r0`` keeps ``r0 * rate`` of the original negatives, and declares that.

        Args:
          rates: Task name to the share of its (remaining) negatives kept, in (0, 1].
          seed: Seed of the draws.

        Example:

        >>> import numpy as np, tfmtl
        >>> data = tfmtl.data.synthetic_recsys(20_000, seed=0)
        >>> sampled = data.downsample_negatives({"click": 0.1})
        >>> share = np.sum(sampled.labels["click"] == 0) / np.sum(data.labels["click"] == 0)
        >>> sampled.tasks[0].negative_sampling_rate, bool(abs(share - 0.1) < 0.01)
        (0.1, True)
        """
        by_name = {task.name: task for task in self.tasks}
        unknown = sorted(set(rates) - set(by_name))
        if unknown:
            raise ValueError(f"downsample_negatives: no task {unknown[0]!r}; tasks: {sorted(by_name)}")
        rng = np.random.default_rng(seed)
        labels = dict(self.labels)
        tasks = list(self.tasks)
        for name, rate in rates.items():
            rate = check_rate(rate, f"downsample_negatives: task {name!r}")
            old = by_name[name]
            task = dataclasses.replace(old, negative_sampling_rate=old.negative_sampling_rate * rate)  # checks the kind
            label = labels[task.label_key]
            dropped = (label == 0) & (rng.random(len(label)) >= rate)
            labels[task.label_key] = np.where(dropped, np.nan, label).astype(label.dtype)
            tasks[tasks.index(by_name[name])] = task
        counted = np.zeros(len(self), bool)  # rows some task still learns from: label present, inside its space
        for task in tasks:
            present = ~np.isnan(labels[task.label_key]) & (labels[task.label_key] >= 0)
            counted |= present if task.space is None else present & (labels[task.space] == 1)
        sampled = copy.copy(self)
        sampled.labels, sampled.tasks = labels, tuple(tasks)
        return sampled.take(counted)

    def to_dataset(
        self, batch_size: int = 512, *, shuffle: bool = False, seed: int | None = None, preprocess: bool | None = None
    ) -> tf.data.Dataset:
        """A batched ``tf.data.Dataset`` of ``(features, labels)`` dicts for ``model.fit``.

        With an adapted schema the features are preprocessed in the pipeline
        (``preprocess=None``; see :func:`preprocessed`); ``preprocess=False`` keeps raw values.
        """
        features = {name: self.features[name] for name in self.schema.input_specs()}
        labels = {task.label_key: self.labels[task.label_key] for task in self.tasks}
        dataset = tf.data.Dataset.from_tensor_slices((features, labels))
        if shuffle:
            dataset = dataset.shuffle(min(len(self), 100_000), seed=seed, reshuffle_each_iteration=True)
        return preprocessed(dataset.batch(batch_size), self.schema, preprocess).prefetch(tf.data.AUTOTUNE)


def _without_ids(schema: Schema, name: str, ids: np.ndarray, features: Mapping[str, np.ndarray]
                 ) -> dict[str, np.ndarray]:
    """The sequences sharing ``name``'s table with ``ids`` removed: later ids (and weights) move up, padding at the end."""
    from tfmtl.features.sequence import Sequence

    spec = schema[name] if name in schema else None
    table = spec.table_name if hasattr(spec, "table_name") else name
    out = {}
    for spec in schema:
        if not isinstance(spec, Sequence) or spec.table_name != table or spec.name == name:
            continue
        values = features[spec.name]
        keep = ~np.isin(values, ids)
        order = np.argsort(~keep, axis=1, kind="stable")  # kept ids first, in their order
        padding = np.arange(values.shape[1])[None, :] >= keep.sum(axis=1)[:, None]
        out[spec.name] = np.take_along_axis(values, order, axis=1)
        out[spec.name][padding] = PAD_STRING if values.dtype.kind in "OUS" else PAD_INT64
        if spec.weighted:
            out[spec.weights_name] = np.take_along_axis(features[spec.weights_name], order, axis=1)
            out[spec.weights_name][padding] = 0.0
    return out


def preprocessed(dataset: tf.data.Dataset, schema: Schema, preprocess: bool | None = None) -> tf.data.Dataset:
    """Map batches of ``(features, labels)`` through the schema's preprocessing stage, in ``tf.data``.

    The lookups, hashing and standardization then run in ``tf.data``'s threads,
    overlapping the training step, and the batches carry the schema's fingerprint
    (:data:`~tfmtl.features.preprocessing.SCHEMA_KEY`), which a model checks against its own.

    Args:
      dataset: Batches of ``(features, labels)`` (or of features alone).
      schema: The model's schema.
      preprocess: True, False, or None: when ``schema`` is adapted.

    Example:

    >>> import tfmtl, tensorflow as tf
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=2.0, variance=1.0)])
    >>> batches = tfmtl.data.preprocessed(tf.data.Dataset.from_tensors({"price": [1.0, 3.0]}), schema)
    >>> next(iter(batches))["price"].numpy().tolist()
    [-1.0, 1.0]
    """
    if preprocess is None:
        preprocess = schema.is_adapted
    if not isinstance(preprocess, bool):
        raise TypeError(f"preprocess must be True, False or None, got {preprocess!r}")
    if not preprocess:
        return dataset
    stage = dataset_preprocessor(schema)

    def apply(*element: Any) -> Any:
        if len(element) == 1:
            return stage.for_dataset(element[0])
        return (stage.for_dataset(element[0]), *element[1:])

    return dataset.map(apply, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def conform_arrays(schema: Schema, features: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Feature arrays converted as :meth:`Schema.conform` converts a batch (the same rules at every entry point).

    ``[rows, 1]`` becomes ``[rows]``, integer numerics become float32, Python id lists
    and sequences of another width are padded or truncated (most recent first);
    anything else is checked by :func:`check_arrays`.
    """
    specs = schema.input_specs()
    out = {}
    for name, value in features.items():
        spec = specs.get(name)
        array = value if isinstance(value, np.ndarray) else None
        if spec is None or (array is not None and _already_conformed(array, spec)):
            out[name] = np.asarray(value)
            continue
        feature = next(f for f in schema if name in f.input_specs())
        tensor = conform_input(name, spec, value, padded=feature.padded)
        array = tensor.numpy()
        if spec.dtype == tf.string:
            array = np.array([v.decode("utf-8") for v in array.reshape(-1)], dtype=object).reshape(array.shape)
        out[name] = array
    return out


def _already_conformed(array: np.ndarray, spec: tf.TensorSpec) -> bool:
    if array.ndim != spec.shape.rank or (array.ndim == 2 and array.shape[1] != spec.shape[1]):
        return False
    if spec.dtype.is_floating:
        return array.dtype.kind in "iuf"
    if spec.dtype == tf.string:
        return array.dtype.kind in "US"
    return array.dtype.kind in "iu"


def _label_array(name: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"label {name!r} must hold numbers (NaN = no label), got {array.dtype} values")
    return array.astype(np.float32)


def check_arrays(
    schema: Schema, tasks: tuple[Task, ...], features: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray]
) -> None:
    """Raise a clear error for missing/unknown features, bad dtypes, NaN, ragged lengths, missing labels."""
    specs = schema.input_specs()
    unknown = sorted(set(features) - set(specs))
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown}; the schema has: {', '.join(specs)}")
    lengths = {}
    for name, spec in specs.items():
        if name not in features:
            raise ValueError(f"feature {name!r} is missing from the data")
        array = features[name]
        if spec.shape.rank == 1 and array.ndim != 1:
            raise ValueError(f"feature {name!r} must be 1-D (one value per row), got shape {array.shape}")
        if spec.shape.rank == 2 and (array.ndim != 2 or array.shape[1] != spec.shape[1]):
            raise ValueError(f"feature {name!r} must be 2-D [rows, {spec.shape[1]}], got shape {array.shape}")
        if spec.dtype.is_floating:
            if array.dtype.kind not in "biuf":
                raise TypeError(f"feature {name!r} is numeric and expects float values, got {array.dtype}")
            if not np.all(np.isfinite(array)):
                raise ValueError(f"feature {name!r} contains NaN or infinite values")
        elif spec.dtype == tf.string and array.dtype.kind not in "OUS":
            raise TypeError(f"feature {name!r} expects string ids, got {array.dtype} (convert the ids to str)")
        elif spec.dtype == tf.int64 and array.dtype.kind not in "iu":
            raise TypeError(f"feature {name!r} expects int64 ids, got {array.dtype}")
        lengths[name] = len(array)
    for task in tasks:
        if task.label_key not in labels:
            raise ValueError(
                f"task {task.name!r} has no label column {task.label_key!r}; label columns: {sorted(labels)}"
            )
        lengths[f"label {task.label_key}"] = len(labels[task.label_key])
    if len(set(lengths.values())) > 1:
        raise ValueError(f"columns have different numbers of rows: {lengths}")
