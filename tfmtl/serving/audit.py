"""Check that an export runs on a stock TF Serving: core ops only, dense signature tensors."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

_SCRIPT = pathlib.Path(__file__).with_name("standalone_audit.py")


@dataclasses.dataclass(frozen=True)
class OpAudit:
    """What :func:`audit_export` found.

    Example:

    >>> import tfmtl
    >>> report = tfmtl.serving.OpAudit(ops=("MatMul", "PyFunc"), unregistered=(), python_ops=("PyFunc",),
    ...                                namespaced=(), non_dense_signature_tensors=())
    >>> report.ok, report.problems()
    (False, ['op PyFunc runs Python code; a C++ server cannot run it'])
    """

    ops: tuple[str, ...]
    unregistered: tuple[str, ...]
    python_ops: tuple[str, ...]
    namespaced: tuple[str, ...]
    non_dense_signature_tensors: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not (self.unregistered or self.python_ops or self.namespaced or self.non_dense_signature_tensors)

    def problems(self) -> list[str]:
        problems = [f"op {op} is not registered in a TensorFlow-only process" for op in self.unregistered]
        problems += [f"op {op} runs Python code; a C++ server cannot run it" for op in self.python_ops]
        problems += [f"op {op} is a custom (namespaced) op" for op in self.namespaced]
        return problems + list(self.non_dense_signature_tensors)


def audit_export(export_dir: str | os.PathLike, *, timeout: float = 300.0) -> OpAudit:
    """Audit ``export_dir``'s ops and signature tensors in a fresh TensorFlow-only process.

    Example:

    >>> import tempfile, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Categorical("item", embedding_dim=2, vocabulary=("a",))])
    >>> model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(2,))
    >>> report = tfmtl.serving.audit_export(tfmtl.serving.export(model, tempfile.mkdtemp()))
    >>> report.ok, "LookupTableFindV2" in report.ops
    (True, True)
    """
    env = {key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}
    done = subprocess.run(
        [sys.executable, "-P", str(_SCRIPT), str(pathlib.Path(export_dir).resolve())],
        capture_output=True, text=True, env=env, timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"auditing {export_dir} failed:\n{done.stderr[-3000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if found.pop("imported"):
        raise RuntimeError("the audit process imported tfmtl or Keras; it must see TensorFlow alone")
    return OpAudit(**{key: tuple(value) for key, value in found.items()})
