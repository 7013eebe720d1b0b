"""The export served over TF Serving's own protocol: gRPC (tensorflow-serving-api stubs) and REST."""

from __future__ import annotations

import concurrent.futures
import json
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest

import tfmtl
from tfmtl._compat import tf

TOLERANCE = 1e-5


def test_every_raw_signature_over_grpc_matches_the_model(served):
    client = served.client()
    latest = served.expected[2]
    out = client.predict(served.sample)
    assert sorted(out) == ["click", "dwell"]
    for task in ("click", "dwell"):
        np.testing.assert_allclose(out[task], latest[task], atol=TOLERANCE)
        np.testing.assert_allclose(client.predict_task(task, served.sample), latest[task], atol=TOLERANCE)
    only = client.predict(served.sample, output_filter=["dwell"])
    assert list(only) == ["dwell"]


def test_tf_example_signatures_match_predict(served):
    client = served.client()
    latest = served.expected[2]
    examples = tfmtl.serving.examples.to_examples(served.sample, {k: v for k, v in client.signatures()["serving_default"]["inputs"].items()})
    serialized = np.array([e.SerializeToString() for e in examples], dtype=object)
    via_examples = client.predict({"inputs": serialized}, "predict_examples")
    for task in ("click", "dwell"):
        np.testing.assert_allclose(via_examples[task], latest[task], atol=TOLERANCE)
    for protocol in ("grpc", "rest"):
        classified = client.classify("click", served.sample, protocol=protocol)
        assert classified["classes"][0].tolist() == ["0", "1"]
        np.testing.assert_allclose(classified["scores"][:, 1], latest["click"], atol=TOLERANCE)
        np.testing.assert_allclose(client.regress("dwell", served.sample, protocol=protocol), latest["dwell"], atol=1e-4)


@pytest.mark.parametrize("rest_format", ["row", "columnar"])
def test_rest_row_and_columnar_formats(served, rest_format):
    client = served.client()
    latest = served.expected[2]
    both = client.predict(served.sample, protocol="rest", rest_format=rest_format)
    one = client.predict(served.sample, "predict_click", protocol="rest", rest_format=rest_format)
    for task in ("click", "dwell"):
        np.testing.assert_allclose(both[task], latest[task], atol=TOLERANCE)
    np.testing.assert_allclose(one["click"], latest["click"], atol=TOLERANCE)


def test_rest_single_output_response_drops_the_key(served):
    row = {k: (v[0].item() if hasattr(v[0], "item") else v[0]) for k, v in served.sample.items()}
    body = json.dumps({"signature_name": "predict_click", "instances": [row]}).encode()
    request = urllib.request.Request(f"{served.rest_url}/v1/models/mtl:predict", data=body)
    answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
    assert isinstance(answer["predictions"][0], float)  # [0.43], not [{"click": 0.43}]


def test_versions_and_labels(served):
    assert served.client().status() == {1: "AVAILABLE", 2: "AVAILABLE"}
    for kwargs, version in [({"version": 1}, 1), ({"version_label": "stable"}, 1), ({"version_label": "canary"}, 2)]:
        for protocol in ("grpc", "rest"):
            got = served.client(**kwargs).predict(served.sample, protocol=protocol)["click"]
            np.testing.assert_allclose(got, served.expected[version]["click"], atol=TOLERANCE)
    assert not np.allclose(served.expected[1]["click"], served.expected[2]["click"])


def test_metadata_lists_every_signature(served):
    signatures = served.client().signatures()
    assert sorted(signatures) == [
        "classify_click", "predict_click", "predict_dwell", "predict_examples", "regress_dwell", "serving_default"
    ]
    assert signatures["serving_default"]["inputs"]["hour"] == tf.int64
    assert signatures["regress_dwell"]["outputs"] == {"outputs": tf.float32}
    assert served.client(rest_url=None).signatures() == served.client(grpc_target=None).signatures()


def _raw_predict(served, inputs, signature="serving_default", name="mtl", version=None, label=None, output_filter=()):
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    request.output_filter.extend(output_filter)
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    with grpc.insecure_channel(served.grpc_target) as channel:
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)


def _typed(sample):
    schema = tfmtl.data.synthetic_schema()
    return {
        name: (np.asarray(values).astype(str).astype(object) if schema[name].dtype == tf.string
               else np.asarray(values, dtype=schema[name].dtype.as_numpy_dtype))
        for name, values in sample.items()
    }


def test_responses_use_typed_fields_and_echo_the_model_spec(served):
    response = _raw_predict(served, _typed(served.sample), "predict_click", version=1)
    assert response.model_spec.version.value == 1 and response.model_spec.signature_name == "predict_click"
    assert len(response.outputs["click"].float_val) == 16  # AsProtoField, not tensor_content
    np.testing.assert_allclose(response.outputs["click"].float_val, served.expected[1]["click"], atol=TOLERANCE)


@pytest.mark.parametrize("change, code, message", [
    ({"name": "nope"}, grpc.StatusCode.NOT_FOUND, "Servable not found"),
    ({"version": 7}, grpc.StatusCode.NOT_FOUND, "Servable not found"),
    ({"label": "beta"}, grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: beta"),
    ({"signature": "predict_ctr"}, grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "predict_ctr" not found'),
    ({"drop": "hour"}, grpc.StatusCode.INVALID_ARGUMENT, r"Missing but required: \{hour\}"),
    ({"float64": "item_price"}, grpc.StatusCode.INVALID_ARGUMENT, "to be float but double is provided"),
    ({"output_filter": ["ctr"]}, grpc.StatusCode.INVALID_ARGUMENT, "output tensor alias not found in signature: ctr"),
    ({"nan": "user_age"}, grpc.StatusCode.INVALID_ARGUMENT, "numeric feature 'user_age' contains NaN or Inf"),
])
def test_bad_grpc_requests_get_tf_serving_status_codes(served, change, code, message):
    inputs = _typed(served.sample)
    if "drop" in change:
        inputs.pop(change["drop"])
    if "float64" in change:
        inputs[change["float64"]] = inputs[change["float64"]].astype(np.float64)
    if "nan" in change:
        inputs[change["nan"]] = inputs[change["nan"]].copy()
        inputs[change["nan"]][3] = np.nan
    kwargs = {k: change[k] for k in ("name", "version", "label", "signature", "output_filter") if k in change}
    with pytest.raises(grpc.RpcError) as caught:
        _raw_predict(served, inputs, **kwargs)
    assert caught.value.code() == code
    assert __import__("re").search(message, caught.value.details()), caught.value.details()


def test_classify_on_a_predict_signature_is_refused(served):
    from tensorflow_serving.apis import classification_pb2, prediction_service_pb2_grpc

    request = classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = "mtl", "predict_click"
    request.input.example_list.examples.extend(tfmtl.serving.examples.to_examples({"user_age": [1.0]}))
    with grpc.insecure_channel(served.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Classify(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_bad_rest_requests(served):
    def post(path, body):
        request = urllib.request.Request(f"{served.rest_url}{path}", data=json.dumps(body).encode())
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        return caught.value.code, json.loads(caught.value.read())["error"]

    assert post("/v1/models/nope:predict", {"instances": [{}]})[0] == 404
    code, error = post("/v1/models/mtl:predict", {"signature_name": "predict_ctr", "instances": [{}]})
    assert code in (400, 404) and "predict_ctr" in error


def test_client_names_the_feature_and_signature_before_sending(served):
    client = served.client()
    with pytest.raises(ValueError, match=r"signature 'predict_click' takes inputs .*unknown: \['colour'\]"):
        client.predict({**served.sample, "colour": ["red"] * 16}, "predict_click")
    with pytest.raises(ValueError, match=r"missing: \['hour'\]"):
        client.predict({k: v for k, v in served.sample.items() if k != "hour"})
    with pytest.raises(TypeError, match="feature 'item_price' of signature 'serving_default' expects float32"):
        client.predict({**served.sample, "item_price": np.array(["cheap"] * 16)})
    with pytest.raises(ValueError, match="has no signature 'predict_ctr'"):
        client.predict(served.sample, "predict_ctr")


def test_client_retries_unavailable_then_raises():
    client = tfmtl.serving.Client("mtl", grpc_target="127.0.0.1:1", retries=2, timeout=2)
    started = time.perf_counter()
    with pytest.raises(tfmtl.serving.ServingError) as caught:
        client.status()
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert time.perf_counter() - started >= 0.3  # 0.1 + 0.2 s of backoff before giving up


def test_bounded_load_8_threads_x_250_requests(served, capsys):
    client = served.client()
    rows = {k: v[:4] for k, v in served.sample.items()}
    expected = served.expected[2]["click"][:4]
    client.predict(rows)  # metadata cached before timing

    def one(_):
        started = time.perf_counter()
        got = client.predict(rows, "predict_click")["click"]
        return time.perf_counter() - started, bool(np.allclose(got, expected, atol=TOLERANCE))

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(2000)))
    wall = time.perf_counter() - started
    latencies = np.array([r[0] for r in results]) * 1000
    assert all(ok for _, ok in results)
    with capsys.disabled():
        print(f"\n[load] 8 threads x 250 gRPC Predict (batch 4): {len(results) / wall:,.0f} req/s, "
              f"p50 {np.percentile(latencies, 50):.2f} ms, p99 {np.percentile(latencies, 99):.2f} ms")
