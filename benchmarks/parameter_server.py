"""A 10M-id table trained three ways on this machine: one process, 2 MultiWorkerMirrored workers, 2 PS + 2 workers.

Workload: the training-throughput workload (``workload.py``: 26 categoricals up to 100k ids with
vocabularies, 13 numerics, 2 binary tasks) plus one int64 feature ``big`` with Zipf-distributed ids hashed
into 10,000,000 rows of 32 dims (a 1.2 GiB table; LazyAdam's two slots double it again);
an MMoE with 4 experts [64]; the default ``compile()``; batch 2048; one epoch. Every process is
a fresh interpreter on loopback, and the machine's cores are shared by all of them.

Figures per way: training examples/s (the epoch's rows over the epoch's wall time, measured
around ``fit`` in the process that drives it; under parameter servers, the steps a full epoch has
more than a half one over the time it takes more, which leaves out the one-time shipping of the
in-memory data to the workers), peak resident memory of every process
(``VmHWM``), the bytes of the big table held by each parameter server, and the bytes each
worker received per global step (the growth of ``bytes_received`` of its TCP sockets, from
``ss``, over the epoch, divided by the epoch's steps; under parameter servers, full minus half
epoch again). Loopback speed says little about a real
network; the bytes per step are the figure to plan with.

    python benchmarks/parameter_server.py                    # 400k rows, the baseline and the three ways
    python benchmarks/parameter_server.py --rows 100000 --ways single ps
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

BIG_ROWS, BIG_DIM, BATCH = 10_000_000, 32, 2048
SMALL_ROWS = 10_000  # the baseline: the same workload with a small "big" table
HERE = pathlib.Path(__file__).resolve()
ROOT = HERE.parents[1]


def _peak_rss_mib(pid: int) -> float:
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def _received(pids: list[int]) -> dict[int, int]:
    """Bytes received so far on each process's TCP sockets (``ss -tinp``)."""
    out = subprocess.run(["ss", "-tinpH"], capture_output=True, text=True, check=True).stdout
    totals = {pid: 0 for pid in pids}
    owner = None
    for line in out.splitlines():
        found = re.search(r"pid=(\d+)", line)
        if found:
            owner = int(found.group(1))
            continue
        got = re.search(r"bytes_received:(\d+)", line)
        if got and owner in totals:
            totals[owner] += int(got.group(1))
    return totals


def _data(rows: int, big_rows: int = BIG_ROWS):
    import numpy as np

    import tfmtl
    from workload import VOCAB_SIZES, generate

    features, labels, _ = generate(rows, seed=0)
    rng = np.random.default_rng(1)
    features["big"] = (rng.zipf(1.05, rows) % 10**9).astype(np.int64)  # heavy-tailed; hashed into BIG_ROWS rows
    specs = [tfmtl.Categorical(f"c{i}", embedding_dim=16, id_type="int64", vocabulary=tuple(range(size)))
             for i, size in enumerate(VOCAB_SIZES)]  # as train_throughput.py
    specs += [tfmtl.Numeric(name, log=True, mean=0.0, variance=1.0) for name in features if name.startswith("n")]
    specs.append(tfmtl.Categorical("big", embedding_dim=BIG_DIM, id_type="int64", num_hash_bins=big_rows))
    tasks = (tfmtl.Task.binary("ctr"), tfmtl.Task.binary("cvr"))
    return tfmtl.data.MultiTaskData(features, labels, tfmtl.Schema(specs), tasks)


def _model(data):
    import tfmtl

    model = tfmtl.models.mmoe(data.schema, data.tasks, num_experts=4, expert_units=(64,))
    model.compile()
    return model


def _report(**values) -> None:
    print("RESULT " + json.dumps(values), flush=True)


def single(rows: int, big_rows: int = BIG_ROWS) -> None:
    data = _data(rows, big_rows)
    model = _model(data)
    model.fit(data.take(slice(0, 4 * BATCH)).to_dataset(BATCH), epochs=1, verbose=0)  # trace before the timed epoch
    started = time.perf_counter()
    model.fit(data.to_dataset(BATCH, shuffle=True, seed=0), epochs=1, verbose=0)
    _report(examples_per_s=rows / (time.perf_counter() - started), rss={"process": _peak_rss_mib(os.getpid())})


def mwms_worker(rows: int) -> None:
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    data = _data(rows)
    with strategy.scope():
        model = _model(data)
    model.fit(data.to_dataset(BATCH).take(2), epochs=1, verbose=0)  # connect and trace before the timed epoch
    before = _received([os.getpid()])[os.getpid()]
    started = time.perf_counter()
    model.fit(data.to_dataset(BATCH, shuffle=True, seed=0), epochs=1, verbose=0)
    seconds = time.perf_counter() - started
    steps = -(-rows // BATCH)
    _report(examples_per_s=rows / seconds, rss=_peak_rss_mib(os.getpid()),
            received_per_step=(_received([os.getpid()])[os.getpid()] - before) / steps)


def coordinator(rows: int, server_pids: dict[str, int]) -> None:
    import tfmtl

    data = _data(rows)
    strategy = tfmtl.training.parameter_server_strategy()
    with strategy.scope():
        model = _model(data)
    workers = [pid for name, pid in server_pids.items() if name.startswith("worker")]
    steps = -(-rows // BATCH)

    def epoch(length: int) -> tuple[float, dict[int, int]]:
        before, started = _received(workers), time.perf_counter()
        tfmtl.training.fit(model, lambda epoch: data.to_dataset(BATCH, shuffle=True, seed=0), epochs=1,
                           steps_per_epoch=length, verbose=0)
        after = _received(workers)
        return time.perf_counter() - started, {pid: after[pid] - before[pid] for pid in workers}

    epoch(4)  # connect and trace
    # Each fit ships the in-memory data to the workers once (captured in their input function): the
    # difference between a full and a half epoch is the steady state, without that one-time cost.
    half_s, half_bytes = epoch(steps // 2)
    full_s, full_bytes = epoch(steps)
    extra = steps - steps // 2
    held: dict[str, int] = {}
    for weight in model.weights:
        if "big_embedding" in weight.name:
            task = re.search(r"/job:ps/replica:0/task:(\d+)", weight.device).group(1)
            held[f"ps{task}"] = held.get(f"ps{task}", 0) + weight.shape.num_elements() * 4
    _report(
        examples_per_s=extra * BATCH / (full_s - half_s), held=held,
        rss={**{name: _peak_rss_mib(pid) for name, pid in server_pids.items()}, "coordinator": _peak_rss_mib(os.getpid())},
        received_per_step={f"worker{i}": (full_bytes[pid] - half_bytes[pid]) / extra for i, pid in enumerate(workers)},
    )


def _ports(count: int) -> list[str]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [f"127.0.0.1:{sock.getsockname()[1]}" for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _spawn(role: str, rows: int, tf_config: dict | None = None, extra: tuple[str, ...] = ()) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, str(HERE), "--role", role, "--rows", str(rows), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _result(process: subprocess.Popen, timeout: float = 3600) -> dict:
    output, _ = process.communicate(timeout=timeout)
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"{process.args[3]} failed:\n{output[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def run_single(rows: int) -> dict:
    result = _result(_spawn("single", rows))
    return {"way": "one process", **result}


def run_small(rows: int) -> dict:
    result = _result(_spawn("small", rows))
    return {"way": f"one process, big table of {SMALL_ROWS:,} rows (baseline)", **result}


def run_mwms(rows: int) -> dict:
    cluster = {"worker": _ports(2)}
    workers = [_spawn("mwms", rows, {"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(2)]
    results = [_result(worker) for worker in workers]
    return {"way": "MultiWorkerMirrored, 2 workers", "examples_per_s": results[0]["examples_per_s"],
            "rss": {f"worker{i}": r["rss"] for i, r in enumerate(results)},
            "received_per_step": {f"worker{i}": r["received_per_step"] for i, r in enumerate(results)}}


def run_ps(rows: int) -> dict:
    ports = _ports(5)
    cluster = {"ps": ports[:2], "worker": ports[2:4], "chief": ports[4:]}
    servers = {f"{job}{i}": _spawn("server", rows, {"cluster": cluster, "task": {"type": job, "index": i}})
               for job in ("ps", "worker") for i in range(2)}
    try:
        pids = json.dumps({name: process.pid for name, process in servers.items()})
        result = _result(_spawn("coordinator", rows, {"cluster": cluster, "task": {"type": "chief", "index": 0}},
                                ("--servers", pids)))
    finally:
        for process in servers.values():
            process.kill()
            process.communicate()
    return {"way": "ParameterServer, 2 PS + 2 workers", **result}


def _mib(value: float) -> str:
    return f"{value / 2**20:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=400_000)
    ways = ["small", "single", "mwms", "ps"]
    parser.add_argument("--ways", nargs="+", default=ways, choices=ways)
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--servers", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "server":
        import tfmtl

        tfmtl.training.start_server()
        return
    if args.role:
        {"single": single, "small": lambda rows: single(rows, SMALL_ROWS), "mwms": mwms_worker}.get(args.role, lambda rows: coordinator(rows, json.loads(args.servers)))(
            args.rows)
        return
    print(f"one {BIG_ROWS:,} x {BIG_DIM} table ({BIG_ROWS * BIG_DIM * 4 / 2**30:.2f} GiB) + the usual workload; "
          f"{args.rows:,} rows, batch {BATCH}, one epoch, LazyAdam; 2-core machine, loopback", flush=True)
    rows = []
    for way in args.ways:
        print(f"running: {way}", flush=True)
        rows.append({"small": run_small, "single": run_single, "mwms": run_mwms, "ps": run_ps}[way](args.rows))
    print()
    print("| way | examples/s | peak RSS per process (MiB) | big table held per PS (MiB) | MiB received per step, per worker |")
    print("|---|---:|---|---|---|")
    for row in rows:
        rss = ", ".join(f"{name} {value:,.0f}" for name, value in row["rss"].items())
        held = ", ".join(f"{name} {_mib(value)}" for name, value in row.get("held", {}).items()) or "-"
        received = ", ".join(f"{name} {_mib(value)}" for name, value in row.get("received_per_step", {}).items()) or "-"
        print(f"| {row['way']} | {row['examples_per_s']:,.0f} | {rss} | {held} | {received} |")


if __name__ == "__main__":
    main()
