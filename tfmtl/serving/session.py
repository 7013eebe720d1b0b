"""One SavedModel version loaded as TF Serving loads it, answering requests as TF Serving does.

The version is loaded into its own TF1 Session (``loader.load`` with the ``serve`` tag, which
runs ``__saved_model_init_op`` to fill lookup tables) and requests run ``Session.run`` on the
SignatureDef tensor names, as ``tensorflow_model_server`` does. Error codes and messages copy
the server's (``servables/tensorflow/predict_util.cc``, ``classifier.cc``, ``regressor.cc``).
:func:`tfmtl.serving.export` uses it to replay a version's warmup before publishing it; the
development server serves its versions through it.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping

import grpc
import numpy as np

from tfmtl._compat import tf
from tfmtl.serving.errors import ServingError
from tfmtl.serving.protos import from_tensor, response_tensor
from tfmtl.serving.signatures import DEFAULT_SIGNATURE
from tfmtl.serving.warmup import MAX_RECORDS, WARMUP_PATH

_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _cc_type_name(enum_value: int) -> str:
    # TensorFlow C++'s DataTypeString: "float" and "double" where Python says float32/float64.
    name = tf.dtypes.as_dtype(enum_value).name
    return {"float32": "float", "float64": "double", "float16": "half"}.get(name, name)


def _set_repr(names: Any) -> str:
    return "{" + ", ".join(sorted(names)) + "}"


class Servable:
    """One loaded version of a model."""

    def __init__(self, name: str, version: int, path: str | os.PathLike) -> None:
        self.name, self.version, self.path = name, version, str(path)
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        logger = tf.get_logger()
        level = logger.level
        logger.setLevel("ERROR")  # the TF1 loader is deprecated in Python, but it is the server's path
        try:
            with self.graph.as_default():
                meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], self.path)
        finally:
            logger.setLevel(level)
        self.signature_defs = dict(meta_graph.signature_def)

    def signature(self, name: str) -> Any:
        name = name or DEFAULT_SIGNATURE
        if name not in self.signature_defs or name.startswith("__"):
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{name}" not found.')
        return self.signature_defs[name]

    def run(self, signature: Any, feeds: Mapping[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        feed_dict = {signature.inputs[key].name: value for key, value in feeds.items()}
        fetches = [signature.outputs[key].name for key in outputs]
        try:
            values = self.session.run(fetches, feed_dict=feed_dict)
        except tf.errors.OpError as error:  # TF status codes are gRPC's numbers
            raise ServingError(_GRPC_CODES.get(error.error_code, grpc.StatusCode.INTERNAL), error.message) from None
        return dict(zip(outputs, values))

    def close(self) -> None:
        self.session.close()



# -- request handlers (protos in, protos out) ------------------------------
def _echo_spec(target: Any, servable: Servable, signature_name: str) -> None:
    target.name = servable.name
    target.version.value = servable.version
    target.signature_name = signature_name


def predict(servable: Servable, request: Any) -> Any:
    """Answer a PredictRequest as TF Serving does, on this version."""
    from tensorflow_serving.apis import predict_pb2

    name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    signature = servable.signature(name)
    sent, expected = set(request.inputs), set(signature.inputs)
    if sent != expected:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"input size does not match signature: {len(sent)}!={len(expected)} len({_set_repr(sent)}) != "
            f"len({_set_repr(expected)}). Sent extra: {_set_repr(sent - expected)}. "
            f"Missing but required: {_set_repr(expected - sent)}.",
        )
    feeds = {}
    for index, key in enumerate(sorted(sent)):
        proto, info = request.inputs[key], signature.inputs[key]
        if proto.dtype != info.dtype:
            want, got = _cc_type_name(info.dtype), _cc_type_name(proto.dtype)
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Expects arg[{index}] to be {want} but {got} is provided"
            )
        feeds[key] = from_tensor(proto)
    outputs = list(request.output_filter) or sorted(signature.outputs)
    for index, alias in enumerate(outputs):
        if alias not in signature.outputs:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                f"{_set_repr(signature.outputs)}.",
            )
        if alias in outputs[:index]:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"duplicate output tensor alias: {alias}")
    values = servable.run(signature, feeds, outputs)
    response = predict_pb2.PredictResponse()
    _echo_spec(response.model_spec, servable, name)
    for key, value in values.items():
        response.outputs[key].CopyFrom(response_tensor(value))
    return response


def input_examples(model_input: Any) -> list[Any]:
    """Examples of a Classify/Regress ``Input``, with ``context`` merged into each."""
    which = model_input.WhichOneof("kind")
    if which == "example_list":
        examples = list(model_input.example_list.examples)
    elif which == "example_list_with_context":
        context = model_input.example_list_with_context.context
        examples = []
        for example in model_input.example_list_with_context.examples:
            merged = type(example)()
            merged.CopyFrom(context)
            merged.MergeFrom(example)
            examples.append(merged)
    else:
        examples = []
    if not examples:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Input is empty.")
    return examples


def _run_on_examples(servable: Servable, request: Any, wanted: set[str], api: str) -> tuple[str, dict]:
    name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    if name not in servable.signature_defs or name.startswith("__"):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"No signature was found with the name: {name}")
    signature = servable.signature_defs[name]
    if len(signature.inputs) != 1:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Expected one input Tensor.")
    (key, info), = signature.inputs.items()
    if key != "inputs" or info.dtype != tf.string.as_datatype_enum:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"No {api} inputs found in SignatureDef: {name}")
    if api == "classification":
        if not 1 <= len(signature.outputs) <= 2:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Expected one or two output Tensors, found {len(signature.outputs)}"
            )
        outputs = sorted(set(signature.outputs) & wanted)
        if not outputs:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Expected classification signature outputs classes or scores in {name}"
            )
    else:
        if list(signature.outputs) != ["outputs"]:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, f"No regression outputs found in SignatureDef: {name}"
            )
        outputs = ["outputs"]
    examples = input_examples(request.input)
    serialized = np.array([e.SerializeToString() for e in examples], dtype=object)
    values = servable.run(signature, {key: serialized}, outputs)
    for output, value in values.items():
        value = np.asarray(value)
        if value.ndim == 0 or value.shape[0] != len(examples):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Expected output Tensor {output} shape to be [{len(examples)}, ...], got {list(value.shape)}",
            )
        if api == "regression" and not (value.ndim == 1 or (value.ndim == 2 and value.shape[1] == 1)):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Expected output Tensor shape to be [batch] or [batch, 1], got {list(value.shape)}"
            )
    return name, values


def classify(servable: Servable, request: Any) -> Any:
    """Answer a ClassificationRequest as TF Serving does, on this version."""
    from tensorflow_serving.apis import classification_pb2

    name, values = _run_on_examples(servable, request, {"classes", "scores"}, "classification")
    scores, classes = values.get("scores"), values.get("classes")
    rows = len(scores if scores is not None else classes)
    response = classification_pb2.ClassificationResponse()
    _echo_spec(response.model_spec, servable, name)
    for row in range(rows):
        classification = response.result.classifications.add()
        width = (scores if scores is not None else classes).shape[1]
        for k in range(width):
            label = classes[row, k].decode("utf-8") if classes is not None else ""
            classification.classes.add(label=label, score=float(scores[row, k]) if scores is not None else 0.0)
    return response


def regress(servable: Servable, request: Any) -> Any:
    """Answer a RegressionRequest as TF Serving does, on this version."""
    from tensorflow_serving.apis import regression_pb2

    name, values = _run_on_examples(servable, request, {"outputs"}, "regression")
    response = regression_pb2.RegressionResponse()
    _echo_spec(response.model_spec, servable, name)
    for value in np.asarray(values["outputs"]).reshape(-1):
        response.result.regressions.add(value=float(value))
    return response


def replay_warmup(servable: Servable) -> int:
    """Replay a version's warmup file against it; raise (failing the load) on any error."""
    from tensorflow_serving.apis import prediction_log_pb2

    path = pathlib.Path(servable.path) / WARMUP_PATH
    if not path.exists():
        return 0
    count = 0
    try:
        records = [record.numpy() for record in tf.data.TFRecordDataset(str(path))]
    except tf.errors.OpError as error:
        raise ValueError(f"{path}: Please verify your warmup data is in TFRecord format ({error.message})") from None
    if len(records) > MAX_RECORDS:
        raise ValueError(f"{path}: {len(records)} warmup records; TF Serving reads at most {MAX_RECORDS}")
    for record in records:
        log = prediction_log_pb2.PredictionLog.FromString(record)
        kind = log.WhichOneof("log_type")
        handler = {"predict_log": predict, "classify_log": classify, "regress_log": regress}.get(kind)
        if handler is None:
            raise ValueError(f"{path}: Unsupported log_type for warmup: {kind}")
        try:
            handler(servable, getattr(log, kind).request)
        except ServingError as error:
            raise ValueError(f"{path}: warmup record {count} ({kind}) failed: {error.message}") from None
        count += 1
    return count
