"""Checks for lesson 03: a fully connected residual block, and the Jacobian of relu(x + F(x)) worked out by hand,
judged by behaviour alone."""

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
    randomize_weights,
    run,
)
from residual_course.formulas import count_parameters, residual_mlp_block_params

BlockFactory = Callable[[int], nn.Module]
JacobianByHand = Callable[[nn.Linear, nn.BatchNorm1d, nn.Linear, nn.BatchNorm1d, Tensor], Tensor]


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


# ---------------------------------------------------------------- residual_jacobian(linear1, norm1, linear2, norm2, x)

check_residual_jacobian = Check("function", "Check a learner's residual_jacobian(linear1, norm1, linear2, norm2, x): "
                                "the Jacobian of relu(x + F(x)), F = linear1-norm1-ReLU-linear2-norm2 in eval mode, "
                                "at one vector x, worked out by hand, against autograd's; print one PASS/FAIL line per "
                                "property.", width=12)


def _random_branch(device: torch.device, width: int, seed: int) -> list[nn.Module]:
    """Linear, BatchNorm1d, Linear, BatchNorm1d in eval mode, with random weights and running statistics (salted)."""
    layers = [nn.Linear(width, width), nn.BatchNorm1d(width), nn.Linear(width, width), nn.BatchNorm1d(width)]
    for index, layer in enumerate(layers):
        layer.to(device).eval()
        randomize_weights(layer, seed * 10 + index)
        for parameter in layer.parameters():
            parameter.requires_grad_(False)
    return layers


def _branch(layers: list[nn.Module], x: Tensor) -> Tensor:
    """F(x) for one vector, F = linear1-norm1-ReLU-linear2-norm2."""
    linear1, norm1, linear2, norm2 = layers
    return norm2(linear2(F.relu(norm1(linear1(x[None])))))[0]


def _block_output(layers: list[nn.Module], x: Tensor) -> Tensor:
    """relu(x + F(x)) for one vector."""
    return F.relu(x + _branch(layers, x))


def _autograd_jacobian(layers: list[nn.Module], x: Tensor) -> Tensor:
    """The reference: torch.autograd's Jacobian of the block at x."""
    with torch.enable_grad():
        return torch.autograd.functional.jacobian(lambda v: _block_output(layers, v), x)


def _hand_jacobian(function: JacobianByHand, layers: list[nn.Module], x: Tensor, call: str) -> Tensor:
    """The learner's Jacobian, computed in inference mode (autograd cannot run there: the point is to work it out)."""
    width = len(x)
    try:
        with torch.inference_mode():
            result = function(*layers, x.clone())
    except RuntimeError as error:
        if "nference" in str(error) or "does not require grad" in str(error):
            raise PropertyFailed(f"{call} used autograd ({str(error)[:80]}...): work the Jacobian out by hand from "
                                 "the layers' weights, BatchNorm scales and the ReLUs' 0/1 masks") from None
        raise
    if not isinstance(result, Tensor):
        raise PropertyFailed(f"{call} returned a {type(result).__name__}; return a tensor of shape ({width}, {width})")
    if tuple(result.shape) != (width, width):
        raise PropertyFailed(f"{call} returned shape {tuple(result.shape)} for x of shape ({width},), expected "
                             f"({width}, {width}): one row per output unit, one column per input unit")
    return result.clone()


def _point(device: torch.device, width: int, all_active: bool, seed: int) -> Tensor:
    """A vector x far above F's usual scale (the caller makes sure x + F(x) > 0 for every unit), or a typical one
    where the final ReLU blocks some."""
    x = random_tensor(device, width, seed=seed)
    return x.abs() + 20 if all_active else x


def _hint(result: Tensor, layers: list[nn.Module], x: Tensor) -> str:
    """What the learner's result matches instead of the Jacobian, in words."""
    linear1, norm1, linear2, norm2 = layers
    scale1 = norm1.weight / torch.sqrt(norm1.running_var + norm1.eps)
    scale2 = norm2.weight / torch.sqrt(norm2.running_var + norm2.eps)
    active1 = (norm1(linear1(x[None]))[0] > 0).float()
    identity = torch.eye(len(x), device=x.device)
    final = (_block_output(layers, x) > 0).float()
    branch = (scale2[:, None] * linear2.weight) @ ((active1 * scale1)[:, None] * linear1.weight)
    wrong = {
        "you returned the transpose: row i holds the derivatives of output i (J[i, j] = d out_i / d x_j)":
            (final[:, None] * (identity + branch)).T,
        "the final ReLU's mask is missing: J = D (I + J_F), where D = diag(1 if x + F(x) > 0 else 0)":
            identity + branch,
        "the identity is missing: the shortcut contributes I, J = D (I + J_F)": final[:, None] * branch,
        "the BatchNorm scales are missing: in eval mode each BatchNorm multiplies unit k by gamma_k / "
        "sqrt(running_var_k + eps)": final[:, None] * (identity + linear2.weight @ (active1[:, None] * linear1.weight)),
        "the inner ReLU's mask is missing: between the two Linear layers only the units with norm1(...) > 0 pass":
            final[:, None] * (identity + (scale2[:, None] * linear2.weight) @ (scale1[:, None] * linear1.weight)),
    }
    if torch.count_nonzero(result) == 0:
        return ("it is all zeros, which autograd gives where it cannot run (the check runs your function in "
                "inference mode): work the Jacobian out by hand from the layers' weights and masks")
    for words, value in wrong.items():
        if torch.allclose(result, value, atol=1e-4):
            return words
    return "write J = D (I + S2 W2 D1 S1 W1): W the Linear weights, S the BatchNorm scales, D1 and D the ReLUs' masks"


def _expect_matches_autograd(function: JacobianByHand, device: torch.device, width: int, all_active: bool) -> None:
    """On random branches, at a point of the given kind, the learner's Jacobian equals autograd's."""
    call = f"{name_of(function, 'function')}(linear1, norm1, linear2, norm2, x)"
    for seed in (1, 2):
        layers, x = _random_branch(device, width, seed), _point(device, width, all_active, seed)
        if all_active:  # where a unit would still be blocked, lift the last BatchNorm's shift: J_F stays the same
            with torch.no_grad():
                layers[3].bias += F.relu(1 - x - _branch(layers, x))
        result = _hand_jacobian(function, layers, x, call)
        expected = _autograd_jacobian(layers, x)
        if result.device.type != device.type:
            raise PropertyFailed(f"{call} returned its Jacobian on {result.device}, expected {device.type}: build it "
                                 "from x's own device")
        if not torch.allclose(result, expected, atol=1e-4, rtol=1e-4):
            raise PropertyFailed(f"{call} differs from autograd's Jacobian by up to "
                                 f"{(result - expected).abs().max().item():.3g}: {_hint(result, layers, x)}")


@check_residual_jacobian.property("branch", "where every unit passes the last ReLU: I + J_F, J_F = S2 W2 D1 S1 W1")
def _expect_branch_jacobian(function: JacobianByHand, device: torch.device, width: int) -> None:
    """At a point where x + F(x) > 0 for every unit, the Jacobian is I + J_F: the branch's part is right."""
    _expect_matches_autograd(function, device, width, all_active=True)


@check_residual_jacobian.property("relu mask", "anywhere: D (I + J_F), D the last ReLU's 0/1 mask")
def _expect_full_jacobian(function: JacobianByHand, device: torch.device, width: int) -> None:
    """At a typical point, where the last ReLU blocks some units, the Jacobian is D (I + J_F)."""
    _expect_matches_autograd(function, device, width, all_active=False)
