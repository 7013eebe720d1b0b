"""Census-income with the MMoE paper's protocol: Single-Task, Shared-Bottom, OMoE, MMoE and PLE.

Protocol (Ma et al., KDD 2018, §6.3; data notes in ../shared/data/README.md): train on the
199,523-row file; the 99,762-row test file split 1:1 into validation and test with
``tfmtl.data.census_income``'s fixed seed; ``education``, ``marital_stat`` and
``instance_weight`` are never inputs. Group 1: income (main) + never married;
group 2: education at least college (main) + never married. Every model is selected
on the validation AUC of the main task (early stopping, best epoch restored);
single-task models are selected on their own task. Each model is trained from
``--seeds`` random initialisations; the table prints test AUC in the paper's format:
the main task's best run and mean ± std, the auxiliary (marital) AUC of that same run
and its mean, with the paper's numbers next to them.

    python benchmarks/census_income.py                       # both groups, 5 seeds
    python benchmarks/census_income.py --groups 1 --seeds 2 --models mmoe ple --max-rows 50000

Model sizes follow the paper's cap of 2048 hidden units per layer; all models share
the feature encoder (``--embedding-dim`` embeddings, log-transformed money columns; with
``--numeric-embedding-dim``, periodic embeddings of the seven numeric columns) and the
optimiser (Adam, learning rate ``--lr``, batch ``--batch-size``). The flags used for the
tables in ``benchmarks/README.md`` are written there.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tfmtl  # noqa: E402
from tfmtl._compat import keras, tf  # noqa: E402

tf.get_logger().setLevel("ERROR")

#: Test AUC copied from the papers (../shared/PAPERS.md): (main best, main mean, aux of best run, aux mean).
PAPER = {
    1: {
        "single_task": (0.9398, 0.9337, 0.9933, 0.9922), "shared_bottom": (0.9361, 0.9295, 0.9915, 0.9921),
        "omoe": (0.9387, 0.9319, 0.9928, 0.9923), "mmoe": (0.9410, 0.9359, 0.9926, 0.9927),
        "ple": (0.9522, None, 0.9945, None),  # PLE paper, Table 5 (one number per task)
    },
    2: {
        "single_task": (0.8843, 0.8792, 0.9933, 0.9922), "shared_bottom": (0.8836, 0.8813, 0.9927, 0.9917),
        "omoe": (0.8852, 0.8813, 0.9915, 0.9912), "mmoe": (0.8860, 0.8826, 0.9932, 0.9924),
        "ple": (None, None, None, None),
    },
}
for _group in PAPER.values():  # no published census-income numbers for the newer architectures
    _group.update({name: (None, None, None, None) for name in ("mmoe_dselect_k", "adatt", "pepnet", "home", "stem", "star")})

MODELS = ("single_task", "shared_bottom", "omoe", "mmoe", "ple", "mmoe_dselect_k", "adatt", "pepnet", "home", "stem", "star")


def builders(schema: tfmtl.Schema, tasks: tuple[tfmtl.Task, ...], cross_layers: int) -> dict:
    common = {"cross_layers": cross_layers}
    return {
        "single_task": lambda task: tfmtl.models.shared_bottom(schema, [task], bottom_units=(256, 128), **common),
        "shared_bottom": lambda: tfmtl.models.shared_bottom(schema, tasks, bottom_units=(256, 128), **common),
        "omoe": lambda: tfmtl.models.omoe(schema, tasks, num_experts=8, expert_units=(128, 64), **common),
        "mmoe": lambda: tfmtl.models.mmoe(schema, tasks, num_experts=8, expert_units=(128, 64), **common),
        "ple": lambda: tfmtl.models.ple(
            schema, tasks, num_levels=2, num_shared_experts=4, num_task_experts=2, expert_units=(128, 64), **common
        ),
        # The newer architectures at MMoE's size (8 experts of [128, 64] where they have experts), not tuned here.
        "mmoe_dselect_k": lambda: tfmtl.models.mmoe(schema, tasks, num_experts=8, expert_units=(128, 64),
                                                    gate=tfmtl.layers.GateOptions(kind="dselect_k", k=2), **common),
        "adatt": lambda: tfmtl.models.adatt(schema, tasks, num_levels=2, num_task_experts=2, num_shared_experts=4,
                                            expert_units=(128, 64), **common),
        "pepnet": lambda: tfmtl.models.pepnet(schema, tasks, gate_features=["sex", "race", "class_worker"],
                                              prior_features=["det_hh_fam_stat", "tax_filer_stat"],
                                              tower_units=(256, 128), **common),
        "home": lambda: tfmtl.models.home(schema, tasks, num_shared_experts=4, num_group_experts=2, num_task_experts=2,
                                          expert_units=(128, 64), **common),
        "stem": lambda: tfmtl.models.stem(schema, tasks, num_shared_experts=4, num_task_experts=2, expert_units=(128, 64)),
        "star": lambda: tfmtl.models.star(schema, tasks, scenario_feature="class_worker", units=(256, 128),
                                          aux_units=(64,), **common),
    }


def train_one(build, data, main: str, args: argparse.Namespace, seed: int) -> dict[str, float]:
    train, validation, test = data
    keras.utils.set_random_seed(seed)
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(args.lr))
    stop = keras.callbacks.EarlyStopping(
        monitor=f"val_{main}/auc", mode="max", patience=args.patience, restore_best_weights=True
    )
    model.fit(
        train.to_dataset(args.batch_size, shuffle=True, seed=seed), validation_data=validation.to_dataset(8192),
        epochs=args.epochs, callbacks=[stop], verbose=0,
    )
    # Exact test AUC (Keras's AUC metric bins predictions into 1000 thresholds; it only selects epochs here).
    predictions = model.predict(test.features, batch_size=8192, verbose=0)
    result = {task: tfmtl.data.roc_auc(test.labels[task], predictions[task][:, 0]) for task in model.task_names}
    logs = model.evaluate(test.to_dataset(8192), return_dict=True, verbose=0)
    result.update({f"{task}/binned": logs[f"{task}/auc"] for task in model.task_names})
    return result


def run_group(group: int, args: argparse.Namespace) -> None:
    schema = tfmtl.data.census_schema(
        args.embedding_dim, age_buckets=args.age_buckets, numeric_embedding_dim=args.numeric_embedding_dim
    )
    print(f"loading census-income (group {group}) and adapting the schema ...", flush=True)
    train, validation, test = tfmtl.data.census_income(
        group=group, max_rows=args.max_rows, schema=schema, split_seed=args.split_seed
    )
    schema = schema.adapt(train.features)
    data = tuple(tfmtl.data.MultiTaskData(d.features, d.labels, schema, d.tasks) for d in (train, validation, test))
    main, aux = (task.name for task in train.tasks)
    build = builders(schema, train.tasks, args.cross_layers)
    print(f"\nGroup {group}: {main} (main) + {aux}; {len(train):,} train / {len(validation):,} validation / "
          f"{len(test):,} test rows; seeds {args.first_seed}..{args.first_seed + args.seeds - 1}")
    print(f"| model | {main} best | {main} mean ± std | {aux} (run with best {main}) | {aux} mean ± std | "
          f"paper {main} best / mean | paper {aux} | s/run |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models:
        start = time.perf_counter()
        runs = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            print(f"  [{name} seed {seed}] training up to {args.epochs} epochs ...", flush=True)
            if name == "single_task":  # one network per task, each selected on its own validation AUC
                result = {}
                for task in train.tasks:
                    result.update(train_one(lambda t=task: build[name](t), data, task.name, args, seed))
            else:
                result = train_one(build[name], data, main, args, seed)
            runs.append(result)
            print(f"  [{name} seed {seed}] {main} {result[main]:.4f} (binned {result[main + '/binned']:.4f}) "
                  f"{aux} {result[aux]:.4f}", flush=True)
        mains, auxes = np.array([r[main] for r in runs]), np.array([r[aux] for r in runs])
        best = int(np.argmax(mains))
        paper = PAPER[group][name]

        def fmt(value: float | None) -> str:
            return "–" if value is None else f"{value:.4f}"

        seconds = (time.perf_counter() - start) / len(runs)
        print(f"| {name} | {mains[best]:.4f} | {mains.mean():.4f} ± {mains.std():.4f} | {auxes[best]:.4f} | "
              f"{auxes.mean():.4f} ± {auxes.std():.4f} | {fmt(paper[0])} / {fmt(paper[1])} | {fmt(paper[2])} | "
              f"{seconds:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed .. first-seed + seeds - 1")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--age-buckets", type=int, default=0)
    parser.add_argument("--embedding-dim", type=int, default=8)
    parser.add_argument("--cross-layers", type=int, default=0)
    parser.add_argument("--numeric-embedding-dim", type=int, default=None,
                        help="embed the numeric columns with periodic embeddings of this size")
    parser.add_argument("--max-rows", type=int, default=None, help="read at most this many rows of each file")
    parser.add_argument("--split-seed", type=int, default=tfmtl.data.census.SPLIT_SEED,
                        help="seed of the 1:1 validation/test split of the test file")
    args = parser.parse_args()
    for group in args.groups:
        run_group(group, args)


if __name__ == "__main__":
    main()
