"""A two-version export served over gRPC and REST by the development server (and the real one if present)."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

import tfmtl
from tfmtl._compat import keras


class Served:
    """A running server process and what the tests compare against."""

    def __init__(self, process, grpc_target, rest_url, expected, sample, model_name="mtl"):
        self.process, self.grpc_target, self.rest_url = process, grpc_target, rest_url
        self.expected, self.sample, self.model_name = expected, sample, model_name

    def client(self, **kwargs) -> tfmtl.serving.Client:
        endpoints = {"grpc_target": self.grpc_target, "rest_url": self.rest_url, **kwargs}
        return tfmtl.serving.Client(self.model_name, **endpoints)


@pytest.fixture(scope="session")
def two_versions(small_data, small_schema, tmp_path_factory):
    """Export v1, train a little more, export v2; keep each version's in-memory predictions."""
    keras.utils.set_random_seed(2)
    labels = {**small_data.labels, "dwell": 10.0 * small_data.oracle["click"]}  # a regression target
    tasks = (tfmtl.Task.binary("click"), tfmtl.Task.regression("dwell", loss_weight=0.1))
    data = tfmtl.data.MultiTaskData(small_data.features, labels, small_data.schema, tasks)
    model = tfmtl.models.mmoe(small_schema, tasks, num_experts=2, expert_units=(8,))
    model.compile()
    base = tmp_path_factory.mktemp("served") / "mtl"
    sample = small_data.take(slice(0, 16)).features
    sample["item_id"] = sample["item_id"].astype(object)
    sample["item_id"][0] = "never-seen-item"
    expected = {}
    for version in (1, 2):
        model.fit(data.to_dataset(512), epochs=1, verbose=0)
        tfmtl.serving.export(model, base, warmup_features=data.take(slice(0, 4)).features)
        expected[version] = {k: v[:, 0] for k, v in model.predict(sample, verbose=0).items()}
    config = base.parent / "models.config"
    config.write_text(
        tfmtl.serving.model_config_text({"mtl": base}, all_versions=True, version_labels={"mtl": {"stable": 1, "canary": 2}})
    )
    return base, config, expected, sample


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(process, pattern, seconds=180):
    deadline = time.monotonic() + seconds
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        lines.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    process.kill()
    raise RuntimeError("server did not start:\n" + "".join(lines[-30:]))


@pytest.fixture(scope="session", params=["tfmtl-dev-server", "tensorflow_model_server"])
def served(request, two_versions):
    base, config, expected, sample = two_versions
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if request.param == "tfmtl-dev-server":
        command = [
            str(pathlib.Path(sys.executable).with_name("tfmtl")), "serve", "--model_config_file", str(config),
            "--port", "0", "--rest_api_port", "0", "--max_seconds", "900",
        ]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        match = _wait_for(process, r"gRPC on (\S+?), REST on (http://\S+?);")
        grpc_target, rest_url = match.group(1), match.group(2)
    else:
        binary = shutil.which("tensorflow_model_server")
        if binary is None:
            pytest.skip("tensorflow_model_server is not on PATH (not installable here); the dev server stands in")
        grpc_port, rest_port = _free_port(), _free_port()
        command = [
            binary, f"--port={grpc_port}", f"--rest_api_port={rest_port}", f"--model_config_file={config}",
            "--allow_version_labels_for_unavailable_models",  # labels in a startup config need it
        ]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        _wait_for(process, r"Exporting HTTP/REST API")
        grpc_target, rest_url = f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{rest_port}"
    yield Served(process, grpc_target, rest_url, expected, sample)
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
