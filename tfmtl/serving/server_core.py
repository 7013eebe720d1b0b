"""TF Serving's request semantics over SavedModels loaded the way the real server loads them.

Each version is loaded into its own TF1 Session (``loader.load`` with the
``serve`` tag, which runs ``__saved_model_init_op`` to fill lookup tables) and
requests run ``Session.run`` on the SignatureDef tensor names, as
``tensorflow_model_server`` does. Error codes and messages copy the server's
(``servables/tensorflow/predict_util.cc``, ``classifier.cc``, ``regressor.cc``,
``model_servers/server_core.cc``). Not reproduced: batching, TFRT, MultiInference.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import threading
import time
from typing import Any, Mapping

import grpc
import numpy as np

from tfmtl._compat import tf
from tfmtl.serving.errors import ServingError
from tfmtl.serving.protos import from_tensor, response_tensor
from tfmtl.serving.warmup import MAX_RECORDS, WARMUP_PATH

DEFAULT_SIGNATURE = "serving_default"
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
        self._active, self._active_lock = 0, threading.Lock()

    @property
    def idle(self) -> bool:
        """No request is running on this version."""
        return self._active == 0

    def signature(self, name: str) -> Any:
        name = name or DEFAULT_SIGNATURE
        if name not in self.signature_defs or name.startswith("__"):
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{name}" not found.')
        return self.signature_defs[name]

    def run(self, signature: Any, feeds: Mapping[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        feed_dict = {signature.inputs[key].name: value for key, value in feeds.items()}
        fetches = [signature.outputs[key].name for key in outputs]
        with self._active_lock:
            self._active += 1
        try:
            values = self.session.run(fetches, feed_dict=feed_dict)
        except tf.errors.OpError as error:  # TF status codes are gRPC's numbers
            raise ServingError(_GRPC_CODES.get(error.error_code, grpc.StatusCode.INTERNAL), error.message) from None
        finally:
            with self._active_lock:
                self._active -= 1
        return dict(zip(outputs, values))

    def close(self) -> None:
        self.session.close()


@dataclasses.dataclass
class ModelEntry:
    name: str
    base_path: pathlib.Path
    policy: str = "latest"  # latest | all | specific
    versions: tuple[int, ...] = ()
    labels: dict[str, int] = dataclasses.field(default_factory=dict)


def entries_from_config(text: str) -> list[ModelEntry]:
    """Model entries from a text ``ModelServerConfig`` (``--model_config_file``)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    entries = []
    for model in config.model_config_list.config:
        which = model.model_version_policy.WhichOneof("policy_choice") or "latest"
        entries.append(
            ModelEntry(
                name=model.name,
                base_path=pathlib.Path(model.base_path),
                policy=which,
                versions=tuple(model.model_version_policy.specific.versions),
                labels=dict(model.version_labels),
            )
        )
    return entries


class ModelRepository:
    """The loaded servables of several models, with TF Serving's version resolution.

    :meth:`refresh` re-reads the base paths as TF Serving's file-system poller does: it loads
    versions the policy now chooses and unloads those it no longer chooses (deleted, or
    superseded under ``latest``). The version map is swapped whole, so a request sees the old
    map or the new one; an unloaded version's session is closed only once no request runs on
    it and it has been unloaded for ``grace_seconds``.
    """

    def __init__(
        self, entries: list[ModelEntry], *, warmup: bool = True, allow_labels_for_unavailable: bool = False,
        grace_seconds: float = 10.0,
    ) -> None:
        self.entries = {entry.name: entry for entry in entries}
        self.allow_labels_for_unavailable = allow_labels_for_unavailable
        self.servables: dict[str, dict[int, Servable]] = {}
        self._warmup, self._grace = warmup, grace_seconds
        self._retired: list[tuple[Servable, float]] = []
        self._failed: set[tuple[str, int]] = set()  # versions whose load failed: not retried, as TF Serving
        self._refresh_lock = threading.Lock()
        try:
            for entry in entries:
                self.servables[entry.name] = self._load(entry, warmup)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _versions_on_disk(entry: ModelEntry) -> list[int]:
        if not entry.base_path.is_dir():
            raise FileNotFoundError(f"model {entry.name!r}: base path {entry.base_path} does not exist")
        return sorted(int(p.name) for p in entry.base_path.iterdir() if p.is_dir() and re.fullmatch(r"\d+", p.name))

    @staticmethod
    def _chosen(entry: ModelEntry, found: list[int]) -> list[int]:
        if entry.policy == "specific":
            return [v for v in found if v in entry.versions]
        if entry.policy == "all":
            return found
        return found[-1:]

    def _load(self, entry: ModelEntry, warmup: bool) -> dict[int, Servable]:
        chosen = self._chosen(entry, self._versions_on_disk(entry))
        if not chosen:
            raise FileNotFoundError(f"model {entry.name!r}: no version to serve under {entry.base_path}")
        loaded: dict[int, Servable] = {}
        try:
            for version in chosen:
                loaded[version] = self._load_version(entry, version, warmup)
            for label, version in entry.labels.items():
                if version not in loaded and not self.allow_labels_for_unavailable:
                    raise ValueError(
                        f"model {entry.name!r}: label {label!r} points at version {version}, which is not loaded "
                        f"(loaded: {sorted(loaded)}); start with --allow_version_labels_for_unavailable_models "
                        "to accept it (requests for the label then get NOT_FOUND until that version loads)"
                    )
        except BaseException:
            for servable in loaded.values():
                servable.close()
            raise
        return loaded

    @staticmethod
    def _load_version(entry: ModelEntry, version: int, warmup: bool) -> Servable:
        servable = Servable(entry.name, version, entry.base_path / str(version))
        try:
            if warmup:
                replay_warmup(servable)
        except BaseException:
            servable.close()
            raise
        return servable

    def refresh(self, log: Any = None) -> dict[str, tuple[list[int], list[int]]]:
        """Load newly chosen versions and unload the others; ``{model: (loaded, unloaded)}``.

        A version that fails to load is reported through ``log`` and not retried. If a base path
        holds no version at all, the loaded ones keep serving.
        """
        changes = {}
        with self._refresh_lock:
            for name, entry in self.entries.items():
                current = self.servables.get(name, {})
                try:
                    found = self._versions_on_disk(entry)
                except OSError as error:
                    if log:
                        log(f"model {name!r}: cannot list {entry.base_path}: {error}")
                    continue
                if not found:
                    continue
                chosen = self._chosen(entry, found)
                added = {}
                for version in chosen:
                    if version in current or (name, version) in self._failed:
                        continue
                    try:
                        added[version] = self._load_version(entry, version, self._warmup)
                    except Exception as error:  # noqa: BLE001  (a bad version must not stop the others)
                        self._failed.add((name, version))
                        if log:
                            log(f"model {name!r}: version {version} failed to load: {error}")
                kept = {v: s for v, s in current.items() if v in chosen}
                if not kept and not added:
                    continue  # nothing loadable: keep serving what is loaded
                removed = sorted(set(current) - set(kept))
                self.servables[name] = {**kept, **added}
                now = time.monotonic()
                self._retired += [(current[v], now) for v in removed]
                if added or removed:
                    changes[name] = (sorted(added), removed)
            self._close_retired()
        return changes

    def _close_retired(self) -> None:
        now, waiting = time.monotonic(), []
        for servable, since in self._retired:
            if now - since >= self._grace and servable.idle:
                servable.close()
            else:
                waiting.append((servable, since))
        self._retired = waiting

    def resolve(self, model_spec: Any) -> Servable:
        name = _model_name(model_spec)
        versions = self.servables.get(name)
        if versions is None:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})")
        which = model_spec.WhichOneof("version_choice")
        if which == "version":
            version = model_spec.version.value
            if version not in versions:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({name}, {version})"
                )
            return versions[version]
        if which == "version_label":
            label = model_spec.version_label
            version = self.entries[name].labels.get(label)
            if version is None:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}"
                )
            if version not in versions:  # a label for a version not (yet) loaded
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({name}, {version})"
                )
            return versions[version]
        return versions[max(versions)]

    def close(self) -> None:
        for versions in self.servables.values():
            for servable in versions.values():
                servable.close()
        for servable, _ in getattr(self, "_retired", []):
            servable.close()


def _model_name(model_spec: Any) -> str:
    # model_servers/server_core.cc: a request without a model name is the client's error, not NOT_FOUND.
    if not model_spec.name:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")
    return model_spec.name


# -- request handlers (protos in, protos out) ------------------------------
def _echo_spec(target: Any, servable: Servable, signature_name: str) -> None:
    target.name = servable.name
    target.version.value = servable.version
    target.signature_name = signature_name


def predict(repository: ModelRepository, request: Any) -> Any:
    from tensorflow_serving.apis import predict_pb2

    servable = repository.resolve(request.model_spec)
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


def _run_on_examples(repository: ModelRepository, request: Any, wanted: set[str], api: str) -> tuple[Servable, str, dict]:
    servable = repository.resolve(request.model_spec)
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
    return servable, name, values


def classify(repository: ModelRepository, request: Any) -> Any:
    from tensorflow_serving.apis import classification_pb2

    servable, name, values = _run_on_examples(repository, request, {"classes", "scores"}, "classification")
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


def regress(repository: ModelRepository, request: Any) -> Any:
    from tensorflow_serving.apis import regression_pb2

    servable, name, values = _run_on_examples(repository, request, {"outputs"}, "regression")
    response = regression_pb2.RegressionResponse()
    _echo_spec(response.model_spec, servable, name)
    for value in np.asarray(values["outputs"]).reshape(-1):
        response.result.regressions.add(value=float(value))
    return response


def model_metadata(repository: ModelRepository, request: Any) -> Any:
    from tensorflow_serving.apis import get_model_metadata_pb2

    servable = repository.resolve(request.model_spec)
    for field in request.metadata_field:
        if field != "signature_def":
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field {field} is not supported")
    if not request.metadata_field:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "GetModelMetadataRequest must specify at least one metadata_field")
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, value in servable.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(value)
    response.metadata["signature_def"].Pack(signature_map)
    return response


def model_status(repository: ModelRepository, request: Any) -> Any:
    from tensorflow_serving.apis import get_model_status_pb2

    name = _model_name(request.model_spec)
    versions = repository.servables.get(name)
    if versions is None:
        raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
    wanted = sorted(versions)
    if request.model_spec.WhichOneof("version_choice") == "version":  # a version label is ignored, as TF Serving does
        wanted = [repository.resolve(request.model_spec).version]
    response = get_model_status_pb2.GetModelStatusResponse()
    for version in wanted:
        status = response.model_version_status.add(version=version)
        status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    return response


def replay_warmup(servable: Servable) -> int:
    """Replay a version's warmup file against it; raise (failing the load) on any error."""
    from tensorflow_serving.apis import prediction_log_pb2

    path = pathlib.Path(servable.path) / WARMUP_PATH
    if not path.exists():
        return 0
    single = _SingleServable(servable)
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
            handler(single, getattr(log, kind).request)
        except ServingError as error:
            raise ValueError(f"{path}: warmup record {count} ({kind}) failed: {error.message}") from None
        count += 1
    return count


class _SingleServable(ModelRepository):
    """A repository view that resolves every request to one servable (for warmup)."""

    def __init__(self, servable: Servable) -> None:  # noqa: D107  (no loading)
        self._servable = servable

    def resolve(self, model_spec: Any) -> Servable:
        return self._servable
