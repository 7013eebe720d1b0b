"""Warmup file, TF Serving configs and the op audit."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from google.protobuf import text_format

import tfmtl
from tfmtl._compat import tf
from tfmtl.serving.online.repository import ModelEntry, ModelRepository
from tfmtl.serving.session import replay_warmup
from tfmtl.serving.warmup import MAX_RECORDS, WARMUP_PATH


def test_warmup_covers_every_signature_and_replays(exported_mmoe):
    logs = tfmtl.serving.read_warmup(exported_mmoe)
    assert 0 < len(logs) <= MAX_RECORDS
    requested = sorted(getattr(log, log.WhichOneof("log_type")).request.model_spec.signature_name for log in logs)
    signatures = sorted(tf.saved_model.load(str(exported_mmoe)).signatures)
    assert requested == signatures
    kinds = {log.WhichOneof("log_type") for log in logs}
    assert kinds == {"predict_log", "classify_log"}
    repository = ModelRepository([ModelEntry("m", exported_mmoe.parent)], warmup=False)
    servable = repository.servables["m"][1]
    assert replay_warmup(servable) == len(logs)
    repository.close()


def test_a_corrupt_warmup_file_fails_the_load(exported_mmoe, tmp_path):
    import shutil

    copy = tmp_path / "m" / "1"
    shutil.copytree(exported_mmoe, copy)
    (copy / WARMUP_PATH).write_bytes(b"not a tfrecord")
    with pytest.raises(ValueError, match="Please verify your warmup data is in TFRecord format"):
        ModelRepository([ModelEntry("m", copy.parent)])


def test_a_warmup_request_that_fails_fails_the_load_and_the_export(trained_mmoe, small_data, tmp_path):
    path = tfmtl.serving.export(trained_mmoe, tmp_path / "m")
    from tfmtl.serving.warmup import warmup_logs, write_warmup
    from tfmtl.serving.signatures import ServingModule

    module = ServingModule(trained_mmoe)
    features = small_data.take(slice(0, 2)).features
    features["user_age"] = np.array([np.nan, 1.0], np.float32)  # the model rejects NaN: so must the load
    write_warmup(path, warmup_logs({"serving_default": "predict"}, module.specs, features, "m"))
    with pytest.raises(ValueError, match=r"(?s)warmup record 0 .*numeric feature 'user_age' contains NaN"):
        ModelRepository([ModelEntry("m", path.parent)])
    # export replays its warmup file before publishing: a bad warmup batch never becomes a version
    with pytest.raises(ValueError, match="numeric feature 'user_age' contains NaN"):
        tfmtl.serving.export(trained_mmoe, tmp_path / "n", warmup_features=features)
    assert [p.name for p in (tmp_path / "n").iterdir() if not p.name.startswith(".")] == []


def test_models_config_parses_with_tensorflow_serving_protos(tmp_path):
    from tensorflow_serving.config import model_server_config_pb2

    text = tfmtl.serving.model_config_text(
        {"ranker": tmp_path / "ranker", "cvr": "rel/path"},
        versions={"cvr": [3, 4]},
        version_labels={"ranker": {"stable": 1, "canary": 2}},
    )
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    ranker, cvr = config.model_config_list.config
    assert (ranker.name, ranker.model_platform) == ("ranker", "tensorflow")
    assert ranker.base_path == str(tmp_path / "ranker")
    assert ranker.model_version_policy.latest.num_versions == 1
    assert dict(ranker.version_labels) == {"stable": 1, "canary": 2}
    assert list(cvr.model_version_policy.specific.versions) == [3, 4]
    assert pathlib.Path(cvr.base_path).is_absolute()
    with pytest.raises(ValueError, match="label 'bad-label'"):
        tfmtl.serving.model_config_text({"m": "x"}, version_labels={"m": {"bad-label": 1}})
    with pytest.raises(ValueError, match=r"unknown model\(s\) \['other'\]"):
        tfmtl.serving.model_config_text({"m": "x"}, versions={"other": [1]})


def test_batching_config_text_and_checks(tmp_path):
    config = tfmtl.serving.BatchingConfig(max_batch_size=256, num_batch_threads=2, allowed_batch_sizes=(64, 256))
    assert config.text().splitlines() == [
        "max_batch_size { value: 256 }",
        "batch_timeout_micros { value: 0 }",
        "max_enqueued_batches { value: 4 }",
        "num_batch_threads { value: 2 }",
        "allowed_batch_sizes: 64",
        "allowed_batch_sizes: 256",
    ]
    with pytest.raises(ValueError, match="must increase and end at max_batch_size"):
        tfmtl.serving.BatchingConfig(max_batch_size=128, allowed_batch_sizes=(64, 256))
    models, batching = tfmtl.serving.write_configs(tmp_path, {"m": tmp_path / "m"}, batching=config)
    assert models.read_text().startswith("model_config_list {") and batching.read_text() == config.text()


def test_op_audit_passes_for_a_tfmtl_export(exported_mmoe):
    report = tfmtl.serving.audit_export(exported_mmoe)
    assert report.ok, report.problems()
    assert {"LookupTableFindV2", "ParseExampleV2", "Einsum", "CheckNumerics"} <= set(report.ops)


def test_op_audit_catches_ragged_signature_tensors(tmp_path):
    class RaggedModule(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="x")])
        def serve(self, x):
            return {"y": tf.RaggedTensor.from_row_lengths(tf.cast(x, tf.float32), x)}

    module = RaggedModule()
    tf.saved_model.save(module, str(tmp_path / "1"), signatures={"serving_default": module.serve})
    report = tfmtl.serving.audit_export(tmp_path / "1")
    assert report.non_dense_signature_tensors == ("serving_default: output 'y' is not a dense tensor",)
    assert not report.ok


def test_op_audit_catches_python_ops(tmp_path):
    class PyModule(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"y": tf.py_function(lambda v: v * 2, [x], tf.float32)}

    module = PyModule()
    tf.saved_model.save(module, str(tmp_path / "1"), signatures={"serving_default": module.serve})
    report = tfmtl.serving.audit_export(tmp_path / "1")
    assert not report.ok
    assert report.python_ops == ("EagerPyFunc",)
