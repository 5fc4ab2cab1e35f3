"""Gradient diagnostics: the numbers behind every "the gradient vanished" plot (activations: diagnostics.py)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from residual_course.probes import forward_hooks
from residual_course.runtime import seed_everything


def gradient_profile(model: nn.Module, inputs: Tensor, targets: Tensor | None = None) -> list[float]:
    """One backward pass on a batch, then the 2-norm of each weight gradient (Linear, Conv*), first layer first.

    The loss is cross-entropy against `targets`; without targets (a model that is not a classifier) a random
    gradient, drawn from torch's global generator, is sent back from the output. The grads are reset first and
    the model's train/eval mode is left as the caller set it. (Lesson 01's exercise reads norms from gradients
    that are already there; this function makes its own, so it is not that exercise's answer.)
    """
    layers = [module for module in model.modules()
              if isinstance(getattr(module, "weight", None), Tensor) and module.weight.dim() >= 2]
    if not layers:
        raise ValueError("The model has no layer with a weight of dim >= 2 (Linear, Conv*) to measure.")
    model.zero_grad(set_to_none=True)
    outputs = model(inputs)
    if targets is None:
        outputs.backward(torch.randn_like(outputs))
    else:
        F.cross_entropy(outputs, targets).backward()
    unreached = [type(layer).__name__ for layer in layers if layer.weight.grad is None]
    if unreached:
        raise ValueError(f"a {unreached[0]} layer got no gradient: every layer must take part in the forward pass.")
    norms = [torch.linalg.vector_norm(layer.weight.grad.double()) for layer in layers]  # squares would underflow
    return torch.stack(norms).tolist()


def signal_profile(model: nn.Module, inputs: Tensor, targets: Tensor) -> list[float]:
    """Norm of the loss gradient with respect to each Linear or Conv layer's input, first layer first.

    This is the backward signal itself, one factor of the chain rule per layer; a weight gradient also scales with
    its layer's input (fan-in 784 at a first Linear layer), so it measures the signal less directly. The model's
    parameter gradients are left untouched.
    """
    seen: list[Tensor] = []

    def make_hook(name: str, module: nn.Module) -> Callable[..., None]:
        def keep(module: nn.Module, args: tuple, output: Tensor) -> None:
            seen.append(args[0])

        return keep

    inputs = inputs.detach().requires_grad_(True)  # so the first layer's input (the data) has a gradient too
    with forward_hooks(model, (nn.Linear, nn.Conv2d), make_hook, inputs):
        loss = F.cross_entropy(model(inputs), targets)
    grads = torch.autograd.grad(loss, seen)
    return torch.stack([torch.linalg.vector_norm(g.double()) for g in grads]).tolist()


def stack_gradient_ratio(make_block: Callable[[int, int], nn.Module], depth: int = 30, channels: int = 16,
                         device: torch.device | None = None, seed: int = 0) -> float:
    """First layer's weight-gradient norm over the last's in a fresh, seeded stack of `depth` shape-keeping conv
    blocks on a batch of 8x8 maps, a random gradient sent back from the output: how the depth treats the gradient.
    Another `seed` draws another stack, batch and gradient, so a claim can be checked across seeds."""
    seed_everything(seed)
    stack = nn.Sequential(*[make_block(channels, channels) for _ in range(depth)]).to(device)
    norms = gradient_profile(stack, torch.randn(16, channels, 8, 8, device=device))
    return first_to_last_ratio(norms)


def first_to_last_ratio(norms: list[float]) -> float:
    """How much weaker the input layer's gradient is than the output layer's: the vanishing factor.

    NaN when the output layer's gradient is exactly zero (every unit feeding it dead), where no ratio exists.
    """
    return norms[0] / norms[-1] if norms[-1] else float("nan")


def sigmoid_derivative_bound(depth: int) -> float:
    """0.25 ** depth: sigmoid' <= 1/4 caps the derivative product through `depth` sigmoids (weights aside)."""
    if depth < 0:
        raise ValueError(f"depth must be a non-negative number of sigmoid layers, got {depth}.")
    return 0.25**depth


def jacobian_at(function: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """d function(x) / dx at one vector x, for a function of batches (a block in eval mode): autograd's Jacobian,
    the reference lessons compare a Jacobian worked out by hand with, and measure singular values on."""
    return torch.autograd.functional.jacobian(lambda v: function(v.unsqueeze(0)).squeeze(0), x)


def gradient_agreement(model: nn.Module, batches: list[tuple[Tensor, Tensor]]) -> float:
    """The mean cosine between the loss gradients (every parameter, one vector) of consecutive pairs of batches:
    near 1 when every batch points the weights the same way, near 0 when the gradient changes direction from one
    batch to the next (steps then cancel). Runs in the model's current mode; the parameters' `.grad` is untouched."""
    if len(batches) < 2 or len(batches) % 2:
        raise ValueError(f"give an even number of batches, paired in order (at least 2), got {len(batches)}.")
    parameters = [p for p in model.parameters() if p.requires_grad]
    flat = []
    for images, labels in batches:
        grads = torch.autograd.grad(F.cross_entropy(model(images), labels), parameters)
        flat.append(torch.cat([g.flatten() for g in grads]).double())
    cosines = [F.cosine_similarity(first, second, dim=0) for first, second in zip(flat[::2], flat[1::2], strict=True)]
    return torch.stack(cosines).mean().item()
