"""Lesson 03's checks: correct residual MLP blocks and Jacobians in any style pass; each mistake fails with its hint."""

import pytest
import torch
from fixtures.residual_learning import (
    DetachedShortcutBlock,
    LayerNormBlock,
    NamedLayersBlock,
    NoBatchNormBlock,
    NoShortcutBlock,
    ReluBeforeAddBlock,
    SequentialBranchBlock,
    jacobian_by_autograd,
    jacobian_by_einsum,
    jacobian_by_hand,
    jacobian_transposed,
    jacobian_without_final_mask,
    jacobian_without_norm_scales,
)
from torch import nn

from residual_course.checks.report import CheckFailed
from residual_course.checks.residual_learning import check_residual_jacobian, check_residual_mlp_block
from residual_course.formulas import residual_mlp_block_params


def failing(check, subject, capsys, **kwargs) -> tuple[set[str], str]:
    """Run a check expected to fail; return the keys that failed and what the learner read."""
    with pytest.raises(CheckFailed) as failure:
        check(subject, **kwargs)
    keys = set(str(failure.value).split(": ", 1)[1].split(", "))
    return keys, capsys.readouterr().out


@pytest.mark.parametrize("block", [SequentialBranchBlock, NamedLayersBlock])
@pytest.mark.parametrize("width", [16, 7])
def test_correct_blocks_in_other_styles_pass(block, width, capsys):
    check_residual_mlp_block(block, width=width)
    assert "FAIL" not in capsys.readouterr().out


@pytest.mark.parametrize(("block", "broken", "hint"), [
    (ReluBeforeAddBlock, {"identity"}, "no ReLU runs after the addition"),
    (NoShortcutBlock, {"identity", "gradient"}, "the shortcut is missing"),
    (DetachedShortcutBlock, {"gradient"}, "not x.detach()"),
    (LayerNormBlock, {"batchnorm"}, "nn.BatchNorm1d(width) after each Linear"),
    (NoBatchNormBlock, {"shape", "batchnorm"}, "it lacks BatchNorm"),
])
def test_each_block_mistake_fails_its_own_property_with_a_hint(block, broken, hint, capsys):
    keys, printed = failing(check_residual_mlp_block, block, capsys)
    assert keys == broken
    assert hint in printed


def test_unfinished_block_is_reported_as_not_implemented(capsys):
    class Stub(nn.Module):
        def __init__(self, width):
            raise NotImplementedError()

    with pytest.raises(CheckFailed, match="is not implemented yet"):
        check_residual_mlp_block(Stub)
    assert capsys.readouterr().out.count("not implemented yet") == 1  # said once, not once per property


def test_parameter_formula_counts_a_reference_block():
    for width in (3, 16, 64):
        assert sum(p.numel() for p in SequentialBranchBlock(width).parameters()) == residual_mlp_block_params(width)
        assert sum(p.numel() for p in NamedLayersBlock(width).parameters()) == residual_mlp_block_params(width, False)


@pytest.mark.parametrize("function", [jacobian_by_hand, jacobian_by_einsum])
@pytest.mark.parametrize("width", [5, 12])
def test_correct_jacobians_worked_out_by_hand_pass(function, width, capsys):
    check_residual_jacobian(function, width=width)
    assert "FAIL" not in capsys.readouterr().out


@pytest.mark.parametrize(("function", "broken", "hint"), [
    (jacobian_without_final_mask, {"relu mask"}, "the final ReLU's mask is missing"),
    (jacobian_transposed, {"branch", "relu mask"}, "you returned the transpose"),
    (jacobian_without_norm_scales, {"branch", "relu mask"}, "the BatchNorm scales are missing"),
    (jacobian_by_autograd, {"branch", "relu mask"}, "work the Jacobian out by hand"),
])
def test_each_jacobian_mistake_fails_with_a_hint(function, broken, hint, capsys):
    keys, printed = failing(check_residual_jacobian, function, capsys)
    assert keys == broken
    assert hint in printed


def test_the_hand_jacobian_of_a_real_block_is_autograds():
    torch.manual_seed(0)
    block = SequentialBranchBlock(6)
    block(torch.randn(32, 6))  # running statistics that are not the initial ones
    block.eval()
    x = torch.randn(6)
    linear1, norm1, _, linear2, norm2 = block.branch
    expected = torch.autograd.functional.jacobian(lambda v: block(v[None])[0], x)
    assert torch.allclose(jacobian_by_hand(linear1, norm1, linear2, norm2, x), expected, atol=1e-5)
