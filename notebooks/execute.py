"""Execute the notebooks at full size and store their outputs (what readers on GitHub see).

    python notebooks/execute.py                       # every notebook
    python notebooks/execute.py 01_quickstart.ipynb   # some of them

Each runs in a temporary folder (its exports go there, not into the repository). The
startup lines TensorFlow's C++ runtime writes to stderr before its log level applies
(``I0000 ... oneDNN``, ``cuInit``) are dropped from the stored outputs. A notebook with an
error output is not written.
"""

from __future__ import annotations

import os
import pathlib
import re
import sys
import tempfile
import time

import nbformat
from nbclient import NotebookClient

HERE = pathlib.Path(__file__).resolve().parent
_STARTUP_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IWE]0000 \d).*\n?", re.M)


def _without_startup_noise(notebook: nbformat.NotebookNode) -> None:
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.outputs:
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                output["text"] = _STARTUP_NOISE.sub("", output["text"])
                if not output["text"]:
                    continue
            outputs.append(output)
        cell.outputs = outputs


def execute(path: pathlib.Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    os.environ.pop("TFMTL_NOTEBOOK_ROWS", None)  # full size
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        client = NotebookClient(notebook, timeout=3600, kernel_name="python3", resources={"metadata": {"path": folder}})
        client.execute()
    errors = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs
              if out.get("output_type") == "error"]
    if errors:
        raise RuntimeError(f"{path.name}: {len(errors)} error output(s); not written")
    _without_startup_noise(notebook)
    nbformat.write(notebook, path)
    print(f"{path.name}: executed in {time.perf_counter() - started:.0f} s", flush=True)


def main() -> None:
    names = sys.argv[1:]
    paths = [HERE / name for name in names] if names else sorted(HERE.glob("*.ipynb"))
    for path in paths:
        execute(path)


if __name__ == "__main__":
    main()
