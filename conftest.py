"""Root pytest configuration: what doctest collection must not import."""

# Scripts run in a TensorFlow-only process; importing it here would undo the Keras-2 setup.
collect_ignore = ["tfmtl/serving/standalone_predict.py", "tfmtl/serving/standalone_audit.py"]

import os

os.environ.setdefault("MPLBACKEND", "Agg")  # doctests that plot render off-screen
