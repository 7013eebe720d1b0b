"""TF Serving's REST API (``/v1/models/...``) on top of the request handlers.

Follows ``g3doc/api_rest.md`` and ``util/json_tensor.cc``: row (``instances``)
and columnar (``inputs``) requests, a single-output signature's response
dropping the output key, ``{"b64": ...}`` for binary strings, numbers cast to
the signature's dtypes, and Classify/Regress from JSON examples.
"""

from __future__ import annotations

import base64
import json
import re
from http import HTTPStatus
from typing import Any

import grpc
import numpy as np

from tfmtl._compat import tf
from tfmtl.serving.protos import from_tensor, request_tensor
from tfmtl.serving.errors import ServingError
from tfmtl.serving import session
from tfmtl.serving.online import repository as handlers
from tfmtl.serving.online.repository import ModelRepository
from tfmtl.serving.session import Servable

ROUTE = re.compile(  # matched case-insensitively, as model_servers/http_rest_api_handler.cc does
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?$",
    re.IGNORECASE,
)
#: Paths the REST handler takes; others get a bare 404 from the HTTP layer, as TF Serving's dispatcher does.
API_PREFIX = re.compile(r"^/v1/", re.IGNORECASE)
HTTP_CODES = {  # model_servers/http_rest_api_util.cc
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.FAILED_PRECONDITION: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.OUT_OF_RANGE: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.TOO_MANY_REQUESTS,
    grpc.StatusCode.DEADLINE_EXCEEDED: HTTPStatus.GATEWAY_TIMEOUT,
    grpc.StatusCode.UNIMPLEMENTED: HTTPStatus.NOT_IMPLEMENTED,
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
}


def _bad(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _decode_strings(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) != {"b64"}:
            raise _bad(f"JSON object {value} is not a {{\"b64\": ...}} string")
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode_strings(v) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    return value


def _check_leaves(value: Any, dtype: tf.DType, key: str) -> None:
    # util/json_tensor.cc: int64 inputs take JSON integers only, floats take numbers,
    # strings take strings or {"b64": ...}; booleans are no number.
    if isinstance(value, list):
        for item in value:
            _check_leaves(item, dtype, key)
        return
    if dtype == tf.string:
        ok = isinstance(value, str) or (isinstance(value, dict) and set(value) == {"b64"})
    elif dtype == tf.bool:
        ok = isinstance(value, bool)
    elif dtype.is_integer:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        raise _bad(f"Failed to process input {key!r}: JSON value {value!r} is not of expected type: {dtype.name}")


def _to_array(value: Any, dtype: tf.DType, key: str) -> np.ndarray:
    _check_leaves(value, dtype, key)
    try:
        if dtype == tf.string:
            return np.asarray(_decode_strings(value), dtype=object)
        return np.asarray(value, dtype=dtype.as_numpy_dtype)
    except (TypeError, ValueError, OverflowError) as error:  # e.g. 2**70 for an int64 input
        raise _bad(f"Failed to process input {key!r} as {dtype.name}: {error}") from None


def _jsonable(value: Any, key: str) -> Any:
    if isinstance(value, np.ndarray):
        return [_jsonable(v, key) for v in value] if value.ndim else _jsonable(value.item(), key)
    if isinstance(value, bytes):
        if key.endswith("_bytes"):
            return {"b64": base64.b64encode(value).decode("ascii")}
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _model_spec(match: re.Match, body: dict | None = None) -> Any:
    from tensorflow_serving.apis import model_pb2

    signature_name = (body or {}).get("signature_name", "")
    if not isinstance(signature_name, str):
        raise _bad(f"'signature_name' must be a string, got {signature_name!r}")
    spec = model_pb2.ModelSpec(name=match["name"], signature_name=signature_name)
    if match["version"]:
        spec.version.value = int(match["version"])
    elif match["label"]:
        spec.version_label = match["label"]
    return spec


def predict(repository: ModelRepository, match: re.Match, body: dict) -> dict:
    spec = _model_spec(match, body)
    with repository.lease(spec) as servable:  # one version for the signature lookup and the run
        return _predict_on(servable, spec, body)


def _predict_on(servable: Servable, spec: Any, body: dict) -> dict:
    from tensorflow_serving.apis import predict_pb2

    signature = servable.signature(spec.signature_name)
    inputs = {key: tf.dtypes.as_dtype(info.dtype) for key, info in signature.inputs.items()}
    if ("instances" in body) == ("inputs" in body):
        raise _bad("JSON body must have exactly one of 'instances' (row format) or 'inputs' (columnar format)")
    row_format = "instances" in body
    data = body["instances"] if row_format else body["inputs"]
    if row_format:
        if not isinstance(data, list) or not data:
            raise _bad("'instances' must be a non-empty list")
        if all(isinstance(row, dict) and set(row) != {"b64"} for row in data):
            for index, row in enumerate(data):
                extra = sorted(set(row) - set(inputs))
                missing = sorted(set(inputs) - set(row))
                if extra or missing:
                    raise _bad(
                        f"Failed to process element: {index} of 'instances' list. Its keys must be the signature's "
                        f"inputs {sorted(inputs)}" + (f"; unknown: {extra}" if extra else "")
                        + (f"; missing: {missing}" if missing else "")
                    )
            columns = {key: [row[key] for row in data] for key in inputs}
        elif len(inputs) == 1:
            columns = {next(iter(inputs)): data}
        else:
            raise _bad(f"instances must be objects keyed by the signature's inputs {sorted(inputs)}")
    elif isinstance(data, dict) and set(data) != {"b64"} and (len(inputs) != 1 or set(data) & set(inputs)):
        columns = {key: data[key] for key in inputs if key in data}  # other keys are ignored, as TF Serving does
    elif len(inputs) == 1:
        columns = {next(iter(inputs)): data}
    else:
        raise _bad(f"'inputs' must be an object keyed by the signature's inputs {sorted(inputs)}")
    request = predict_pb2.PredictRequest(model_spec=spec)
    for key, value in columns.items():
        request.inputs[key].CopyFrom(request_tensor(_to_array(value, inputs[key], key)))
    response = session.predict(servable, request)
    outputs = {key: from_tensor(proto) for key, proto in response.outputs.items()}
    if not row_format:
        if len(outputs) == 1:
            (key, value), = outputs.items()
            return {"outputs": _jsonable(value, key)}
        return {"outputs": {key: _jsonable(value, key) for key, value in outputs.items()}}
    sizes = {key: (value.shape[0] if value.ndim else None) for key, value in outputs.items()}
    if None in sizes.values():
        raise _bad(f"Tensor name: {next(k for k, v in sizes.items() if v is None)} has no shape information")
    if len(set(sizes.values())) > 1:
        raise _bad(f"Output tensors have inconsistent batch size: {sizes}")
    if len(outputs) == 1:
        (key, value), = outputs.items()
        return {"predictions": _jsonable(value, key)}
    rows = next(iter(sizes.values()))
    return {"predictions": [{key: _jsonable(value[i], key) for key, value in outputs.items()} for i in range(rows)]}


def _example(features: Any) -> Any:
    if not isinstance(features, dict):
        raise _bad(f"an example must be a JSON object of features, got {features!r}")
    example = tf.train.Example()
    for key, value in features.items():
        values = value if isinstance(value, list) else [value]
        feature = example.features.feature[key]
        if all(isinstance(v, int) for v in values):  # JSON integers and booleans: int64_list
            feature.int64_list.value.extend(int(v) for v in values)
        elif all(isinstance(v, float) for v in values):
            feature.float_list.value.extend(values)
        elif all(isinstance(v, str) or (isinstance(v, dict) and set(v) == {"b64"}) for v in values):
            feature.bytes_list.value.extend(_decode_strings(v) for v in values)
        else:
            raise _bad(f"feature {key!r}: values of mixed or unsupported JSON types {values!r}")
    return example


def _examples_request(cls: Any, match: re.Match, body: dict) -> Any:
    from tensorflow_serving.apis import input_pb2

    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
        raise _bad("'examples' must be a non-empty list of objects")
    request = cls(model_spec=_model_spec(match, body))
    parsed = [_example(example) for example in examples]
    if "context" in body:
        request.input.example_list_with_context.context.CopyFrom(_example(body["context"]))
        request.input.example_list_with_context.examples.extend(parsed)
    else:
        request.input.CopyFrom(input_pb2.Input(example_list=input_pb2.ExampleList(examples=parsed)))
    return request


def classify(repository: ModelRepository, match: re.Match, body: dict) -> dict:
    from tensorflow_serving.apis import classification_pb2

    response = handlers.classify(repository, _examples_request(classification_pb2.ClassificationRequest, match, body))
    return {
        "result": [[[c.label, c.score] for c in item.classes] for item in response.result.classifications]
    }


def regress(repository: ModelRepository, match: re.Match, body: dict) -> dict:
    from tensorflow_serving.apis import regression_pb2

    response = handlers.regress(repository, _examples_request(regression_pb2.RegressionRequest, match, body))
    return {"result": [item.value for item in response.result.regressions]}


def status(repository: ModelRepository, match: re.Match) -> dict:
    from tensorflow_serving.apis import get_model_status_pb2

    response = handlers.model_status(
        repository, get_model_status_pb2.GetModelStatusRequest(model_spec=_model_spec(match))
    )
    return {
        "model_version_status": [
            {"version": str(s.version), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            for s in response.model_version_status
        ]
    }


def metadata(repository: ModelRepository, match: re.Match) -> dict:
    from google.protobuf import json_format
    from tensorflow_serving.apis import get_model_metadata_pb2

    response = handlers.model_metadata(
        repository,
        get_model_metadata_pb2.GetModelMetadataRequest(model_spec=_model_spec(match), metadata_field=["signature_def"]),
    )
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    return {
        "model_spec": {"name": response.model_spec.name, "signature_name": "", "version": str(response.model_spec.version.value)},
        "metadata": {"signature_def": json_format.MessageToDict(signature_map, preserving_proto_field_name=True)},
    }


def handle(repository: ModelRepository, method: str, path: str, body: bytes) -> tuple[int, dict | None]:
    """Answer one REST request: (HTTP status, JSON object, or None for no body)."""
    path = path.split("?", 1)[0]
    if not API_PREFIX.match(path):
        return HTTPStatus.NOT_FOUND, None
    match = ROUTE.match(path)
    try:
        if match is None:
            raise _bad(f"Malformed request: {method} {path}")
        verb = (match["verb"] or "").lower()
        if method == "GET" and not verb:
            return HTTPStatus.OK, metadata(repository, match) if match["metadata"] else status(repository, match)
        if method != "POST" or verb not in ("predict", "classify", "regress"):
            raise _bad(f"Malformed request: {method} {path}")
        try:
            parsed = json.loads(body or b"{}")
        except json.JSONDecodeError as error:
            raise _bad(f"JSON Parse error: {error}") from None
        except RecursionError:
            raise _bad("JSON Parse error: the document is nested too deeply") from None
        if not isinstance(parsed, dict):
            raise _bad("JSON body must be an object")
        handler = {"predict": predict, "classify": classify, "regress": regress}[verb]
        return HTTPStatus.OK, handler(repository, match, parsed)
    except ServingError as error:
        return HTTP_CODES.get(error.code, HTTPStatus.INTERNAL_SERVER_ERROR), {"error": error.message}
    except (TypeError, ValueError, KeyError, OverflowError) as error:  # malformed content past the checks
        return HTTPStatus.BAD_REQUEST, {"error": f"{type(error).__name__}: {error}"}
    except RecursionError:  # a document that parses but is too deep to walk
        return HTTPStatus.BAD_REQUEST, {"error": "JSON Parse error: the document is nested too deeply"}
    except Exception as error:  # noqa: BLE001  (answer, never drop the connection)
        return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(error).__name__}: {error}"}
