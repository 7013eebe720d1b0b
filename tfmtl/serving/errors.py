"""The error type of serving requests (server side and client side)."""

from __future__ import annotations

from typing import Any


class ServingError(Exception):
    """A failed serving request, with the gRPC status code TF Serving uses.

    Attributes:
      code: a ``grpc.StatusCode`` (client side: also for REST, mapped from HTTP).
      message: the server's message (client side: prefixed with the signature).

    Example:

    >>> import grpc, tfmtl
    >>> str(tfmtl.serving.ServingError(grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(x)"))
    'NOT_FOUND: Servable not found for request: Latest(x)'
    """

    def __init__(self, code: Any, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        name = getattr(self.code, "name", self.code)
        return f"{name}: {self.message}"
