"""compile(jit_compile=True): the trainable stage's step under XLA trains as the plain step does."""

import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras, tf

STEPS = 20

ARCHITECTURES = {
    "shared_bottom": lambda s, t: tfmtl.models.shared_bottom(s, t, bottom_units=(16,)),
    "mmoe": lambda s, t: tfmtl.models.mmoe(s, t, num_experts=3, expert_units=(8,)),
    "omoe": lambda s, t: tfmtl.models.omoe(s, t, num_experts=3, expert_units=(8,)),
    "cgc": lambda s, t: tfmtl.models.cgc(s, t, expert_units=(8,)),
    "ple": lambda s, t: tfmtl.models.ple(s, t, expert_units=(8,)),
    "esmm": lambda s, t: tfmtl.models.esmm(s, t),
    "aitm": lambda s, t: tfmtl.models.aitm(s, t, tower_units=8),
}
BALANCERS = {
    "fixed": tfmtl.balancing.FixedWeights,
    "uncertainty": tfmtl.balancing.UncertaintyWeighting,
    "dwa": tfmtl.balancing.DynamicWeightAverage,
    "rlw": tfmtl.balancing.RandomLossWeighting,
    "gls": tfmtl.balancing.GeometricLossStrategy,
    "imtl_l": tfmtl.balancing.IMTLL,
    "stch": lambda: tfmtl.balancing.SmoothTchebycheff(warmup_epochs=0),  # train_on_batch ends no epoch: warm-up
    "famo": tfmtl.balancing.FAMO,
    "gradnorm": tfmtl.balancing.GradNorm,
    "pcgrad": tfmtl.balancing.PCGrad,
}
CASES = [(name, "fixed") for name in ARCHITECTURES] + [("mmoe", name) for name in BALANCERS if name != "fixed"]


@pytest.fixture(scope="module")
def data():
    data = tfmtl.data.synthetic_recsys(STEPS * 64, seed=5)
    return tfmtl.data.MultiTaskData(data.features, data.labels, data.schema.adapt(data.features), data.tasks)


def _losses(data, architecture, balancer, jit):
    keras.utils.set_random_seed(3)
    model = ARCHITECTURES[architecture](data.schema, data.tasks)
    model.compile(jit_compile=jit, balancer=BALANCERS[balancer]())
    losses = []
    for features, labels in data.to_dataset(64).take(STEPS):
        losses.append(model.train_on_batch(features, labels, return_dict=True)["loss"])
    return np.array(losses), model


@pytest.mark.slow
@pytest.mark.parametrize("architecture, balancer", CASES)
def test_xla_step_trains_as_the_plain_step(data, architecture, balancer):
    plain, _ = _losses(data, architecture, balancer, jit=False)
    compiled, _ = _losses(data, architecture, balancer, jit=True)
    assert np.all(np.isfinite(plain)) and plain[-1] != plain[0]  # it trained
    np.testing.assert_allclose(compiled, plain, rtol=1e-4, atol=1e-4)


def _op_types(graph_def):
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes += list(function.node_def)
    return nodes


def test_the_compiled_part_has_no_lookup_hash_or_string_op(data):
    model = tfmtl.models.mmoe(data.schema, data.tasks, num_experts=2, expert_units=(4,))
    model.compile(jit_compile=True)
    features, labels = next(iter(data.to_dataset(32, preprocess=False)))
    x, clean, weights = model.objective.prepare((features, labels))
    preprocessed = model.preprocess(x)
    graph = model._step.get_concrete_function(preprocessed, clean, weights).graph
    nodes = _op_types(graph.as_graph_def())
    forbidden = {"LookupTableFindV2", "LookupTableFind", "StringToHashBucketFast", "StringToHashBucketStrong",
                 "StringToHashBucket", "HashTableV2", "MutableHashTableV2"}
    found = sorted({node.op for node in nodes} & forbidden)
    assert not found, f"lookup/hash ops in the XLA-compiled step: {found}"
    strings = sorted({
        op.name for op in graph.get_operations() for tensor in op.outputs if tensor.dtype == tf.string
    })
    assert not strings, f"string tensors in the XLA-compiled step: {strings[:5]}"
    assert any(node.op in ("ResourceGather", "GatherV2") for node in nodes), (
        "the compiled step should hold the embedding lookups (gathers)"
    )
    # ... while the whole model, raw inputs in, does hold the lookups (preprocessing stage).
    whole = tf.function(lambda f: model(f)).get_concrete_function(
        {name: tf.TensorSpec([None, *spec.shape[1:]], spec.dtype) for name, spec in data.schema.input_specs().items()}
    )
    assert any(node.op == "LookupTableFindV2" for node in _op_types(whole.graph.as_graph_def()))
