"""Staged training: roles from the graph, frozen parts unchanged by fit, trainable parts trained."""

from __future__ import annotations

import numpy as np
import pytest

import tfmtl


@pytest.mark.parametrize(
    "build, shared",
    [
        (lambda s, t: tfmtl.models.mmoe(s, t, num_experts=2, expert_units=(4,)), {"mixture_of_experts"}),
        (lambda s, t: tfmtl.models.ple(s, t, num_levels=2, expert_units=(4,)), {"extraction_0", "extraction_1"}),
    ],
    ids=["mmoe", "ple"],
)
def test_roles_come_from_the_graph(small_data, small_schema, build, shared):
    model = build(small_schema, small_data.tasks)
    roles = {role: {layer.name for layer in layers} for role, layers in tfmtl.training.layer_roles(model).items()}
    assert roles["features"] == {"features"}
    assert shared <= roles["shared"]
    assert roles["click"] == {"click_tower", "click"} and roles["conversion"] == {"conversion_tower", "conversion"}


def test_esmm_product_does_not_claim_the_click_tower(small_data, small_schema):
    model = tfmtl.models.esmm(small_schema, small_data.tasks)  # conversion = p(click) * p(conversion | click)
    roles = {role: [layer.name for layer in layers] for role, layers in tfmtl.training.layer_roles(model).items()}
    assert roles == {
        "features": ["features"], "shared": [], "click": ["click_tower", "click"],
        "conversion": ["conversion_tower", "conversion_given_click", "conversion"],
    }


def test_frozen_layers_do_not_move_and_the_rest_trains(small_data, small_schema):
    model = tfmtl.models.mmoe(small_schema, small_data.tasks, num_experts=2, expert_units=(4,))
    model.compile(optimizer="adam")
    model.fit(small_data.take(slice(0, 256)).to_dataset(64), verbose=0)
    trainable = tfmtl.training.set_trainable(model, features=False, shared=False, tasks=True)
    assert trainable["features"] == [] and trainable["shared"] == [] and trainable["click"]
    model.compile(optimizer=model.optimizer)
    roles = tfmtl.training.layer_roles(model)
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layers in roles.values() for layer in layers}
    model.fit(small_data.take(slice(256, 512)).to_dataset(64), verbose=0)
    for role, layers in roles.items():
        for layer in layers:
            moved = any(not np.array_equal(a, b) for a, b in zip(before[layer.name], layer.get_weights()))
            assert moved == (role not in ("features", "shared")), (role, layer.name)
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['ctr'\]; tasks: click, conversion"):
        tfmtl.training.set_trainable(model, tasks={"ctr": False})
