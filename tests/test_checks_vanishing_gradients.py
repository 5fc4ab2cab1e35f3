"""Lesson 01's checks: right gradient norms and sigmoid derivatives pass; each typical mistake fails with its hint."""

import pytest
import torch
from torch import nn

from residual_course.checks import CheckFailed, check_layer_grad_norms, check_sigmoid_derivative
from residual_course.gradients import gradient_profile


def failing(check, subject, capsys) -> tuple[set[str], str]:
    """Run a check expected to fail; return the keys that failed and what the learner read."""
    with pytest.raises(CheckFailed) as failure:
        check(subject)
    keys = set(str(failure.value).split(": ", 1)[1].split(", "))
    return keys, capsys.readouterr().out


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
