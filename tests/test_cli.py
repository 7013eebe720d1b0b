import os
import re
import pathlib
import subprocess
import sys

import pytest

import tfmtl
from tfmtl.cli import build_parser


def test_parser_defaults():
    args = build_parser().parse_args(["demo"])
    assert (args.rows, args.epochs, args.export_dir) == (100_000, 2, "export/demo")
    serve = build_parser().parse_args(["serve", "--model_config_file", "m.config"])  # TF Serving's defaults
    assert (serve.file_system_poll_wait_seconds, serve.max_num_load_retries, serve.load_retry_interval_micros) == (
        1.0, 5, 60_000_000
    )
    assert not serve.allow_version_labels_for_unavailable_models


@pytest.mark.slow
def test_demo_runs_end_to_end_and_the_export_serves_identically(tmp_path):
    script = pathlib.Path(sys.executable).with_name("tfmtl")
    done = subprocess.run(
        [str(script), "demo", "--rows", "30000", "--epochs", "1", "--batch-size", "256",
         "--export-dir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for step in range(1, 7):
        assert f"[{step}/6]" in out
    assert "oracle AUC" in out
    aucs = {m[0]: float(m[1]) for m in re.findall(r"^\s+(click|conversion)\s+([0-9.]+)\s", out, re.M)}
    assert aucs["click"] > 0.55 and aucs["conversion"] > 0.55, out  # chance is 0.5
    # (serving_default x 2 tasks + predict_<task> x 2) x (fresh process, C++ session if a compiler, gRPC, REST)
    paths = 4 if tfmtl.serving.cpp.compiler() else 3
    assert out.count(" same") == 4 * paths and "DIFFERENT" not in out
    assert "all in stock TensorFlow Serving" in out
    assert (tmp_path / "models.config").exists() and (tmp_path / "batching.config").exists()
    assert "done: the export answers exactly as the in-memory model" in out
    assert (tmp_path / "demo" / "1" / "saved_model.pb").exists()
