"""Train the synthetic click/conversion MMoE on several workers with MultiWorkerMirroredStrategy.

Run it once per worker, each with its own ``TF_CONFIG`` (the cluster, then this worker's
index); here two workers on this machine (README, "Distribution"):

    CLUSTER='"cluster": {"worker": ["127.0.0.1:23456", "127.0.0.1:23457"]}'
    TF_CONFIG="{$CLUSTER, \"task\": {\"type\": \"worker\", \"index\": 0}}" .venv/bin/python examples/train_multiworker.py &
    TF_CONFIG="{$CLUSTER, \"task\": {\"type\": \"worker\", \"index\": 1}}" .venv/bin/python examples/train_multiworker.py
    wait

Every worker builds the same data and schema, trains on its shard of each global batch,
and ends with the same weights; worker 0 prints the held-out AUC.
"""

import json
import os
import sys

import tfmtl  # first: Keras 2 for tf.keras, and a quiet TensorFlow start-up

import tensorflow as tf  # noqa: E402  (after tfmtl)

rows = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
strategy = tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG; without it, one worker
chief = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("index", 0) == 0

train, test = tfmtl.data.synthetic_recsys(rows, seed=0).split(0.8, seed=0)
schema = train.schema.adapt(train.features)  # the same data on every worker: the same vocabularies
with strategy.scope():
    model = tfmtl.models.mmoe(schema, train.tasks, num_experts=4, expert_units=(64,))
    model.compile()
# The global batch: each of the N workers computes 1024 / N rows of it per step.
model.fit(train.to_dataset(1024, shuffle=True, seed=0), epochs=2, verbose=2 if chief else 0)
metrics = model.evaluate(test.to_dataset(4096), return_dict=True, verbose=0)
if chief:
    print(f"{strategy.num_replicas_in_sync} workers:",
          {name: round(value, 4) for name, value in metrics.items() if name.endswith("/auc")})
