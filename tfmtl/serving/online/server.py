"""A development server that speaks TF Serving's gRPC and REST APIs, on loopback.

It loads SavedModels the way ``tensorflow_model_server`` does (TF1 Session over
the SignatureDefs, warmup file replayed at load, a failed warmup fails the load)
and answers PredictionService (Predict, Classify, Regress, GetModelMetadata) and
ModelService (GetModelStatus) with tensorflow-serving-api's own generated
servicers, plus the ``/v1/models/...`` REST routes. It is for development and
tests on machines without TF Serving: it polls the base paths for versions, but it does
not batch or run MultiInference. Use the real server in production.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import signal
import socket
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import grpc

from tfmtl.serving.online import repository as handlers, rest
from tfmtl.serving.errors import ServingError
from tfmtl.serving.protos import GRPC_MESSAGE_LIMITS
from tfmtl.serving.online.repository import ModelEntry, ModelRepository, entries_from_config


def _servicer_method(handler: Callable[[ModelRepository, Any], Any], repository: ModelRepository) -> Callable:
    def method(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return handler(repository, request)
        except ServingError as error:
            context.abort(error.code, error.message)
        except (TypeError, ValueError) as error:  # e.g. a TensorProto that does not parse
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{type(error).__name__}: {error}")

    return method


def _grpc_server(repository: ModelRepository, address: str, workers: int) -> tuple[grpc.Server, int]:
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    prediction = type(
        "PredictionService",
        (prediction_service_pb2_grpc.PredictionServiceServicer,),
        {
            "Predict": _servicer_method(handlers.predict, repository),
            "Classify": _servicer_method(handlers.classify, repository),
            "Regress": _servicer_method(handlers.regress, repository),
            "GetModelMetadata": _servicer_method(handlers.model_metadata, repository),
        },
    )
    models = type(
        "ModelService",
        (model_service_pb2_grpc.ModelServiceServicer,),
        {"GetModelStatus": _servicer_method(handlers.model_status, repository)},
    )
    # No SO_REUSEPORT: a second server on the same port must fail, not silently share it.
    options = [("grpc.so_reuseport", 0), *GRPC_MESSAGE_LIMITS]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(prediction(), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(models(), server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind gRPC to {address}")
    return server, port


def _rest_server(repository: ModelRepository, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY: without it, a keep-alive connection's next answer waits for a delayed ACK (~40 ms).
        disable_nagle_algorithm = True

        def _body(self) -> bytes:
            """The request body, from Content-Length or chunked framing; ValueError if it is malformed."""
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks, total = [], 0
                while True:
                    line = self.rfile.readline(1024).split(b";", 1)[0].strip()
                    if not re.fullmatch(rb"[0-9A-Fa-f]{1,8}", line):
                        raise ValueError(f"bad chunk size {line[:20]!r}")
                    size = int(line, 16)
                    total += size
                    if total > MAX_BODY_BYTES:
                        raise ValueError(f"body larger than {MAX_BODY_BYTES} bytes")
                    if size == 0:
                        while self.rfile.readline(65536) not in (b"\r\n", b"\n", b""):  # trailers
                            pass
                        return b"".join(chunks)
                    chunk = self.rfile.read(size)
                    if len(chunk) != size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                        raise ValueError("chunk shorter than its size, or not followed by CRLF")
                    chunks.append(chunk)
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0 or length > MAX_BODY_BYTES:
                raise ValueError(f"Content-Length {length} out of range")
            return self.rfile.read(length) if length > 0 else b""

        def _answer(self, method: str) -> None:
            try:
                body = self._body()
            except ValueError:
                self.close_connection = True  # the rest of the stream cannot be framed
                code, payload = 400, {"error": "Malformed request: bad Content-Length or chunked body"}
            else:
                code, payload = rest.handle(repository, method, self.path, body)
            data = json.dumps(payload).encode("utf-8") if payload is not None else b""
            self.send_response(int(code))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":  # a HEAD answer has headers only
                self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            self._answer("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._answer("POST")

        def _other_method(self) -> None:
            self._answer(self.command)  # TF Serving answers other methods "Malformed request" (400)

        do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _other_method  # noqa: N815

        def log_message(self, *args: Any) -> None:  # quiet
            pass

    server = _RestServer((host, port), Handler)
    server.daemon_threads = True
    return server


#: The largest REST body read (TF Serving's gRPC limit, INT32_MAX bytes).
MAX_BODY_BYTES = 2**31 - 1


class _RestServer(ThreadingHTTPServer):
    # The listen backlog: Python's default of 5 resets connections when many clients connect at once.
    request_queue_size = socket.SOMAXCONN


class DevServer:
    """gRPC (and optionally REST) endpoints over a :class:`ModelRepository`.

    Args:
      entries: Models to load (name, base path, version policy, labels).
      host: Interface to bind; loopback by default.
      port: gRPC port (0 = any free port; see ``grpc_port`` after start).
      rest_port: REST port, or None for no REST (as TF Serving, whose REST is off
        unless ``--rest_api_port`` is set).
      workers: gRPC worker threads.
      file_system_poll_wait_seconds: Seconds between scans of the base paths once started, as
        ``tensorflow_model_server``'s flag of that name (default 1, as there): new versions the
        policy chooses are loaded and warmed up, versions it no longer chooses are unloaded
        after their in-flight requests. 0 scans only at start.
      allow_version_labels_for_unavailable_models: Accept labels that point at versions not
        loaded (requests for them get NOT_FOUND until the version loads); without it such a
        label fails the start with a message that names it.
      max_num_load_retries: Retries of a version that failed to load, found by polling (TF
        Serving's flag of that name; default 5).
      load_retry_interval_seconds: Seconds between those retries (TF Serving's
        ``--load_retry_interval_micros``; default 60).

    Example:

    >>> import tempfile, numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(2,))
    >>> base = tempfile.mkdtemp(); _ = tfmtl.serving.export(model, base)
    >>> with tfmtl.serving.DevServer.for_model("m", base, port=0) as server:
    ...     client = tfmtl.serving.Client("m", grpc_target=server.grpc_target)
    ...     sorted(client.predict({"price": [1.0, 2.0]}))
    ['click']
    """

    def __init__(
        self,
        entries: list[ModelEntry],
        *,
        host: str = "127.0.0.1",
        port: int = 8500,
        rest_port: int | None = None,
        workers: int = 8,
        file_system_poll_wait_seconds: float = 1.0,
        allow_version_labels_for_unavailable_models: bool = False,
        max_num_load_retries: int = 5,
        load_retry_interval_seconds: float = 60.0,
    ) -> None:
        self._grpc: grpc.Server | None = None
        self._rest: ThreadingHTTPServer | None = None
        self._rest_thread: threading.Thread | None = None
        self._poll_seconds = file_system_poll_wait_seconds
        self._poller: threading.Thread | None = None
        self._stopping = threading.Event()
        self.repository = ModelRepository(
            entries, allow_labels_for_unavailable=allow_version_labels_for_unavailable_models,
            max_load_retries=max_num_load_retries, load_retry_interval_seconds=load_retry_interval_seconds,
        )
        self.host = host
        try:
            self._grpc, self.grpc_port = _grpc_server(self.repository, f"{host}:{port}", workers)
            self._rest = _rest_server(self.repository, host, rest_port) if rest_port is not None else None
        except BaseException:
            self.stop()
            raise
        self.rest_port = self._rest.server_address[1] if self._rest else None

    @classmethod
    def for_model(cls, name: str, base_path: str | os.PathLike, **kwargs: Any) -> "DevServer":
        """Serve the latest version under ``base_path`` as model ``name``."""
        return cls([ModelEntry(name, pathlib.Path(base_path))], **kwargs)

    @classmethod
    def from_config_file(cls, path: str | os.PathLike, **kwargs: Any) -> "DevServer":
        """Serve the models of a text ``ModelServerConfig`` (what ``--model_config_file`` takes)."""
        return cls(entries_from_config(pathlib.Path(path).read_text()), **kwargs)

    @property
    def grpc_target(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def rest_url(self) -> str | None:
        return f"http://{self.host}:{self.rest_port}" if self.rest_port else None

    def start(self) -> "DevServer":
        self._grpc.start()
        if self._rest:
            self._rest_thread = threading.Thread(target=self._rest.serve_forever, daemon=True)
            self._rest_thread.start()
        if self._poll_seconds > 0:
            self._poller = threading.Thread(target=self._poll, daemon=True, name="tfmtl-version-poller")
            self._poller.start()
        return self

    def _poll(self) -> None:
        def log(line: str) -> None:
            print(f"tfmtl development server: {line}", file=sys.stderr, flush=True)

        while not self._stopping.wait(self._poll_seconds):
            for name, (loaded, unloaded) in self.repository.refresh(log).items():
                log(f"model {name!r}: loaded versions {loaded}, unloaded versions {unloaded}")

    def stop(self) -> None:
        self._stopping.set()
        if self._poller is not None:
            self._poller.join()
        if self._grpc is not None:
            self._grpc.stop(grace=1.0).wait()
        if self._rest is not None:
            if self._rest_thread is not None:  # shutdown() waits for serve_forever: only when it runs
                self._rest.shutdown()
            self._rest.server_close()
        self.repository.close()

    def __enter__(self) -> "DevServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def run(args: argparse.Namespace) -> int:
    """``tfmtl serve``: serve until SIGTERM/SIGINT or ``--max_seconds`` (arguments: :mod:`tfmtl.cli`)."""
    options = {
        "host": args.host, "port": args.port, "rest_port": args.rest_api_port,
        "file_system_poll_wait_seconds": args.file_system_poll_wait_seconds,
        "allow_version_labels_for_unavailable_models": args.allow_version_labels_for_unavailable_models,
        "max_num_load_retries": args.max_num_load_retries,
        "load_retry_interval_seconds": args.load_retry_interval_micros / 1e6,
    }
    if not (args.model_config_file or (args.model_name and args.model_base_path)):
        print("give --model_name and --model_base_path, or --model_config_file", file=sys.stderr)
        return 2
    try:
        if args.model_config_file:
            server = DevServer.from_config_file(args.model_config_file, **options)
        else:
            server = DevServer.for_model(args.model_name, pathlib.Path(args.model_base_path).resolve(), **options)
    except (OSError, ValueError) as error:  # a bad config, path, label or version: a message, not a traceback
        print(f"tfmtl serve: {error}", file=sys.stderr)
        return 1
    server.start()
    models = ", ".join(f"{name} (versions {sorted(v)})" for name, v in server.repository.servables.items())
    rest_part = f", REST on {server.rest_url}" if server.rest_url else ""
    print(f"tfmtl development server: gRPC on {server.grpc_target}{rest_part}; models: {models}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    deadline = time.monotonic() + args.max_seconds if args.max_seconds else None
    while not stop.wait(0.2):
        if deadline and time.monotonic() > deadline:
            break
    server.stop()
    return 0
