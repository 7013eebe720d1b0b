"""Talking to a running server: TF Serving's gRPC and REST APIs.

:class:`Client` calls TF Serving (or the development server) with plain feature dicts;
:class:`DevServer` (``tfmtl serve``) is a development stand-in for ``tensorflow_model_server``
that speaks the same APIs. The export side (:mod:`tfmtl.serving`'s other modules) never
imports this package.
"""

from tfmtl.serving.online.client import Client
from tfmtl.serving.online.server import DevServer

__all__ = ["Client", "DevServer"]
