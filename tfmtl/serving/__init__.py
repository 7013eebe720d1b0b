"""Export to TF Serving and call exports the way TF Serving does.

This package never imports tfmtl's training code.
"""

from tfmtl.serving import cpp, examples, tables
from tfmtl.serving.audit import OpAudit, audit_export
from tfmtl.serving.client import Client
from tfmtl.serving.config import BatchingConfig, model_config_text, write_configs
from tfmtl.serving.errors import ServingError
from tfmtl.serving.export import export, next_version
from tfmtl.serving.signatures import DEFAULT_SIGNATURE, EXAMPLES_SIGNATURE, task_signature_name
from tfmtl.serving.reference import predict_in_fresh_process
from tfmtl.serving.server import DevServer
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
