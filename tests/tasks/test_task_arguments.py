"""Spec and layer arguments of the wrong type are refused naming the argument, never coerced."""

import pytest

import tfmtl


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: tfmtl.Task.binary("click", tower_units="16"), TypeError,
         r"task 'click': tower_units must be an int or a sequence of ints, e.g. \(64, 32\); got '16'"),
        (lambda: tfmtl.Task.binary("click", tower_units=(64.5,)), TypeError, "task 'click': tower_units must hold ints"),
        (lambda: tfmtl.Task.binary("click", tower_units=(0,)), ValueError, r"tower_units must be >= 1; got \(0,\)"),
        (lambda: tfmtl.features.Sequence("h", pooling="attention", query="q", attention_units="32"), TypeError,
         "feature 'h': attention_units must be an int or a sequence of ints"),
        (lambda: tfmtl.layers.MLP("64"), TypeError, "MLP units must be an int or a sequence of ints"),
    ],
)
def test_wrong_argument_types_name_the_argument(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_an_int_is_one_layer():
    assert tfmtl.Task.binary("click", tower_units=16).tower_units == (16,)


def test_builder_unit_arguments_are_checked():
    schema = tfmtl.Schema([tfmtl.Numeric("x", mean=0.0, variance=1.0)])
    with pytest.raises(TypeError, match="expert_units must be an int or a sequence of ints"):
        tfmtl.models.mmoe(schema, [tfmtl.Task.binary("click")], num_experts=2, expert_units="64")
