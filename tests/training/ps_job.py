"""The processes of the parameter-server cluster test (each a fresh Python, its role from TF_CONFIG).

``python ps_job.py server``: a ``worker`` or ``ps`` task (:func:`tfmtl.training.start_server`).
``python ps_job.py coordinator OUT EPOCHS``: the ``chief``: trains an MMoE whose id tables are
sharded over the parameter servers (checkpoints in ``OUT/checkpoints``, resumed when present),
then writes ``OUT/result_<EPOCHS>.npz`` (shards, logs, held-out AUC, in-memory predictions) and exports
to ``OUT/export`` (and with int8 tables to ``OUT/export_int8``).
``python ps_job.py single OUT EPOCHS``: the same model, data and steps in one process.
``python ps_job.py balancers OUT``: the ``chief``: gradient balancing strategies train the MMoE on the cluster.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

import tfmtl
from tfmtl._compat import keras, tf

ROWS, TEST_ROWS, BATCH = 12_000, 4_000, 128


def data() -> tuple[tfmtl.data.MultiTaskData, tfmtl.data.MultiTaskData, tfmtl.Schema]:
    train, test = tfmtl.data.synthetic_recsys(ROWS + TEST_ROWS, seed=3, num_users=600, num_items=400).split(
        ROWS / (ROWS + TEST_ROWS), seed=0)
    return train, test, train.schema.adapt(train.features, verbose=0)


def build(schema: tfmtl.Schema, tasks) -> tfmtl.models.MultiTaskModel:
    keras.utils.set_random_seed(0)
    model = tfmtl.models.mmoe(schema, tasks, num_experts=2, expert_units=(32,))
    # the default steps per execution (1 under ParameterServerStrategy); weights that move every step
    model.compile(optimizer=tfmtl.training.LazyAdam(0.005), balancer=tfmtl.balancing.UncertaintyWeighting())
    return model


def _auc(model: tfmtl.models.MultiTaskModel, test: tfmtl.data.MultiTaskData) -> dict[str, float]:
    metrics = model.evaluate(test.to_dataset(1000), return_dict=True, verbose=0)
    return {f"auc_{task.name}": metrics[f"{task.name}/auc"] for task in test.tasks}


def coordinator(out: str, epochs: str) -> None:
    out_dir = pathlib.Path(out)
    train, test, schema = data()
    strategy = tfmtl.training.parameter_server_strategy(min_shard_bytes=8 << 10)
    with strategy.scope():
        model = build(schema, train.tasks)
    refusals = []
    for data_arg, wrong in ((lambda epoch: train.to_dataset(BATCH), {"checkpoint_every": 10}),
                            (lambda epoch: train.to_dataset(BATCH), {"validation_data": test.to_dataset(1000)}),
                            (train.to_dataset(BATCH), {})):  # a dataset built here, not a function
        try:
            tfmtl.training.fit(model, data_arg, epochs=1, checkpoint_dir=out_dir / "unused", **wrong)
        except ValueError as error:
            refusals.append(str(error))
    history = tfmtl.training.fit(model, lambda epoch: train.to_dataset(BATCH, shuffle=True, seed=epoch),
                                 epochs=int(epochs), checkpoint_dir=out_dir / "checkpoints", verbose=2)
    final_weights = model.objective.task_weights().numpy()
    probe = _which_batches_each_worker_reads(strategy)
    shards = {}
    for weight in model.weights:
        container = weight._sharded_container() if hasattr(weight, "_sharded_container") else None
        if container is not None and "_embedding/" in weight.name:
            name = next(part for part in weight.name.split("/") if part.endswith("_embedding"))
            shards[f"rows_{name}"] = np.array([part.shape[0] for part in container.variables])
            shards[f"devices_{name}"] = np.array([part.device for part in container.variables])
            shards[f"full_{name}"] = np.array(container.shape[0])
    single = build(schema, train.tasks)  # outside the strategy: the trained weights, joined
    single.set_weights(tfmtl.training.full_weights(model))
    sample = test.take(slice(0, 64)).features
    predictions = model(sample)  # the coordinator's in-memory model, variables on the parameter servers
    tfmtl.serving.export(model, out_dir / "export")
    tfmtl.serving.export(model, out_dir / "export_int8", examples=False, table_dtype="int8")
    np.savez(
        out_dir / f"result_{epochs}.npz", **shards, **_auc(single, test),
        steps=int(model.optimizer.iterations.numpy()), refusals=np.array(refusals), probe=probe,
        final_weights=final_weights, steps_per_execution=int(model._steps_per_execution.numpy()), trained_epochs=np.array(history.epoch),
        **{f"log_{key.replace('/', '_')}": np.array(values) for key, values in history.history.items()},
        **{f"pred_{task}": value.numpy()[:, 0] for task, value in predictions.items()},
        **{f"joined_{task}": value.numpy()[:, 0] for task, value in single(sample).items()},
        **{f"input_{name}": value for name, value in sample.items()},
    )


def _which_batches_each_worker_reads(strategy) -> np.ndarray:
    """``[(worker index, batch index)]`` of 20 steps over the input ``fit`` gives the workers (40 rows, batches of 4)."""
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    build_input = tfmtl.training.sharded_dataset_fn(lambda epoch: tf.data.Dataset.range(40).batch(4), 0, 2)
    iterator = iter(coordinator.create_per_worker_dataset(build_input))

    @tf.function
    def read(iterator):
        return tf.distribute.coordinator.experimental_get_current_worker_index(), next(iterator)[0] // 4

    scheduled = [coordinator.schedule(read, args=(iterator,)) for _ in range(20)]
    coordinator.join()
    return np.array([[int(value) for value in step.fetch()] for step in scheduled])


#: The gradient strategies checked under ParameterServerStrategy, with the level each runs at.
#: (one per path: the combination read back at the representation, [K, P] state at the parameters, the
#: elementwise path at the representation)
GRADIENT_STRATEGIES = (("MGDA", "representation"), ("DBMTL", "parameters"), ("GradDrop", "representation"))


def balancers(out: str) -> None:
    """Each of GRADIENT_STRATEGIES trains the MMoE for 2 epochs on the cluster; writes OUT/balancers.npz."""
    train, test, schema = data()
    strategy = tfmtl.training.parameter_server_strategy(min_shard_bytes=8 << 10)
    results = {}
    for kind, level in GRADIENT_STRATEGIES:
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = tfmtl.models.mmoe(schema, train.tasks, num_experts=2, expert_units=(32,))
            model.compile(optimizer=tfmtl.training.LazyAdam(0.005), balancer=getattr(tfmtl.balancing, kind)(),
                          gradients_at=level)
        history = tfmtl.training.fit(model, lambda epoch: train.to_dataset(BATCH, shuffle=True, seed=epoch),
                                     epochs=2, verbose=0)
        single = tfmtl.models.mmoe(schema, train.tasks, num_experts=2, expert_units=(32,))
        single.compile()
        single.set_weights(tfmtl.training.full_weights(model))
        name = f"{kind}_{level}"
        results.update({f"{name}_steps": int(model.optimizer.iterations.numpy()),
                        **{f"{name}_log_{key.replace('/', '_')}": np.array(values)
                           for key, values in history.history.items()},
                        **{f"{name}_{key}": value for key, value in _auc(single, test).items()}})
        print(f"{name} done", flush=True)
    np.savez(pathlib.Path(out) / "balancers.npz", **results)


def single_process(out: str, epochs: str) -> None:
    train, test, schema = data()
    model = build(schema, train.tasks)
    history = tfmtl.training.fit(model, lambda epoch: train.to_dataset(BATCH, shuffle=True, seed=epoch),
                                 epochs=int(epochs), verbose=0)
    np.savez(pathlib.Path(out) / "single.npz", **_auc(model, test),
             **{f"log_{key.replace('/', '_')}": np.array(values) for key, values in history.history.items()})


if __name__ == "__main__":
    if sys.argv[1] == "server":
        tfmtl.training.start_server()
    else:
        {"coordinator": coordinator, "single": single_process, "balancers": balancers}[sys.argv[1]](*sys.argv[2:])
