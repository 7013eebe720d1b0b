"""Run an exported SavedModel the way TF Serving does, importing only TensorFlow.

Run as a script (never imported by tfmtl), in a fresh process:

    python standalone_predict.py EXPORT_DIR INPUTS.npz OUTPUTS.npz [--signature NAME ...]
        [--mode session|function]

``session`` (default) is TF Serving's path: load the MetaGraph tagged ``serve``
into a TF1 Session (which runs ``__saved_model_init_op`` to fill lookup tables)
and ``Session.run`` the SignatureDef's tensor names. ``function`` calls
``tf.saved_model.load(dir).signatures[name]`` instead. Outputs are written as
``<signature>/<output key>`` arrays; the script fails if tfmtl or tf_keras got
imported.
"""

import argparse
import os
import sys

os.environ.pop("TF_USE_LEGACY_KERAS", None)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def _feed_value(array):
    if array.dtype.kind == "U":
        return np.char.encode(array, "utf-8").astype(object)
    return array


def run_session(export_dir, inputs, signatures):
    results = {}
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], export_dir)
        signature_defs = meta_graph.signature_def
        for name in signatures or [key for key in signature_defs if not key.startswith("__")]:
            if name not in signature_defs:
                raise SystemExit(f'Serving signature key "{name}" not found; have: {sorted(signature_defs)}')
            signature = signature_defs[name]
            missing = sorted(set(signature.inputs) - set(inputs))
            if missing:
                raise SystemExit(f"signature {name!r}: missing inputs {missing}")
            feed = {signature.inputs[key].name: _feed_value(inputs[key]) for key in signature.inputs}
            keys = sorted(signature.outputs)
            values = session.run([signature.outputs[key].name for key in keys], feed_dict=feed)
            for key, value in zip(keys, values):
                results[f"{name}/{key}"] = value
    return results


def run_function(export_dir, inputs, signatures):
    loaded = tf.saved_model.load(export_dir)
    results = {}
    for name in signatures or list(loaded.signatures):
        function = loaded.signatures[name]
        _, kwargs = function.structured_input_signature
        feed = {key: tf.constant(_feed_value(inputs[key]), dtype=spec.dtype) for key, spec in kwargs.items()}
        for key, value in function(**feed).items():
            results[f"{name}/{key}"] = value.numpy()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export_dir")
    parser.add_argument("inputs")
    parser.add_argument("outputs")
    parser.add_argument("--signature", action="append", default=None)
    parser.add_argument("--mode", choices=("session", "function"), default="session")
    args = parser.parse_args(argv)
    with np.load(args.inputs, allow_pickle=False) as data:
        inputs = {key: data[key] for key in data.files}
    runner = run_session if args.mode == "session" else run_function
    results = runner(args.export_dir, inputs, args.signature)
    leaked = sorted(name for name in ("tfmtl", "tf_keras", "tensorflow_recommenders") if name in sys.modules)
    if leaked:
        raise SystemExit(f"the serving check imported {leaked}; an export must load with TensorFlow alone")
    np.savez(args.outputs, **results)


if __name__ == "__main__":
    main()
