"""Export to TF Serving and call exports the way TF Serving does.

This package never imports tfmtl's training code.
"""

from tfmtl.serving.export import DEFAULT_SIGNATURE, export, next_version, task_signature_name
from tfmtl.serving.reference import predict_in_fresh_process

__all__ = ["DEFAULT_SIGNATURE", "export", "next_version", "predict_in_fresh_process", "task_signature_name"]
