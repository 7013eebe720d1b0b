"""The development server follows its model directories and version labels as TF Serving does."""

from __future__ import annotations

import shutil
import threading
import time

import grpc
import numpy as np
import pytest

import tfmtl
import tfmtl.cli
from tfmtl._compat import keras
from tfmtl.serving.online.repository import ModelEntry

FEATURES = {"price": np.array([0.5, 1.0, 2.0], np.float32)}


def _export(base, version, seed):
    """A tiny model with its own random weights, exported as ``version``; its answers."""
    keras.utils.set_random_seed(seed)
    schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(4,))
    answers = model.predict(FEATURES, verbose=0)["click"][:, 0]
    tfmtl.serving.export(model, base, version=version)
    return answers


def _until(condition, seconds=60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("the server did not pick up the change in time")


def test_new_versions_load_and_removed_ones_unload_without_failing_requests(tmp_path):
    base = tmp_path / "m"
    expected = {1: _export(base, 1, seed=1)}
    entries = [ModelEntry("m", base, policy="all")]
    with tfmtl.serving.DevServer(entries, port=0, file_system_poll_wait_seconds=0.2) as server:
        client = tfmtl.serving.Client("m", grpc_target=server.grpc_target)
        assert client.status() == {1: "AVAILABLE"}
        errors, answers, stop = [], set(), threading.Event()

        def hammer():  # unpinned requests all along: each answer must come from a loaded version
            while not stop.is_set():
                try:
                    got = client.predict(FEATURES)["click"]
                    known = list(expected.items())
                    answers.add(next((v for v, want in known if np.allclose(got, want, atol=1e-5)), "unknown"))
                except Exception as error:  # noqa: BLE001
                    errors.append(error)

        thread = threading.Thread(target=hammer)
        thread.start()
        try:
            expected[2] = _export(tmp_path / "staging", 2, seed=2)  # its answers are known before it is served
            shutil.move(tmp_path / "staging" / "2", base / "2")
            _until(lambda: client.status() == {1: "AVAILABLE", 2: "AVAILABLE"})
            _until(lambda: 2 in answers)  # the latest version answers unpinned requests
            shutil.rmtree(base / "1")
            _until(lambda: client.status() == {2: "AVAILABLE"})
            with pytest.raises(tfmtl.serving.ServingError, match=r"Specific\(m, 1\)") as caught:
                tfmtl.serving.Client("m", grpc_target=server.grpc_target, version=1).predict(FEATURES)
            assert caught.value.code == grpc.StatusCode.NOT_FOUND
        finally:
            stop.set()
            thread.join()
        assert errors == [] and answers == {1, 2}


def test_latest_policy_swaps_to_the_new_version(tmp_path):
    base = tmp_path / "m"
    _export(base, 1, seed=1)
    with tfmtl.serving.DevServer.for_model("m", base, port=0, file_system_poll_wait_seconds=0.2) as server:
        client = tfmtl.serving.Client("m", grpc_target=server.grpc_target)
        new = _export(base, 2, seed=2)
        _until(lambda: client.status() == {2: "AVAILABLE"})
        np.testing.assert_allclose(client.predict(FEATURES)["click"], new, atol=1e-5)


def test_labels_for_versions_not_loaded(tmp_path, capsys):
    base = tmp_path / "m"
    _export(base, 1, seed=1)
    entries = [ModelEntry("m", base, policy="all", labels={"stable": 1, "canary": 9})]
    with pytest.raises(ValueError, match=r"label 'canary' points at version 9.*--allow_version_labels_for_unavail"):
        tfmtl.serving.DevServer(entries, port=0)
    config = tmp_path / "models.config"
    config.write_text(tfmtl.serving.model_config_text(
        {"m": base}, all_versions=True, version_labels={"m": {"stable": 1, "canary": 9}}
    ))
    assert tfmtl.cli.main(["serve", "--model_config_file", str(config), "--port", "0"]) == 1
    assert "label 'canary' points at version 9" in capsys.readouterr().err  # a message, not a traceback

    with tfmtl.serving.DevServer(entries, port=0, file_system_poll_wait_seconds=0.2,
                                 allow_version_labels_for_unavailable_models=True) as server:
        canary = tfmtl.serving.Client("m", grpc_target=server.grpc_target, version_label="canary")
        with pytest.raises(tfmtl.serving.ServingError, match=r"Specific\(m, 9\)") as caught:
            canary.predict(FEATURES)
        assert caught.value.code == grpc.StatusCode.NOT_FOUND
        nine = _export(base, 9, seed=9)
        _until(lambda: 9 in canary.status())
        np.testing.assert_allclose(canary.predict(FEATURES)["click"], nine, atol=1e-5)


def test_refresh_closes_unloaded_versions_once_released_and_retries_failed_loads(tmp_path):
    from tfmtl.serving.online.repository import ModelRepository

    base = tmp_path / "m"
    _export(base, 1, seed=1)
    repository = ModelRepository([ModelEntry("m", base)], warmup=False, load_retry_interval_seconds=2.0,
                                 max_load_retries=1)
    try:
        from tensorflow_serving.apis import model_pb2

        with repository.lease(model_pb2.ModelSpec(name="m")) as old:  # a request still running on version 1
            _export(base, 2, seed=2)
            assert repository.refresh() == {"m": ([2], [1])}
            assert old.session.run([]) == []  # unloaded, but its request's session stays open
        with pytest.raises(RuntimeError, match="closed Session"):  # closed when that request ended
            old.session.run([])
        (base / "3").mkdir()  # a version that cannot load: 2 keeps serving; retried after the interval, once
        logged = []
        assert repository.refresh(logged.append) == {} and repository.refresh(logged.append) == {}
        assert len(logged) == 1 and "version 3 failed to load (attempt 1)" in logged[0]
        time.sleep(2.1)
        repository.refresh(logged.append)
        time.sleep(2.1)
        repository.refresh(logged.append)
        assert len(logged) == 2 and "(attempt 2)" in logged[1] and list(repository.servables["m"]) == [2]
        for version in ("1", "2", "3"):
            shutil.rmtree(base / version)
        assert repository.refresh() == {"m": ([], [2])} and repository.servables["m"] == {}  # as TF Serving
        with pytest.raises(tfmtl.serving.ServingError, match=r"Servable not found for request: Latest\(m\)"):
            repository.resolve(model_pb2.ModelSpec(name="m"))
    finally:
        repository.close()


def test_model_status_codes_follow_tf_serving(tmp_path):
    from tensorflow_serving.apis import get_model_status_pb2

    from tfmtl.serving.online.repository import ModelRepository, model_status

    _export(tmp_path / "m", 1, seed=1)
    repository = ModelRepository([ModelEntry("m", tmp_path / "m")], warmup=False)
    try:
        for spec, code, message in [
            (None, grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec"),
            ({"name": ""}, grpc.StatusCode.NOT_FOUND, "Could not find any versions of model "),
            ({"name": "m", "version": {"value": 4}}, grpc.StatusCode.NOT_FOUND, "Could not find version 4 of model m"),
        ]:
            request = get_model_status_pb2.GetModelStatusRequest(**({"model_spec": spec} if spec is not None else {}))
            with pytest.raises(tfmtl.serving.ServingError) as caught:
                model_status(repository, request)
            assert caught.value.code == code and caught.value.message == message
    finally:
        repository.close()
