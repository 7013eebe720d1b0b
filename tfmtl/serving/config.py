"""TF Serving configuration files: ``models.config`` and ``batching.config``."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
from typing import Mapping, Sequence

_LABEL = re.compile(r"^[A-Za-z0-9_]+$")


def model_config_text(
    models: Mapping[str, str | os.PathLike],
    *,
    versions: Mapping[str, Sequence[int]] | None = None,
    version_labels: Mapping[str, Mapping[str, int]] | None = None,
    all_versions: bool = False,
) -> str:
    """A text ``ModelServerConfig`` for ``--model_config_file``.

    Args:
      models: Model name to base path (made absolute: the server resolves
        relative paths against its own working directory).
      versions: Model name to the versions to serve (``specific`` policy);
        models not listed get ``latest { num_versions: 1 }`` (or ``all`` with
        ``all_versions=True``).
      version_labels: Model name to ``{label: version}``, e.g.
        ``{"stable": 1, "canary": 2}``. A label can only point at a version the
        server has loaded (unless it runs with
        ``--allow_version_labels_for_unavailable_models``).
      all_versions: Serve every version found under a base path.

    Returns:
      The config text; it parses with tensorflow-serving-api's
      ``model_server_config_pb2.ModelServerConfig``.

    Example:

    >>> import tfmtl
    >>> text = tfmtl.serving.model_config_text({"demo": "/models/demo"}, version_labels={"demo": {"stable": 1}})
    >>> print(text.splitlines()[2].strip())
    name: "demo"
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    versions = dict(versions or {})
    labels = dict(version_labels or {})
    unknown = sorted((set(versions) | set(labels)) - set(models))
    if unknown:
        raise ValueError(f"versions/labels name unknown model(s) {unknown}; models: {sorted(models)}")
    config = model_server_config_pb2.ModelServerConfig()
    for name, base_path in models.items():
        entry = config.model_config_list.config.add(
            name=name, base_path=str(pathlib.Path(base_path).resolve()), model_platform="tensorflow"
        )
        policy = entry.model_version_policy
        if name in versions:
            policy.specific.versions.extend(int(v) for v in versions[name])
        elif all_versions:
            policy.all.SetInParent()
        else:
            policy.latest.num_versions = 1
        for label, version in labels.get(name, {}).items():
            if not _LABEL.match(label):
                raise ValueError(f"model {name!r}: version label {label!r} must match [a-zA-Z0-9_]+")
            entry.version_labels[label] = int(version)
    return text_format.MessageToString(config)


@dataclasses.dataclass(frozen=True)
class BatchingConfig:
    """TF Serving's ``BatchingParameters`` (``--enable_batching --batching_parameters_file``).

    Defaults follow TF Serving's CPU tuning guidance (``batching/README.md``):
    ``num_batch_threads`` = cores, a large ``max_batch_size``, no waiting
    (``batch_timeout_micros`` 0; try 1000-10000 for throughput), and
    ``max_enqueued_batches`` about ``num_batch_threads`` for online serving.
    Every signature tfmtl exports has ``[batch, ...]`` inputs and outputs, so all
    of them can be batched.

    Example:

    >>> import tfmtl
    >>> print(tfmtl.serving.BatchingConfig(num_batch_threads=2).text().splitlines()[0])
    max_batch_size { value: 512 }
    """

    max_batch_size: int = 512
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 4
    num_batch_threads: int = os.cpu_count() or 1
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False

    def __post_init__(self) -> None:
        sizes = list(self.allowed_batch_sizes)
        if sizes and (sizes != sorted(set(sizes)) or sizes[-1] != self.max_batch_size):
            raise ValueError(
                f"allowed_batch_sizes {sizes} must increase and end at max_batch_size {self.max_batch_size}"
            )
        for field in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be >= 1")

    def text(self) -> str:
        """The text-format ``BatchingParameters`` (scalar fields are wrapper messages)."""
        lines = [
            f"max_batch_size {{ value: {self.max_batch_size} }}",
            f"batch_timeout_micros {{ value: {self.batch_timeout_micros} }}",
            f"max_enqueued_batches {{ value: {self.max_enqueued_batches} }}",
            f"num_batch_threads {{ value: {self.num_batch_threads} }}",
        ]
        lines += [f"allowed_batch_sizes: {size}" for size in self.allowed_batch_sizes]
        if self.pad_variable_length_inputs:
            lines.append("pad_variable_length_inputs: true")
        return "\n".join(lines) + "\n"


def write_configs(
    directory: str | os.PathLike,
    models: Mapping[str, str | os.PathLike],
    *,
    batching: BatchingConfig | None = None,
    **model_config_args: object,
) -> tuple[pathlib.Path, pathlib.Path]:
    """Write ``models.config`` and ``batching.config`` into ``directory``; return their paths.

    Example:

    >>> import tempfile, tfmtl
    >>> paths = tfmtl.serving.write_configs(tempfile.mkdtemp(), {"demo": "export/demo"})
    >>> [p.name for p in paths]
    ['models.config', 'batching.config']
    """
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    models_path = directory / "models.config"
    models_path.write_text(model_config_text(models, **model_config_args))  # type: ignore[arg-type]
    batching_path = directory / "batching.config"
    batching_path.write_text((batching or BatchingConfig()).text())
    return models_path, batching_path
