"""A client for TF Serving (or tfmtl's development server): gRPC and REST."""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Mapping, Sequence

import grpc
import numpy as np

from tfmtl._compat import tf
from tfmtl.serving.errors import ServingError
from tfmtl.serving.examples import to_examples
from tfmtl.serving.protos import GRPC_MESSAGE_LIMITS, check_features, from_tensor, request_tensor, signature_io
from tfmtl.serving.signatures import DEFAULT_SIGNATURE, task_signature_name

_HTTP_TO_GRPC = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND, 503: grpc.StatusCode.UNAVAILABLE}


class Client:
    """Call a served multi-task model with plain feature dicts; get dicts keyed by task.

    The client reads the model's signatures once (GetModelMetadata), checks every
    request's features against the signature (unknown or missing features and
    bad types raise a ``ValueError``/``TypeError`` naming the feature and the
    signature, before anything is sent) and converts values to the signature's
    dtypes (so numpy's float64 and int defaults just work). Failed requests raise
    :class:`ServingError` with the server's status code; ``UNAVAILABLE`` is
    retried ``retries`` times with exponential backoff.

    Args:
      model_name: The model's name on the server.
      grpc_target: ``host:port`` of the gRPC API (TF Serving's default port 8500).
      rest_url: ``http://host:port`` of the REST API (TF Serving's ``--rest_api_port``).
      version: Ask for this version (default: the latest the server has).
      version_label: Or ask for the version behind this label (e.g. ``"stable"``).
      timeout: Seconds per request.
      retries: Extra attempts when the server is unavailable.

    Example:

    >>> import tfmtl
    >>> client = tfmtl.serving.Client("demo", grpc_target="127.0.0.1:8500")  # doctest: +SKIP
    >>> client.predict({"user_id": ["u1"], "item_id": ["i7"], ...})  # doctest: +SKIP
    {'click': array([0.12], dtype=float32), 'conversion': array([0.004], dtype=float32)}
    """

    def __init__(
        self,
        model_name: str,
        *,
        grpc_target: str | None = None,
        rest_url: str | None = None,
        version: int | None = None,
        version_label: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
    ) -> None:
        if not grpc_target and not rest_url:
            raise ValueError("give grpc_target (host:port) and/or rest_url (http://host:port)")
        if version is not None and version_label is not None:
            raise ValueError("give version or version_label, not both")
        self.model_name = model_name
        self.grpc_target, self.rest_url = grpc_target, rest_url.rstrip("/") if rest_url else None
        self.version, self.version_label = version, version_label
        self.timeout, self.retries = timeout, retries
        self._channel = grpc.insecure_channel(grpc_target, options=GRPC_MESSAGE_LIMITS) if grpc_target else None
        self._signatures: dict[str, dict[str, dict[str, tf.DType]]] | None = None

    # -- plumbing --------------------------------------------------------
    def _protocol(self, protocol: str | None) -> str:
        protocol = protocol or ("grpc" if self._channel else "rest")
        if protocol not in ("grpc", "rest"):
            raise ValueError(f"protocol must be 'grpc' or 'rest', got {protocol!r}")
        if (protocol == "grpc" and not self._channel) or (protocol == "rest" and not self.rest_url):
            raise ValueError(f"this client has no {protocol} endpoint")
        return protocol

    def _retry(self, call: Callable[[], Any], what: str) -> Any:
        for attempt in range(self.retries + 1):
            try:
                return call()
            except grpc.RpcError as error:
                code, message = error.code(), error.details()
            except urllib.error.HTTPError as error:
                code = _HTTP_TO_GRPC.get(error.code, grpc.StatusCode.UNKNOWN)
                try:
                    message = json.loads(error.read() or b"{}").get("error", str(error))
                except json.JSONDecodeError:
                    message = str(error)
            except urllib.error.URLError as error:  # connection refused etc.
                code, message = grpc.StatusCode.UNAVAILABLE, str(error.reason)
            except (TimeoutError, ConnectionError, http.client.HTTPException) as error:  # reset, closed, timed out
                code, message = grpc.StatusCode.UNAVAILABLE, f"{type(error).__name__}: {error}"
            if code != grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                raise ServingError(code, f"{what}: {message}")
            time.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")

    def _model_spec(self, signature: str = "") -> Any:
        from tensorflow_serving.apis import model_pb2

        spec = model_pb2.ModelSpec(name=self.model_name, signature_name=signature)
        if self.version is not None:
            spec.version.value = self.version
        elif self.version_label is not None:
            spec.version_label = self.version_label
        return spec

    def _path(self, verb: str = "") -> str:
        path = f"{self.rest_url}/v1/models/{self.model_name}"
        if self.version is not None:
            path += f"/versions/{self.version}"
        elif self.version_label is not None:
            path += f"/labels/{self.version_label}"
        return path + verb

    def _http(self, url: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read())

    def _stub(self) -> Any:
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        return prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    # -- metadata ----------------------------------------------------------
    def signatures(self, *, refresh: bool = False) -> dict[str, dict[str, dict[str, tf.DType]]]:
        """Signature name to ``{"inputs": {key: dtype}, "outputs": {key: dtype}}`` (cached)."""
        if self._signatures is None or refresh:
            from tensorflow_serving.apis import get_model_metadata_pb2

            if self._channel:
                request = get_model_metadata_pb2.GetModelMetadataRequest(
                    model_spec=self._model_spec(), metadata_field=["signature_def"]
                )
                response = self._retry(
                    lambda: self._stub().GetModelMetadata(request, timeout=self.timeout), "GetModelMetadata"
                )
                signature_map = get_model_metadata_pb2.SignatureDefMap()
                response.metadata["signature_def"].Unpack(signature_map)
                defs = dict(signature_map.signature_def)
            else:
                from google.protobuf import json_format

                payload = self._retry(lambda: self._http(self._path("/metadata")), "metadata")
                signature_map = json_format.ParseDict(
                    payload["metadata"]["signature_def"], get_model_metadata_pb2.SignatureDefMap()
                )
                defs = dict(signature_map.signature_def)
            self._signatures = {name: signature_io(d) for name, d in defs.items() if not name.startswith("__")}
        return self._signatures

    def _signature(self, name: str) -> dict[str, dict[str, tf.DType]]:
        signatures = self.signatures()
        if name not in signatures:
            raise ValueError(f"model {self.model_name!r} has no signature {name!r}; it has: {sorted(signatures)}")
        return signatures[name]

    # -- Predict -------------------------------------------------------------
    def predict(
        self,
        features: Mapping[str, Any],
        signature: str = DEFAULT_SIGNATURE,
        *,
        output_filter: Sequence[str] | None = None,
        protocol: str | None = None,
        rest_format: str = "row",
    ) -> dict[str, np.ndarray]:
        """Predict with raw features; returns ``{output key: array}`` (task names for tfmtl exports)."""
        io = self._signature(signature)
        columns = check_features(features, io["inputs"], signature)
        if self._protocol(protocol) == "grpc":
            from tensorflow_serving.apis import predict_pb2

            request = predict_pb2.PredictRequest(model_spec=self._model_spec(signature))
            for key, values in columns.items():
                request.inputs[key].CopyFrom(request_tensor(values))
            request.output_filter.extend(output_filter or [])
            response = self._retry(lambda: self._stub().Predict(request, timeout=self.timeout), signature)
            return {key: from_tensor(proto) for key, proto in response.outputs.items()}
        if output_filter:
            raise ValueError("REST has no output_filter; use a per-task signature (predict_<task>)")
        return self._rest_predict(columns, signature, io["outputs"], rest_format)

    def predict_task(self, task: str, features: Mapping[str, Any], **kwargs: Any) -> np.ndarray:
        """One task's predictions through its own ``predict_<task>`` signature."""
        return self.predict(features, task_signature_name(task), **kwargs)[task]

    def _rest_predict(
        self, columns: dict[str, np.ndarray], signature: str, outputs: dict[str, tf.DType], rest_format: str
    ) -> dict[str, np.ndarray]:
        plain = {key: _json_value(values.tolist()) for key, values in columns.items()}  # keeps each input's shape
        if rest_format == "row":
            rows = len(next(iter(plain.values())))
            body = {"signature_name": signature, "instances": [{k: v[i] for k, v in plain.items()} for i in range(rows)]}
            result = self._retry(lambda: self._http(self._path(":predict"), body), signature)["predictions"]
            if len(outputs) == 1:  # a single output's key is dropped in the response
                result = {next(iter(outputs)): result}
            else:
                result = {key: [row[key] for row in result] for key in outputs}
        elif rest_format == "columnar":
            body = {"signature_name": signature, "inputs": plain}
            result = self._retry(lambda: self._http(self._path(":predict"), body), signature)["outputs"]
            if len(outputs) == 1:
                result = {next(iter(outputs)): result}
        else:
            raise ValueError(f"rest_format must be 'row' or 'columnar', got {rest_format!r}")
        return {key: _from_json(value, outputs[key]) for key, value in result.items()}

    # -- Classify / Regress ----------------------------------------------------
    def _examples(self, features: Mapping[str, Any], signature: str) -> list[Any]:
        # An Example signature's only input is "inputs"; the raw-feature signature says what goes in one.
        raw = self.signatures().get(DEFAULT_SIGNATURE)
        if raw is not None:
            features = check_features(features, raw["inputs"], signature)
        return to_examples(features, raw["inputs"] if raw else None)

    def _examples_request(self, request_cls: Any, signature: str, examples: list[Any]) -> Any:
        from tensorflow_serving.apis import input_pb2

        return request_cls(
            model_spec=self._model_spec(signature),
            input=input_pb2.Input(example_list=input_pb2.ExampleList(examples=examples)),
        )

    def _rest_examples(self, verb: str, signature: str, examples: list[Any]) -> Any:
        body = {"signature_name": signature, "examples": [_example_json(e) for e in examples]}
        return self._retry(lambda: self._http(self._path(verb), body), signature)["result"]

    def classify(self, task: str, features: Mapping[str, Any], *, protocol: str | None = None) -> dict[str, np.ndarray]:
        """Classify via ``classify_<task>``: ``{"classes": [B, k] str, "scores": [B, k] float}``."""
        signature = f"classify_{task}"
        self._signature(signature)
        examples = self._examples(features, signature)
        if self._protocol(protocol) == "grpc":
            from tensorflow_serving.apis import classification_pb2

            request = self._examples_request(classification_pb2.ClassificationRequest, signature, examples)
            response = self._retry(lambda: self._stub().Classify(request, timeout=self.timeout), signature)
            pairs = [[(c.label, c.score) for c in item.classes] for item in response.result.classifications]
        else:
            pairs = self._rest_examples(":classify", signature, examples)
        return {
            "classes": np.array([[label for label, _ in row] for row in pairs]),
            "scores": np.array([[score for _, score in row] for row in pairs], dtype=np.float32),
        }

    def regress(self, task: str, features: Mapping[str, Any], *, protocol: str | None = None) -> np.ndarray:
        """Regress via ``regress_<task>``: a ``[B]`` float array."""
        signature = f"regress_{task}"
        self._signature(signature)
        examples = self._examples(features, signature)
        if self._protocol(protocol) == "grpc":
            from tensorflow_serving.apis import regression_pb2

            request = self._examples_request(regression_pb2.RegressionRequest, signature, examples)
            response = self._retry(lambda: self._stub().Regress(request, timeout=self.timeout), signature)
            values = [item.value for item in response.result.regressions]
        else:
            values = self._rest_examples(":regress", signature, examples)
        return np.asarray(values, dtype=np.float32)

    def status(self) -> dict[int, str]:
        """Version to state (``"AVAILABLE"``) of the model on the server."""
        if self._channel:
            from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

            stub = model_service_pb2_grpc.ModelServiceStub(self._channel)
            request = get_model_status_pb2.GetModelStatusRequest(model_spec=self._model_spec())
            response = self._retry(lambda: stub.GetModelStatus(request, timeout=self.timeout), "GetModelStatus")
            return {
                s.version: get_model_status_pb2.ModelVersionStatus.State.Name(s.state)
                for s in response.model_version_status
            }
        payload = self._retry(lambda: self._http(self._path()), "status")
        return {int(s["version"]): s["state"] for s in payload["model_version_status"]}

    def close(self) -> None:
        if self._channel:
            self._channel.close()


def _json_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    return value.item() if isinstance(value, np.generic) else value


def _from_json(value: Any, dtype: tf.DType) -> np.ndarray:
    if dtype == tf.string:  # bytes, as gRPC gives them; {"b64": ...} for keys ending in _bytes
        def decode(v: Any) -> Any:
            if isinstance(v, list):
                return [decode(x) for x in v]
            return base64.b64decode(v["b64"]) if isinstance(v, dict) else str(v).encode("utf-8")

        decoded = decode(value)
        array = np.empty(np.shape(decoded), dtype=object)
        array[...] = decoded
        return array
    return np.asarray(value, dtype=dtype.as_numpy_dtype)


def _example_json(example: Any) -> dict[str, Any]:
    out = {}
    for key, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values = list(getattr(feature, kind).value)
        if kind == "bytes_list":
            values = [_json_value(v) for v in values]
        elif kind == "float_list":
            values = [float(v) for v in values]
        out[key] = values[0] if len(values) == 1 else values
    return out
