"""Held-out AUC after training on 2 parameter servers + 2 workers, against one process, over several seeds.

Workload: ``synthetic_recsys`` (``--rows`` training rows plus a quarter as many held out, 2,000 users,
1,000 items), an MMoE with 4 experts [64], the default ``compile()`` (LazyAdam 1e-3), batch 512,
``--epochs`` epochs, through ``tfmtl.training.fit`` with the same data function both ways (epoch e
shuffled with seed 100 x seed + e). Per seed, the model starts from the same weights both ways
(``keras.utils.set_random_seed(seed)`` before it is built); each parameter-server run is a fresh
cluster on loopback (2 PS, 2 workers, the coordinator), and its trained weights are joined
(``full_weights``) into a one-process model for the evaluation. With ``--fault``, a third way: the
same cluster run with worker 0 killed (by PID) ``--fault-after`` seconds into the second epoch and
started again, as a cluster manager would.

    python benchmarks/ps_quality.py                      # 200,000 rows, 2 epochs, seeds 0 1 2
    python benchmarks/ps_quality.py --rows 50000 --seeds 0
    python benchmarks/ps_quality.py --fault               # also the faulted way
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from parameter_server import _ports, _result  # noqa: E402

HERE = pathlib.Path(__file__).resolve()
ROOT = HERE.parents[1]
BATCH = 512


def _setup(rows: int):
    import tfmtl

    train, test = tfmtl.data.synthetic_recsys(rows + rows // 4, seed=0).split(0.8, seed=0)
    return train, test, train.schema.adapt(train.features, verbose=0)


def _build(schema, tasks, seed: int):
    import tfmtl
    from tfmtl._compat import keras

    keras.utils.set_random_seed(seed)
    model = tfmtl.models.mmoe(schema, tasks, num_experts=4, expert_units=(64,))
    model.compile()
    return model


def _train_and_evaluate(rows: int, epochs: int, seed: int, strategy=None) -> dict:
    import contextlib

    import tfmtl
    from tfmtl._compat import keras

    train, test, schema = _setup(rows)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = _build(schema, train.tasks, seed)
    steps = -(-len(train.labels["click"]) // BATCH)
    per_epoch = {"steps_per_epoch": steps} if strategy is not None else {}  # the whole dataset, either way
    announce = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: print(f"EPOCH {epoch}", flush=True))
    tfmtl.training.fit(model, lambda epoch: train.to_dataset(BATCH, shuffle=True, seed=100 * seed + epoch),
                       epochs=epochs, verbose=0, callbacks=[announce], **per_epoch)
    if strategy is not None:
        joined = _build(schema, train.tasks, seed)
        joined.set_weights(tfmtl.training.full_weights(model))
        model = joined
    metrics = model.evaluate(test.to_dataset(4096), return_dict=True, verbose=0)
    return {"click": metrics["click/auc"], "conversion": metrics["conversion/auc"]}


def _spawn(args: list[str], tf_config: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, str(HERE), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def run(way: str, rows: int, epochs: int, seed: int, fault_after: float = 5.0) -> dict:
    common = ["--rows", str(rows), "--epochs", str(epochs), "--seeds", str(seed)]
    if way == "single":
        return _result(_spawn(["--role", "single", *common]))
    ports = _ports(5)
    cluster = {"ps": ports[:2], "worker": ports[2:4], "chief": ports[4:]}
    task = {"cluster": cluster, "task": {"type": "worker", "index": 0}}
    servers = [_spawn(["--role", "server"], {"cluster": cluster, "task": {"type": job, "index": i}})
               for job in ("ps", "worker") for i in range(2)]
    coordinator = None
    try:
        coordinator = _spawn(["--role", "coordinator", *common], {"cluster": cluster, "task": {"type": "chief", "index": 0}})
        if way == "ps-fault":
            seen = []
            for line in coordinator.stdout:  # until the second epoch starts
                seen.append(line)
                if line.startswith("EPOCH 1"):
                    break
            else:
                raise RuntimeError(f"the coordinator ended before its second epoch:\n{''.join(seen)[-3000:]}")
            time.sleep(fault_after)
            if coordinator.poll() is not None:
                raise RuntimeError(f"the coordinator ended within {fault_after} s of its second epoch's start: "
                                   "give a smaller --fault-after or more --rows")
            servers[2].kill()  # worker 0, by PID
            servers[2].communicate()
            servers[2] = _spawn(["--role", "server"], task)
        return _result(coordinator)
    finally:
        for process in [*servers, *([coordinator] if coordinator is not None else [])]:
            if process.poll() is None:
                process.kill()
                process.communicate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fault", action="store_true", help="also run with worker 0 killed and restarted")
    parser.add_argument("--fault-after", type=float, default=5.0, help="seconds into the second epoch")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fault and args.epochs < 2:
        parser.error("--fault kills a worker in the second epoch: give --epochs 2 or more")
    if args.role == "server":
        import tfmtl

        tfmtl.training.start_server()
        return
    if args.role:
        strategy = None
        if args.role == "coordinator":
            import tfmtl

            strategy = tfmtl.training.parameter_server_strategy()
        print("RESULT " + json.dumps(_train_and_evaluate(args.rows, args.epochs, args.seeds[0], strategy)), flush=True)
        return
    print(f"synthetic_recsys, {args.rows:,} training rows, {args.epochs} epochs, batch {BATCH}; 2-core machine, loopback",
          flush=True)
    results: dict[str, list[dict]] = {"single": [], "ps": [], **({"ps-fault": []} if args.fault else {})}
    for seed in args.seeds:
        for way in results:
            results[way].append(run(way, args.rows, args.epochs, seed, args.fault_after))
            print(f"  seed {seed}, {way}: {results[way][-1]}", flush=True)
    print()
    print("| seed | one process click AUC | 2 PS + 2 workers click AUC | difference | one process conversion AUC "
          "| 2 PS + 2 workers conversion AUC | difference |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for seed, one, ps in zip(args.seeds, results["single"], results["ps"]):
        print(f"| {seed} | {one['click']:.4f} | {ps['click']:.4f} | {ps['click'] - one['click']:+.4f} "
              f"| {one['conversion']:.4f} | {ps['conversion']:.4f} | {ps['conversion'] - one['conversion']:+.4f} |")
    for task in ("click", "conversion"):
        gaps = [ps[task] - one[task] for one, ps in zip(results["single"], results["ps"])]
        print(f"{task}: mean difference {sum(gaps) / len(gaps):+.4f}, largest {max(gaps, key=abs):+.4f}")
    if args.fault:
        print()
        print("| seed | unfaulted click AUC | worker 0 killed and restarted: click AUC | difference "
              "| unfaulted conversion AUC | faulted conversion AUC | difference |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for seed, calm, hit in zip(args.seeds, results["ps"], results["ps-fault"]):
            print(f"| {seed} | {calm['click']:.4f} | {hit['click']:.4f} | {hit['click'] - calm['click']:+.4f} "
                  f"| {calm['conversion']:.4f} | {hit['conversion']:.4f} | {hit['conversion'] - calm['conversion']:+.4f} |")


if __name__ == "__main__":
    main()
