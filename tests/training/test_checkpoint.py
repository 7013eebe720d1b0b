"""Checkpoints: atomic writes, and a run killed mid-epoch resumes to the uninterrupted run's weights."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tfmtl
import resume_job  # beside this file (pytest puts the folder on sys.path)

JOB = pathlib.Path(resume_job.__file__)
ROOT = JOB.parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, str(JOB), *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_weights(tmp_path):
    data = str(tmp_path / "train.tfrecord")
    tfmtl.data.write_tfrecord(resume_job.make_data(), data)
    # 480 rows / 32 = 15 batches an epoch; killed at batch 22 = epoch 1, step 7 (last checkpoint: step 6).
    killed = _run(data, str(tmp_path / "ckpt"), str(tmp_path / "never.npz"), "22")
    assert killed.returncode == -9, killed.stderr[-3000:]
    checkpoints = tfmtl.training.Checkpoints(tmp_path / "ckpt")
    assert checkpoints.latest().name == "ckpt-000001-000000006"
    # A checkpoint cut short by the kill (here: a truncated copy) sits in a temporary folder: never read.
    partial = tmp_path / "ckpt" / ".tmp-killed"
    shutil.copytree(checkpoints.latest(), partial)
    for file in partial.glob("state*"):
        file.write_bytes(file.read_bytes()[:10])
    assert checkpoints.latest().name == "ckpt-000001-000000006"

    resumed = _run(data, str(tmp_path / "ckpt"), str(tmp_path / "resumed.npz"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not partial.exists()  # cleaned up by the next save
    assert checkpoints.latest().name == "ckpt-000002-000000000"
    straight = _run(data, str(tmp_path / "ckpt-straight"), str(tmp_path / "straight.npz"))
    assert straight.returncode == 0, straight.stderr[-3000:]

    a, b = np.load(tmp_path / "resumed.npz"), np.load(tmp_path / "straight.npz")
    assert sorted(a) == sorted(b) and any(key.startswith("balancer_") for key in a)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_restore_continues_where_save_stopped(small_data, small_schema, tmp_path):
    model = tfmtl.models.mmoe(small_schema, small_data.tasks, num_experts=2, expert_units=(4,))
    model.compile(optimizer="adam", balancer=tfmtl.balancing.UncertaintyWeighting())
    model.fit(small_data.take(slice(0, 64)).to_dataset(32), verbose=0)
    checkpoints = tfmtl.training.Checkpoints(tmp_path, keep=2)
    for step in (1, 2, 3):
        checkpoints.save(model, tfmtl.training.Position(0, step))
    assert [path.name for path in checkpoints.all()] == ["ckpt-000000-000000002", "ckpt-000000-000000003"]

    other = tfmtl.models.mmoe(small_schema, small_data.tasks, num_experts=2, expert_units=(4,))
    other.compile(optimizer="adam", balancer=tfmtl.balancing.UncertaintyWeighting())
    assert checkpoints.restore(other) == tfmtl.training.Position(0, 3)
    for mine, theirs in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    assert int(other.optimizer.iterations) == 2
    for mine, theirs in zip(model.balancer.variables, other.balancer.variables):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_restore_needs_a_compiled_model(small_data, small_schema, tmp_path):
    model = tfmtl.models.mmoe(small_schema, small_data.tasks, num_experts=2, expert_units=(4,))
    with pytest.raises(ValueError, match="compile the model first"):
        tfmtl.training.Checkpoints(tmp_path).save(model, tfmtl.training.Position(0, 0))


def test_a_resumed_or_finished_run_says_so(small_data, small_schema, tmp_path, capsys):
    train = small_data.take(slice(0, 512))

    def run(epochs):
        model = tfmtl.models.shared_bottom(small_schema, small_data.tasks, bottom_units=(4,))
        model.compile()
        tfmtl.training.fit(model, train.to_dataset(128), epochs=epochs, checkpoint_dir=tmp_path / "ckpt", verbose=2)
        return capsys.readouterr().out

    first = run(1)
    assert "resuming" not in first and "already trained" not in first
    assert "resuming from checkpoint" in (second := run(2)) and "epoch 2 of 2, after step 0" in second
    assert "already trained for 2 epoch(s)" in run(2)


def test_steps_per_epoch_is_refused_outside_parameter_server_training(small_data, small_schema):
    model = tfmtl.models.shared_bottom(small_schema, small_data.tasks, bottom_units=(4,))
    model.compile()
    with pytest.raises(ValueError, match="steps_per_epoch is for ParameterServerStrategy only"):
        tfmtl.training.fit(model, small_data.to_dataset(64), epochs=1, steps_per_epoch=3, verbose=0)
