import numpy as np
import pytest

import tfmtl
from tfmtl._compat import keras, tf
from tfmtl.layers import HierarchyOfExperts

from test_normalized_experts import bank, randomize, sigmoid  # the expert bank's numpy oracle

GROUPS = {"g1": ["a", "b"], "g2": ["c"]}


def softmax(v):
    e = np.exp(v - v.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def mix(weights, experts):
    return np.einsum("be,beh->bh", weights, experts)


def self_gated(dense, x, experts):
    logits = x @ dense.kernel.numpy() + dense.bias.numpy()
    weights = sigmoid(logits) if logits.shape[-1] == 1 else softmax(logits)
    return mix(weights, experts)


def oracle(layer, v):
    """The HierarchyOfExperts equations in numpy, weights read from ``layer`` (inference mode)."""
    S, G, K = layer.num_shared_experts, layer.num_group_experts, layer.num_task_experts
    cat = lambda parts: np.concatenate([p for p in parts if p is not None], axis=1)  # noqa: E731
    m_sh = bank(layer.meta_shared_experts, v) if S else None
    m = {c: bank(layer.meta_group_experts[c], v) if G else None for c in GROUPS}
    z = {}
    for c in GROUPS:
        z[c] = mix(softmax(v @ layer.meta_gates[c].kernel.numpy()), cat([m[c], m_sh]))
        if layer.self_gate and G:
            z[c] = z[c] + self_gated(layer.meta_self_gates[c], v, m[c])
    z_sh = mix(softmax(v @ layer.meta_shared_gate.kernel.numpy()), cat([m["g1"], m["g2"], m_sh])) if S else None
    x_sh = bank(layer.shared_experts, z_sh) if S else None
    x_g = {c: bank(layer.group_experts[c], z[c]) if G else None for c in GROUPS}
    out = {}
    for c, tasks in GROUPS.items():
        for t in tasks:
            own = bank(layer.task_experts[t], z[c]) if K else None
            out[t] = mix(softmax(z[c] @ layer.task_gates[t].kernel.numpy()), cat([own, x_g[c], x_sh]))
            if layer.self_gate and K:
                out[t] = out[t] + self_gated(layer.task_self_gates[t], z[c], own)
    return out


@pytest.mark.parametrize(
    "S, G, K, rank, self_gate, units",
    [
        (1, 1, 2, 2, True, (3,)),  # sigmoid self gate at level 1, softmax at level 2
        (2, 2, 1, 3, True, (5, 3)),  # two-layer experts: BN + swish after each layer
        (0, 2, 0, 0, False, (3,)),  # no shared branch, no task experts, no feature gates
    ],
)
def test_hierarchy_of_experts_matches_a_numpy_oracle_in_inference_mode(S, G, K, rank, self_gate, units):
    v = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    layer = HierarchyOfExperts(GROUPS, num_shared_experts=S, num_group_experts=G, num_task_experts=K,
                               expert_units=units, feature_gate_rank=rank, self_gate=self_gate)
    layer(v)
    randomize(layer, seed=S + 10 * G + 100 * K)
    got, expected = layer(v, training=False), oracle(layer, v)
    assert list(got) == ["a", "b", "c"]
    for task in expected:
        np.testing.assert_allclose(got[task].numpy(), expected[task], rtol=1e-4, atol=1e-5)


def test_the_hierarchy_mask_holds_for_gradients():
    v = tf.constant(np.random.default_rng(1).normal(size=(6, 4)), tf.float32)
    layer = HierarchyOfExperts(GROUPS, num_shared_experts=1, num_group_experts=1, num_task_experts=1,
                               expert_units=(3,), feature_gate_rank=2)
    layer(v)
    randomize(layer, seed=2)  # non-zero feature-gate B, so A gets gradients too

    def grads(task, sublayer):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(v, training=True)[task])
        return [g.numpy() for g in tape.gradient(loss, sublayer.trainable_weights,
                                                 unconnected_gradients=tf.UnconnectedGradients.ZERO)]

    def reaches(task, sublayer):
        return any(np.abs(g).max() > 0 for g in grads(task, sublayer))

    # task c (group g2) never sees group g1's level-2 experts or gates, nor tasks a/b's experts and gates
    for other in (layer.group_experts["g1"], layer.task_experts["a"], layer.task_experts["b"],
                  layer.task_gates["a"], layer.meta_gates["g1"], layer.meta_self_gates["g1"]):
        assert not reaches("c", other), other.name
    # task a never sees task b's experts or gates, nor group g2's level-2 experts and gates
    for other in (layer.task_experts["b"], layer.task_gates["b"], layer.task_self_gates["b"],
                  layer.group_experts["g2"], layer.meta_gates["g2"]):
        assert not reaches("a", other), other.name
    # what c does see: its own, its group's and the shared experts, and (through the shared gate) g1's meta experts
    for seen in (layer.task_experts["c"], layer.task_self_gates["c"], layer.group_experts["g2"],
                 layer.shared_experts, layer.meta_shared_experts, layer.meta_group_experts["g1"]):
        assert reaches("c", seen), seen.name


def test_regularizers_reach_every_kernel_and_bias():
    layer = HierarchyOfExperts(GROUPS, expert_units=(3,), feature_gate_rank=2, kernel_regularizer="l2",
                               bias_regularizer="l1", bias_initializer="ones")
    layer(np.ones([2, 4], np.float32))
    experts = layer.task_experts["a"]
    assert len(experts.losses) == 4  # feature gate A, B, kernel, BN beta
    np.testing.assert_array_equal(experts.batch_norms[0].beta.numpy(), np.ones([1, 1, 3]))
    np.testing.assert_array_equal(layer.task_self_gates["a"].bias.numpy(), np.ones([1]))
    assert len(layer.losses) > 4 * (2 + 2 + 3)  # every bank plus the self gates


def test_config_round_trip_gives_the_same_outputs():
    v = np.random.default_rng(6).normal(size=(4, 4)).astype(np.float32)
    layer = HierarchyOfExperts(GROUPS, num_shared_experts=2, num_task_experts=1, expert_units=(3,),
                               feature_gate_rank=2, kernel_regularizer=keras.regularizers.L2(0.01), name="h")
    layer(v)
    randomize(layer, seed=7)
    clone = HierarchyOfExperts.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config() and clone.get_config()["groups"] == GROUPS
    clone(v)
    clone.set_weights(layer.get_weights())
    for task in GROUPS["g1"] + GROUPS["g2"]:
        np.testing.assert_allclose(clone(v)[task].numpy(), layer(v)[task].numpy(), rtol=1e-6)


def test_argument_errors():
    with pytest.raises(ValueError, match=r"task 'a' is listed in groups 'g1' and 'g2'"):
        HierarchyOfExperts({"g1": ["a"], "g2": ["a"]})
    with pytest.raises(ValueError, match=r"task 'a' is listed twice"):
        HierarchyOfExperts({"g1": ["a", "a"]})
    with pytest.raises(ValueError, match=r"'shared' is reserved"):
        HierarchyOfExperts({"shared": ["a"]})
    with pytest.raises(ValueError, match=r"invalid group name 'bad name'"):
        HierarchyOfExperts({"bad name": ["a"]})
    with pytest.raises(ValueError, match=r"groups\['g1'\] must be a non-empty list"):
        HierarchyOfExperts({"g1": []})
    with pytest.raises(ValueError, match=r"num_task_experts must be an int >= 0, got -1"):
        HierarchyOfExperts(GROUPS, num_task_experts=-1)
    with pytest.raises(ValueError, match=r"num_shared_experts \+ num_group_experts >= 1"):
        HierarchyOfExperts(GROUPS, num_shared_experts=0, num_group_experts=0)
    with pytest.raises(ValueError, match=r"feature_gate_rank .* got 1.5"):
        HierarchyOfExperts(GROUPS, feature_gate_rank=1.5)
    with pytest.raises(ValueError, match=r"unknown gate 'z'"):
        HierarchyOfExperts(GROUPS).expert_names("z")


# -- the architecture function --


def test_home_model_checks_groups_against_its_tasks(small_schema, small_data):
    tasks = small_data.tasks  # click, conversion
    with pytest.raises(ValueError, match=r"\['like'\] are not tasks of the model"):
        tfmtl.models.home(small_schema, tasks, groups={"g": ["click", "conversion", "like"]})
    with pytest.raises(ValueError, match=r"tasks \['conversion'\] are in no group"):
        tfmtl.models.home(small_schema, tasks, groups={"g": ["click"]})
    model = tfmtl.models.home(small_schema, tasks, expert_units=(4,))  # groups=None: one group of all tasks
    assert model.get_layer("hierarchy_of_experts").get_config()["groups"] == {"all_tasks": ["click", "conversion"]}


def test_home_model_runs_its_batch_norms_in_training_mode_saves_and_loads(small_schema, small_data, tmp_path):
    keras.utils.set_random_seed(0)
    model = tfmtl.models.home(small_schema, small_data.tasks, groups={"browse": ["click"], "buy": ["conversion"]},
                              expert_units=(8,), feature_gate_rank=2)
    bn = model.get_layer("hierarchy_of_experts").group_experts["buy"].batch_norms[0]
    sample = small_data.take(slice(0, 64)).features
    assert np.all(bn.moving_mean.numpy() == 0)
    model(sample, training=False)
    assert np.all(bn.moving_mean.numpy() == 0)
    model(sample, training=True)  # what fit does: the model's training flag reaches the experts' BN
    assert np.abs(bn.moving_mean.numpy()).max() > 0
    path = tmp_path / "home.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    expected, got = model(sample), loaded(sample)
    for task in ("click", "conversion"):
        np.testing.assert_allclose(got[task].numpy(), expected[task].numpy(), atol=1e-6)
    usage = tfmtl.diagnostics.expert_usage(model, sample, warn=False)
    assert usage.experts["hierarchy_of_experts/task_gate_click"] == [
        "hierarchy_of_experts/task_click_0", "hierarchy_of_experts/group_browse_0", "hierarchy_of_experts/shared_0"
    ]
