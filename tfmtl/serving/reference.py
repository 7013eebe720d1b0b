"""Call an export in a fresh Python process that imports only TensorFlow."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
from typing import Mapping, Sequence

import numpy as np

_SCRIPT = pathlib.Path(__file__).with_name("standalone_predict.py")


def _portable(value: object) -> np.ndarray:
    # .npz without pickle holds no object arrays: store string ids as unicode.
    array = np.asarray(value)
    if array.dtype == object:
        array = np.asarray([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array.reshape(-1)])
        array = array.reshape(np.shape(value))
    return array


def predict_in_fresh_process(
    export_dir: str | os.PathLike,
    features: Mapping[str, np.ndarray],
    signatures: Sequence[str] | None = None,
    *,
    mode: str = "session",
    timeout: float = 300.0,
) -> dict[str, dict[str, np.ndarray]]:
    """Run ``signatures`` of a SavedModel in a new process without tfmtl or tf_keras.

    ``mode="session"`` follows TF Serving's own path (TF1 Session over the
    SignatureDef tensor names) from Python; ``mode="function"`` uses
    ``tf.saved_model.load``; ``mode="cpp"`` runs TensorFlow's C SavedModel loader
    and Session in a program without Python (:mod:`tfmtl.serving.cpp`, compiled
    on first use; needs a C++ compiler).

    Args:
      export_dir: A version directory written by :func:`tfmtl.serving.export`.
      features: Raw feature arrays keyed by feature name (strings, ints, floats).
      signatures: Signature names; default: all of them.
      mode: ``"session"``, ``"function"`` or ``"cpp"``.
      timeout: Seconds before the child process is killed.

    Returns:
      ``{signature: {output key: array}}``.

    Example:

    >>> import tempfile, numpy as np, tfmtl
    >>> schema = tfmtl.Schema([tfmtl.Numeric("price", mean=0.0, variance=1.0)])
    >>> model = tfmtl.models.shared_bottom(schema, [tfmtl.Task.binary("click")], bottom_units=(4,))
    >>> path = tfmtl.serving.export(model, tempfile.mkdtemp())
    >>> out = tfmtl.serving.predict_in_fresh_process(path, {"price": np.array([1.0], np.float32)})
    >>> sorted(out)
    ['classify_click', 'predict_click', 'predict_examples', 'serving_default']
    """
    if mode not in ("session", "function", "cpp"):
        raise ValueError(f"mode must be 'session', 'function' or 'cpp', got {mode!r}")
    if mode == "cpp":
        from tfmtl.serving import cpp

        return cpp.run(export_dir, features, signatures, timeout=timeout)[0]
    export_dir = pathlib.Path(export_dir).resolve()
    env = {key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}
    with tempfile.TemporaryDirectory(prefix="tfmtl-predict-") as tmp:
        inputs_path = pathlib.Path(tmp, "inputs.npz")
        outputs_path = pathlib.Path(tmp, "outputs.npz")
        np.savez(inputs_path, **{name: _portable(value) for name, value in features.items()})
        command = [sys.executable, "-P", str(_SCRIPT), str(export_dir), str(inputs_path), str(outputs_path), "--mode", mode]
        for name in signatures or ():
            command += ["--signature", name]
        completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=tmp)
        if completed.returncode != 0:
            tail = "\n".join(completed.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"serving the export at {export_dir} in a fresh process failed:\n{tail}")
        results: dict[str, dict[str, np.ndarray]] = {}
        with np.load(outputs_path, allow_pickle=False) as data:
            for key in data.files:
                signature, output = key.split("/", 1)
                results.setdefault(signature, {})[output] = data[key]
    return results
