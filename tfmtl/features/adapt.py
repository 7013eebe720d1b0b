"""One pass over the data to learn vocabularies, statistics and bucket boundaries, or to grow vocabularies.

:func:`adapt_schema` (``Schema.adapt``) learns what a schema leaves out;
:func:`update_schema` (``Schema.update``) grows the id vocabularies of an adapted one with
a new period's data (:meth:`~tfmtl.features.categorical.VocabularyCounter.grown`).

Each feature kind brings its own :class:`~tfmtl.features.kinds.Accumulator`
(:meth:`~tfmtl.features.kinds.FeatureSpec.accumulator`); features in one
``adapt_group`` (the members of an embedding table) share one.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Mapping

import numpy as np

from tfmtl._compat import keras, tf
from tfmtl.features.preprocessing import SCHEMA_KEY
from tfmtl.features.schema import Feature, Schema


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


def _total_rows(data: Any, names: list[str]) -> int | None:
    if isinstance(data, Mapping) and names and names[0] in data:
        return len(data[names[0]])
    return None  # a dataset of files: unknown until read


def _check_verbose(verbose: Any) -> int:
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 0
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return verbose


def _count(accumulators: list[Any], data: Any, batch_size: int, verbose: int, what: str, done: str) -> None:
    """One pass over ``data`` feeding every accumulator its features."""
    names = [name for accumulator in accumulators for name in accumulator.names]
    progress = keras.utils.Progbar(_total_rows(data, names), unit_name="row") if verbose == 1 else None
    rows, started = 0, time.perf_counter()
    for batch in _batches(data, names, batch_size):
        for accumulator in accumulators:
            for name in accumulator.names:
                if name not in batch:
                    raise ValueError(f"cannot {what} feature {name!r}: it is missing from the data")
                accumulator.update(np.asarray(batch[name]), name)
        rows += len(np.asarray(batch[names[0]]))
        if progress is not None:
            progress.update(rows, finalize=False)
    if progress is not None:
        progress.update(rows, finalize=True)
    elif verbose == 2:  # one line, as Keras's verbose=2
        print(f"{done} on {rows:,} rows in {time.perf_counter() - started:.1f} s", flush=True)


def _groups(schema: Schema) -> list[list[Feature]]:
    groups: dict[str, list[Feature]] = {}
    for spec in schema:
        groups.setdefault(spec.adapt_group, []).append(spec)
    return list(groups.values())


def adapt_schema(schema: Schema, data: Any, *, batch_size: int = 65536, verbose: Any = "auto") -> Schema:
    """See :meth:`Schema.adapt`."""
    verbose = _check_verbose(verbose)
    accumulators = [
        type(members[0]).accumulator(members)
        for members in _groups(schema)
        if not all(member.is_adapted for member in members)
    ]
    if not accumulators:
        return schema
    _count(accumulators, data, batch_size, verbose, "adapt", "adapted")
    learned: dict[str, Feature] = {}
    for accumulator in accumulators:
        learned.update(accumulator.result())
    return schema.replace(**learned)


def update_schema(schema: Schema, data: Any, *, batch_size: int = 65536, verbose: Any = "auto") -> Schema:
    """See :meth:`Schema.update`."""
    from tfmtl.features.categorical import Categorical

    verbose = _check_verbose(verbose)
    for spec in schema:
        if not spec.is_adapted:
            raise ValueError(f"cannot update feature {spec.name!r}: it was never adapted; call schema.adapt(data) first")
    accumulators = [
        members[0].accumulator(members)
        for members in _groups(schema)
        if isinstance(members[0], Categorical) and members[0].num_hash_bins is None
    ]
    if not accumulators:
        return schema
    given = data.element_spec if isinstance(data, tf.data.Dataset) else data  # a dataset's keys, before reading it
    given = given[0] if isinstance(given, tuple) else given
    missing = [name for name in schema.input_specs() if name not in given] if isinstance(given, Mapping) else []
    if missing:  # (the same data trains the next version: every input must be there, not only the ids)
        raise ValueError(f"cannot update the vocabularies: feature(s) {missing} are missing from the data")
    _count(accumulators, data, batch_size, verbose, "update the vocabularies", "updated the vocabularies")
    grown: dict[str, Feature] = {}
    for accumulator in accumulators:
        grown.update(accumulator.grown())
    return schema.replace(**grown)
