import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import tf

RAW_SIGNATURES = ["serving_default", "predict_click", "predict_conversion"]
EXAMPLE_SIGNATURES = ["predict_examples", "classify_click", "classify_conversion"]
SIGNATURES = RAW_SIGNATURES + EXAMPLE_SIGNATURES


def _sample(small_data):
    sample = small_data.take(slice(0, 64)).features
    # Ids never seen in training must be served (OOV bucket), not rejected.
    sample["user_id"] = sample["user_id"].astype(object)
    sample["user_id"][:5] = "brand-new-user"
    sample["hour"] = sample["hour"].copy()
    sample["hour"][5] = 12345
    return sample


def test_version_directory_and_signatures(exported_mmoe):
    assert exported_mmoe.name == "1"
    assert (exported_mmoe / "saved_model.pb").exists()
    assert not [p for p in exported_mmoe.parent.iterdir() if p.name.startswith(".tmp")]
    loaded = tf.saved_model.load(str(exported_mmoe))
    assert sorted(loaded.signatures) == sorted(SIGNATURES)
    for name in RAW_SIGNATURES:
        _, inputs = loaded.signatures[name].structured_input_signature
        assert sorted(inputs) == sorted(tfmtl.data.synthetic_schema().names)
    for name in EXAMPLE_SIGNATURES:
        _, inputs = loaded.signatures[name].structured_input_signature
        assert list(inputs) == ["inputs"] and inputs["inputs"].dtype == tf.string
    assert sorted(loaded.signatures["classify_click"].structured_outputs) == ["classes", "scores"]
    assert sorted(loaded.signatures["serving_default"].structured_outputs) == ["click", "conversion"]
    assert list(loaded.signatures["predict_conversion"].structured_outputs) == ["conversion"]


@pytest.mark.parametrize("mode", ["session", "function", "cpp"])
def test_fresh_process_without_tfmtl_answers_like_the_model(trained_mmoe, exported_mmoe, small_data, mode, request):
    if mode == "cpp":
        request.getfixturevalue("cxx")
    sample = _sample(small_data)
    expected = trained_mmoe.predict(sample, verbose=0)
    served = tfmtl.serving.predict_in_fresh_process(exported_mmoe, sample, mode=mode)
    assert sorted(served) == sorted(SIGNATURES)
    assert sorted(served["serving_default"]) == ["click", "conversion"]
    assert list(served["predict_click"]) == ["click"]
    for signature in RAW_SIGNATURES + ["predict_examples"]:
        for task, values in served[signature].items():
            assert values.shape == (64,)
            np.testing.assert_allclose(values, expected[task][:, 0], atol=1e-5, err_msg=f"{signature}/{task}")
    for task in ("click", "conversion"):
        classified = served[f"classify_{task}"]
        assert classified["scores"].shape == (64, 2)
        assert classified["classes"][0].tolist() == [b"0", b"1"]
        np.testing.assert_allclose(classified["scores"][:, 1], expected[task][:, 0], atol=1e-5)
        np.testing.assert_allclose(classified["scores"].sum(axis=1), 1.0, atol=1e-6)


def test_saved_model_cli_lists_signatures_with_feature_and_task_keys(exported_mmoe):
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    shown = subprocess.run(
        [str(cli), "show", "--all", "--dir", str(exported_mmoe)], capture_output=True, text=True, env=env, timeout=300
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    for name in SIGNATURES:
        assert f"signature_def['{name}']" in shown.stdout
    assert "inputs['inputs']" in shown.stdout and "outputs['scores']" in shown.stdout
    for key in ["inputs['user_id']", "inputs['item_price']", "outputs['click']", "outputs['conversion']"]:
        assert key in shown.stdout
    assert "Method name is: tensorflow/serving/predict" in shown.stdout
    assert "DT_INVALID" not in shown.stdout.split("signature_def['predict_click']")[1]


def test_next_export_gets_the_next_version_and_existing_versions_are_refused(trained_mmoe, tmp_path):
    lines = []
    first = tfmtl.serving.export(trained_mmoe, tmp_path, log=lines.append)  # progress, step by step
    assert [line.split("]")[0].strip() for line in lines[:4]] == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert "signatures" in lines[1] and re.fullmatch(r"  exported in [0-9.]+ s", lines[4]), lines
    second = tfmtl.serving.export(trained_mmoe, tmp_path)
    assert (first.name, second.name) == ("1", "2")
    with pytest.raises(FileExistsError, match="version 2 already exists"):
        tfmtl.serving.export(trained_mmoe, tmp_path, version=2)
    assert tfmtl.serving.export(trained_mmoe, tmp_path, version=10).name == "10"
    assert tfmtl.serving.next_version(tmp_path) == 11


def test_a_failed_export_leaves_no_version_and_no_temporary_files(trained_mmoe, tmp_path, monkeypatch):
    def broken_save(module, path, signatures=None):
        os.makedirs(os.path.join(path, "variables"))
        open(os.path.join(path, "saved_model.pb"), "wb").close()
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        tfmtl.serving.export(trained_mmoe, tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name != ".tfmtl-export.lock"] == []


def test_concurrent_exports_get_distinct_versions(trained_mmoe, tmp_path):
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        paths = list(pool.map(lambda _: tfmtl.serving.export(trained_mmoe, tmp_path, examples=False), range(3)))
    assert sorted(p.name for p in paths) == ["1", "2", "3"]


def test_unknown_signature_is_reported(exported_mmoe, small_data):
    with pytest.raises(RuntimeError, match='signature key "predict_ctr" not found'):
        tfmtl.serving.predict_in_fresh_process(exported_mmoe, _sample(small_data), ["predict_ctr"])


def test_state_the_lean_root_misses_falls_back_to_saving_the_whole_model(trained_mmoe, small_data, tmp_path,
                                                                          monkeypatch):
    import importlib

    export_module = importlib.import_module("tfmtl.serving.export")  # the package attribute is the function

    class NoTables(tfmtl.serving.signatures.ModelState):  # forgets the lookup tables: the save must notice
        def __init__(self, model, stored=None):
            super().__init__(model, stored)
            self.resources = []

    monkeypatch.setattr(export_module, "ModelState", NoTables)
    roots, save = [], tf.saved_model.save
    monkeypatch.setattr(tf.saved_model, "save", lambda root, *a, **k: (roots.append(type(root).__name__), save(root, *a, **k)))
    path = tfmtl.serving.export(trained_mmoe, tmp_path, examples=False)
    assert roots == ["NoTables", "ServingModule"]  # the lean save failed, the full one was published
    sample = _sample(small_data)
    served = tfmtl.serving.predict_in_fresh_process(path, sample, ["serving_default"])["serving_default"]
    expected = trained_mmoe.predict(sample, verbose=0)
    for task, values in served.items():
        np.testing.assert_allclose(values, expected[task][:, 0], atol=1e-5)
    # the whole model holds its float32 tables: smaller tables are refused rather than silently dropped
    with pytest.raises(ValueError, match="export it without table_dtype and keep_ids"):
        tfmtl.serving.export(trained_mmoe, tmp_path / "small", examples=False, table_dtype="int8")
    assert not [p for p in (tmp_path / "small").iterdir() if not p.name.startswith(".tfmtl")]
