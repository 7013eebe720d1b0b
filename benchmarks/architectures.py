"""Every architecture on the synthetic click -> conversion funnel: test AUC against the oracle's, over seeds.

Data: ``tfmtl.data.synthetic_recsys(--rows, task_relatedness=0.5, seed=s)`` split 0.8 / 0.2
(the data of ``notebooks/03_architectures.ipynb``). Each model is built as in the notebook
(experts of [64, 32] where it has experts; PEPNet's gates read ``user_segment`` and ``device``,
STAR's scenario is ``device``), trained ``--epochs`` epochs with Adam 2e-3 at batch 256, and
scored on the test part (exact AUC). The oracle scores the test rows by the true probabilities.

    python benchmarks/architectures.py                         # 3 seeds, 100,000 rows, 1 epoch
    python benchmarks/architectures.py --seeds 0 --rows 20000 --models mmoe star
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

UNITS = (64, 32)
BUILDERS = {
    "shared_bottom": lambda s, t: tfmtl.models.shared_bottom(s, t, bottom_units=UNITS),
    "mmoe": lambda s, t: tfmtl.models.mmoe(s, t, num_experts=4, expert_units=UNITS),
    "mmoe_dselect_k": lambda s, t: tfmtl.models.mmoe(s, t, num_experts=4, expert_units=UNITS,
                                                     gate=tfmtl.layers.GateOptions(kind="dselect_k", k=2)),
    "omoe": lambda s, t: tfmtl.models.omoe(s, t, num_experts=4, expert_units=UNITS),
    "ple": lambda s, t: tfmtl.models.ple(s, t, num_levels=2, num_shared_experts=2, num_task_experts=1, expert_units=UNITS),
    "esmm": lambda s, t: tfmtl.models.esmm(s, t),
    "aitm": lambda s, t: tfmtl.models.aitm(s, t, tower_units=32),
    "adatt": lambda s, t: tfmtl.models.adatt(s, t, num_levels=2, expert_units=UNITS),
    "pepnet": lambda s, t: tfmtl.models.pepnet(s, t, gate_features=["user_segment", "device"], tower_units=UNITS),
    "home": lambda s, t: tfmtl.models.home(s, t, num_shared_experts=2, expert_units=UNITS),
    "stem": lambda s, t: tfmtl.models.stem(s, t, num_shared_experts=2, expert_units=UNITS),
    "star": lambda s, t: tfmtl.models.star(s, t, scenario_feature="device", units=UNITS),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    args = parser.parse_args()
    results = {name: {"click": [], "conversion": [], "seconds": []} for name in args.models}
    oracle = {"click": [], "conversion": []}
    params = {}
    for seed in args.seeds:
        train, test = tfmtl.data.synthetic_recsys(args.rows, task_relatedness=0.5, seed=seed).split(0.8, seed=seed)
        schema = train.schema.adapt(train.features)
        for task in oracle:
            oracle[task].append(tfmtl.data.roc_auc(test.labels[task], test.oracle[task]))
        for name in args.models:
            keras.utils.set_random_seed(seed)
            start = time.perf_counter()
            model = BUILDERS[name](schema, train.tasks)
            model.compile(optimizer=keras.optimizers.Adam(2e-3))
            model.fit(train.to_dataset(256, shuffle=True, seed=seed), epochs=args.epochs, verbose=0)
            predicted = model.predict(test.features, batch_size=8192, verbose=0)
            results[name]["seconds"].append(time.perf_counter() - start)
            params[name] = model.count_params()
            for task in oracle:
                results[name][task].append(tfmtl.data.roc_auc(test.labels[task], predicted[task][:, 0]))
            print(f"seed {seed} {name}: click {results[name]['click'][-1]:.4f} conversion "
                  f"{results[name]['conversion'][-1]:.4f} ({results[name]['seconds'][-1]:.0f} s)", flush=True)
    print(f"\n{args.rows:,} rows, {args.epochs} epoch(s), seeds {args.seeds}\n")
    print("| model | params | click AUC | conversion AUC | s/run |")
    print("|---|---:|---:|---:|---:|")
    for name in args.models:
        r = results[name]
        print(f"| {name} | {params[name]:,} | {np.mean(r['click']):.4f} ± {np.std(r['click']):.4f} | "
              f"{np.mean(r['conversion']):.4f} ± {np.std(r['conversion']):.4f} | {np.mean(r['seconds']):.0f} |")
    print(f"| oracle | | {np.mean(oracle['click']):.4f} | {np.mean(oracle['conversion']):.4f} | |")


if __name__ == "__main__":
    main()
