"""Audit a SavedModel's ops and signature tensors in a process that imports only TensorFlow.

Run as a script (never imported by tfmtl):

    python standalone_audit.py EXPORT_DIR

Prints one JSON object: every op type the graph and its function library use,
those not registered in this TensorFlow-only process (custom ops such as
``Scann>...`` a stock TF Serving cannot run), Python-callback ops (their kernels
live in TF's Python runtime), and signature tensors that are not plain dense
tensors (ragged/sparse/composite encodings TF Serving cannot feed or fetch).
"""

import json
import os
import sys

os.environ.pop("TF_USE_LEGACY_KERAS", None)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402,F401  (registers the core ops)
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402
from tensorflow.python.framework import op_def_registry  # noqa: E402

PYTHON_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


def audit(export_dir):
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as handle:
        saved_model.ParseFromString(handle.read())
    ops, bad_tensors = set(), []
    for meta_graph in saved_model.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
        for name, signature in meta_graph.signature_def.items():
            if name.startswith("__"):
                continue
            for side, tensors in (("input", signature.inputs), ("output", signature.outputs)):
                for key, info in tensors.items():
                    if info.WhichOneof("encoding") != "name" or info.dtype == 0:
                        bad_tensors.append(f"{name}: {side} {key!r} is not a dense tensor")
    function_names = {f.signature.name for mg in saved_model.meta_graphs for f in mg.graph_def.library.function}
    ops -= function_names  # calls of library functions appear as node ops too
    return {
        "ops": sorted(ops),
        "unregistered": sorted(op for op in ops if op_def_registry.get(op) is None),
        "python_ops": sorted(ops & PYTHON_OPS),
        "namespaced": sorted(op for op in ops if ">" in op),
        "non_dense_signature_tensors": bad_tensors,
        "imported": sorted(m for m in ("tfmtl", "tf_keras", "tensorflow_recommenders") if m in sys.modules),
    }


if __name__ == "__main__":
    print(json.dumps(audit(sys.argv[1])))
