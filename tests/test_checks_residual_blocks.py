"""Lesson 05's checks: correct blocks in any style pass; each typical mistake fails with the right hint."""

import pytest
from fixtures.residual_blocks import (
    AffineProjectionNormBlock,
    AffineSecondNormBlock,
    BiasedConvBlock,
    FunctionalBasicBlock,
    KuangliuPreActBlock,
    NoProjectionBlock,
    PostActAsPreActBlock,
    ReluBeforeAddBlock,
    ShortcutInEvalOnlyBlock,
    StrideInSecondConvBlock,
    TextbookBasicBlock,
    ZeroProbeBlock,
)

from residual_course.checks import CheckFailed, check_basic_block, check_bottleneck, check_preact_block
from residual_course.formulas import (
    basic_block_params,
    bottleneck_params,
    torchvision_basic_block_params,
    torchvision_bottleneck_params,
)


def failing(check, subject, capsys) -> tuple[set[str], str]:
    """Run a check expected to fail; return the keys that failed and what the learner read."""
    with pytest.raises(CheckFailed) as failure:
        check(subject)
    keys = set(str(failure.value).split(": ", 1)[1].split(", "))
    return keys, capsys.readouterr().out


def test_the_shared_properties_run_where_each_block_ran_them():
    post_activation = ["identity", "projection", "wiring", "relu after add", "batchnorm", "device", "every parameter"]
    assert check_basic_block.keys() == check_bottleneck.keys() == post_activation
    assert check_preact_block.keys() == ["identity", "no relu after add", "pre-activation", "projection", "wiring",
                                         "device", "every parameter"]


@pytest.mark.parametrize("block", [TextbookBasicBlock, FunctionalBasicBlock])
def test_a_correct_basic_block_in_another_style_passes(block, capsys):
    check_basic_block(block)
    assert "FAIL" not in capsys.readouterr().out


def test_widely_used_preact_block_passes(capsys):
    check_preact_block(KuangliuPreActBlock)
    assert "FAIL" not in capsys.readouterr().out


@pytest.mark.parametrize(("block", "broken", "hint"), [
    (ReluBeforeAddBlock, {"relu after add", "wiring"}, "no ReLU runs after the addition"),
    (NoProjectionBlock, {"projection"}, "use a 1x1 conv"),
    (BiasedConvBlock, {"identity", "projection"}, "bias=False"),
    (StrideInSecondConvBlock, {"projection"}, "the stride belongs to the (first) 3x3"),
    # what probes at special weights (all zero, a BatchNorm at its initial statistics, eval mode) cannot see
    (AffineSecondNormBlock, {"wiring", "projection"}, "no BatchNorm after the second 3x3 convolution"),
    (AffineProjectionNormBlock, {"projection"}, "no BatchNorm after the 1x1 projection"),
    (ShortcutInEvalOnlyBlock, {"wiring", "relu after add", "projection"}, "in train(), with random weights"),
    (ZeroProbeBlock, {"wiring"}, "applies the ReLU to the branch before adding the shortcut"),
])
def test_each_basic_block_mistake_fails_its_own_property_with_a_hint(block, broken, hint, capsys):
    keys, printed = failing(check_basic_block, block, capsys)
    assert keys == broken
    assert hint in printed


def test_relu_after_add_in_a_preact_block_is_caught(capsys):
    keys, printed = failing(check_preact_block, PostActAsPreActBlock, capsys)
    assert keys == {"no relu after add", "wiring"}
    assert "no ReLU after the addition" in printed


@pytest.mark.parametrize("shape", [(64, 64, 1), (64, 128, 2), (16, 48, 1), (32, 32, 2)])
def test_basic_block_formula_matches_torchvision(shape):
    assert basic_block_params(*shape) == torchvision_basic_block_params(*shape)


@pytest.mark.parametrize("shape", [(256, 64, 1), (64, 64, 1), (256, 128, 2), (512, 128, 1)])
def test_bottleneck_formula_matches_torchvision(shape):
    assert bottleneck_params(*shape) == torchvision_bottleneck_params(*shape)
