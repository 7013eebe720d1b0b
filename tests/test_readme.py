"""README.md runs as written: its Python blocks, in order, in one fresh process (as a notebook would)."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


@pytest.mark.slow
def test_every_python_block_of_the_readme_runs_as_written(tmp_path):
    blocks = _blocks("python")
    assert len(blocks) >= 2
    script = tmp_path / "readme.py"
    script.write_text("\n".join(blocks))
    env = {**os.environ, "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=900)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert "'click/auc'" in done.stdout and "'click/gauc'" in done.stdout  # the evaluate() print
    assert "{1: 'AVAILABLE'}" in done.stdout  # the labelled version's status
    assert (tmp_path / "export" / "mymodel" / "1" / "saved_model.pb").exists()


def test_shell_commands_use_the_venv_and_examples_have_no_elisions():
    for block in _blocks("bash"):
        for line in block.splitlines():
            command = line.split("#")[0].strip()
            assert not re.match(r"^(python3? |tfmtl |pip |pytest)", command) or command.startswith("python3 -m venv"), (
                f"README runs {command!r} outside the venv: write .venv/bin/..."
            )
            assert "..." not in command, f"README's command {command!r} holds an elision"


def test_ci_runs_the_readme_test_command_verbatim():
    commands = [line for block in _blocks("bash") for line in block.splitlines() if "-m pytest" in line]
    assert len(commands) == 1, commands
    ci = (README.parent / ".ci" / "run").read_text().splitlines()
    assert commands[0].strip() in [line.strip() for line in ci], (commands[0], ".ci/run")
