"""The course's small ConvNet assembles any block; parameter and compute counts are right."""

import pytest
import torch
from fixtures.residual_blocks import TorchvisionBasicBlock
from torch import nn

from residual_course.convnets import ConvNet, PlainBlock
from residual_course.formulas import count_macs, count_parameters


@pytest.mark.parametrize("block", [PlainBlock, TorchvisionBasicBlock])
def test_convnet_maps_images_to_logits_and_halves_resolution_per_stage(block):
    model = ConvNet(block, widths=(8, 16, 32), depths=(1, 2, 1))
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    strided = [m for m in convs if m.stride == (2, 2) and m.kernel_size == (3, 3)]
    assert len(strided) == 2


def test_plain_and_residual_nets_of_equal_depth_differ_only_by_projections():
    plain, residual = ConvNet(PlainBlock), ConvNet(TorchvisionBasicBlock)
    projections = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert count_parameters(residual) - count_parameters(plain) == projections


def test_macs_of_a_single_conv_and_linear():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(4 * 28 * 28, 10))
    assert count_macs(model) == 28 * 28 * 4 * 9 + 4 * 28 * 28 * 10


def test_macs_count_grouped_convs_per_group():
    grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False)
    assert count_macs(grouped, (1, 8, 5, 5)) == 5 * 5 * 8 * (8 // 4) * 9


def test_mismatched_stage_lists_are_refused():
    with pytest.raises(ValueError, match="one entry per stage"):
        ConvNet(PlainBlock, widths=(8, 16), depths=(1,))
