"""What shrinks the export of a 10M-id table, and what each choice costs in AUC.

Workload: ``synthetic_recsys`` with many users (``--users``, Pareto-distributed activity, int64 ids)
and 20,000 items, all id features 32 dims, plus each user's own taste: a random offset of the click
logit (sd ``--user-effect``) that only the user's row of the table can learn (without it, the
generator's users are their segment and activity, and the user table moved no AUC). ``user_id``'s
vocabulary holds 10,000,000 ids: the ids seen in training, most frequent first, then ids never seen
(a production table of 10M users of whom this window saw a part). One MMoE (4 experts [64])
trained one epoch with the default ``compile()`` at batch 2048, then exported several ways with
``tfmtl.serving.export``:

* as trained (float32), ``table_dtype="float16"``, ``table_dtype="int8"``;
* ``keep_ids={"user_id": K}`` (float32 and int8): only the K most frequent user ids (K = 1: none);
* and, trained separately, ``user_id`` hashed into ``--hash-bins`` rows (``num_hash_bins``) instead
  of a vocabulary.

Per export: the version directory's size on disk, the user table's bytes in it, the export's
seconds, and click/conversion AUC of the export itself on held-out rows (loaded with
``tf.saved_model.load``, signature ``serving_default``).

    python benchmarks/export_tables.py                           # 1,000,000 rows, 200,000 users
    python benchmarks/export_tables.py --rows 300000 --users 10000 --table 200000 --keep 2000 1 --hash-bins 20000
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import shutil
import tempfile
import time

import numpy as np

import tfmtl
from tfmtl._compat import keras, tf

DIM, BATCH = 32, 2048


def _data(rows: int, users: int, user_effect: float):
    data = tfmtl.data.synthetic_recsys(rows, num_users=users, num_items=20_000, embedding_dim=DIM, seed=0)
    features = dict(data.features)
    features["user_id"] = np.char.lstrip(features["user_id"].astype(str), "u").astype(np.int64)
    # Each user's own taste, which only the user's row of the table can learn: a random effect on the click
    # logit (and conversions redrawn to follow the new clicks).
    rng = np.random.default_rng(7)
    p_click, p_both = data.oracle["click"].astype(np.float64), data.oracle["conversion"].astype(np.float64)
    logit = np.log(p_click / (1 - p_click)) + user_effect * rng.normal(size=users)[features["user_id"]]
    click = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    conversion = click * (rng.random(rows) < p_both / p_click).astype(np.float32)
    labels = {"click": click, "conversion": conversion}
    specs = [tfmtl.Categorical("user_id", embedding_dim=DIM, id_type="int64") if spec.name == "user_id" else spec
             for spec in data.schema]
    return tfmtl.data.MultiTaskData(features, labels, tfmtl.Schema(specs), data.tasks)


def _schema(train, table: int, hash_bins: int | None) -> tfmtl.Schema:
    specs = []
    for spec in train.schema:
        if spec.name == "user_id":
            if hash_bins:
                spec = tfmtl.Categorical("user_id", embedding_dim=DIM, id_type="int64", num_hash_bins=hash_bins)
            else:
                ids, counts = np.unique(train.features["user_id"], return_counts=True)
                seen = ids[np.lexsort((ids, -counts))]  # most frequent first
                unseen = np.setdiff1d(np.arange(table + len(seen), dtype=np.int64), seen)[: table - len(seen)]
                spec = tfmtl.Categorical("user_id", embedding_dim=DIM, id_type="int64",
                                         vocabulary=np.concatenate([seen, unseen]))
        specs.append(spec)
    return tfmtl.Schema(specs).adapt(train.features, verbose=0)


def _train(train, schema):
    keras.utils.set_random_seed(0)
    model = tfmtl.models.mmoe(schema, train.tasks, num_experts=4, expert_units=(64,))
    model.compile()
    data = dataclasses.replace(train, schema=schema)
    started = time.perf_counter()
    model.fit(data.to_dataset(BATCH, shuffle=True, seed=0), epochs=1, verbose=0)
    return model, time.perf_counter() - started


def _served_auc(path: pathlib.Path, test) -> tuple[float, float]:
    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    rows = len(test.labels["click"])
    out = {"click": [], "conversion": []}
    for start in range(0, rows, 20_000):
        chunk = {k: tf.constant(v[start:start + 20_000]) for k, v in test.features.items()}
        answer = serve(**chunk)
        for task in out:
            out[task].append(answer[task].numpy())
    return tuple(tfmtl.data.roc_auc(test.labels[t], np.concatenate(out[t])) for t in ("click", "conversion"))


def _user_table_bytes(path: pathlib.Path, rows: int) -> int:
    """Bytes of the saved variables with ``rows`` rows: the user table (and its int8 scales)."""
    reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    return sum(int(np.prod(shape)) * dtypes[name].size for name, shape in shapes.items() if shape[:1] == [rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="training rows (plus a quarter as many held out)")
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--table", type=int, default=10_000_000, help="ids in user_id's vocabulary")
    parser.add_argument("--keep", type=int, nargs="+", default=[1_000_000, 100_000, 10_000, 1])
    parser.add_argument("--hash-bins", type=int, default=100_000)
    parser.add_argument("--user-effect", type=float, default=1.0, help="sd of each user's own click-logit offset")
    args = parser.parse_args()
    data = _data(args.rows + args.rows // 4, args.users, args.user_effect)
    train, test = data.take(slice(0, args.rows)), data.take(slice(args.rows, None))
    seen = len(np.unique(train.features["user_id"]))
    test_seen = np.isin(test.features["user_id"], train.features["user_id"]).mean()
    print(f"{args.rows:,} training rows, {len(test.labels['click']):,} held out; {seen:,} users seen in training "
          f"({test_seen:.1%} of held-out rows are theirs); user_id vocabulary {args.table:,} ids x {DIM}")
    base = pathlib.Path(tempfile.mkdtemp(prefix="tfmtl-tables-"))
    ways = [("as trained (float32)", args.table + 1, {}), ("float16", args.table + 1, {"table_dtype": "float16"}),
            ("int8", args.table + 1, {"table_dtype": "int8"})]
    for keep in args.keep:
        ways += [(f"keep {keep:,} user ids", keep + 1, {"keep_ids": {"user_id": keep}}),
                 (f"keep {keep:,} user ids, int8", keep + 1, {"keep_ids": {"user_id": keep}, "table_dtype": "int8"})]
    rows = []
    try:
        model, seconds = _train(train, _schema(train, args.table, None))
        print(f"trained in {seconds:.0f} s ({args.rows / seconds:,.0f} examples/s)")
        for name, table_rows, kwargs in ways:
            rows.append(_export_row(name, model, base, test, table_rows, kwargs))
        del model
        hashed_model, seconds = _train(train, _schema(train, args.table, args.hash_bins))
        rows.append(_export_row(f"user_id hashed into {args.hash_bins:,} rows (trained so)", hashed_model, base, test,
                                args.hash_bins, {}))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print()
    print("| export | on disk (MiB) | user table (MiB) | export s | click AUC | conversion AUC |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print("| {} | {:,.0f} | {:,.1f} | {:.0f} | {:.4f} | {:.4f} |".format(*row))


def _export_row(name: str, model, base: pathlib.Path, test, table_rows: int, kwargs) -> tuple:
    started = time.perf_counter()
    path = tfmtl.serving.export(model, base / "m", examples=False, **kwargs)
    seconds = time.perf_counter() - started
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    click, conversion = _served_auc(path, test)
    table = _user_table_bytes(path, table_rows)
    shutil.rmtree(path)
    print(f"  {name}: {size / 2**20:,.0f} MiB, click AUC {click:.4f}", flush=True)
    return name, size / 2**20, table / 2**20, seconds, click, conversion


if __name__ == "__main__":
    main()
