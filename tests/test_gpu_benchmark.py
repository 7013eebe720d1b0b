"""benchmarks/gpu.py --cpu-smoke: every configuration is measured (or its error recorded) and reported."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"
BATCHES = (256, 512)
PRECISIONS = ("float32", "mixed_float16")


@pytest.mark.slow
def test_cpu_smoke_measures_every_configuration_and_writes_json_and_markdown(tmp_path):
    out_json, out_md = tmp_path / "gpu.json", tmp_path / "gpu.md"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--cpu-smoke", "--out-json", str(out_json), "--out-md", str(out_md)],
        capture_output=True, text=True, timeout=240, cwd=SCRIPT.parents[1],
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    result = json.loads(out_json.read_text())

    expected = {(batch, precision, xla) for batch in BATCHES for precision in PRECISIONS for xla in (False, True)}
    rows = result["configurations"]
    assert len(rows) == len(expected)
    assert {(row["batch"], row["precision"], row["xla"]) for row in rows} == expected
    for row in rows:
        if row["error"] is None:
            assert row["examples_per_s"] > 0 and row["ms_per_step"] > 0, row
            assert row["steps_per_epoch"] >= 16 and row["optimizer"], row
        else:  # allowed only where CPU XLA cannot compile the float16 step
            assert (row["precision"], row["xla"]) == ("mixed_float16", True), row
            assert isinstance(row["error"], str) and row["error"] and row["examples_per_s"] is None, row
    assert all(row["error"] is None for row in rows if row["precision"] == "float32")
    assert result["tensorflow"] and result["device"]["gpu"] is False
    assert result["placement"]["status"] == "no GPU"
    assert result["placement"]["parser_check"]["train_function_nodes"] > 0

    # One progress line per configuration on the console.
    assert sum(line.startswith("[") and f"/{len(expected)}]" in line for line in done.stdout.splitlines()) == 8

    table = [line for line in out_md.read_text().splitlines() if line.startswith("| ")]
    assert table[0].startswith("| batch | precision | XLA | train examples/s | ms/step | error |")
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[1:]]
    assert {(int(c[0]), c[1], c[2] == "on") for c in cells} == expected and len(cells) == len(expected)
    for c in cells:
        row = next(r for r in rows if (r["batch"], r["precision"], r["xla"]) == (int(c[0]), c[1], c[2] == "on"))
        assert (c[3] == "-") == (row["error"] is not None)
