"""Train the synthetic click/conversion MMoE with its id tables sharded over parameter servers.

One script for every task of the cluster; each process gets its role from ``TF_CONFIG``
(README, "Training at scale"): ``ps`` and ``worker`` tasks serve until stopped, and the
``chief`` (the coordinator) builds the model under ``ParameterServerStrategy``, trains it
(each worker runs its own input pipeline, preprocessing included), checkpoints at every
epoch's end (a restarted cluster resumes from the last one) and exports the SavedModel.

    .venv/bin/python examples/train_parameter_server.py [ROWS] [OUT_DIR]
"""

import pathlib
import sys

import tfmtl  # first: Keras 2 for tf.keras, and a quiet TensorFlow start-up

tfmtl.training.start_server()  # in a worker or ps task: serve until stopped (never returns)

rows = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
out = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "runs/parameter_server")
train, test = tfmtl.data.synthetic_recsys(rows, num_users=20_000, num_items=10_000, seed=0).split(0.8, seed=0)
schema = train.schema.adapt(train.features)

strategy = tfmtl.training.parameter_server_strategy()  # tables of 2 x 256 KiB or more split over every PS
with strategy.scope():
    model = tfmtl.models.mmoe(schema, train.tasks, num_experts=4, expert_units=(64,))
    model.compile()
tfmtl.training.fit(model, lambda epoch: train.to_dataset(512, shuffle=True, seed=epoch), epochs=2,
                   checkpoint_dir=out / "checkpoints")

for weight in model.weights:  # where each shard of the id tables lives
    if "_id_embedding" in weight.name:
        print(f"{weight.name:<60} {str(weight.shape):<12} {weight.device}")
single = tfmtl.models.mmoe(schema, train.tasks, num_experts=4, expert_units=(64,))  # whole tables, for evaluate
single.set_weights(tfmtl.training.full_weights(model))
single.compile()
metrics = single.evaluate(test.to_dataset(4096), return_dict=True, verbose=0)
print("held-out", {name: round(value, 4) for name, value in metrics.items() if name.endswith("/auc")})
print("exported", tfmtl.serving.export(model, out / "export"))
