"""The C++ runtime check: exports answered by TensorFlow's C SavedModel loader and Session."""

import numpy as np
import pytest

import tfmtl


def test_every_signature_kind_answers_like_the_model_in_cpp(two_versions, cxx):
    base, _, expected, sample = two_versions
    served, latencies = tfmtl.serving.cpp.run(base / "2", sample, repeat=3)
    assert sorted(served) == [
        "classify_click", "predict_click", "predict_dwell", "predict_examples", "regress_dwell", "serving_default"
    ]
    for signature in ("serving_default", "predict_examples"):
        assert sorted(served[signature]) == ["click", "dwell"]
        for task, values in served[signature].items():
            np.testing.assert_allclose(values, expected[2][task], rtol=1e-5, atol=1e-5, err_msg=f"{signature}/{task}")
    np.testing.assert_allclose(served["predict_click"]["click"], expected[2]["click"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(served["predict_dwell"]["dwell"], expected[2]["dwell"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(served["regress_dwell"]["outputs"], expected[2]["dwell"], rtol=1e-5, atol=1e-5)
    classified = served["classify_click"]
    assert classified["classes"].tolist() == [[b"0", b"1"]] * len(sample["user_id"])
    np.testing.assert_allclose(classified["scores"][:, 1], expected[2]["click"], rtol=1e-5, atol=1e-5)
    assert sorted(latencies) == sorted(served)
    assert all(len(times) == 3 and (times > 0).all() for times in latencies.values())


def test_build_uses_tensorflows_own_flags_and_libraries():
    import tensorflow as tf

    command = tfmtl.serving.cpp.build_command("out") if tfmtl.serving.cpp.compiler() else None
    if command is None:
        with pytest.raises(RuntimeError, match="no C\\+\\+ compiler"):
            tfmtl.serving.cpp.build_command("out")
        return
    for flag in tf.sysconfig.get_compile_flags() + tf.sysconfig.get_link_flags():
        assert flag in command
    assert "-l:libtensorflow_cc.so.2" in command
    assert not any("protobuf" in part for part in command)


def test_unknown_signature_and_missing_input_are_named(exported_mmoe, small_data, cxx):
    sample = small_data.take(slice(0, 4)).features
    with pytest.raises(ValueError, match='signature key "predict_ctr" not found'):
        tfmtl.serving.cpp.run(exported_mmoe, sample, ["predict_ctr"])
    del sample["user_id"]
    with pytest.raises(ValueError, match=r"signature 'predict_click': missing inputs \['user_id'\]"):
        tfmtl.serving.cpp.run(exported_mmoe, sample, ["predict_click"])


def test_feature_columns_that_would_change_value_are_refused_naming_the_feature():
    from tfmtl._compat import tf
    from tfmtl.serving.protos import to_numpy

    with pytest.raises(ValueError, match=r"feature 'hour' of signature 'predict_click': values out of int32's range"):
        to_numpy(np.array([2**40]), tf.int32, feature="hour", signature="predict_click")
    with pytest.raises(TypeError, match=r"feature 'flag' expects booleans, got int64"):
        to_numpy(np.array([2, 0]), tf.bool, feature="flag")
    assert to_numpy([], tf.string, feature="user_id").dtype == object  # an empty column keeps the input's type
    assert to_numpy(np.array([3.0]), tf.int64, feature="hour").tolist() == [3]
