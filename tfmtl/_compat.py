"""The one module that imports TensorFlow, Keras 2 (``tf_keras``) and TFRS.

TensorFlow Recommenders needs Keras 2. TensorFlow >= 2.16 gives Keras 3 as
``tf.keras`` unless ``TF_USE_LEGACY_KERAS=1`` is set before ``tf.keras`` is first
resolved, so this module sets it before importing TensorFlow and then checks that
it took effect. Every other tfmtl module imports ``tf``, ``keras`` and ``tfrs``
from here.
"""

from __future__ import annotations

import os
import sys

_LEGACY_KERAS_ENV = "TF_USE_LEGACY_KERAS"


def _keras_version(tf_module) -> str:
    # Keras 3 has ``keras.version()``; tf.keras from tf_keras (Keras 2) has none.
    version_fn = getattr(tf_module.keras, "version", None)
    return str(version_fn()) if version_fn is not None else "2 (tf_keras)"


def _import_tensorflow():
    already_imported = "tensorflow" in sys.modules
    os.environ[_LEGACY_KERAS_ENV] = "1"
    import tensorflow as tf_module

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

import tf_keras as keras  # noqa: E402  (must follow the environment setup above)
import tensorflow_recommenders as tfrs  # noqa: E402

__all__ = ["tf", "keras", "tfrs"]
