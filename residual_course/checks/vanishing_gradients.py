"""Checks for lesson 01: the sigmoid's derivative and per-layer gradient norms, judged by behaviour alone."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from residual_course.checks.report import Check, PropertyFailed
from residual_course.checks.subjects import name_of

GradNorms = Callable[[nn.Module], object]
Derivative = Callable[[Tensor], Tensor]


def _as_floats(norms: object, call: str) -> list[float]:
    """Accept a list or tuple of numbers or 0-d tensors; refuse anything else with a sentence."""
    if not isinstance(norms, list | tuple):
        raise PropertyFailed(f"{call} returned a {type(norms).__name__}; return a list with one float per layer")
    try:
        return [float(value) for value in norms]
    except (TypeError, ValueError, RuntimeError) as error:
        raise PropertyFailed(f"{call} returned items that are not single numbers ({error}); "
                             "use float(...) or .item() on each norm") from None


def _graded_model(device: torch.device, skip: bool) -> tuple[nn.Module, list[float]]:
    """A small model whose layers all differ in size, with gradients from one backward pass, and the expected
    norms (taken from the layers as they are built, so no function here answers the exercise)."""
    generator = torch.Generator(device=device).manual_seed(0)
    if skip:
        from residual_course.models import make_mlp

        model = make_mlp(depth=6, width=16, activation="tanh", skip=True, in_features=12, num_classes=3)
        order = [model[1][0], *(unit.linear for unit in model[2:-1]), model[-1]]
    else:
        order = [nn.Linear(12, 9), nn.Linear(9, 7), nn.Linear(7, 3)]
        model = nn.Sequential(order[0], nn.Tanh(), order[1], nn.Tanh(), order[2])
    model.to(device)
    inputs = torch.randn(16, 12, generator=generator, device=device)
    targets = torch.randint(0, 3, (16,), generator=generator, device=device)
    F.cross_entropy(model(inputs), targets).backward()
    return model, [float(torch.linalg.vector_norm(layer.weight.grad)) for layer in order]


# ---------------------------------------------------------------- weight_grad_norms

check_layer_grad_norms = Check("function", "Check a learner's weight_grad_norms(model) -> one gradient norm per "
                               "Linear layer's weight, first to last, read without changing the gradients, and "
                               "print one PASS/FAIL line per property.")


def _grad_norms_call(function: GradNorms) -> str:
    """The learner's call, for messages: weight_grad_norms(model)."""
    return f"{name_of(function, 'function')}(model)"


def _expect_norms(function: GradNorms, device: torch.device, skip: bool) -> None:
    """The function returns the 2-norm of each Linear layer's weight gradient, input to output."""
    call = _grad_norms_call(function)
    model, expected = _graded_model(device, skip)
    got = _as_floats(function(model), call)
    if len(got) != len(expected):
        raise PropertyFailed(f"{call} returned {len(got)} numbers for a model with {len(expected)} Linear "
                             "layers: one norm per layer's weight (skip the 1-D bias vectors)")
    got_t, expected_t = torch.tensor(got), torch.tensor(expected)
    if torch.allclose(got_t.flip(0), expected_t, rtol=1e-4) and not torch.allclose(got_t, expected_t, rtol=1e-4):
        raise PropertyFailed(f"{call} lists the layers last to first; list them from input to output")
    if not torch.allclose(got_t, expected_t, rtol=1e-4, atol=1e-8):
        raise PropertyFailed(f"{call} returned {[round(v, 5) for v in got]}, expected "
                             f"{[round(v, 5) for v in expected]}: take torch.linalg.vector_norm of each "
                             "layer's weight.grad (the 2-norm of the whole gradient), not of the weights")


@check_layer_grad_norms.property("plain", "one norm per Linear layer, input to output, on a plain MLP")
def _expect_plain_norms(function: GradNorms, device: torch.device) -> None:
    """On a plain Tanh MLP of three Linear layers: one weight-gradient norm per layer, input to output."""
    _expect_norms(function, device, skip=False)


@check_layer_grad_norms.property("residual", "the same on a residual MLP (layers inside skip blocks included)")
def _expect_residual_norms(function: GradNorms, device: torch.device) -> None:
    """On a residual MLP: the Linear layers inside the skip blocks count too, in the order they run."""
    _expect_norms(function, device, skip=True)


@check_layer_grad_norms.property("read only", "reads the gradients without changing them")
def _expect_gradients_unchanged(function: GradNorms, device: torch.device) -> None:
    """Every parameter's .grad is the same tensor value after the call as before it."""
    model, _ = _graded_model(device, skip=False)
    before = [p.grad.clone() for p in model.parameters()]
    function(model)
    after = [p.grad for p in model.parameters()]
    if any(a is None or not torch.equal(a, b) for a, b in zip(after, before, strict=True)):
        raise PropertyFailed(f"{_grad_norms_call(function)} changed the gradients: only read p.grad, do not zero "
                             "them or call backward() again")


# ---------------------------------------------------------------- sigmoid_derivative

check_sigmoid_derivative = Check("function", "Check a learner's sigmoid_derivative(z) -> d sigmoid(z) / dz, "
                                 "elementwise (against autograd, and its peak of 1/4 at z = 0), and print one "
                                 "PASS/FAIL line per property.")


@check_sigmoid_derivative.property("autograd", "equals autograd's derivative of torch.sigmoid, elementwise, on the "
                                   "device")
def _expect_autograd_derivative(function: Derivative, device: torch.device) -> None:
    """On z from -10 to 10: a tensor of z's shape on z's device, equal to autograd's derivative of the sigmoid."""
    call = f"{name_of(function, 'function')}(z)"
    z = torch.linspace(-10, 10, 201, device=device, requires_grad=True)
    (expected,) = torch.autograd.grad(torch.sigmoid(z).sum(), z)
    got = function(z.detach())
    if not isinstance(got, Tensor):
        raise PropertyFailed(f"{call} returned a {type(got).__name__}; return a tensor like z")
    if got.shape != z.shape or got.device.type != device.type:
        raise PropertyFailed(f"{call} returned shape {tuple(got.shape)} on {got.device} for z of shape "
                             f"{tuple(z.shape)} on {device.type}: compute elementwise with torch operations")
    if not torch.allclose(got, expected, atol=1e-6):
        worst = int((got - expected).abs().argmax())
        where = float(z.detach()[worst])
        raise PropertyFailed(f"at z = {where:.2f} it gives {float(got[worst]):.4f}, autograd says "
                             f"{float(expected[worst]):.4f}: use sigmoid(z) * (1 - sigmoid(z))")


@check_sigmoid_derivative.property("bound", "never exceeds 1/4, reached at z = 0")
def _expect_quarter_bound(function: Derivative, device: torch.device) -> None:
    """On z from -6 to 6 the maximum is 1/4, and the value at z = 0 is 1/4."""
    z = torch.linspace(-6, 6, 1201, device=device)
    values = function(z)
    peak = float(values.max())
    at_zero = float(function(torch.zeros(1, device=device)))
    if abs(peak - 0.25) > 1e-6 or abs(at_zero - 0.25) > 1e-6:
        raise PropertyFailed(f"the maximum is {peak:.4f} and the value at 0 is {at_zero:.4f}; the sigmoid's "
                             "slope peaks at exactly 1/4 at z = 0")
