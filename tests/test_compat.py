"""The Keras-2 guard, and the rule that one module owns the TF/Keras/TFRS imports."""

import enum
import os
import pathlib
import re
import subprocess
import sys

import pytest

import tfmtl

PACKAGE = pathlib.Path(tfmtl.__file__).parent


def _python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_importing_tfmtl_first_selects_keras_2_for_tf_keras():
    done = _python(
        "import os, tfmtl, tensorflow as tf, tf_keras\n"
        "assert os.environ['TF_USE_LEGACY_KERAS'] == '1'\n"
        "assert tf.keras.layers.Dense is tf_keras.layers.Dense\n"
        "print('ok')"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ok" in done.stdout


def test_tensorflow_imported_but_keras_not_yet_resolved_is_fine():
    done = _python("import tensorflow\nimport tfmtl\nprint('ok')")
    assert done.returncode == 0, done.stderr[-2000:]


def test_keras_3_already_in_use_gives_a_clear_import_error():
    done = _python("import tensorflow as tf\ntf.keras.layers.Dense\nimport tfmtl")
    assert done.returncode != 0
    assert "ImportError: tfmtl needs Keras 2 (tf_keras) as tf.keras" in done.stderr
    assert "Import tfmtl before TensorFlow" in done.stderr


def test_only_the_compat_module_imports_tensorflow_keras_or_tfrs():
    pattern = re.compile(r"^\s*(import|from)\s+(tensorflow|tf_keras|keras|tensorflow_recommenders)\b", re.M)
    scripts = set((PACKAGE / "serving").glob("standalone_*.py"))  # run in TensorFlow-only processes
    library = [p for p in PACKAGE.rglob("*.py") if p not in scripts]
    offenders = [str(p.relative_to(PACKAGE)) for p in library
                 if p.name not in ("_compat.py", "_quiet.py") and pattern.search(p.read_text())]
    assert offenders == []
    # _quiet loads TensorFlow itself (quietly, for _compat and for the user's own import), never Keras or TFRS
    assert {m.group(2) for m in pattern.finditer((PACKAGE / "_quiet.py").read_text())} == {"tensorflow"}
    assert "tensorflow.python" not in "".join(p.read_text() for p in library)


def test_importing_tfmtl_serving_loads_no_modelling_code():
    done = _python(
        "import sys, tfmtl.serving\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[:2] in (['tfmtl', 'models'], ['tfmtl', 'tasks'],"
        " ['tfmtl', 'features'], ['tfmtl', 'layers'], ['tfmtl', 'data'], ['tfmtl', 'demo']))\n"
        "print(loaded)"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_export_side_never_imports_the_online_side():
    # tfmtl/serving/*.py is what an export needs; tfmtl/serving/online/ (client, dev server) may use it, not the
    # reverse. The package's __init__ reaches Client/DevServer lazily, on first use.
    online = re.compile(r"tfmtl\.serving\.online|from\s+tfmtl\.serving\s+import\s+[^\n]*\bonline\b")
    export_side = [p for p in (PACKAGE / "serving").glob("*.py") if p.name != "__init__.py"]
    assert len(export_side) > 10
    assert [p.name for p in export_side if online.search(p.read_text())] == []
    done = _python(
        "import sys, tfmtl.serving, tfmtl.data\n"
        "assert callable(tfmtl.serving.export)\n"
        "print(sorted(m for m in sys.modules if m.startswith('tfmtl.serving.online')))\n"
        "tfmtl.serving.Client\n"
        "print('tfmtl.serving.online.server' in sys.modules)"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-2:] == ["[]", "True"]


def test_serving_never_imports_training_code():
    # At module level only tfmtl._compat and tfmtl.serving; inside functions also tfmtl.features, which the
    # export's table conversion reads (it runs on a model, so that code is loaded by then).
    top = re.compile(r"^(?:from|import)\s+tfmtl\.(\w+)", re.M)
    anywhere = re.compile(r"^\s*(?:from|import)\s+tfmtl\.(\w+)", re.M)
    sources = [p.read_text() for p in (PACKAGE / "serving").rglob("*.py")]
    assert {m for text in sources for m in top.findall(text)} <= {"_compat", "serving"}
    assert {m for text in sources for m in anywhere.findall(text)} <= {"_compat", "serving", "features"}


def test_every_public_callable_documents_an_example():
    missing = []
    modules = (tfmtl, tfmtl.features, tfmtl.tasks, tfmtl.layers, tfmtl.models, tfmtl.serving, tfmtl.data,
               tfmtl.balancing, tfmtl.objective, tfmtl.training)
    for module in modules:
        for name in module.__all__:
            obj = getattr(module, name)
            if callable(obj) and not isinstance(obj, enum.EnumMeta) and obj.__module__.startswith("tfmtl"):
                if ">>>" not in (obj.__doc__ or ""):
                    missing.append(f"{module.__name__}.{name}")
    assert missing == [], f"public API without an Example: {missing}"


def test_import_tfmtl_and_the_cli_help_load_no_tensorflow():
    done = _python(
        "import sys, contextlib, io, tfmtl.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):\n"
        "    tfmtl.cli.main(['--help'])\n"
        "assert 'serve' in out.getvalue() and 'train' in out.getvalue()\n"
        "print('tensorflow' in sys.modules, 'tf_keras' in sys.modules)"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False False"


@pytest.mark.parametrize("load", [
    "from tfmtl._compat import tf",
    "import tensorflow as tf",  # the user's own import, after tfmtl's
    "import tf_keras\nimport tensorflow as tf",
])
def test_the_console_stays_free_of_tensorflow_start_up_noise(load):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TFMTL_SHOW_TF_LOGS")}
    code = f"import tfmtl\n{load}\nprint(float(tf.constant(1.0) + 1), tfmtl.keras.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["2.0", "tf_keras"]
    assert done.stderr == ""


def test_the_quiet_import_runs_tensorflow_once_and_finding_it_loads_nothing():
    done = subprocess.run([sys.executable, "-v", "-c", "import tfmtl, tensorflow"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(re.findall(r"^import 'tensorflow' ", done.stderr, re.M)) == 1  # its __init__ executed once
    found = _python("import sys, importlib.util, tfmtl\n"
                    "print(importlib.util.find_spec('tensorflow') is not None, 'tensorflow' in sys.modules)")
    assert found.stdout.split() == ["True", "False"], found.stderr[-2000:]


def test_the_native_stderr_filter_drops_only_start_up_noise(capfd):
    from tfmtl._quiet import quiet_native_stderr

    with quiet_native_stderr():
        os.write(2, b"I0000 00:00:1795710336.638348    1435 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"E0000 00:00:1795710349.221968    1500 cuda_platform.cc:52] failed call to cuInit\n")
        os.write(2, b"a real problem\n")
    err = capfd.readouterr().err
    assert err == "a real problem\n"
