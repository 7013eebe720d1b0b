"""TF Serving's warmup file: one request per signature, replayed by the server at load time."""

from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping

import numpy as np

from tfmtl._compat import tf
from tfmtl.serving.examples import to_examples
from tfmtl.serving.protos import request_tensor, to_numpy

#: Where TF Serving looks for the warmup file inside a version directory.
WARMUP_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")
#: TF Serving reads at most this many records (``kMaxNumRecords``).
MAX_RECORDS = 1000


def sample_features(specs: Mapping[str, tf.TensorSpec], rows: int = 2) -> dict[str, np.ndarray]:
    """Placeholder raw features shaped as ``specs``: empty-string / 0 ids (out of vocabulary) and 0.0 numbers."""
    sample = {}
    for name, spec in specs.items():
        shape = [rows, *spec.shape[1:]]
        if spec.dtype == tf.string:
            sample[name] = np.full(shape, b"", dtype=object)
        else:
            sample[name] = np.zeros(shape, dtype=spec.dtype.as_numpy_dtype)
    return sample


def warmup_logs(
    signatures: Mapping[str, str], specs: Mapping[str, tf.TensorSpec], features: Mapping[str, Any], model_name: str
) -> list[Any]:
    """One ``PredictionLog`` per signature.

    Args:
      signatures: Signature name to kind: ``"predict"`` (raw features),
        ``"predict_examples"``, ``"classify"`` or ``"regress"``.
      specs: The raw-feature input specs.
      features: A sample batch of raw features.
      model_name: Written into each request's ``ModelSpec``.
    """
    from tensorflow_serving.apis import (
        classification_pb2,
        input_pb2,
        model_pb2,
        predict_pb2,
        prediction_log_pb2,
        regression_pb2,
    )

    columns = {name: to_numpy(features[name], spec.dtype, feature=name) for name, spec in specs.items()}
    examples = to_examples(columns, {name: spec.dtype for name, spec in specs.items()})
    serialized = np.array([example.SerializeToString() for example in examples], dtype=object)
    logs = []
    for name, kind in signatures.items():
        spec = model_pb2.ModelSpec(name=model_name, signature_name=name)
        if kind in ("predict", "predict_examples"):
            request = predict_pb2.PredictRequest(model_spec=spec)
            inputs = columns if kind == "predict" else {"inputs": serialized}
            for key, values in inputs.items():
                request.inputs[key].CopyFrom(request_tensor(values))
            logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
        elif kind == "classify":
            request = classification_pb2.ClassificationRequest(
                model_spec=spec, input=input_pb2.Input(example_list=input_pb2.ExampleList(examples=examples))
            )
            logs.append(
                prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=request))
            )
        elif kind == "regress":
            request = regression_pb2.RegressionRequest(
                model_spec=spec, input=input_pb2.Input(example_list=input_pb2.ExampleList(examples=examples))
            )
            logs.append(prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(request=request)))
        else:
            raise ValueError(f"signature {name!r}: unknown warmup kind {kind!r}")
    if len(logs) > MAX_RECORDS:
        raise ValueError(f"{len(logs)} warmup records; TF Serving reads at most {MAX_RECORDS}")
    return logs


def write_warmup(version_dir: str | os.PathLike, logs: list[Any]) -> pathlib.Path:
    """Write ``logs`` as the TFRecord file TF Serving replays when it loads the version."""
    path = pathlib.Path(version_dir) / WARMUP_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def read_warmup(version_dir: str | os.PathLike) -> list[Any]:
    """The ``PredictionLog`` records of a version's warmup file.

    Example:

    >>> import tempfile, numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(4,))
    >>> path = tfmtl.serving.export(model, tempfile.mkdtemp())
    >>> sorted(log.WhichOneof("log_type") for log in tfmtl.serving.read_warmup(path))
    ['classify_log', 'predict_log', 'predict_log', 'predict_log']
    """
    from tensorflow_serving.apis import prediction_log_pb2

    path = pathlib.Path(version_dir) / WARMUP_PATH
    return [
        prediction_log_pb2.PredictionLog.FromString(record.numpy()) for record in tf.data.TFRecordDataset(str(path))
    ]
