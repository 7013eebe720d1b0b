"""Root pytest configuration: what doctest collection must not import."""

# Scripts run in a TensorFlow-only process; importing it here would undo the Keras-2 setup.
collect_ignore = ["tfmtl/serving/standalone_predict.py", "tfmtl/serving/standalone_audit.py"]

import os

os.environ.setdefault("MPLBACKEND", "Agg")  # doctests that plot render off-screen


def pytest_collection_modifyitems(config, items):
    """The C++ check's doctests need a compiler, as its tests do (tests/conftest.py's ``cxx`` fixture)."""
    from tfmtl.serving.cpp import compiler

    if compiler() is None:
        import pytest

        skip = pytest.mark.skip(reason="no C++ compiler (c++, g++ or clang++) to build the C++ check")
        for item in items:
            if item.nodeid.startswith("tfmtl/serving/cpp.py::"):
                item.add_marker(skip)
