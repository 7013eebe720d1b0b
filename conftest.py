"""Root pytest configuration: what doctest collection must not import."""

# Scripts run in a TensorFlow-only process; importing it here would undo the Keras-2 setup.
collect_ignore = ["tfmtl/serving/standalone_predict.py", "tfmtl/serving/standalone_audit.py"]

import os

os.environ.setdefault("MPLBACKEND", "Agg")  # doctests that plot render off-screen


def pytest_collection_modifyitems(config, items):
    """Files with the most ``slow`` tests run first; the C++ check's doctests need a compiler.

    The README's test command spreads whole files over two processes (``-n 2 --dist loadfile``): started
    first, the long files (notebooks, the parameter-server cluster) end before the short ones, instead of
    one of them starting last and running alone. The order of the tests within a file is kept.
    """
    import collections

    def file(item) -> str:
        return item.nodeid.split("::")[0]

    slow = collections.Counter(file(item) for item in items if item.get_closest_marker("slow"))
    rank = {path: index for index, path in enumerate(dict.fromkeys(file(item) for item in items))}
    items.sort(key=lambda item: (-slow[file(item)], rank[file(item)]))

    from tfmtl.serving.cpp import compiler

    if compiler() is None:
        import pytest

        skip = pytest.mark.skip(reason="no C++ compiler (c++, g++ or clang++) to build the C++ check")
        for item in items:
            if item.nodeid.startswith("tfmtl/serving/cpp.py::"):
                item.add_marker(skip)
