"""A real parameter-server cluster on loopback: 2 PS, 2 workers and a coordinator, each a fresh process."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
import sys
import threading
from typing import Iterator

import numpy as np
import pytest
from cluster import finish, free_ports
from ps_job import GRADIENT_STRATEGIES

import tfmtl
from tfmtl._compat import tf

JOB = pathlib.Path(__file__).with_name("ps_job.py")
ROOT = JOB.parents[2]


def _start(cluster: dict, job: str, index: int, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
           "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": job, "index": index}})}
    return subprocess.Popen([sys.executable, str(JOB), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@contextlib.contextmanager
def _cluster() -> Iterator[tuple[dict, dict]]:
    """2 ps and 2 worker servers on OS-chosen loopback ports, as ``(cluster, {(job, index): process})``.

    Every server (restarted ones included: replace them in the dict) is killed on the way out.
    """
    ports = [f"127.0.0.1:{port}" for port in free_ports(5)]
    cluster = {"ps": ports[:2], "worker": ports[2:4], "chief": ports[4:]}
    servers = {(job, index): _start(cluster, job, index, "server") for job in ("ps", "worker") for index in range(2)}
    try:
        yield cluster, servers
    finally:
        for server in servers.values():
            server.kill()
        for server in servers.values():
            server.communicate(timeout=30)


def _read_until(process: subprocess.Popen, marker: str, timeout: float = 300) -> str:
    """The process's output up to the line holding ``marker`` (the process goes on)."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: _collect(process, marker, lines), daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive() or not lines or marker not in lines[-1]:
        process.kill()
        pytest.fail(f"{marker!r} not seen within {timeout} s:\n{''.join(lines)[-3000:]}")
    return "".join(lines)


def _collect(process: subprocess.Popen, marker: str, lines: list[str]) -> None:
    for line in process.stdout:
        lines.append(line)
        if marker in line:
            return


@pytest.mark.slow
def test_parameter_server_cluster_shards_tables_trains_resumes_and_exports(tmp_path):
    single = subprocess.run([sys.executable, str(JOB), "single", str(tmp_path), "3"], capture_output=True,
                            text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert single.returncode == 0, single.stdout[-3000:] + single.stderr[-3000:]
    with _cluster() as (cluster, _):
        first = finish(_start(cluster, "chief", 0, "coordinator", str(tmp_path), "2"), timeout=600)
        # a new coordinator against the same servers (which keep the old one's tables and variables):
        # training resumes from the epoch-2 checkpoint
        second = finish(_start(cluster, "chief", 0, "coordinator", str(tmp_path), "3"), timeout=600)
    assert "Epoch 3/3" not in first and "resuming from checkpoint" in second and "Epoch 3/3" in second
    assert "Epoch 1/3" not in second
    out, early = np.load(tmp_path / "result_3.npz"), np.load(tmp_path / "result_2.npz")
    reference = np.load(tmp_path / "single.npz")
    assert early["trained_epochs"].tolist() == [0, 1] and out["trained_epochs"].tolist() == [2]
    assert [message.split(":")[0] for message in out["refusals"]] == [
        "checkpoint_every", "validation_data is not supported under ParameterServerStrategy", "data"]
    assert int(out["steps"]) == 3 * int(np.ceil(12_000 / 128))  # 3 epochs of steps, 2 of them restored

    # each id table is split over both parameter servers, row counts adding up to the table
    for table in ("user_id_embedding", "item_id_embedding"):
        rows, devices = out[f"rows_{table}"], out[f"devices_{table}"]
        assert rows.sum() == int(out[f"full_{table}"]) and len(rows) == 2
        assert sorted(d.split("/")[1:4:2] for d in devices) == [["job:ps", "task:0"], ["job:ps", "task:1"]], devices
        assert rows.max() <= 0.6 * rows.sum()

    # quality: well above chance, and near the single process on the same batches. The target is
    # within 0.01, which benchmarks/ps_quality.py measures on 200,000 rows over three seeds (click within
    # 0.0018). On this test's 12,000 rows, three unfaulted cluster runs gave click 0.665-0.700 against 0.686
    # and conversion 0.761-0.797 against 0.779 (the two workers' asynchronous updates order differently
    # each run), so the bound here is 0.03.
    for task in ("click", "conversion"):
        aucs = (task, float(out[f"auc_{task}"]), float(reference[f"auc_{task}"]))
        assert out[f"auc_{task}"] > 0.6 and out[f"auc_{task}"] >= reference[f"auc_{task}"] - 0.03, aucs
    # the logs are each epoch's metrics over all its steps, read from the model (Keras warns when it falls
    # back to one step's), and near the single process's: in the first epoch, when the two workers'
    # asynchronous updates and the single process's sequential ones part most, runs differed by up to
    # 0.012 in loss, 0.017 in click AUC and 0.08 in the rare conversions' AUC (not compared)
    assert "Could not get Model metric results" not in first + second
    for key, tolerance in (("log_loss", 0.025), ("log_click_loss", 0.025), ("log_conversion_loss", 0.025),
                           ("log_click_auc", 0.04)):
        np.testing.assert_allclose(early[key][0], reference[key][0], atol=tolerance, err_msg=key)
    # the task weights logged at the epoch's end are the balancer's then (uncertainty weighting moves them)
    np.testing.assert_allclose([out["log_click_weight"][-1], out["log_conversion_weight"][-1]], out["final_weights"],
                               rtol=1e-6)
    assert abs(out["final_weights"][0] - 1.0) > 1e-3 and int(out["steps_per_execution"]) == 1

    # each worker reads its own share of the batches: worker w the batches b with b % 2 == w
    workers, batches = out["probe"][:, 0], out["probe"][:, 1]
    assert set(workers.tolist()) == {0, 1} and np.all(batches % 2 == workers), out["probe"].tolist()

    # the export (one SavedModel, whole tables, raw ids in) answers as the coordinator's sharded model
    sample = {key[len("input_"):]: out[key] for key in out if key.startswith("input_")}
    assert tfmtl.serving.next_version(tmp_path / "export") == 3  # one export per coordinator run
    served = tfmtl.serving.predict_in_fresh_process(tmp_path / "export" / "2", sample,
                                                    signatures=["serving_default"])
    for task in ("click", "conversion"):
        np.testing.assert_allclose(out[f"joined_{task}"], out[f"pred_{task}"], atol=1e-5, err_msg="full_weights")
        np.testing.assert_allclose(served["serving_default"][task], out[f"pred_{task}"], atol=1e-5)
    # with int8 tables: each sharded table saved whole as int8 codes (no float32 copy), answering close to it
    reader = tf.train.load_checkpoint(str(tmp_path / "export_int8" / "2" / "variables" / "variables"))
    dtypes = reader.get_variable_to_dtype_map()
    saved = [(dtypes[name].name, shape) for name, shape in reader.get_variable_to_shape_map().items()]
    for table in ("user_id_embedding", "item_id_embedding"):
        rows, shard_rows = int(out[f"full_{table}"]), set(out[f"rows_{table}"].tolist())
        assert any(kind == "int8" and shape[:1] == [rows] for kind, shape in saved), (table, saved)
        floats = [shape[0] for kind, shape in saved if kind == "float32" and len(shape) == 2]
        assert rows not in floats and not shard_rows & set(floats), (table, saved)  # neither whole nor in shards
    small = tfmtl.serving.predict_in_fresh_process(tmp_path / "export_int8" / "2", sample,
                                                   signatures=["serving_default"])
    for task in ("click", "conversion"):
        np.testing.assert_allclose(small["serving_default"][task], out[f"pred_{task}"], atol=0.02)


@pytest.mark.slow
def test_gradient_balancing_strategies_train_on_the_cluster_at_both_levels(tmp_path):
    """Per-task gradients of the shared parameters or representation on each worker, state on the
    parameter servers (DB-MTL's [K, P] buffer sharded over both): the logs stay finite, the strategies
    move their weights, and the trained model ranks above chance."""
    with _cluster() as (cluster, _):
        finish(_start(cluster, "chief", 0, "balancers", str(tmp_path)), timeout=600)
    out = np.load(tmp_path / "balancers.npz")
    for kind, level in GRADIENT_STRATEGIES:
        name = f"{kind}_{level}"
        assert int(out[f"{name}_steps"]) == 2 * int(np.ceil(12_000 / 128)), name
        for key in ("loss", "click_loss", "conversion_loss", "click_weight", "conversion_weight"):
            assert np.all(np.isfinite(out[f"{name}_log_{key}"])), (name, key)
        assert np.any(out[f"{name}_log_click_weight"] != 1.0), name  # the strategy moved its weights
        assert out[f"{name}_auc_click"] > 0.6, (name, float(out[f"{name}_auc_click"]))


def test_parameter_server_strategy_needs_ps_and_worker_tasks():
    only_workers = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec({"worker": ["127.0.0.1:1"]}), task_type="chief", task_id=0)
    with pytest.raises(ValueError, match="needs 'ps' tasks, but the cluster has \\['worker'\\]"):
        tfmtl.training.parameter_server_strategy(only_workers)


@pytest.mark.slow
def test_a_killed_worker_restarted_mid_training_and_a_killed_parameter_server(tmp_path):
    (tmp_path / "faulted").mkdir()
    steps = 3 * int(np.ceil(12_000 / 128))  # every step of 3 epochs, as an unfaulted run (the cluster test)
    with _cluster() as (cluster, servers):
        coordinator = _start(cluster, "chief", 0, "coordinator", str(tmp_path / "faulted"), "3")
        before = _read_until(coordinator, "Epoch 2/3")
        servers["worker", 0].kill()  # by PID, mid-training; a cluster manager then starts it again
        servers["worker", 0].communicate(timeout=30)
        servers["worker", 0] = _start(cluster, "worker", 0, "server")
        after = finish(coordinator, timeout=600)
    faulted = np.load(tmp_path / "faulted" / "result_3.npz")
    assert "Epoch 3/3" in after and int(faulted["steps"]) == steps, before + after
    # The strategy ran the lost worker's steps on the other one, so every step ran; while the worker was
    # down (its restart takes seconds) the survivor read its own half of the batches again, so that epoch saw
    # part of the data twice and part never. Measured: faulted 0.666 click AUC against 0.700 unfaulted in an
    # earlier version of this test; unfaulted runs alone spread over 0.665-0.700, so 4,000 held-out rows
    # cannot resolve the 0.01 (and the unfaulted run was dropped for CI time).
    # benchmarks/ps_quality.py --fault measures it on 200,000 rows: within 0.005.
    for task in ("click", "conversion"):
        assert float(faulted[f"auc_{task}"]) > 0.6, (task, float(faulted[f"auc_{task}"]))

    # not restarted: the survivor runs every remaining step and the run ends (bounded in time); measured
    # here, the coordinator finished about 12 s after the kill, logging connection errors for the dead worker
    (tmp_path / "alone").mkdir()
    with _cluster() as (cluster, servers):
        coordinator = _start(cluster, "chief", 0, "coordinator", str(tmp_path / "alone"), "3")
        _read_until(coordinator, "Epoch 2/3")
        servers["worker", 0].kill()
        alone = finish(coordinator, timeout=300)
    assert "Epoch 3/3" in alone and int(np.load(tmp_path / "alone" / "result_3.npz")["steps"]) == steps

    (tmp_path / "lost").mkdir()
    with _cluster() as (cluster, servers):
        coordinator = _start(cluster, "chief", 0, "coordinator", str(tmp_path / "lost"), "3")
        _read_until(coordinator, "Epoch 2/3")
        servers["ps", 1].kill()
        try:
            output, _ = coordinator.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            coordinator.kill()
            pytest.fail("the coordinator did not stop within 300 s of losing a parameter server")
    assert coordinator.returncode != 0
    assert "/job:ps/replica:0/task:1" in output, output[-3000:]  # the error names the lost task
    with _cluster() as (cluster, _):  # the whole cluster started again resumes from the last checkpoint
        resumed = finish(_start(cluster, "chief", 0, "coordinator", str(tmp_path / "lost"), "3"), timeout=600)
    assert "resuming from checkpoint" in resumed and "Epoch 3/3" in resumed and "Epoch 1/3" not in resumed
    assert int(np.load(tmp_path / "lost" / "result_3.npz")["steps"]) == steps
