"""The block probes several lessons' checks share: each holds for a right block and names what a wrong one broke."""

import pytest
import torch
from fixtures.residual_blocks import (
    BiasedConvBlock,
    NoProjectionBlock,
    ReluBeforeAddBlock,
    StrideInSecondConvBlock,
    TextbookBasicBlock,
    TorchvisionBasicBlock,
)

from residual_course.checks.block_probes import (
    bias_hints,
    block_call,
    expect_block_device_and_gradient,
    expect_params,
    expect_stride_in_first_3x3,
    expect_zero_branch_gives,
    run_block,
    zero_parameters,
)
from residual_course.checks.report import PropertyFailed
from residual_course.formulas import basic_block_params

CPU = torch.device("cpu")


def test_zero_parameters_makes_the_branch_output_zero_and_leaves_the_shortcut():
    block = TextbookBasicBlock(8, 8).eval()
    zero_parameters(block)
    assert all(torch.count_nonzero(parameter) == 0 for parameter in block.parameters())
    inputs = torch.randn(2, 8, 6, 6)
    assert torch.equal(block(inputs), torch.relu(inputs))


def test_a_post_activation_block_with_a_zero_branch_gives_relu_x():
    expect_zero_branch_gives(TextbookBasicBlock, (8, 8, 1), CPU, final_relu=True)


def test_a_ready_made_block_is_refused_before_it_is_probed():
    with pytest.raises(PropertyFailed, match="ready-made"):
        expect_zero_branch_gives(TorchvisionBasicBlock, (8, 8, 1), CPU, final_relu=True)


def test_a_relu_before_the_addition_is_named():
    with pytest.raises(PropertyFailed, match="no ReLU runs after the addition"):
        expect_zero_branch_gives(ReluBeforeAddBlock, (8, 8, 1), CPU, final_relu=True)
    with pytest.raises(PropertyFailed, match="has no ReLU after the addition"):
        expect_zero_branch_gives(TextbookBasicBlock, (8, 8, 1), CPU, final_relu=False)


def test_a_parameter_surplus_is_explained_by_its_hint():
    args = (8, 16, 2)
    expect_params(TextbookBasicBlock(*args), basic_block_params(*args), block_call(TextbookBasicBlock, args), {})
    biased = BiasedConvBlock(*args)
    surplus = sum(p.numel() for p in biased.parameters()) - basic_block_params(*args)
    with pytest.raises(PropertyFailed, match=r"BiasedConvBlock\(8, 16, 2\) has .* parameters, expected .*bias=False"):
        expect_params(biased, basic_block_params(*args), block_call(BiasedConvBlock, args), bias_hints(surplus))


def test_the_stride_belongs_to_the_first_3x3_conv():
    inputs = torch.randn(2, 8, 8, 8)
    expect_stride_in_first_3x3(TextbookBasicBlock(8, 16, 2).eval(), inputs, "TextbookBasicBlock(8, 16, 2)")
    with pytest.raises(PropertyFailed, match="first 3x3 conv keeps the spatial size 8"):
        expect_stride_in_first_3x3(StrideInSecondConvBlock(8, 16, 2).eval(), inputs, "the block")


def test_a_shape_clash_at_the_addition_becomes_a_sentence_about_the_shortcut():
    with pytest.raises(PropertyFailed, match="use a 1x1 conv"):
        run_block(NoProjectionBlock(8, 16, 2), torch.randn(2, 8, 8, 8), "NoProjectionBlock(8, 16, 2)")


def test_a_right_block_runs_on_the_device_and_passes_the_gradient_back():
    expect_block_device_and_gradient(TextbookBasicBlock, (8, 16, 2), CPU)
