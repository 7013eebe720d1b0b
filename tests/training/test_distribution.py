"""MirroredStrategy and MultiWorkerMirroredStrategy training, and mixed precision, each in fresh processes."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from cluster import finish, free_ports

JOB = pathlib.Path(__file__).with_name("distributed_job.py")
ROOT = JOB.parents[2]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def _job(mode: str, out: pathlib.Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(JOB), mode, str(out)], env=_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_mirrored_two_replicas_train_like_one_device(tmp_path):
    finish(_job("mirrored", tmp_path / "out.npz"))
    out = np.load(tmp_path / "out.npz")
    assert int(out["replicas"]) == 2
    singles = sorted(key for key in out if key.startswith("single_"))
    assert {key.split("_")[1] for key in singles} == {"adam", "lazy"}  # Keras Adam and tfmtl's LazyAdam
    for key in singles:
        np.testing.assert_allclose(out[key.replace("single", "mirrored")], out[key], rtol=1e-4, atol=1e-5, err_msg=key)


@pytest.mark.slow
def test_two_workers_end_with_identical_weights_and_single_process_quality(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    jobs = [
        _job("worker", tmp_path / f"worker{index}.npz",
             TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        for index in range(2)
    ]
    for job in jobs:
        finish(job, timeout=400)
    first, second = (np.load(tmp_path / f"worker{index}.npz") for index in range(2))
    assert int(first["workers"]) == 2
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    # the same job in one process (no TF_CONFIG: a single worker) reaches the same quality
    finish(_job("worker", tmp_path / "single.npz"))
    single = np.load(tmp_path / "single.npz")
    assert int(single["workers"]) == 1
    assert abs(float(first["click_auc"]) - float(single["click_auc"])) < 0.02
    # The training logs (losses, weights, AUCs) equal the single process's: not summed over the workers.
    logs = sorted(key for key in single if key.startswith(("log_", "eval_")))
    assert "log_loss" in logs and "log_click_auc" in logs
    for key in logs:
        np.testing.assert_allclose(first[key], single[key], rtol=1e-4, err_msg=key)


@pytest.mark.slow
def test_mixed_float16_mmoe_trains_without_nan_and_answers_in_float32(tmp_path):
    finish(_job("mixed", tmp_path / "out.npz"))
    out = np.load(tmp_path / "out.npz")
    assert out["output_dtypes"].tolist() == ["float32", "float32"]  # heads, losses and metrics in float32
    assert str(out["compute_dtype"]) == "float16"  # the experts do compute in half precision
    periodic = {tuple(dtypes) for dtypes in out["periodic_dtypes"].tolist()}
    assert periodic == {("float32", "float16")}  # periodic embeddings: float32 frequencies, float16 Dense
    assert out["variable_dtypes"].tolist() == ["float32"]  # master weights stay float32
    assert np.all(np.isfinite(out["losses"])) and bool(out["weights_finite"])
    assert float(out["loss_scale"]) > 1.0
    # MGDA at the representation, whose gradients are float16 and loss-scaled: finite, its weights on the simplex
    loss, *weights, finite = out["balanced_losses"].tolist()
    assert np.isfinite(loss) and finite == 1.0 and abs(sum(weights) - 1.0) < 1e-3, out["balanced_losses"]


@pytest.mark.slow
def test_the_readme_multiworker_example_trains_on_two_workers(tmp_path):
    """examples/train_multiworker.py as README launches it, on an epoch that is not a multiple of 16 steps."""
    script = ROOT / "examples" / "train_multiworker.py"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    jobs = [
        subprocess.Popen(
            [sys.executable, str(script), "5000"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})),
        )
        for i in range(2)
    ]
    outputs = []
    for job in jobs:
        output, _ = job.communicate(timeout=400)
        assert job.returncode == 0, output[-3000:]
        outputs.append(output)
    assert "2 workers: {'click/auc'" in outputs[0]
