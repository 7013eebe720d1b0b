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


def _serialized_examples(inputs, dtypes):
    """Serialize raw feature columns as tf.Examples, for signatures keyed ``inputs``.

    A 1-D column gives one value per Example, a 2-D column (padded sequence, vector) one list per row.
    """
    rows = len(next(iter(inputs.values())))
    serialized = []
    for row in range(rows):
        feature = {}
        for key, values in inputs.items():
            value, dtype = np.asarray(values[row]).reshape(-1).tolist(), dtypes.get(key)
            if dtype == tf.string or (value and isinstance(value[0], (bytes, str))):
                raw = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in value]
                feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=raw))
            elif dtype is not None and dtype.is_integer:
                feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in value]))
            else:
                feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in value]))
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        serialized.append(example.SerializeToString())
    return np.array(serialized, dtype=object)


def _feeds(signature_inputs, inputs, raw_dtypes, name):
    """Feature columns for a signature: raw features, or serialized Examples under ``inputs``."""
    keys = set(signature_inputs)
    if keys == {"inputs"} and "inputs" not in inputs:
        return {"inputs": _serialized_examples(inputs, raw_dtypes)}
    missing = sorted(keys - set(inputs))
    if missing:
        raise SystemExit(f"signature {name!r}: missing inputs {missing}")
    return {key: _feed_value(inputs[key]) for key in keys}


def run_session(export_dir, inputs, signatures):
    results = {}
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], export_dir)
        signature_defs = meta_graph.signature_def
        default = signature_defs.get("serving_default")
        raw_dtypes = {k: tf.dtypes.as_dtype(v.dtype) for k, v in default.inputs.items()} if default else {}
        for name in signatures or [key for key in signature_defs if not key.startswith("__")]:
            if name not in signature_defs:
                raise SystemExit(f'Serving signature key "{name}" not found; have: {sorted(signature_defs)}')
            signature = signature_defs[name]
            columns = _feeds(signature.inputs, inputs, raw_dtypes, name)
            feed = {signature.inputs[key].name: value for key, value in columns.items()}
            keys = sorted(signature.outputs)
            values = session.run([signature.outputs[key].name for key in keys], feed_dict=feed)
            for key, value in zip(keys, values):
                results[f"{name}/{key}"] = value
    return results


def run_function(export_dir, inputs, signatures):
    loaded = tf.saved_model.load(export_dir)
    results = {}
    default = loaded.signatures.get("serving_default")
    raw_dtypes = {k: s.dtype for k, s in default.structured_input_signature[1].items()} if default else {}
    for name in signatures or list(loaded.signatures):
        if name not in loaded.signatures:
            raise SystemExit(f'Serving signature key "{name}" not found; have: {sorted(loaded.signatures)}')
        function = loaded.signatures[name]
        _, kwargs = function.structured_input_signature
        columns = _feeds(kwargs, inputs, raw_dtypes, name)
        feed = {key: tf.constant(columns[key], dtype=spec.dtype) for key, spec in kwargs.items()}
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
    # String outputs (e.g. Classify's classes) as fixed-width bytes: .npz holds no object arrays.
    np.savez(args.outputs, **{k: v.astype(bytes) if v.dtype == object else v for k, v in results.items()})


if __name__ == "__main__":
    main()
