"""The one module that imports TensorFlow, Keras 2 (``tf_keras``) and TFRS.

TensorFlow Recommenders needs Keras 2. TensorFlow >= 2.16 gives Keras 3 as
``tf.keras`` unless ``TF_USE_LEGACY_KERAS=1`` is set before ``tf.keras`` is first
resolved, so ``tfmtl/__init__.py`` sets it (this module always loads after it) and
this module checks that it took effect. Every other tfmtl module imports ``tf``,
``keras`` and ``tfrs`` from here.

It also keeps TensorFlow's C++ start-up noise off the console: ``TF_CPP_MIN_LOG_LEVEL``
is 2 (errors only; set in ``tfmtl/__init__.py`` unless the user set it), and the lines
TensorFlow's native code prints to stderr while it loads and looks for a GPU (absl's "log messages
before absl::InitializeLog()", oneDNN and CUDA-driver notices, "failed call to cuInit"
on a machine without a GPU, CPU-instruction hints) are dropped; any other line is
passed on (see :mod:`tfmtl._quiet`, which also quiets a plain ``import tensorflow`` made after
``import tfmtl``). ``TFMTL_SHOW_TF_LOGS=1`` shows everything.
"""

from __future__ import annotations

import sys

from tfmtl._quiet import load_tensorflow_quietly, quiet_native_stderr

_LEGACY_KERAS_ENV = "TF_USE_LEGACY_KERAS"


def _keras_version(tf_module) -> str:
    # Keras 3 has ``keras.version()``; tf.keras from tf_keras (Keras 2) has none.
    version_fn = getattr(tf_module.keras, "version", None)
    return str(version_fn()) if version_fn is not None else "2 (tf_keras)"


def _import_tensorflow():
    already_imported = "tensorflow" in sys.modules
    # TF_USE_LEGACY_KERAS and TF_CPP_MIN_LOG_LEVEL are set by tfmtl/__init__.py, which runs first.
    tf_module = load_tensorflow_quietly()  # the GPU probe ("cuInit") logs now, not at the first op

    version = _keras_version(tf_module)
    if not version.startswith("2"):
        where = (
            "TensorFlow was imported (and tf.keras resolved to Keras "
            f"{version}) before tfmtl"
            if already_imported
            else f"tf.keras resolved to Keras {version}"
        )
        raise ImportError(
            f"tfmtl needs Keras 2 (tf_keras) as tf.keras, but {where}. "
            "Import tfmtl before TensorFlow or Keras in a fresh Python process "
            "(or restart the notebook kernel), or set the environment variable "
            f"{_LEGACY_KERAS_ENV}=1 before Python starts."
        )
    return tf_module


tf = _import_tensorflow()

with quiet_native_stderr():
    import tf_keras as keras  # noqa: E402  (must follow the environment setup above)
    import tensorflow_recommenders as tfrs  # noqa: E402

__all__ = ["tf", "keras", "tfrs"]
