"""Expert compute: tfmtl's Experts (per-expert matmuls, or einsum) against a loop of Dense layers.

    python benchmarks/experts_einsum.py [--steps 30] [--width 432] [--units 256 128] [--experts 4 8 16] [--batches 512 4096]

For each (experts, batch) the same MMoE expert bank (input 432 = 26 x 16
embeddings + 16 numerics, experts [256, 128]) runs a training step (forward,
backward, Adam update) under tf.function; the table gives milliseconds per step
for a Python loop of E Dense MLPs and for ``tfmtl.layers.Experts`` (one stacked
weight per layer) computed per expert or with one einsum (the default "auto" picks
one of the two by the experts' width).
``--width 100 --units 16`` is the MMoE paper's synthetic bank (small experts,
where per-op overhead rather than the matmuls dominates).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfmtl  # noqa: E402
from tfmtl._compat import keras, tf  # noqa: E402



class LoopExperts(keras.layers.Layer):
    """The usual way: one Dense MLP per expert, stacked."""

    def __init__(self, num_experts: int, units, **kwargs) -> None:
        super().__init__(**kwargs)
        self.experts = [
            keras.Sequential([keras.layers.Dense(u, activation="relu") for u in units]) for _ in range(num_experts)
        ]

    def call(self, inputs):
        return tf.stack([expert(inputs) for expert in self.experts], axis=1)  # [B, E, H]


def step_time(layer, batch: int, width: int, steps: int) -> float:
    x = tf.random.normal([batch, width])
    gate = tf.nn.softmax(tf.random.normal([batch, layer_experts(layer)]), axis=-1)
    optimizer = keras.optimizers.Adam(1e-3)
    layer(x)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(tfmtl.layers.mix_experts(gate, layer(x))))
        grads = tape.gradient(loss, layer.trainable_variables)
        optimizer.apply_gradients(zip(grads, layer.trainable_variables))
        return loss

    for _ in range(3):
        train_step()  # trace and warm up
    started = time.perf_counter()
    for _ in range(steps):
        train_step()
    return (time.perf_counter() - started) / steps * 1000


def layer_experts(layer) -> int:
    return layer.num_experts if hasattr(layer, "num_experts") else len(layer.experts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--width", type=int, default=432, help="input width D")
    parser.add_argument("--units", type=int, nargs="+", default=[256, 128], help="each expert's layers")
    parser.add_argument("--experts", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--batches", type=int, nargs="+", default=[512, 4096])
    args = parser.parse_args()
    units, width = tuple(args.units), args.width
    print(f"expert bank: input {width}, experts {list(units)}; {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}")
    print()
    print("| experts | batch | loop of Dense ms/step | Experts per_expert ms/step | Experts einsum ms/step |"
          " per_expert vs loop | einsum vs loop |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for num_experts in args.experts:
        for batch in args.batches:
            loop = step_time(LoopExperts(num_experts, units), batch, width, args.steps)
            per_expert = step_time(tfmtl.layers.Experts(num_experts, units), batch, width, args.steps)
            einsum = step_time(tfmtl.layers.Experts(num_experts, units, implementation="einsum"), batch, width, args.steps)
            print(f"| {num_experts} | {batch} | {loop:.1f} | {per_expert:.1f} | {einsum:.1f} | "
                  f"{loop / per_expert:.2f}x | {loop / einsum:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
