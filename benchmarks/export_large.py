"""Export and fresh-process load time of a model with a 1M-row embedding table.

    python benchmarks/export_large.py [--rows 1000000] [--dim 16]

Prints export seconds, SavedModel size, and the seconds a new TensorFlow-only
process needs to load the export and answer, on TF Serving's Session path and
with tf.saved_model.load.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


import tfmtl  # noqa: E402

LOAD = r"""
import os, sys, time
os.environ.pop("TF_USE_LEGACY_KERAS", None)
started = time.perf_counter()
import numpy as np, tensorflow as tf
imported = time.perf_counter()
path, mode = sys.argv[1], sys.argv[2]
feed = {"item_id": np.array([1, 999_999, 5_000_000], np.int64), "price": np.array([1.0, 2.0, 3.0], np.float32)}
if mode == "session":
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
    loaded = time.perf_counter()
    sig = meta.signature_def["serving_default"]
    out = session.run(sig.outputs["click"].name, {sig.inputs[k].name: v for k, v in feed.items()})
else:
    model = tf.saved_model.load(path)
    loaded = time.perf_counter()
    out = model.signatures["serving_default"](**{k: tf.constant(v) for k, v in feed.items()})["click"].numpy()
answered = time.perf_counter()
assert "tfmtl" not in sys.modules and out.shape == (3,)
print(f"{imported - started:.2f} {loaded - imported:.2f} {answered - loaded:.3f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=16)
    args = parser.parse_args()
    schema = tfmtl.Schema([
        tfmtl.Categorical("item_id", embedding_dim=args.dim, id_type="int64", vocabulary=tuple(range(args.rows))),
        tfmtl.Numeric("price", mean=0.0, variance=1.0),
    ])
    started = time.perf_counter()
    model = tfmtl.models.mmoe(schema, [tfmtl.Task.binary("click"), tfmtl.Task.binary("buy")], expert_units=(64,))
    built = time.perf_counter() - started
    base = pathlib.Path(tempfile.mkdtemp(prefix="tfmtl-large-"))
    started = time.perf_counter()
    path = tfmtl.serving.export(model, base)
    exported = time.perf_counter() - started
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    pb = (path / "saved_model.pb").stat().st_size
    print(f"embedding table: {args.rows:,} x {args.dim} ({args.rows * args.dim * 4 / 2**20:.0f} MiB of float32); "
          f"{model.count_params():,} parameters")
    print()
    print("| step | seconds |")
    print("|---|---:|")
    print(f"| build model (vocabulary lookup + embedding) | {built:.1f} |")
    print(f"| export (6 signatures + warmup), {size / 2**20:.0f} MiB on disk, saved_model.pb {pb / 2**20:.1f} MiB | {exported:.1f} |")
    for mode in ("session", "function"):
        env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
        out = subprocess.run([sys.executable, "-c", LOAD, str(path), mode], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise SystemExit(out.stderr[-2000:])
        imported, loaded, answered = (float(x) for x in out.stdout.split())
        print(f"| fresh process, {mode} path: import TF / load / first answer | {imported:.1f} / {loaded:.1f} / {answered:.2f} |")


if __name__ == "__main__":
    main()
