"""What every file reader shares: label columns, file lists, and the tf.data pipeline around a parser.

A reader returns a ``tf.data`` pipeline that reads the files lazily (nothing is
loaded into memory): list the files, shard them per input pipeline, interleave the
readers, shuffle in a bounded buffer, batch, parse, preprocess, prefetch. Its batches
are the same dicts as :meth:`MultiTaskData.to_dataset`: features keyed by input name
(shaped as ``schema.input_specs()``), labels keyed by label key (float32, NaN = no label).

Preprocessing: with an adapted schema, the batches are preprocessed in the pipeline
(``preprocess=None``, the default; see :class:`~tfmtl.features.FeaturePreprocessor`):
the lookups, hashing and standardization run in ``tf.data``'s threads, overlapping the
training step, and a model checks that the batches carry its own schema's fingerprint.
``preprocess=False`` keeps raw values (for ``compile(gauc_by=...)`` evaluation, or to
look at the data).

Sharding: pass ``input_context`` (from ``strategy.distribute_datasets_from_function``)
and each input pipeline reads its own files (its own records when there are fewer
files than pipelines) with the per-replica batch size. Without it the dataset carries
``auto_shard_policy=AUTO`` (by record: the file list is a tensor), so
``strategy.experimental_distribute_dataset`` and Keras ``fit`` under a multi-worker
strategy shard it.
"""

from __future__ import annotations

import pathlib
from typing import Any, Iterable, Sequence

import numpy as np

from tfmtl._compat import tf
from tfmtl.data.dataset import MultiTaskData, preprocessed
from tfmtl.features.schema import Schema
from tfmtl.tasks.task import Task, check_tasks

FORMATS = ("csv", "parquet", "tfrecord")


def label_keys(tasks: Sequence[Task]) -> list[str]:
    """Every label column the tasks read: labels, sample spaces and sample weights, in task order.

    Example:

    >>> import tfmtl
    >>> label_keys([tfmtl.Task.binary("click"), tfmtl.Task.binary("buy", space="click", sample_weight="w")])
    ['click', 'buy', 'w']
    """
    keys: list[str] = []
    for task in check_tasks(tasks):
        for key in (task.label_key, task.space, task.sample_weight):
            if key is not None and key not in keys:
                keys.append(key)
    return keys


def _label_columns(inputs: Iterable[str], tasks: Sequence[Task]) -> list[str]:
    """:func:`label_keys`, none of which may also be an input: a file has one column per name."""
    labels, inputs = label_keys(tasks), set(inputs)
    clash = [key for key in labels if key in inputs]
    if clash:
        raise ValueError(f"label(s) {clash} are also features of the schema; a file has one column per name")
    return labels


def _expand(paths: str | pathlib.Path | Iterable[str | pathlib.Path]) -> list[str]:
    patterns = [paths] if isinstance(paths, (str, pathlib.Path)) else list(paths)
    files = sorted({name for pattern in patterns for name in tf.io.gfile.glob(str(pattern))})
    if not files:
        raise FileNotFoundError(f"no files match {[str(p) for p in patterns]}")
    return files


def _pipeline(
    files: list[str],
    reader: Any,
    parse: Any,
    batch_size: int,
    *,
    shuffle_buffer: int,
    seed: Any,
    input_context: tf.distribute.InputContext | None,
    drop_remainder: bool,
    schema: Schema,
    preprocess: bool | None,
) -> tf.data.Dataset:
    """files -> shard -> interleave(reader) -> shuffle -> batch -> parse -> preprocess -> prefetch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dataset = tf.data.Dataset.from_tensor_slices(files)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.AUTO
    by_record = False
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
        pipelines, index = input_context.num_input_pipelines, input_context.input_pipeline_id
        if len(files) >= pipelines:
            dataset = dataset.shard(pipelines, index)
        else:
            by_record = True
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    dataset = dataset.interleave(
        reader, cycle_length=min(len(files), 4), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    if by_record:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = preprocessed(dataset, schema, preprocess)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def _columns(data: MultiTaskData) -> tuple[dict[str, np.ndarray], dict[str, tf.DType]]:
    """The input and label columns of ``data`` with their dtypes (labels float32)."""
    specs = data.schema.input_specs()
    columns = {name: data.features[name] for name in specs}
    columns.update({key: data.labels[key] for key in label_keys(data.tasks)})
    dtypes = {name: spec.dtype for name, spec in specs.items()}
    dtypes.update({key: tf.float32 for key in label_keys(data.tasks)})
    return columns, dtypes
