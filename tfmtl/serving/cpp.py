"""Run an export through TensorFlow's C SavedModel loader and Session, as TF Serving does.

``cpp_predict.cc`` (beside this file) uses only TensorFlow's C API
(``TF_LoadSessionFromSavedModel``, ``TF_SessionRun``, ``TF_TString``). It is
compiled on first use with the system C++ compiler against the installed
TensorFlow wheel: flags from ``tf.sysconfig``, ``libtensorflow_cc.so.2`` linked
explicitly, nothing downloaded. The binary is cached under
``$TFMTL_CACHE_DIR`` (default ``~/.cache/tfmtl``), keyed by the source, the
TensorFlow version and the flags. ``python -m tfmtl.serving.cpp`` builds it and
prints its path.

The signatures' tensor names come from the export's ``saved_model.pb``
(MetaGraph tagged ``serve``); Python writes the inputs to a file, the program
loads the export in a fresh process without Python, runs each signature and
writes the outputs back.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import struct
import subprocess
import tempfile
from typing import Any, Mapping, Sequence

import numpy as np

from tfmtl._compat import tf
from tfmtl.serving.protos import signature_io, to_numpy

SOURCE = pathlib.Path(__file__).with_name("cpp_predict.cc")
_COMPILERS = ("c++", "g++", "clang++")


def compiler() -> str | None:
    """Path of the system C++ compiler (``$CXX``, ``c++``, ``g++`` or ``clang++``), or None."""
    for name in (os.environ.get("CXX"), *_COMPILERS):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _library_dir() -> pathlib.Path:
    return pathlib.Path(tf.sysconfig.get_lib())


def build_command(output: str | os.PathLike) -> list[str]:
    """The compile-and-link command: flags from ``tf.sysconfig``, ``libtensorflow_cc.so.2`` named.

    Example:

    >>> import tfmtl
    >>> command = tfmtl.serving.cpp.build_command("cpp_predict")
    >>> "-l:libtensorflow_cc.so.2" in command
    True
    """
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (tried $CXX, c++, g++, clang++); install g++ to build the C++ check")
    library = _library_dir()
    return [
        cxx, "-O2", *tf.sysconfig.get_compile_flags(), str(SOURCE), "-o", str(output),
        *tf.sysconfig.get_link_flags(), "-l:libtensorflow_cc.so.2", f"-Wl,-rpath,{library}",
    ]


def _cache_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("TFMTL_CACHE_DIR") or pathlib.Path.home() / ".cache" / "tfmtl")


def build() -> pathlib.Path:
    """Compile ``cpp_predict.cc`` (once per source, TensorFlow version and flags) and return the binary.

    Raises:
      RuntimeError: no C++ compiler, or the compiler's error output.
    """
    command = build_command("OUT")
    key = hashlib.sha256("\0".join([SOURCE.read_text(), tf.__version__, *command]).encode()).hexdigest()[:16]
    binary = _cache_dir() / f"cpp_predict-{key}"
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=binary.parent, prefix=".build-") as tmp:
        partial = pathlib.Path(tmp, binary.name)
        completed = subprocess.run(build_command(partial), capture_output=True, text=True)
        if completed.returncode != 0:
            raise RuntimeError(f"building the C++ check failed:\n{completed.stderr.strip()[-3000:]}")
        os.replace(partial, binary)
    return binary


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[offset]
        value |= (byte & 0x7F) << shift
        offset, shift = offset + 1, shift + 7
        if byte < 0x80:
            return value, offset


def _serve_meta_graph(export_dir: pathlib.Path) -> Any:
    """The MetaGraphDef tagged ``serve`` of ``saved_model.pb``: a SavedModel's field 2, read from the wire."""
    data = (export_dir / "saved_model.pb").read_bytes()
    offset = 0
    while offset < len(data):
        key, offset = _varint(data, offset)
        if key & 7 == 0:  # saved_model_schema_version
            _, offset = _varint(data, offset)
            continue
        if key & 7 != 2:
            raise ValueError(f"{export_dir}/saved_model.pb is not a SavedModel")
        length, offset = _varint(data, offset)
        if key >> 3 == 2:
            meta_graph = tf.compat.v1.MetaGraphDef.FromString(data[offset:offset + length])
            if "serve" in meta_graph.meta_info_def.tags:
                return meta_graph
        offset += length
    raise ValueError(f"{export_dir}: no MetaGraph tagged 'serve'")


def _columns(signature: Any, name: str, features: Mapping[str, Any], raw: Mapping[str, tf.DType]) -> dict[str, np.ndarray]:
    """Input key -> array for one signature: raw features, or serialized tf.Examples under ``inputs``."""
    from tfmtl.serving.examples import to_examples

    keys = set(signature.inputs)
    if keys == {"inputs"} and "inputs" not in features:
        examples = to_examples(features, raw)
        return {"inputs": np.array([e.SerializeToString() for e in examples], dtype=object)}
    missing = sorted(keys - set(features))
    if missing:
        raise ValueError(f"signature {name!r}: missing inputs {missing}")
    return {key: np.asarray(features[key]) for key in keys}


def _pack(out: bytearray, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    out += struct.pack("<I", len(data)) + data


def _pack_tensor(out: bytearray, array: np.ndarray, dtype: tf.DType) -> None:
    out += struct.pack("<II", dtype.as_datatype_enum, array.ndim)
    out += struct.pack(f"<{array.ndim}q", *array.shape)
    if dtype == tf.string:
        for value in array.reshape(-1):  # bytes, from to_numpy
            out += struct.pack("<Q", len(value)) + value
    else:
        out += np.ascontiguousarray(array, dtype=np.dtype(dtype.as_numpy_dtype).newbyteorder("<")).tobytes()


def _unpack_tensor(data: memoryview, offset: int) -> tuple[np.ndarray, int]:
    dtype_enum, rank = struct.unpack_from("<II", data, offset)
    offset += 8
    shape = struct.unpack_from(f"<{rank}q", data, offset)
    offset += 8 * rank
    dtype = tf.dtypes.as_dtype(dtype_enum)
    count = int(np.prod(shape, dtype=np.int64))
    if dtype == tf.string:
        values = []
        for _ in range(count):
            (length,) = struct.unpack_from("<Q", data, offset)
            values.append(bytes(data[offset + 8:offset + 8 + length]))
            offset += 8 + length
        return np.array(values, dtype=object).reshape(shape), offset
    numpy_dtype = np.dtype(dtype.as_numpy_dtype).newbyteorder("<")
    array = np.frombuffer(data, numpy_dtype, count, offset).reshape(shape).copy()
    return array, offset + count * numpy_dtype.itemsize


def run(
    export_dir: str | os.PathLike,
    features: Mapping[str, Any],
    signatures: Sequence[str] | None = None,
    *,
    repeat: int = 0,
    config: Any = None,
    timeout: float = 300.0,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Run ``signatures`` (default: all) of an export in the C++ program.

    Args:
      export_dir: A version directory written by :func:`tfmtl.serving.export`.
      features: Raw feature arrays keyed by feature name.
      signatures: Signature names; default: all of them.
      repeat: Time each signature this many more times after the first run.
      config: A ``tf.compat.v1.ConfigProto`` for the session (default: TF's, as TF Serving's defaults).
      timeout: Seconds before the program is killed.

    Returns:
      ``({signature: {output key: array}}, {signature: in-session microseconds per repeat})``.

    Raises:
      ServingError: a signature failed in TensorFlow, with its status code (e.g. INVALID_ARGUMENT).

    Example:

    >>> import tempfile, numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(4,))
    >>> path = tfmtl.serving.export(model, tempfile.mkdtemp())
    >>> outputs, micros = tfmtl.serving.cpp.run(path, {"price": np.array([1.0, 2.0], np.float32)}, ["predict_click"],
    ...                                         repeat=5)
    >>> outputs["predict_click"]["click"].shape, len(micros["predict_click"])
    ((2,), 5)
    """
    import grpc

    from tfmtl.serving.errors import ServingError

    export_dir = pathlib.Path(export_dir).resolve()
    signature_defs = _serve_meta_graph(export_dir).signature_def
    names = list(signatures) if signatures else sorted(k for k in signature_defs if not k.startswith("__"))
    default = signature_defs.get("serving_default")
    raw = signature_io(default)["inputs"] if default is not None else {}
    request = bytearray(b"TFMTLRQ1" + struct.pack("<I", len(names)))
    outputs: dict[str, list[str]] = {}
    for name in names:
        if name not in signature_defs:
            raise ValueError(f'Serving signature key "{name}" not found; have: {sorted(signature_defs)}')
        signature = signature_defs[name]
        columns = _columns(signature, name, features, raw)
        _pack(request, name)
        request += struct.pack("<I", len(columns))
        for key, array in columns.items():
            info = signature.inputs[key]
            _pack(request, info.name)
            dtype = tf.dtypes.as_dtype(info.dtype)
            _pack_tensor(request, to_numpy(array, dtype, feature=key, signature=name), dtype)
        outputs[name] = sorted(signature.outputs)
        request += struct.pack("<I", len(outputs[name]))
        for key in outputs[name]:
            _pack(request, signature.outputs[key].name)
    binary = build()
    with tempfile.TemporaryDirectory(prefix="tfmtl-cpp-") as tmp:
        request_path, output_path = pathlib.Path(tmp, "request"), pathlib.Path(tmp, "output")
        request_path.write_bytes(bytes(request))
        command = [str(binary), str(export_dir), str(request_path), str(output_path)]
        if repeat:
            command += ["--repeat", str(int(repeat))]
        if config is not None:
            pathlib.Path(tmp, "config").write_bytes(config.SerializeToString())
            command += ["--config", str(pathlib.Path(tmp, "config"))]
        # The program's own error line is printed whatever the level; TF's logs (e.g. a failed
        # cuInit on a machine without GPU) stay out of the console unless asked for.
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0" if os.environ.get("TFMTL_SHOW_TF_LOGS") else "3"}
        completed = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout, env=env)
        if completed.returncode != 0:
            lines = completed.stderr.strip().splitlines()
            for line in reversed(lines if completed.returncode == 2 else []):
                code, _, message = line.partition(": ")
                if code.isupper() and hasattr(grpc.StatusCode, code):
                    raise ServingError(getattr(grpc.StatusCode, code), message)
            raise RuntimeError(f"the C++ check of {export_dir} failed:\n" + "\n".join(lines[-15:]))
        data = memoryview(output_path.read_bytes())
    if bytes(data[:8]) != b"TFMTLRS1":
        raise RuntimeError(f"the C++ check of {export_dir} wrote no valid output")
    results: dict[str, dict[str, np.ndarray]] = {}
    offset = 8
    for name in names:
        for key in outputs[name]:
            results.setdefault(name, {})[key], offset = _unpack_tensor(data, offset)
    latencies = {}
    for line in completed.stdout.splitlines():
        if line.startswith("latency_us "):
            _, name, *values = line.split(" ")
            latencies[name] = np.array(values, dtype=np.float64)
    return results, latencies


if __name__ == "__main__":
    print(build())
