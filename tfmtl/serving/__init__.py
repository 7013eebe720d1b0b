"""Export to TF Serving and call exports the way TF Serving does.

Two parts: what an export needs (this package's modules: signatures, export, tables,
warmup, tf.Example specs, the op audit, and the checks that run an export in a fresh
process) and, in :mod:`tfmtl.serving.online`, the client and the development server.
The export side never imports the online side, and ``Client``/``DevServer`` load it
only when first used. This package never imports tfmtl's training code.
"""

import importlib
from typing import Any

from tfmtl.serving import cpp, examples, tables
from tfmtl.serving.audit import OpAudit, audit_export
from tfmtl.serving.config import BatchingConfig, model_config_text, write_configs
from tfmtl.serving.errors import ServingError
from tfmtl.serving.export import export, next_version
from tfmtl.serving.signatures import DEFAULT_SIGNATURE, EXAMPLES_SIGNATURE, task_signature_name
from tfmtl.serving.reference import predict_in_fresh_process
from tfmtl.serving.warmup import read_warmup

__all__ = [
    "Client",
    "DevServer",
    "ServingError",
    "BatchingConfig",
    "OpAudit",
    "audit_export",
    "model_config_text",
    "write_configs",
    "DEFAULT_SIGNATURE",
    "EXAMPLES_SIGNATURE",
    "cpp",
    "examples",
    "tables",
    "export",
    "next_version",
    "predict_in_fresh_process",
    "read_warmup",
    "task_signature_name",
]


def __getattr__(name: str) -> Any:
    # Client and DevServer live on the online side, loaded on first use.
    if name in ("Client", "DevServer", "online"):
        online = importlib.import_module("tfmtl.serving.online")
        return online if name == "online" else getattr(online, name)
    raise AttributeError(f"module 'tfmtl.serving' has no attribute {name!r}")
