"""Lesson 07's checks: residual models in any style pass; over-budget, softmax and shortcut-free models fail."""

import pytest
import torch
from fixtures.capstone import (
    DenseNet,
    DoublingNet,
    GatedNet,
    InlineResNet,
    ParallelBranchesNet,
    PlainNet,
    PreActResNet,
    ProjectionOnlyResNet,
    ReluBeforeAddResNet,
    SmallResNet,
    SoftmaxResNet,
    TorchvisionResNet,
    WideResNet,
)
from torch import nn

from residual_course.checks.capstone import GRADING_RECIPE, check_capstone, count_trainable, grading_accuracy
from residual_course.checks.report import CheckFailed
from residual_course.data import load_dataset


def failing(subject, capsys, **kwargs) -> tuple[set[str], str]:
    """Run the check expected to fail; return the keys that failed and what the learner read."""
    with pytest.raises(CheckFailed) as failure:
        check_capstone(subject, **kwargs)
    keys = set(str(failure.value).split(": ", 1)[1].split(", "))
    return keys, capsys.readouterr().out


@pytest.mark.parametrize("model", [SmallResNet, InlineResNet, PreActResNet, ReluBeforeAddResNet])
def test_residual_models_in_other_styles_pass(model, capsys):
    check_capstone(model)
    assert "FAIL" not in capsys.readouterr().out


def test_torchvision_blocks_are_refused_as_ready_made(capsys):
    keys, printed = failing(TorchvisionResNet, capsys, budget=10**7)
    assert keys == {"output", "logits", "budget", "device", "shortcut"}
    assert "built from torchvision.models.resnet.BasicBlock, ready-made" in printed


@pytest.mark.parametrize(("model", "broken", "hint"), [
    (PlainNet, {"shortcut"}, "no addition of the form x + F(x)"),
    (ProjectionOnlyResNet, {"shortcut"}, "a projection shortcut alone"),
    (DenseNet, {"shortcut"}, "no addition of the form x + F(x)"),
    (ParallelBranchesNet, {"shortcut"}, "no addition of the form x + F(x)"),
    (GatedNet, {"shortcut"}, "no addition of the form x + F(x)"),
    (DoublingNet, {"shortcut"}, "no addition of the form x + F(x)"),
    (WideResNet, {"budget"}, "73,842 over the budget of 100,000"),
    (SoftmaxResNet, {"logits"}, "returns probabilities"),
])
def test_each_mistake_fails_its_own_property_with_a_hint(model, broken, hint, capsys):
    keys, printed = failing(model, capsys)
    assert keys == broken
    assert hint in printed


def test_wrong_output_shape_is_named(capsys):
    class Flat(SmallResNet):
        def forward(self, x):
            return super().forward(x)[:, :5]

    keys, printed = failing(Flat, capsys)
    assert keys == {"output", "logits", "device", "shortcut"}
    assert "expected (2, 10)" in printed


def test_unfinished_model_is_reported_as_not_implemented(capsys):
    class Stub(nn.Module):
        def __init__(self):
            raise NotImplementedError()

    with pytest.raises(CheckFailed, match="is not implemented yet"):
        check_capstone(Stub)
    assert capsys.readouterr().out.count("not implemented yet") == 1  # said once, not once per property


def test_budget_counts_trainable_parameters_only():
    assert count_trainable(SmallResNet()) == 77_754
    frozen = SmallResNet()
    frozen.head.requires_grad_(False)
    assert count_trainable(frozen) == 77_754 - 650


def test_grading_is_repeatable_and_ignores_the_learners_seed():
    data = load_dataset("fashion-mnist", train_size=512, test_size=256)
    recipe = {**GRADING_RECIPE}
    first = grading_accuracy(SmallResNet, data)
    torch.manual_seed(123)
    assert grading_accuracy(SmallResNet, data) == first
    assert GRADING_RECIPE == recipe
    assert not torch.backends.cudnn.deterministic, "grading must restore cuDNN's settings"
