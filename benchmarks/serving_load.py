"""The development server under load: many concurrent clients over gRPC and REST, and 100,000-row requests.

A two-task MMoE (the synthetic data's nine features, 4 experts [64]) is exported and served by
``tfmtl serve`` in its own process (gRPC and REST, loopback). Then, per protocol, ``--clients``
threads each send ``--requests`` batch-1 ``predict_click`` requests back to back: gRPC through
tensorflow-serving-api's stub on one channel per client, REST as JSON on one keep-alive HTTP
connection per client. Reported: errors (any exception or non-200 answer), p50/p99 latency seen by
the client, and requests per second over the whole run. Then one 100,000-row Predict of
``serving_default`` over each protocol, checked against the in-memory model.

Clients and server share the machine (2 cores here), so the figures are the pair's, not the
server's alone.

    python benchmarks/serving_load.py                          # 64 clients x 10,000 requests each
    python benchmarks/serving_load.py --clients 16 --requests 500
"""

from __future__ import annotations

import argparse
import http.client
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import numpy as np

import tfmtl
from tfmtl._compat import keras, tf

SIGNATURE = "predict_click"


def _export(directory: pathlib.Path) -> tuple[pathlib.Path, dict, dict]:
    keras.utils.set_random_seed(0)
    data = tfmtl.data.synthetic_recsys(20_000, seed=0)
    schema = data.schema.adapt(data.features, verbose=0)
    model = tfmtl.models.mmoe(schema, data.tasks, num_experts=4, expert_units=(64,))
    model.compile()
    model.fit(data.to_dataset(512), epochs=1, verbose=0)
    large = {k: np.concatenate([v[:1000]] * 100) for k, v in data.features.items()}  # 100,000 rows
    expected = {k: v[:, 0] for k, v in model.predict(large, batch_size=8192, verbose=0).items()}
    tfmtl.serving.export(model, directory / "load")
    return directory / "load", large, expected


def _start_server(base: pathlib.Path) -> tuple[subprocess.Popen, str, str]:
    command = [str(pathlib.Path(sys.executable).with_name("tfmtl")), "serve", "--model_name", "load",
               "--model_base_path", str(base), "--port", "0", "--rest_api_port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        match = re.search(r"gRPC on (\S+?), REST on http://(\S+?);", line)
        if match:  # keep reading the server's output, so that its pipe never fills and blocks it
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
            return process, match.group(1), match.group(2)
    raise RuntimeError("the server did not start")


def _row(features: dict, index: int) -> dict:
    return {k: (v[index].item() if hasattr(v[index], "item") else v[index]) for k, v in features.items()}


def _grpc_request(features: dict, signature: str, rows: slice) -> object:
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "load", signature
    for key, values in features.items():
        values = np.asarray(values[rows])
        request.inputs[key].CopyFrom(tf.make_tensor_proto(values.astype(object) if values.dtype.kind == "U" else values))
    return request


def _run_clients(clients: int, requests: int, call_factory) -> tuple[list[float], list[str], float]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    barrier = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        call = call_factory()
        barrier.wait()
        for _ in range(requests):
            start = time.perf_counter()
            try:
                call()
            except Exception as error:  # noqa: BLE001  (every failure counts)
                errors.append(f"{type(error).__name__}: {error}"[:200])
                call = call_factory()  # a fresh connection after a failure
            latencies[index].append(time.perf_counter() - start)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return [t for per in latencies for t in per], errors, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=10_000, help="requests per client")
    args = parser.parse_args()
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from tfmtl.serving.protos import GRPC_MESSAGE_LIMITS

    with tempfile.TemporaryDirectory() as tmp:
        base, large, expected = _export(pathlib.Path(tmp))
        process, grpc_target, rest_host = _start_server(base)
        try:
            request = _grpc_request(large, SIGNATURE, slice(0, 1))
            body = json.dumps({"signature_name": SIGNATURE, "instances": [_row(large, 0)]}).encode()
            host, port = rest_host.split(":")

            def grpc_call():
                stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(grpc_target))
                return lambda: stub.Predict(request, timeout=60)

            def rest_call():
                connection = http.client.HTTPConnection(host, int(port), timeout=60)

                def call():
                    connection.request("POST", "/v1/models/load:predict", body=body)
                    response = connection.getresponse()
                    answer = response.read()
                    if response.status != 200:
                        raise RuntimeError(f"HTTP {response.status}: {answer[:100]!r}")
                return call

            rows = []
            for protocol, factory in (("gRPC", grpc_call), ("REST", rest_call)):
                times, errors, seconds = _run_clients(args.clients, args.requests, factory)
                total = args.clients * args.requests
                rows.append((protocol, total, len(errors), np.percentile(times, 50) * 1e3,
                             np.percentile(times, 99) * 1e3, total / seconds))
                for message in sorted(set(errors))[:5]:
                    print(f"{protocol} error: {message}")

            large_rows = []
            channel = grpc.insecure_channel(grpc_target, options=GRPC_MESSAGE_LIMITS)
            big = _grpc_request(large, "serving_default", slice(None))
            start = time.perf_counter()
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(big, timeout=300)
            seconds = time.perf_counter() - start
            diff = np.max(np.abs(tf.make_ndarray(response.outputs["click"]) - expected["click"]))
            large_rows.append(("gRPC", big.ByteSize(), seconds, diff))
            columns = {k: (v.tolist() if v.dtype.kind != "U" else [str(x) for x in v]) for k, v in large.items()}
            payload = json.dumps({"inputs": columns}).encode()
            connection = http.client.HTTPConnection(host, int(port), timeout=300)
            start = time.perf_counter()
            connection.request("POST", "/v1/models/load:predict", body=payload)
            response = connection.getresponse()
            answer = json.loads(response.read())
            seconds = time.perf_counter() - start
            if response.status != 200:
                raise RuntimeError(f"REST 100,000 rows: HTTP {response.status}: {answer}")
            diff = np.max(np.abs(np.asarray(answer["outputs"]["click"]) - expected["click"]))
            large_rows.append(("REST", len(payload), seconds, diff))
        finally:
            process.terminate()
            process.wait(timeout=60)

    print(f"\n{args.clients} concurrent clients x {args.requests:,} batch-1 {SIGNATURE} requests each")
    print("| protocol | requests | errors | p50 ms | p99 ms | requests/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for protocol, total, errors, p50, p99, rate in rows:
        print(f"| {protocol} | {total:,} | {errors} | {p50:.2f} | {p99:.2f} | {rate:,.0f} |")
    print("\none 100,000-row serving_default Predict")
    print("| protocol | request bytes | seconds | max abs diff to the model |")
    print("|---|---:|---:|---:|")
    for protocol, size, seconds, diff in large_rows:
        print(f"| {protocol} | {size:,} | {seconds:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
