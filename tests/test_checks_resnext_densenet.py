"""Lesson 08's checks: ResNeXt and DenseNet parts in any correct style pass; each mistake fails with its hint."""

import pytest
from fixtures.resnext_densenet import (
    AddingDenseLayer,
    FunctionalDenseLayer,
    GroupedResNeXtBlock,
    GroupsMixupResNeXtBlock,
    ListDenseBlock,
    MaxPoolTransition,
    NewFirstDenseLayer,
    NoPoolTransition,
    NoProjectionResNeXtBlock,
    NotDenseBlock,
    ResidualDenseLayer,
    SplitPathResNeXtBlock,
    TorchvisionResNeXtBlock,
    UngroupedResNeXtBlock,
)
from torch import nn
from torchvision.models import densenet as tv_densenet
from torchvision.models import resnet as tv

from residual_course.checks import CheckFailed
from residual_course.checks.resnext_densenet import (
    check_dense_block,
    check_dense_layer,
    check_resnext_block,
    check_transition,
)
from residual_course.formulas import dense_block_params, dense_layer_params, resnext_block_params, transition_params


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def failing(check, subject, capsys, **options) -> tuple[set[str], str]:
    """Run a check expected to fail; return the keys that failed and what the learner read."""
    with pytest.raises(CheckFailed) as failure:
        check(subject, **options)
    keys = set(str(failure.value).split(": ", 1)[1].split(", "))
    return keys, capsys.readouterr().out


@pytest.mark.parametrize("block", [SplitPathResNeXtBlock, GroupedResNeXtBlock])
@pytest.mark.parametrize(("cardinality", "width"), [(8, 2), (4, 8), (16, 1)])
def test_correct_resnext_blocks_in_other_styles_pass(block, cardinality, width, capsys):
    check_resnext_block(block, cardinality=cardinality, bottleneck_width=width)
    assert "FAIL" not in capsys.readouterr().out


@pytest.mark.parametrize(("cardinality", "width"), [(8, 2), (4, 8), (2, 16)])
def test_the_groups_mixup_fails_parameters_and_groups_with_a_hint_that_names_it(cardinality, width, capsys):
    keys, printed = failing(check_resnext_block, GroupsMixupResNeXtBlock, capsys, cardinality=cardinality,
                            bottleneck_width=width)
    assert keys == {"parameters", "groups"}
    assert printed.count("groups = channels // cardinality") == 2
    assert "Cardinality IS the number of groups" in printed


def test_an_ungrouped_3x3_conv_is_caught(capsys):
    keys, printed = failing(check_resnext_block, UngroupedResNeXtBlock, capsys)
    assert keys == {"parameters", "groups"}
    assert "ordinary 3x3 conv" in printed


def test_a_missing_projection_is_caught(capsys):
    keys, printed = failing(check_resnext_block, NoProjectionResNeXtBlock, capsys)
    assert keys == {"shape", "projection"}
    assert "the shortcut is a 1x1 conv" in printed


def test_the_shared_device_property_runs_last_in_each_densenet_check():
    assert check_dense_layer.keys() == ["concatenation", "parameters", "device"]
    assert check_dense_block.keys() == ["growth", "parameters", "device"]
    assert check_transition.keys() == ["downsampling", "parameters", "device"]


@pytest.mark.parametrize("layer", [FunctionalDenseLayer])
def test_correct_dense_layers_pass(layer, capsys):
    check_dense_layer(layer)
    check_dense_layer(layer, in_channels=16, growth_rate=12)
    assert "FAIL" not in capsys.readouterr().out


@pytest.mark.parametrize("layer", [AddingDenseLayer, ResidualDenseLayer])
def test_adding_instead_of_concatenating_fails_with_the_hint(layer, capsys):
    keys, printed = failing(check_dense_layer, layer, capsys, only=["concatenation", "parameters"])
    assert "concatenation" in keys
    assert "DenseNet concatenates, it does not add" in printed


def test_the_adding_layer_keeps_its_parameter_count(capsys):
    check_dense_layer(AddingDenseLayer, only="parameters")
    assert "FAIL" not in capsys.readouterr().out


def test_the_wrong_concatenation_order_is_caught(capsys):
    keys, printed = failing(check_dense_layer, NewFirstDenseLayer, capsys)
    assert keys == {"concatenation"}
    assert "the input comes last" in printed


@pytest.mark.parametrize("block", [ListDenseBlock])
def test_correct_dense_blocks_pass(block, capsys):
    check_dense_block(block)
    check_dense_block(block, num_layers=1, in_channels=4, growth_rate=8)
    assert "FAIL" not in capsys.readouterr().out


def test_a_block_whose_layers_see_only_its_input_is_caught(capsys):
    keys, printed = failing(check_dense_block, NotDenseBlock, capsys)
    assert keys == {"parameters"}
    assert "all the features so far" in printed


def test_transitions(capsys):
    keys, printed = failing(check_transition, NoPoolTransition, capsys)
    assert keys == {"downsampling"}
    assert "nn.AvgPool2d(2)" in printed
    keys, printed = failing(check_transition, MaxPoolTransition, capsys)
    assert keys == {"downsampling"}
    assert "averages" in printed


def test_unfinished_exercises_are_reported_as_not_implemented(capsys):
    class Stub(nn.Module):
        def __init__(self, *args):
            raise NotImplementedError()

    for check in (check_resnext_block, check_dense_layer, check_dense_block, check_transition):
        with pytest.raises(CheckFailed, match="is not implemented yet"):
            check(Stub)
        assert capsys.readouterr().out.count("not implemented yet") == 1  # said once, not once per property


@pytest.mark.parametrize(("cin", "cout", "cardinality", "width", "stride"),
                         [(256, 256, 32, 4, 1), (64, 256, 32, 4, 1), (256, 512, 32, 8, 2), (32, 32, 8, 2, 1)])
def test_resnext_formula_matches_torchvision(cin, cout, cardinality, width, stride):
    assert resnext_block_params(cin, cout, cardinality, width, stride) == count(
        TorchvisionResNeXtBlock(cin, cout, cardinality, width, stride))


def test_resnext50_first_block_has_torchvision_count():
    first = tv.resnext50_32x4d().layer1[0]
    assert resnext_block_params(64, 256, 32, 4) == count(first)


@pytest.mark.parametrize(("cin", "growth"), [(64, 32), (10, 6), (24, 12)])
def test_dense_formulas_match_torchvision(cin, growth):
    assert dense_layer_params(cin, growth) == count(tv_densenet._DenseLayer(cin, growth, 4, 0.0))
    assert dense_block_params(6, cin, growth) == count(tv_densenet._DenseBlock(6, cin, 4, growth, 0.0))
    assert transition_params(cin, cin // 2) == count(tv_densenet._Transition(cin, cin // 2))
