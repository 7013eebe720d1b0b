"""A small training job for the resume test: ``python resume_job.py DATA CKPT_DIR OUT.npz [KILL_AFTER_STEPS]``.

Trains an MMoE with uncertainty weighting and a decaying learning rate from a shuffled
TFRecord file, checkpointing every 3 batches; with KILL_AFTER_STEPS it SIGKILLs itself
after that many batches (between checkpoints). Writes the final model, optimizer and
balancer variables to OUT.npz.
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np

import tfmtl
from tfmtl._compat import keras

BATCH = 32


def make_data() -> tfmtl.data.MultiTaskData:
    return tfmtl.data.synthetic_recsys(480, seed=11)


class _Kill(keras.callbacks.Callback):
    def __init__(self, after: int) -> None:
        super().__init__()
        self.after, self.seen = after, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.after:
            os.kill(os.getpid(), signal.SIGKILL)


def train(data_path: str, checkpoint_dir: str, out: str, kill_after: int | None = None) -> None:
    keras.utils.set_random_seed(0)
    data = make_data()
    schema = data.schema.adapt(data.features)
    model = tfmtl.models.mmoe(schema, data.tasks, num_experts=2, expert_units=(8,))
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=5, decay_rate=0.7)
    model.compile(optimizer=keras.optimizers.Adam(schedule), balancer=tfmtl.balancing.UncertaintyWeighting())
    epochs = lambda epoch: tfmtl.data.read_tfrecord(  # noqa: E731  (a new order per epoch, the same on a rerun)
        data_path, schema, data.tasks, BATCH, shuffle_buffer=200, seed=epoch
    )
    callbacks = [_Kill(kill_after)] if kill_after else []
    tfmtl.training.fit(model, epochs, epochs=2, checkpoint_dir=checkpoint_dir, checkpoint_every=3,
                       callbacks=callbacks, verbose=0)
    arrays = {f"model_{i}": w for i, w in enumerate(model.get_weights())}
    arrays.update({f"optimizer_{i}": v.numpy() for i, v in enumerate(model.optimizer.variables())})
    arrays.update({f"balancer_{i}": v.numpy() for i, v in enumerate(model.balancer.variables)})
    np.savez(out, **arrays)


if __name__ == "__main__":
    train(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else None)
