"""The learner-facing checks: correct blocks in any style pass; each typical mistake fails with the right hint."""

import pytest
import torch
from fixtures.blocks import (
    BiasedConvBlock,
    KuangliuPreActBlock,
    NoProjectionBlock,
    PostActAsPreActBlock,
    ReluBeforeAddBlock,
    StrideInSecondConvBlock,
    TextbookBasicBlock,
)
from torch import nn

from residual_course.checks import (
    CheckFailed,
    check_basic_block,
    check_layer_grad_norms,
    check_preact_block,
    check_sigmoid_derivative,
)
from residual_course.checks.blocks import (
    basic_block_params,
    bottleneck_params,
    torchvision_basic_block_params,
    torchvision_bottleneck_params,
)
from residual_course.checks.report import Property, PropertyFailed, describe_error, run_properties
from residual_course.gradients import gradient_profile


def failing(check, subject, capsys) -> tuple[set[str], str]:
    """Run a check expected to fail; return the keys that failed and what the learner read."""
    with pytest.raises(CheckFailed) as failure:
        check(subject)
    keys = set(str(failure.value).split(": ", 1)[1].split(", "))
    return keys, capsys.readouterr().out


def test_a_correct_basic_block_in_another_style_passes(capsys):
    check_basic_block(TextbookBasicBlock)
    assert "FAIL" not in capsys.readouterr().out


def test_widely_used_preact_block_passes(capsys):
    check_preact_block(KuangliuPreActBlock)
    assert "FAIL" not in capsys.readouterr().out


@pytest.mark.parametrize(("block", "broken", "hint"), [
    (ReluBeforeAddBlock, {"relu after add"}, "no ReLU runs after the addition"),
    (NoProjectionBlock, {"projection"}, "use a 1x1 conv"),
    (BiasedConvBlock, {"identity", "projection"}, "bias=False"),
    (StrideInSecondConvBlock, {"projection"}, "the stride belongs to the (first) 3x3"),
])
def test_each_basic_block_mistake_fails_its_own_property_with_a_hint(block, broken, hint, capsys):
    keys, printed = failing(check_basic_block, block, capsys)
    assert keys == broken
    assert hint in printed


def test_relu_after_add_in_a_preact_block_is_caught(capsys):
    keys, printed = failing(check_preact_block, PostActAsPreActBlock, capsys)
    assert keys == {"no relu after add"}
    assert "no ReLU after the addition" in printed


def test_unfinished_exercise_is_reported_as_not_implemented(capsys):
    class Stub(nn.Module):
        def __init__(self, *args):
            raise NotImplementedError()

    with pytest.raises(CheckFailed, match="Stub is not implemented yet"):
        check_basic_block(Stub)
    assert capsys.readouterr().out.count("not implemented yet") == 1  # said once, not once per property


def test_check_names_the_device_it_ran_on(capsys):
    check_basic_block(TextbookBasicBlock, only="identity")
    expected = "cuda" if torch.cuda.is_available() else "cpu (no GPU found)"
    assert f"on {expected}" in capsys.readouterr().out


def test_unknown_property_key_is_refused():
    with pytest.raises(ValueError, match="choose from"):
        check_basic_block(TextbookBasicBlock, only="relu before add")


@pytest.mark.parametrize("shape", [(64, 64, 1), (64, 128, 2), (16, 48, 1), (32, 32, 2)])
def test_basic_block_formula_matches_torchvision(shape):
    assert basic_block_params(*shape) == torchvision_basic_block_params(*shape)


@pytest.mark.parametrize("shape", [(256, 64, 1), (64, 64, 1), (256, 128, 2), (512, 128, 1)])
def test_bottleneck_formula_matches_torchvision(shape):
    assert bottleneck_params(*shape) == torchvision_bottleneck_params(*shape)


def weight_grad_norms(model):
    """A learner's correct answer to lesson 01's exercise (the course package has none)."""
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]


def test_gradient_norm_check_accepts_a_correct_answer_and_catches_mistakes(capsys):
    check_layer_grad_norms(weight_grad_norms)

    def with_biases(model):
        return [p.grad.norm().item() for p in model.parameters()]

    def reversed_order(model):
        return weight_grad_norms(model)[::-1]

    def weight_norms(model):
        return [m.weight.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]

    assert "skip the 1-D bias" in failing(check_layer_grad_norms, with_biases, capsys)[1]
    assert "last to first" in failing(check_layer_grad_norms, reversed_order, capsys)[1]
    assert "not of the weights" in failing(check_layer_grad_norms, weight_norms, capsys)[1]


def test_the_course_gradient_profile_is_no_answer_to_the_gradient_norm_exercise(capsys):
    def drop_in(model):
        inputs = torch.randn(4, 12)
        return gradient_profile(model, inputs, torch.zeros(4, dtype=torch.long))

    assert "changed the gradients" in failing(check_layer_grad_norms, drop_in, capsys)[1]


def test_sigmoid_derivative_check(capsys):
    check_sigmoid_derivative(lambda z: torch.sigmoid(z) * (1 - torch.sigmoid(z)))
    keys, printed = failing(check_sigmoid_derivative, torch.sigmoid, capsys)
    assert keys == {"autograd", "bound"}
    assert "sigmoid(z) * (1 - sigmoid(z))" in printed


def test_report_turns_learner_errors_into_sentences(capsys):
    def broken(device):
        raise KeyError("conv3")

    def fine(device):
        pass

    with pytest.raises(CheckFailed, match="1 of 2 properties of thing failed: broken"):
        run_properties("thing", [Property("broken", "breaks", broken), Property("fine", "works", fine)])
    printed = capsys.readouterr().out
    assert "FAIL  breaks\n        your code raised KeyError: 'conv3'" in printed
    assert "PASS  works" in printed


def test_check_failure_shows_no_traceback_in_jupyter():
    rendered = CheckFailed("1 of 1 properties of X failed: y")._render_traceback_()
    assert rendered == ["CheckFailed: 1 of 1 properties of X failed: y"]


def test_describe_error_points_at_the_learners_line():
    def learner_code():
        return torch.zeros(2) + torch.zeros(3)

    try:
        learner_code()
    except RuntimeError as error:
        sentence = describe_error(error)
    assert sentence.startswith("your code raised RuntimeError")
    assert "torch.zeros(2) + torch.zeros(3)" in sentence
    assert PropertyFailed.__mro__[1] is Exception
