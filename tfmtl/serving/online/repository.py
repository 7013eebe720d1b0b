"""The development server's models: versions chosen by policy and labels, followed on disk.

Requests are answered by :mod:`tfmtl.serving.session` on the version a ``ModelSpec`` resolves
to, with ``model_servers/server_core.cc``'s resolution and codes. Not reproduced: batching,
TFRT, MultiInference.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import pathlib
import re
import threading
import time
from typing import Any, Iterator

import grpc

from tfmtl.serving import session
from tfmtl.serving.errors import ServingError
from tfmtl.serving.session import Servable, replay_warmup


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
    superseded under ``latest``; all of them if the base path holds no version, as TF Serving
    does by default). The version map is swapped whole, so a request sees the old map or the
    new one. Requests hold a lease on their version (:meth:`lease`) from resolution to answer;
    an unloaded version is closed once no lease is left. A version that fails to load is
    retried after ``load_retry_interval_seconds``, at most ``max_load_retries`` times (TF
    Serving's defaults: 60 s, 5), and forgotten when its folder goes away.
    """

    def __init__(
        self, entries: list[ModelEntry], *, warmup: bool = True, allow_labels_for_unavailable: bool = False,
        load_retry_interval_seconds: float = 60.0, max_load_retries: int = 5,
    ) -> None:
        self.entries = {entry.name: entry for entry in entries}
        self.allow_labels_for_unavailable = allow_labels_for_unavailable
        self.servables: dict[str, dict[int, Servable]] = {}
        self._warmup = warmup
        self._retry_interval, self._max_retries = load_retry_interval_seconds, max_load_retries
        self._lock = threading.Lock()  # leases and closing
        self._leases: collections.Counter = collections.Counter()
        self._retired: list[Servable] = []
        self._failed: dict[tuple[str, int], tuple[int, float]] = {}  # (model, version) -> (failures, when)
        self._refresh_lock = threading.Lock()
        try:
            for entry in entries:
                self.servables[entry.name] = self._load(entry, warmup)
        except BaseException:
            self.close()
            raise

    @contextlib.contextmanager
    def lease(self, model_spec: Any) -> Iterator[Servable]:
        """The version ``model_spec`` resolves to, kept open until the block ends."""
        with self._lock:
            servable = self.resolve(model_spec)
            self._leases[servable] += 1
        try:
            yield servable
        finally:
            with self._lock:
                self._leases[servable] -= 1
                released = not self._leases[servable]
                if released:
                    del self._leases[servable]
                unloaded = released and servable in self._retired
                if unloaded:
                    self._retired.remove(servable)
            if unloaded:  # the last request on an unloaded version: close it now (outside the lock)
                servable.close()

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

        Failures to load and unreadable base paths are reported through ``log``.
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
                for key in [k for k in self._failed if k[0] == name and k[1] not in found]:
                    del self._failed[key]  # its folder is gone: a new one of that number loads afresh
                chosen = self._chosen(entry, found)
                added = {}
                for version in chosen:
                    if version not in current and self._may_load(name, version):
                        try:
                            added[version] = self._load_version(entry, version, self._warmup)
                            self._failed.pop((name, version), None)
                        except Exception as error:  # noqa: BLE001  (a bad version must not stop the others)
                            failures = self._failed.get((name, version), (0, 0.0))[0] + 1
                            self._failed[(name, version)] = (failures, time.monotonic())
                            if log:
                                log(f"model {name!r}: version {version} failed to load (attempt {failures}): {error}")
                kept = {v: s for v, s in current.items() if v in chosen}
                if chosen and not kept and not added:
                    continue  # the chosen versions cannot load (yet): keep serving the loaded ones
                removed = sorted(set(current) - set(kept))
                self.servables[name] = {**kept, **added}
                with self._lock:
                    self._retired += [current[v] for v in removed]
                if added or removed:
                    changes[name] = (sorted(added), removed)
            self._close_retired()
        return changes

    def _may_load(self, name: str, version: int) -> bool:
        failures, when = self._failed.get((name, version), (0, 0.0))
        if not failures:
            return True
        return failures <= self._max_retries and time.monotonic() - when >= self._retry_interval

    def _close_retired(self) -> None:
        with self._lock:  # no lease can be taken on a retired version: it is in no map
            idle = [servable for servable in self._retired if not self._leases[servable]]
            self._retired = [servable for servable in self._retired if self._leases[servable]]
        for servable in idle:  # leased ones close when their last request ends (lease())
            servable.close()

    def resolve(self, model_spec: Any) -> Servable:
        name = _model_name(model_spec)
        versions = self.servables.get(name)
        if not versions:  # an unknown model, or every version unloaded
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

    def close(self, wait_seconds: float = 10.0) -> None:
        """Close every version, after up to ``wait_seconds`` for the requests still running to finish."""
        deadline = time.monotonic() + wait_seconds
        while getattr(self, "_leases", None) and time.monotonic() < deadline:
            time.sleep(0.01)
        for versions in self.servables.values():
            for servable in versions.values():
                servable.close()
        for servable in getattr(self, "_retired", []):
            servable.close()


def _model_name(model_spec: Any) -> str:
    # model_servers/server_core.cc: a request without a model name is the client's error, not NOT_FOUND.
    if not model_spec.name:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")
    return model_spec.name



# -- request handlers (protos in, protos out) ------------------------------
def predict(repository: ModelRepository, request: Any) -> Any:
    with repository.lease(request.model_spec) as servable:
        return session.predict(servable, request)


def classify(repository: ModelRepository, request: Any) -> Any:
    with repository.lease(request.model_spec) as servable:
        return session.classify(servable, request)


def regress(repository: ModelRepository, request: Any) -> Any:
    with repository.lease(request.model_spec) as servable:
        return session.regress(servable, request)


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

    # model_servers/get_model_status_impl.cc: no name check of its own (an empty name is a model not found), and a
    # version label is ignored.
    if not request.HasField("model_spec"):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    name = request.model_spec.name
    versions = repository.servables.get(name)
    if not versions:
        raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
    wanted = sorted(versions)
    if request.model_spec.WhichOneof("version_choice") == "version":
        version = request.model_spec.version.value
        if version not in versions:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {name}")
        wanted = [version]
    response = get_model_status_pb2.GetModelStatusResponse()
    for version in wanted:
        status = response.model_version_status.add(version=version)
        status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    return response
