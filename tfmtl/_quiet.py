"""TensorFlow's C++ start-up noise kept off the console, with no TensorFlow import here.

:func:`quiet_native_stderr` filters file descriptor 2 while TensorFlow loads;
:func:`install_import_hook` (run by ``import tfmtl`` when TensorFlow is not loaded yet)
makes a user's own ``import tensorflow`` after ``import tfmtl`` load it through that
filter too, so ``import tfmtl; import tensorflow as tf`` is as quiet as tfmtl's own
first use of TensorFlow.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
from typing import Any, Iterator

#: Start-up lines of TensorFlow's native code that say nothing to a tfmtl user.
_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} \d\d:\d\d:\S+\s+\d+ \S+\.(cc|h):\d+\]"  # absl INFO/WARNING lines
    r"|E\d{4} .*failed call to cuInit"  # no GPU or driver on this machine (other CUDA errors are shown)
    r"|To enable the following instructions|This TensorFlow binary is optimized)"
)


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Capture file descriptor 2 (where C++ logs go) and re-emit it without TensorFlow's start-up noise."""
    if os.environ.get("TFMTL_SHOW_TF_LOGS"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line for line in captured.read().decode("utf-8", "replace").splitlines()
                if line.strip() and not _NOISE.search(line)
            ]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def load_tensorflow_quietly() -> Any:
    """Import TensorFlow and probe its devices (the GPU probe logs "cuInit" then), filtered."""
    uninstall_import_hook()
    with quiet_native_stderr():
        import tensorflow as tf_module

        tf_module.config.list_physical_devices()
    return tf_module


class _QuietLoader(importlib.abc.Loader):
    """TensorFlow's own loader, run through :func:`quiet_native_stderr` (and then the device probe)."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        uninstall_import_hook()
        with quiet_native_stderr():
            self._loader.exec_module(module)
            module.config.list_physical_devices()

    def __getattr__(self, name: str) -> Any:  # resource readers and the like: TensorFlow's loader's
        return getattr(self._loader, name)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as the other finders do, and hands it :class:`_QuietLoader`.

    Finding loads nothing (``importlib.util.find_spec("tensorflow")`` stays cheap); the first
    import executes TensorFlow once, filtered.
    """

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "tensorflow":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and not isinstance(spec.loader, _QuietLoader):
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


def install_import_hook() -> None:
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


def uninstall_import_hook() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _QuietTensorFlowImport)]
