"""One pass over the data to learn vocabularies and normalization statistics."""

from __future__ import annotations

import collections
import dataclasses
import warnings
from typing import Any, Iterable, Mapping

import numpy as np

from tfmtl._compat import tf
from tfmtl.features.schema import Categorical, Feature, IdType, Numeric, Schema


class _VocabularyCounter:
    def __init__(self, spec: Categorical) -> None:
        self.spec = spec
        self.counts: collections.Counter = collections.Counter()

    def update(self, values: np.ndarray) -> None:
        values = values.reshape(-1)
        if self.spec.id_type is IdType.STRING:
            if values.dtype.kind not in "OSU" or (
                values.dtype == object and not all(isinstance(v, (str, bytes)) for v in values)
            ):
                raise TypeError(
                    f"feature {self.spec.name!r} expects string ids, got {values.dtype} values (convert the ids to str)"
                )
            if values.dtype.kind == "S" or (values.dtype == object and values.size and isinstance(values[0], bytes)):
                values = np.char.decode(values.astype("S"), "utf-8") if values.size else values
            values = values.astype(str)
        else:
            if values.dtype.kind not in "iu":
                raise TypeError(f"feature {self.spec.name!r} expects int64 ids, got {values.dtype} values")
            values = values.astype(np.int64)
        uniques, counts = np.unique(values, return_counts=True)
        self.counts.update(dict(zip(uniques.tolist(), counts.tolist())))

    def result(self) -> Categorical:
        items = [(value, count) for value, count in self.counts.items() if count >= self.spec.min_count]
        # Most frequent first; ties broken by the id itself so the order is deterministic.
        items.sort(key=lambda item: (-item[1], item[0]))
        if self.spec.max_vocabulary_size is not None:
            items = items[: self.spec.max_vocabulary_size]
        if not items:
            raise ValueError(
                f"feature {self.spec.name!r}: no id was seen at least min_count={self.spec.min_count} times"
            )
        return dataclasses.replace(self.spec, vocabulary=tuple(value for value, _ in items))


class _MomentAccumulator:
    def __init__(self, spec: Numeric) -> None:
        self.spec = spec
        self.count = 0
        self.total = 0.0
        self.total_sq = 0.0

    def update(self, values: np.ndarray) -> None:
        if values.dtype.kind not in "biuf":
            raise TypeError(f"feature {self.spec.name!r} is numeric and expects float values, got {values.dtype}")
        values = values.astype(np.float64).reshape(-1)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"feature {self.spec.name!r} contains NaN or infinite values")
        self.count += values.size
        self.total += float(values.sum())
        self.total_sq += float(np.square(values).sum())

    def result(self) -> Numeric:
        if self.count == 0:
            raise ValueError(f"feature {self.spec.name!r}: no values to adapt on")
        mean = self.total / self.count
        variance = max(self.total_sq / self.count - mean * mean, 0.0)
        if variance <= 1e-12 * max(1.0, mean * mean):
            # Dividing by ~0 would turn any other value at serving time into ~1e7.
            warnings.warn(
                f"feature {self.spec.name!r} is constant ({mean}) in the adapt data; using variance 1.0",
                stacklevel=4,
            )
            variance = 1.0
        return dataclasses.replace(self.spec, mean=mean, variance=variance)


def _batches(data: Any, names: Iterable[str], batch_size: int) -> Iterable[Mapping[str, np.ndarray]]:
    names = list(names)
    if isinstance(data, tf.data.Dataset):
        for element in data.as_numpy_iterator():
            features = element[0] if isinstance(element, tuple) else element
            yield features
        return
    if not isinstance(data, Mapping):
        raise TypeError(f"adapt expects a dict of arrays or a tf.data.Dataset, got {type(data).__name__}")
    arrays = {}
    for name in names:
        if name not in data:
            raise ValueError(f"cannot adapt feature {name!r}: it is missing from the data")
        arrays[name] = np.asarray(data[name])
    num_rows = len(next(iter(arrays.values()))) if arrays else 0
    for start in range(0, num_rows, batch_size):
        yield {name: array[start : start + batch_size] for name, array in arrays.items()}


def adapt_schema(schema: Schema, data: Any, *, batch_size: int = 65536) -> Schema:
    """See :meth:`Schema.adapt`."""
    accumulators: dict[str, Any] = {}
    for spec in schema:
        if spec.is_adapted:
            continue
        accumulators[spec.name] = (
            _VocabularyCounter(spec) if isinstance(spec, Categorical) else _MomentAccumulator(spec)
        )
    if not accumulators:
        return schema
    for batch in _batches(data, accumulators, batch_size):
        for name, accumulator in accumulators.items():
            if name not in batch:
                raise ValueError(f"cannot adapt feature {name!r}: it is missing from the data")
            accumulator.update(np.asarray(batch[name]))
    learned: dict[str, Feature] = {name: acc.result() for name, acc in accumulators.items()}
    return schema.replace(**learned)
