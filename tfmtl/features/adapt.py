"""One pass over the data to learn vocabularies and normalization statistics."""

from __future__ import annotations

import collections
import dataclasses
import warnings
from typing import Any, Iterable, Mapping

import numpy as np

from tfmtl._compat import tf
from tfmtl.features.ids import Categorical, Sequence
from tfmtl.features.kinds import FeatureKind, IdType, transform_values
from tfmtl.features.preprocessing import SCHEMA_KEY
from tfmtl.features.schema import Feature, Schema
from tfmtl.features.values import Bucketized, Numeric


#: Values kept (a uniform sample) to learn a bucketized feature's quantiles.
QUANTILE_SAMPLE_SIZE = 100_000


class _VocabularyCounter:
    """Counts the ids of every feature that reads one embedding table (padding of sequences excluded)."""

    def __init__(self, members: list[Categorical]) -> None:
        self.members = members
        self.spec = members[0]
        self.counts: collections.Counter = collections.Counter()

    @property
    def names(self) -> list[str]:
        return [member.name for member in self.members]

    def update(self, values: np.ndarray, name: str) -> None:
        values = values.reshape(-1)
        if self.spec.id_type is IdType.STRING:
            if values.dtype.kind not in "OSU" or (
                values.dtype == object and not all(isinstance(v, (str, bytes)) for v in values)
            ):
                raise TypeError(
                    f"feature {name!r} expects string ids, got {values.dtype} values (convert the ids to str)"
                )
            if values.dtype.kind == "S" or (values.dtype == object and values.size and isinstance(values[0], bytes)):
                values = np.char.decode(values.astype("S"), "utf-8") if values.size else values
            values = values.astype(str)
        else:
            if values.dtype.kind not in "iu":
                raise TypeError(f"feature {name!r} expects int64 ids, got {values.dtype} values")
            values = values.astype(np.int64)
        if isinstance(self.spec, Sequence) or any(isinstance(m, Sequence) for m in self.members):
            values = values[values != self.spec.id_type.pad]
        uniques, counts = np.unique(values, return_counts=True)
        self.counts.update(dict(zip(uniques.tolist(), counts.tolist())))

    def result(self) -> dict[str, Feature]:
        items = [(value, count) for value, count in self.counts.items() if count >= self.spec.min_count]
        # Most frequent first; ties broken by the id itself so the order is deterministic.
        items.sort(key=lambda item: (-item[1], item[0]))
        if self.spec.max_vocabulary_size is not None:
            items = items[: self.spec.max_vocabulary_size]
        if not items:
            raise ValueError(
                f"feature(s) {self.names}: no id was seen at least min_count={self.spec.min_count} times"
            )
        vocabulary = tuple(value for value, _ in items)
        return {member.name: dataclasses.replace(member, vocabulary=vocabulary) for member in self.members}


def _float_values(spec: Numeric | Bucketized, values: np.ndarray) -> np.ndarray:
    """The transformed float64 values of a numeric feature, or an error naming it."""
    if values.dtype.kind not in "biuf":
        raise TypeError(f"feature {spec.name!r} is numeric and expects float values, got {values.dtype}")
    values = values.astype(np.float64).reshape(-1)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"feature {spec.name!r} contains NaN or infinite values")
    return transform_values(values, spec.clip, spec.log)


class _MomentAccumulator:
    def __init__(self, spec: Numeric) -> None:
        self.spec = spec
        self.names = [spec.name]
        self.count = 0
        self.total = 0.0
        self.total_sq = 0.0

    def update(self, values: np.ndarray, name: str) -> None:
        values = _float_values(self.spec, values)
        self.count += values.size
        self.total += float(values.sum())
        self.total_sq += float(np.square(values).sum())

    def result(self) -> dict[str, Feature]:
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
        return {self.spec.name: dataclasses.replace(self.spec, mean=mean, variance=variance)}


class _QuantileSampler:
    """A uniform sample (without replacement) of at most QUANTILE_SAMPLE_SIZE values, then quantiles."""

    def __init__(self, spec: Bucketized) -> None:
        self.spec = spec
        self.names = [spec.name]
        self.rng = np.random.default_rng(0)
        self.sample = np.empty([0])
        self.keys = np.empty([0])

    def update(self, values: np.ndarray, name: str) -> None:
        values = _float_values(self.spec, values)
        # Keep the values with the smallest random keys: a uniform sample of the stream.
        self.sample = np.concatenate([self.sample, values])
        self.keys = np.concatenate([self.keys, self.rng.random(values.size)])
        if self.sample.size > QUANTILE_SAMPLE_SIZE:
            keep = np.argpartition(self.keys, QUANTILE_SAMPLE_SIZE)[:QUANTILE_SAMPLE_SIZE]
            self.sample, self.keys = self.sample[keep], self.keys[keep]

    def result(self) -> dict[str, Feature]:
        if self.sample.size == 0:
            raise ValueError(f"feature {self.spec.name!r}: no values to adapt on")
        levels = np.linspace(0.0, 1.0, self.spec.num_buckets + 1)[1:-1]
        boundaries = np.unique(np.quantile(self.sample, levels)) if levels.size else np.empty([0])
        boundaries = boundaries[boundaries > self.sample.min()]  # no empty first bucket
        if boundaries.size < levels.size:
            warnings.warn(
                f"feature {self.spec.name!r}: repeated values leave {boundaries.size + 1} distinct buckets "
                f"of the {self.spec.num_buckets} asked for",
                stacklevel=4,
            )
        if boundaries.size == 0:
            boundaries = np.array([float(np.max(self.sample))])  # constant: its value opens the top bucket
        return {self.spec.name: dataclasses.replace(self.spec, boundaries=tuple(float(b) for b in boundaries))}


def _batches(data: Any, names: Iterable[str], batch_size: int) -> Iterable[Mapping[str, np.ndarray]]:
    names = list(names)
    if isinstance(data, tf.data.Dataset):
        for element in data.as_numpy_iterator():
            features = element[0] if isinstance(element, tuple) else element
            if SCHEMA_KEY in features:
                raise ValueError(
                    "adapt needs raw values, but this dataset was preprocessed: build it with preprocess=False"
                )
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
    accumulators: list[Any] = []
    for members in schema.tables.values():
        if not all(member.is_adapted for member in members):
            accumulators.append(_VocabularyCounter(members))
    for spec in schema:
        if spec.kind is FeatureKind.NUMERIC and not spec.is_adapted:
            accumulators.append(_MomentAccumulator(spec))
        elif spec.kind is FeatureKind.BUCKETIZED and not spec.is_adapted:
            accumulators.append(_QuantileSampler(spec))
    if not accumulators:
        return schema
    names = [name for accumulator in accumulators for name in accumulator.names]
    for batch in _batches(data, names, batch_size):
        for accumulator in accumulators:
            for name in accumulator.names:
                if name not in batch:
                    raise ValueError(f"cannot adapt feature {name!r}: it is missing from the data")
                accumulator.update(np.asarray(batch[name]), name)
    learned: dict[str, Feature] = {}
    for accumulator in accumulators:
        learned.update(accumulator.result())
    return schema.replace(**learned)
