"""Checks for lesson 03: a fully connected residual block and the Jacobian of x + F(x), judged by behaviour alone."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from residual_course.checks.block_probes import zero_parameters
from residual_course.checks.report import Check, PropertyFailed
from residual_course.checks.subjects import (
    Clash,
    build,
    expect_batchnorm_modes,
    expect_on_device,
    name_of,
    random_tensor,
    run,
)
from residual_course.formulas import count_parameters, residual_mlp_block_params

BlockFactory = Callable[[int], nn.Module]
JacobianFunction = Callable[[Callable[[Tensor], Tensor], Tensor], Tensor]


# ---------------------------------------------------------------- ResidualMLPBlock(width)

check_residual_mlp_block = Check("block", "Check a learner's ResidualMLPBlock(width), relu(x + F(x)) with F = "
                                 "Linear-BN-ReLU-Linear-BN on (batch, width) inputs, and print one PASS/FAIL line per "
                                 "property.", width=16)

_WIDTH_CLASH = Clash(("shapes cannot be multiplied", "size of tensor"), "at a Linear layer or at the addition",
                     "both Linear layers map width -> width, so that F(x) can be added to x")


def _forward(block: nn.Module, inputs: Tensor, call: str) -> Tensor:
    """Run the block, turning the usual crashes (width clash, mixed devices) into sentences."""
    return run(block, inputs, call, [_WIDTH_CLASH], returns="one tensor, relu(x + F(x))")


def _zero_branch_block(factory: BlockFactory, width: int, device: torch.device, call: str) -> nn.Module:
    """The learner's block in eval mode with every parameter zero: a correct residual branch then outputs 0."""
    block = build(factory, width, device=device, call=call).eval()
    zero_parameters(block)
    return block


def _call(factory: BlockFactory, width: int) -> str:
    """The learner's constructor call, for messages: ResidualMLPBlock(16)."""
    return f"{name_of(factory, 'block')}({width})"


@check_residual_mlp_block.property(
    "shape", "keeps the shape (batch, width); parameter count 2w^2 + 6w (or 2w^2 + 4w without biases)")
def _expect_shape_and_parameters(factory: BlockFactory, device: torch.device, width: int) -> None:
    """Batches of two sizes keep their shape (batch, width); the parameter count is that of Linear-BN-ReLU-Linear-BN."""
    w, call = width, _call(factory, width)
    block = build(factory, w, device=device, call=call)
    for batch in (2, 7):
        output = _forward(block, random_tensor(device, batch, w), call)
        if tuple(output.shape) != (batch, w):
            raise PropertyFailed(f"{call} maps a batch of shape {(batch, w)} to {tuple(output.shape)}: a "
                                 "residual block keeps the shape of its input, (batch, width)")
    got, expected = count_parameters(block), residual_mlp_block_params(w)
    if got in (expected, residual_mlp_block_params(w, bias=False)):
        return
    hints = {
        -4 * w: "it lacks BatchNorm: put nn.BatchNorm1d(width) after each Linear layer",
        -2 * w: "it has one BatchNorm1d: put one after each of the two Linear layers",
        -(w * w + w): "it has one Linear layer: the branch F has two (Linear-BN-ReLU-Linear-BN)",
        w * w + 3 * w: "it has three Linear layers (or a Linear shortcut): the shortcut is x itself",
    }
    hint = hints.get(got - expected, "compare your layers with Linear-BN-ReLU-Linear-BN, all width -> width")
    raise PropertyFailed(f"{call} has {got:,} parameters, expected {expected:,} "
                         f"(2*{w}^2 weights + 2*{w} biases + 4*{w} BatchNorm): {hint}")


@check_residual_mlp_block.property("identity",
                                   "zero branch gives relu(x): F(x) = 0 makes the block the identity, then ReLU")
def _expect_zero_branch_gives_relu(factory: BlockFactory, device: torch.device, width: int) -> None:
    """With every parameter at zero (eval mode) the block returns relu(x): shortcut x, then ReLU after the add."""
    call = _call(factory, width)
    block = _zero_branch_block(factory, width, device, call)
    inputs = random_tensor(device, 6, width)
    with torch.no_grad():
        output = _forward(block, inputs, call)
    if output.shape == inputs.shape and torch.allclose(output, F.relu(inputs), atol=1e-6):
        return
    if output.shape == inputs.shape and torch.allclose(output, inputs, atol=1e-6):
        raise PropertyFailed("with every parameter at zero the block returned x unchanged, so no ReLU runs "
                             "after the addition: return relu(x + F(x)), with F ending in BatchNorm (no ReLU)")
    if torch.count_nonzero(output) == 0:
        raise PropertyFailed("with every parameter at zero the block returned all zeros: the shortcut is "
                             "missing; add the input x to the branch output before the last ReLU")
    raise PropertyFailed("with every parameter at zero the block should return relu(x) (F(x) = 0, so "
                         "relu(x + 0)); it returned something else: the branch must end in its second "
                         "BatchNorm, and the shortcut must be x itself")


@check_residual_mlp_block.property("gradient",
                                   "the gradient reaches x through the shortcut, even when the branch is zero")
def _expect_gradient_through_shortcut(factory: BlockFactory, device: torch.device, width: int) -> None:
    """With a zero branch d out / dx is 1 where x > 0; with random weights a finite gradient reaches x."""
    call = _call(factory, width)
    block = _zero_branch_block(factory, width, device, call)
    inputs = random_tensor(device, 6, width).requires_grad_(True)
    _forward(block, inputs, call).sum().backward()
    if inputs.grad is None or inputs.grad.abs().sum() == 0:
        raise PropertyFailed("with the branch at zero no gradient reaches x: the shortcut must carry x "
                             "itself to the output (not x.detach(), x.data or a copy made under no_grad)")
    active = inputs.detach() > 0  # where relu(x + 0) has slope 1, whatever the ReLU's place
    if not torch.allclose(inputs.grad[active], torch.ones_like(inputs.grad[active]), atol=1e-6):
        raise PropertyFailed("with the branch at zero, d out / dx should be exactly 1 wherever x > 0 (the "
                             "shortcut passes the gradient unchanged); add x itself, unscaled")
    block = build(factory, width, device=device, call=call).train()
    inputs = random_tensor(device, 6, width).requires_grad_(True)
    _forward(block, inputs, call).square().sum().backward()
    if inputs.grad is None or not torch.isfinite(inputs.grad).all():
        raise PropertyFailed("no finite gradient reaches x through the block: avoid .detach(), .data and "
                             "torch.no_grad() inside forward")


@check_residual_mlp_block.property("batchnorm", "BatchNorm1d: batch statistics in train(), running ones in eval()")
def _expect_batchnorm_modes(factory: BlockFactory, device: torch.device, width: int) -> None:
    """The block's BatchNorm1d layers use batch statistics in train() and running statistics in eval()."""
    call = _call(factory, width)
    block = build(factory, width, device=device, call=call)
    inputs = random_tensor(device, 8, width)
    expect_batchnorm_modes(block, inputs, call, "nn.BatchNorm1d(width)", "each Linear layer", _forward)


@check_residual_mlp_block.property("device", "parameters and output on the device")
def _expect_block_on_device(factory: BlockFactory, device: torch.device, width: int) -> None:
    """The block's parameters and its output live on the course device."""
    call = _call(factory, width)
    block = build(factory, width, device=device, call=call)
    expect_on_device(block, random_tensor(device, 6, width), device, call, _forward)


# ---------------------------------------------------------------- block_jacobian(block, x)

check_block_jacobian = Check("function", "Check a learner's block_jacobian(block, x) -> d block(x) / dx at one input "
                             "vector x, shape (width, width), against known Jacobians and print one PASS/FAIL line "
                             "per property.", width=5)


def _jacobian_call(function: JacobianFunction) -> str:
    """The learner's call, for messages: block_jacobian(block, x)."""
    return f"{name_of(function, 'function')}(block, x)"


def _batch_only(function: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """Wrap a batch -> batch function so that calling it on a bare vector says what to do instead."""

    def wrapped(batch: Tensor) -> Tensor:
        if batch.ndim != 2:
            raise PropertyFailed(f"the block was called on a tensor of shape {tuple(batch.shape)}; blocks take "
                                 "batches (N, width): call block(x.unsqueeze(0)) and take row 0 of its output")
        return function(batch)

    return wrapped


def _known_functions(device: torch.device, width: int) -> dict[str, tuple[Callable[[Tensor], Tensor], Tensor]]:
    """Functions whose Jacobian at a point is known: x -> Wx + x (J = W + I) and x -> tanh(Wx) + x."""
    generator = torch.Generator(device=device).manual_seed(1)
    weight = torch.randn(width, width, generator=generator, device=device)
    point = torch.randn(width, generator=generator, device=device)
    slope = 1 - torch.tanh(weight @ point) ** 2
    return {
        "x -> Wx + x": (lambda batch: batch @ weight.T + batch, weight + torch.eye(width, device=device)),
        "x -> tanh(Wx) + x": (lambda batch: torch.tanh(batch @ weight.T) + batch,
                              slope[:, None] * weight + torch.eye(width, device=device)),
    }, point


def _jacobian_of(function: JacobianFunction, block: Callable[[Tensor], Tensor], point: Tensor, call: str) -> Tensor:
    """Call the learner's function and insist on a (width, width) tensor on the point's device."""
    width = len(point)
    result = function(_batch_only(block), point.clone())
    if not isinstance(result, Tensor):
        raise PropertyFailed(f"{call} returned a {type(result).__name__}; return a tensor of shape ({width}, {width})")
    if tuple(result.shape) != (width, width):
        hint = ("squeeze the batch dimension: differentiate the function v -> block(v.unsqueeze(0))[0]"
                if result.numel() == width * width else
                "one row per output component, one column per input component (torch.autograd.grad of a sum "
                "gives only the column sums)")
        raise PropertyFailed(f"{call} returned shape {tuple(result.shape)} for x of shape ({width},), expected "
                             f"({width}, {width}): {hint}")
    return result


@check_block_jacobian.property("shape", "returns a (width, width) tensor on x's device")
def _expect_jacobian_shape(function: JacobianFunction, device: torch.device, width: int) -> None:
    """For x -> tanh(Wx) + x the learner's function returns a (width, width) tensor on x's device."""
    functions, point = _known_functions(device, width)
    block, _ = functions["x -> tanh(Wx) + x"]
    result = _jacobian_of(function, block, point, _jacobian_call(function))
    if result.device.type != device.type:
        raise PropertyFailed(f"the Jacobian lives on {result.device}, expected {device.type}: build it from "
                             "x's own device")


@check_block_jacobian.property("reference",
                               "equals the known Jacobian of x -> Wx + x (W + I) and of x -> tanh(Wx) + x")
def _expect_known_jacobians(function: JacobianFunction, device: torch.device, width: int) -> None:
    """The result equals W + I for x -> Wx + x and diag(tanh') W + I for x -> tanh(Wx) + x."""
    functions, point = _known_functions(device, width)
    for name, (block, expected) in functions.items():
        result = _jacobian_of(function, block, point, _jacobian_call(function)).detach()
        if torch.allclose(result, expected, atol=1e-5):
            continue
        if torch.allclose(result.T, expected, atol=1e-5):
            raise PropertyFailed(f"for {name} you returned the transpose: row i must hold the derivatives of "
                                 "output i (J[i, j] = d out_i / d x_j)")
        if torch.allclose(result + torch.eye(width, device=device), expected, atol=1e-5):
            raise PropertyFailed(f"for {name} the identity part is missing: differentiate the whole block "
                                 "output, shortcut included")
        raise PropertyFailed(f"for {name} the result differs from the known Jacobian by up to "
                             f"{(result - expected).abs().max().item():.3g}: use "
                             "torch.autograd.functional.jacobian, or torch.autograd.grad once per output")
