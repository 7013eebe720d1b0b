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


def test_a_predict_larger_than_grpc_default_4_mib_is_answered(served):
    repeats = 6_250  # 100,000 rows
    sample = {name: np.concatenate([values] * repeats) for name, values in served.sample.items()}
    request_bytes = sum(tf.make_tensor_proto(values).ByteSize() for values in sample.values())
    assert request_bytes > 4 * 2**20, request_bytes
    out = served.client(timeout=120).predict(sample)
    for task in ("click", "dwell"):
        np.testing.assert_allclose(out[task], np.concatenate([served.expected[2][task]] * repeats), atol=TOLERANCE)


def test_the_rest_server_queues_many_connections_at_once():
    from tfmtl.serving.online.server import _RestServer

    assert _RestServer.request_queue_size >= 128  # Python's default of 5 reset connections under 64 clients


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
        np.testing.assert_allclose(client.regress("dwell", served.sample, protocol=protocol), latest["dwell"], atol=TOLERANCE)


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
    assert served.client(version_label="stable").status() == {1: "AVAILABLE", 2: "AVAILABLE"}  # labels ignored
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
    ({"output_filter": ["click", "click"]}, grpc.StatusCode.INVALID_ARGUMENT, "duplicate output tensor alias: click"),
    ({"name": ""}, grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified"),
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


@pytest.mark.parametrize("api, signature, message", [
    ("Classify", "predict_click", "Expected one input Tensor"),
    ("Classify", "classify_ctr", "No signature was found with the name: classify_ctr"),
    ("Regress", "classify_click", "No regression outputs found"),
    ("Regress", "regress_rating", "No signature was found with the name: regress_rating"),
])
def test_classify_and_regress_refuse_the_wrong_signature(served, api, signature, message):
    from tensorflow_serving.apis import classification_pb2, prediction_service_pb2_grpc, regression_pb2

    request = (classification_pb2.ClassificationRequest if api == "Classify" else regression_pb2.RegressionRequest)()
    request.model_spec.name, request.model_spec.signature_name = "mtl", signature
    request.input.example_list.examples.extend(tfmtl.serving.examples.to_examples({"user_age": [1.0]}))
    with grpc.insecure_channel(served.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            getattr(prediction_service_pb2_grpc.PredictionServiceStub(channel), api)(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.details()


def _row(served, index=0):
    return {k: (v[index].item() if hasattr(v[index], "item") else v[index]) for k, v in served.sample.items()}


def _post(served, path, body):
    request = urllib.request.Request(f"{served.rest_url}{path}", data=json.dumps(body).encode())
    try:
        return 200, json.loads(urllib.request.urlopen(request, timeout=30).read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize("path, body, code, message", [
    ("/v1/models/nope:predict", {"instances": [{}]}, 404, "Servable not found"),
    ("/v1/models/mtl:explain", {"instances": [{}]}, 400, "Malformed request"),
    ("/v1/models/mtl/labels/beta:predict", {"instances": [{}]}, 400, "Unrecognized servable version label: beta"),
    ("/v1/models/mtl:predict", {"signature_name": "predict_ctr", "instances": [{}]}, 400, "predict_ctr"),
    ("/v1/models/mtl:predict", {"instances": [{}], "inputs": {}}, 400, "exactly one of 'instances'"),
    ("/v1/models/mtl:predict", {"signature_name": 7, "instances": [{}]}, 400, "signature_name"),
    ("/v1/models/mtl:predict", "ROW:hour=1.5", 400, "is not of expected type: int64"),
    ("/v1/models/mtl:predict", "ROW:user_id=3", 400, "is not of expected type: string"),
    ("/v1/models/mtl:predict", "ROW:extra=1", 400, "unknown: ['extra']"),
    ("/v1/models/mtl:classify", {"signature_name": "classify_click", "examples": [{"hour": [1, 2.5]}]}, 400, "mixed"),
])
def test_bad_rest_requests(served, path, body, code, message):
    if isinstance(body, str):  # a valid row with one field changed
        key, value = body[4:].split("=")
        row = _row(served)
        row[key] = json.loads(value)
        body = {"instances": [row]}
    got_code, answer = _post(served, path, body)
    assert got_code == code, answer
    assert message in answer["error"]


def _raw_http(served, method, path, body=b"", headers=None):
    import http.client

    host, port = served.rest_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        headers = headers or {}
        connection.request(method, path, body=body, headers=headers, encode_chunked="Transfer-Encoding" in headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_rest_client_errors_are_4xx_never_500(served):
    row = _row(served)
    too_large = json.dumps({"instances": [{**row, "hour": 2**70}]}).encode()  # out of int64's range
    deep = b"[" * 100_000 + b"]" * 100_000
    for body in (too_large, b'{"instances": ' + deep + b"}", deep):
        code, answer = _raw_http(served, "POST", "/v1/models/mtl:predict", body)
        assert code == 400, (code, answer[:300])
    code, answer = _raw_http(served, "PUT", "/v1/models/mtl:predict", json.dumps({"instances": [row]}).encode())
    assert code == 400 and b"Malformed request" in answer
    assert _raw_http(served, "OPTIONS", "/v1/models/mtl")[0] == 400
    assert _raw_http(served, "HEAD", "/v1/models/mtl") == (400, b"")  # headers only
    assert _raw_http(served, "GET", "/v2/models/mtl")[0] == 404  # outside /v1/: no handler
    code, answer = _raw_http(served, "GET", "/V1/MODELS/mtl")  # routes match case-insensitively
    assert code == 200 and b"AVAILABLE" in answer


def test_a_chunked_rest_body_is_read(served):
    body = json.dumps({"signature_name": "predict_click", "instances": [_row(served, 0), _row(served, 1)]}).encode()
    chunks = iter([body[:17], body[17:60], body[60:]])
    code, answer = _raw_http(served, "POST", "/v1/models/mtl:predict", chunks, {"Transfer-Encoding": "chunked"})
    assert code == 200, answer
    np.testing.assert_allclose(np.ravel(json.loads(answer)["predictions"]), served.expected[2]["click"][:2],
                               atol=TOLERANCE)


def test_the_rest_server_sets_tcp_nodelay():
    from tfmtl.serving.online.server import _rest_server

    # Without TCP_NODELAY a keep-alive connection's answers waited ~44 ms on a delayed ACK (Nagle).
    server = _rest_server(None, "127.0.0.1", 0)
    try:
        assert server.RequestHandlerClass.disable_nagle_algorithm is True
    finally:
        server.server_close()


def test_rest_formats_b64_and_ignored_columnar_keys(served):
    row = _row(served)
    row["user_id"] = {"b64": __import__("base64").b64encode(row["user_id"].encode()).decode()}
    code, answer = _post(served, "/v1/models/mtl:predict", {"signature_name": "predict_click", "instances": [row]})
    assert code == 200 and abs(answer["predictions"][0] - float(served.expected[2]["click"][0])) < TOLERANCE
    columns = {k: [v] for k, v in _row(served).items()}
    code, answer = _post(served, "/v1/models/mtl:predict",
                         {"signature_name": "predict_click", "inputs": {**columns, "not_an_input": [1]}})
    assert code == 200 and isinstance(answer["outputs"], list)  # one output: bare value, extra key ignored
    code, answer = _post(served, "/v1/models/mtl:predict", {"inputs": columns})
    assert sorted(answer["outputs"]) == ["click", "dwell"]
    code, answer = _post(served, "/v1/models/mtl:predict", {"instances": [_row(served)]})
    assert sorted(answer["predictions"][0]) == ["click", "dwell"]


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


def test_client_retries_unavailable_only(served, monkeypatch):
    sleeps = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    client = tfmtl.serving.Client("mtl", grpc_target="127.0.0.1:1", retries=2, timeout=2)
    with pytest.raises(tfmtl.serving.ServingError) as caught:
        client.status()
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE and sleeps == [0.1, 0.2]
    sleeps.clear()
    for protocol in ("grpc", "rest"):
        client = served.client(version=9)
        with pytest.raises(tfmtl.serving.ServingError) as caught:
            client.signatures() if protocol == "grpc" else served.client(grpc_target=None, version=9).signatures()
        assert caught.value.code == grpc.StatusCode.NOT_FOUND and sleeps == []  # not retried


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
