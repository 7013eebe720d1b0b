"""Training with embedding tables sharded over parameter servers (``tf.distribute.ParameterServerStrategy``).

A cluster has one coordinator (TF_CONFIG task type ``chief``), N ``worker`` and M ``ps``
tasks. Every process runs the same script: workers and parameter servers call
:func:`start_server`, which serves until the process is stopped; the coordinator builds
the strategy with :func:`parameter_server_strategy`, builds and compiles the model
under ``strategy.scope()``, and trains with :func:`tfmtl.training.fit`, which, under
this strategy, gives every worker its own input pipeline (preprocessing included) and
checkpoints at epoch ends.

Variables of at least ``2 * min_shard_bytes`` (the embedding tables) are split row-wise
over the parameter servers, at most one shard per server; smaller ones (dense layers)
are placed whole, round-robin. Embedding lookups read only the batch's rows of each
shard (``tf.nn.embedding_lookup``), and the optimizer's sparse updates
(:class:`~tfmtl.training.LazyAdam`, :class:`~tfmtl.training.RowWiseAdagrad`, the
default) write only those rows back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfmtl._compat import keras, tf


def _resolver(cluster_resolver: Any) -> Any:
    return cluster_resolver if cluster_resolver is not None else tf.distribute.cluster_resolver.TFConfigClusterResolver()


def _tasks(resolver: Any) -> dict[str, list[str]]:
    return {job: list(addresses) for job, addresses in resolver.cluster_spec().as_dict().items()}


def parameter_server_strategy(cluster_resolver: Any = None, *, min_shard_bytes: int = 256 << 10) -> Any:
    """A ``ParameterServerStrategy`` whose large variables are split row-wise over all parameter servers.

    Args:
      cluster_resolver: The cluster; default: ``TF_CONFIG`` (this process being its
        ``chief``, the coordinator).
      min_shard_bytes: Variables smaller than twice this stay in one piece.

    Raises:
      ValueError: the cluster has no ``ps`` or no ``worker`` task.

    Example (in the coordinator of a cluster: ``examples/train_parameter_server.py``):

    >>> import tfmtl
    >>> strategy = tfmtl.training.parameter_server_strategy()  # doctest: +SKIP
    >>> with strategy.scope():  # doctest: +SKIP
    ...     model = tfmtl.models.mmoe(schema, tasks)
    ...     model.compile()
    >>> tfmtl.training.fit(model, data, epochs=2, steps_per_epoch=1000)  # doctest: +SKIP

    A cluster without parameter servers is refused before anything connects:

    >>> import tensorflow as tf
    >>> workers_only = tf.distribute.cluster_resolver.SimpleClusterResolver(
    ...     tf.train.ClusterSpec({"worker": ["127.0.0.1:2222"]}), task_type="chief", task_id=0)
    >>> try:
    ...     tfmtl.training.parameter_server_strategy(workers_only)
    ... except ValueError as error:
    ...     print(str(error).split(" (")[0])
    ParameterServerStrategy needs 'ps' tasks, but the cluster has ['worker']
    """
    if min_shard_bytes < 1:
        raise ValueError(f"min_shard_bytes must be >= 1, got {min_shard_bytes}")
    resolver = _resolver(cluster_resolver)
    tasks = _tasks(resolver)
    for job in ("ps", "worker"):
        if not tasks.get(job):
            raise ValueError(
                f"ParameterServerStrategy needs '{job}' tasks, but the cluster has {sorted(tasks) or 'none'} "
                "(set TF_CONFIG's cluster, or pass a cluster_resolver)"
            )
    partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
        min_shard_bytes=min_shard_bytes, max_shards=len(tasks["ps"])
    )
    return tf.distribute.ParameterServerStrategy(resolver, variable_partitioner=partitioner)


def start_server(cluster_resolver: Any = None, *, join: bool = True) -> Any:
    """Start this process's ``worker`` or ``ps`` server (from ``TF_CONFIG``); with ``join``, serve until stopped.

    Returns None, without starting anything, in the coordinator (``chief``), so one
    script serves every task: ``tfmtl.training.start_server()`` first, then the
    coordinator's training code.

    Returns:
      The started ``tf.distribute.Server`` (``join=False``), or None in the coordinator.

    Example (without ``TF_CONFIG``, this process is no cluster task: nothing starts):

    >>> import tfmtl
    >>> tfmtl.training.start_server() is None
    True
    """
    resolver = _resolver(cluster_resolver)
    job = resolver.task_type
    if job in ("chief", None):
        return None
    if job not in ("worker", "ps"):
        raise ValueError(f"TF_CONFIG's task type must be 'chief', 'worker' or 'ps', got {job!r}")
    server = tf.distribute.Server(
        resolver.cluster_spec(), job_name=job, task_index=int(resolver.task_id),
        protocol=resolver.rpc_layer or "grpc", start=True,
    )
    if join:
        server.join()
    return server


def is_parameter_server_strategy(strategy: Any) -> bool:
    """Whether ``strategy`` trains through a cluster coordinator (``ParameterServerStrategy``).

    Example:

    >>> import tfmtl, tensorflow as tf
    >>> tfmtl.training.is_parameter_server_strategy(tf.distribute.get_strategy())
    False
    """
    return bool(getattr(strategy, "_should_use_with_coordinator", False))


def sharded_dataset_fn(dataset_for_epoch: Any, epoch: int, num_workers: int) -> Any:
    """The function each worker runs to build its input: its share of ``dataset_for_epoch(epoch)``, repeated.

    The worker builds the whole pipeline (reading and preprocessing run there) and
    keeps every ``num_workers``-th batch, starting at its own index
    (``tf.distribute.coordinator.experimental_get_current_worker_index()``: under
    ``ParameterServerStrategy`` the input context always says one pipeline). A source
    that can shard itself before preprocessing (``read_tfrecord(..., input_context=...)``)
    saves the workers that work; this one is generic.

    Example:

    >>> import tfmtl, tensorflow as tf
    >>> build = tfmtl.training.sharded_dataset_fn(lambda epoch: tf.data.Dataset.range(4), epoch=0, num_workers=1)
    >>> [int(x) for x in build(None).take(6)]  # one worker: everything, repeated
    [0, 1, 2, 3, 0, 1]
    """
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")

    def dataset_fn(context: Any = None) -> Any:
        dataset = dataset_for_epoch(epoch)
        if num_workers > 1:
            dataset = dataset.shard(num_workers, tf.distribute.coordinator.experimental_get_current_worker_index())
        return dataset.repeat()  # the coordinator counts the steps; a worker never runs dry mid-epoch

    return dataset_fn


def per_worker_dataset(dataset_for_epoch: Any, epoch: int, num_workers: int) -> Any:
    """:func:`sharded_dataset_fn` as the Keras ``DatasetCreator`` that ``model.fit`` takes.

    :func:`tfmtl.training.fit` uses it under ``ParameterServerStrategy``.

    Example:

    >>> import tfmtl, tensorflow as tf
    >>> creator = tfmtl.training.per_worker_dataset(lambda epoch: tf.data.Dataset.range(4), epoch=0, num_workers=2)
    >>> type(creator).__name__
    'DatasetCreator'
    """
    return keras.utils.experimental.DatasetCreator(sharded_dataset_fn(dataset_for_epoch, epoch, num_workers))


def worker_count(strategy: Any) -> int:
    """The number of ``worker`` tasks in ``strategy``'s cluster (1 without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    return max(1, len(_tasks(resolver).get("worker", [])))


def full_weights(model: Any) -> list[np.ndarray]:
    """``model``'s weights with each sharded variable joined into one array (``get_weights`` lists the shards).

    A model built outside the strategy takes them with ``set_weights``.

    Example:

    >>> import tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(4,))
    >>> len(tfmtl.training.full_weights(model)) == len(model.get_weights())
    True
    """
    out, seen = [], set()
    for weight in model.weights:
        container = getattr(weight, "_sharded_container", lambda: None)()  # set on each shard by ShardedVariable
        if container is None:
            out.append(weight.numpy())
        elif id(container) not in seen:
            seen.add(id(container))
            out.append(np.concatenate([part.numpy() for part in container.variables], axis=0))
    return out


__all__ = [
    "full_weights",
    "is_parameter_server_strategy",
    "parameter_server_strategy",
    "per_worker_dataset",
    "sharded_dataset_fn",
    "start_server",
]
